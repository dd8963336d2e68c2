"""Alias of `dual_denoising.evaluation.attacks`, where the attacks now live; old imports keep working."""

from .evaluation.attacks import *  # noqa: F403
from .evaluation.attacks import __all__  # noqa: F401
