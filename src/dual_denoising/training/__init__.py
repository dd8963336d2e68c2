"""Pretraining with Accelerate (`accelerate launch examples/pretrain.py`, `dual-denoising pretrain`).

- `arguments`: `PretrainingArguments`, the command line, the presets;
- `data`: the training rows, the validation split, the FPS cache, scans, augmentations, the DataLoader;
- `trainer`: model and optimizer, zero-shot evaluation during training, and `pretrain`, the run, in steps;
- `checkpoints`: resumable `save_state` folders;
- `card`: the final folder's card and the Hub upload;
- `orientation`: the orientation head `up_axis="auto"` reads, fitted on the frozen encoder after pretraining.
"""

from .._lazy import lazy_exports

# submodule -> the names it gives; each is imported on first use (`dual_denoising._lazy`)
_EXPORTS = {
    "arguments": [
        "CHECKPOINT_PATTERN", "PRESETS_DIR", "TRAIN_RESULTS_FILE", "PretrainingArguments", "add_pretraining_arguments",
        "parse_args", "resolve_preset", "load_recipe", "recipe_command", "RECIPES_DIR",
    ],
    "card": ["check_hub_access", "model_card", "push_folder_to_hub"],
    "orientation": ["fit_orientation_head", "orientation_features", "turn_to"],
    "checkpoints": ["TrainerState", "list_checkpoints", "resolve_checkpoint", "save_checkpoint"],
    "trainer": [
        "build_model", "caption_prototypes", "create_optimizer", "freeze_unused_parameters", "load_model_config",
        "make_evaluation", "parameter_groups", "pretrain", "summarize_zero_shot", "update_config",
    ],
    "data": [
        "VALIDATION_PER_CLASS", "validation_indices", "split_training_rows", "reduce_clouds", "load_training_data",
        "make_train_dataloader",
    ],
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "CHECKPOINT_PATTERN",
    "PRESETS_DIR",
    "TRAIN_RESULTS_FILE",
    "PretrainingArguments",
    "add_pretraining_arguments",
    "parse_args",
    "resolve_preset",
    "fit_orientation_head",
    "orientation_features",
    "turn_to",
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
    "VALIDATION_PER_CLASS",
    "validation_indices",
    "split_training_rows",
    "reduce_clouds",
    "load_recipe",
    "recipe_command",
    "RECIPES_DIR",
]
