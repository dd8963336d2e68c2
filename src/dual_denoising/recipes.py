"""Alias of `dual_denoising.training.recipes`, where the recipes now live; old imports keep working."""

import sys

from .training import recipes as _recipes

sys.modules[__name__] = _recipes  # the recipes module itself (its helpers are imported by name, private ones too)
