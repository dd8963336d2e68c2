"""Alias of `dual_denoising.synth.render`, where the renderer now lives; old imports keep working."""

from .synth.render import *  # noqa: F403
from .synth.render import contact_sheet, render_mesh, sample_view_angles  # noqa: F401
