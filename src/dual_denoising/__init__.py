"""Dual Denoising: robust 3D point-cloud representations learned from CLIP.

`import dual_denoising` registers the model with transformers' Auto classes and the "zero-shot-3d-classification"
pipeline task, so that `AutoConfig.from_pretrained(folder)`, `AutoModel.from_pretrained(folder)` and
`pipeline("zero-shot-3d-classification", ...)` work for saved models. The package's names are imported on first use
(PEP 562, as transformers does), and the `dual-denoising` command line defers the registration to the command it runs,
so that `dual-denoising --help` answers without importing torch or transformers.
"""

__version__ = "0.1.0.dev0"

import sys
from pathlib import Path

from ._lazy import lazy_exports

_EXPORTS = {
    "configuration_dual_denoising": ["DualDenoisingConfig", "DualDenoisingDenoiserConfig", "DualDenoisingPointConfig"],
    "modeling_dual_denoising": ["DualDenoisingModel", "DualDenoisingModelOutput", "DualDenoisingPreTrainedModel"],
    "pipeline_dual_denoising": ["ZeroShot3DClassificationPipeline"],
    "shipped": ["shipped_models", "resolve_model", "load_model_and_tokenizer"],
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

# the executable that `pip install` writes for the console script; `python -m dual_denoising.cli` is not deferred
COMMAND_LINE_NAMES = {"dual-denoising", "dual-denoising.exe", "dual-denoising-script.py"}


def register() -> None:
    """Register the configs and the model with transformers' Auto classes and the pipeline task (idempotent).

    Runs on `import dual_denoising`, except under the `dual-denoising` command line, which calls it before a command.
    """
    from transformers import AutoConfig, AutoModel

    from .configuration_dual_denoising import DualDenoisingConfig, DualDenoisingDenoiserConfig, DualDenoisingPointConfig
    from .modeling_dual_denoising import DualDenoisingModel
    from .pipeline_dual_denoising import ZeroShot3DClassificationPipeline  # noqa: F401  (registers the task)

    for config_class in (DualDenoisingConfig, DualDenoisingPointConfig, DualDenoisingDenoiserConfig):
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(DualDenoisingConfig, DualDenoisingModel, exist_ok=True)
    # save_pretrained then writes `auto_map` and copies the code next to the weights (for trust_remote_code=True)
    DualDenoisingConfig.register_for_auto_class()
    DualDenoisingModel.register_for_auto_class("AutoModel")


if Path((getattr(sys, "argv", None) or [""])[0]).name not in COMMAND_LINE_NAMES:
    register()

__all__ = [
    "DualDenoisingConfig",
    "DualDenoisingDenoiserConfig",
    "DualDenoisingPointConfig",
    "DualDenoisingModel",
    "DualDenoisingModelOutput",
    "DualDenoisingPreTrainedModel",
    "ZeroShot3DClassificationPipeline",
    "shipped_models",
    "resolve_model",
    "register",
]
