"""Alias of `dual_denoising.synth`, where SynthShapes now lives (split by family); old imports keep working."""

from .synth import *  # noqa: F403
from .synth import __all__  # noqa: F401
