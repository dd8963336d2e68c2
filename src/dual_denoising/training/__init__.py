"""Pretraining with Accelerate (`accelerate launch examples/pretrain.py`, `dual-denoising pretrain`).

- `arguments`: `PretrainingArguments`, the command line, the presets;
- `trainer`: model and optimizer, data, zero-shot evaluation during training, and `pretrain`, the run;
- `checkpoints`: resumable `save_state` folders;
- `card`: the final folder's card and the Hub upload.
"""

from .arguments import (
    CHECKPOINT_PATTERN,
    PRESETS_DIR,
    TRAIN_RESULTS_FILE,
    PretrainingArguments,
    add_pretraining_arguments,
    parse_args,
    register_cli,
    resolve_preset,
)
from .card import check_hub_access, model_card, push_folder_to_hub
from .checkpoints import TrainerState, list_checkpoints, resolve_checkpoint, save_checkpoint
from .trainer import (
    build_model,
    caption_prototypes,
    create_optimizer,
    freeze_unused_parameters,
    load_model_config,
    load_training_data,
    make_evaluation,
    make_train_dataloader,
    parameter_groups,
    pretrain,
    summarize_zero_shot,
    update_config,
)

__all__ = [
    "CHECKPOINT_PATTERN",
    "PRESETS_DIR",
    "TRAIN_RESULTS_FILE",
    "PretrainingArguments",
    "add_pretraining_arguments",
    "parse_args",
    "register_cli",
    "resolve_preset",
    "TrainerState",
    "list_checkpoints",
    "resolve_checkpoint",
    "save_checkpoint",
    "check_hub_access",
    "model_card",
    "push_folder_to_hub",
    "build_model",
    "caption_prototypes",
    "create_optimizer",
    "freeze_unused_parameters",
    "load_model_config",
    "load_training_data",
    "make_evaluation",
    "make_train_dataloader",
    "parameter_groups",
    "pretrain",
    "summarize_zero_shot",
    "update_config",
]
