"""Dual Denoising: robust 3D point-cloud representations learned from CLIP."""

__version__ = "0.1.0.dev0"
