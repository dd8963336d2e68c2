"""Alias of `dual_denoising.data.importers`, where the importers now live; old imports keep working."""

from .data.importers import *  # noqa: F403
from .data.importers import __all__  # noqa: F401
