"""Dual Denoising: robust 3D point-cloud representations learned from CLIP.

Importing the package registers the model with transformers' Auto classes, so that
`AutoConfig.from_pretrained(folder)` and `AutoModel.from_pretrained(folder)` work for saved models.
"""

__version__ = "0.1.0.dev0"

from transformers import AutoConfig, AutoModel

from .configuration_dual_denoising import DualDenoisingConfig, DualDenoisingDenoiserConfig, DualDenoisingPointConfig
from .modeling_dual_denoising import DualDenoisingModel, DualDenoisingModelOutput, DualDenoisingPreTrainedModel
from .pipeline_dual_denoising import (  # registers "zero-shot-3d-classification"
    ZeroShot3DClassificationPipeline,
    embedded_models,
    resolve_model,
)

AutoConfig.register(DualDenoisingConfig.model_type, DualDenoisingConfig, exist_ok=True)
AutoConfig.register(DualDenoisingPointConfig.model_type, DualDenoisingPointConfig, exist_ok=True)
AutoConfig.register(DualDenoisingDenoiserConfig.model_type, DualDenoisingDenoiserConfig, exist_ok=True)
AutoModel.register(DualDenoisingConfig, DualDenoisingModel, exist_ok=True)
# save_pretrained then writes `auto_map` and copies the code next to the weights (for trust_remote_code=True)
DualDenoisingConfig.register_for_auto_class()
DualDenoisingModel.register_for_auto_class("AutoModel")

__all__ = [
    "DualDenoisingConfig",
    "DualDenoisingDenoiserConfig",
    "DualDenoisingPointConfig",
    "DualDenoisingModel",
    "DualDenoisingModelOutput",
    "DualDenoisingPreTrainedModel",
    "ZeroShot3DClassificationPipeline",
    "embedded_models",
    "resolve_model",
]
