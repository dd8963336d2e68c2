"""The pretraining options (`PretrainingArguments`), their command line and the presets they name."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shlex
import sys
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

PRESETS_DIR = Path(str(resources.files("dual_denoising") / "presets"))  # package data, in the wheel too; hub_configs/ links here
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
TRAIN_RESULTS_FILE = "train_results.json"
# learned tokens and scales that AdamW must not decay (biases and norm weights are caught by `ndim < 2`)
NO_DECAY_PARAMETERS = ("cls_token", "cls_position", "mask_token", "token_embedding", "logit_scale")
# what `--push_to_hub` leaves out of the upload: resumable states and debug logs
PUSH_IGNORE_PATTERNS = ["checkpoint-*", "debug/*", ".dual_denoising_pretrain.json"]
# the options that name files or folders: saved artefacts record them by folder name only (`data.portable`)
PATH_ARGUMENTS = ("dataset", "output_dir", "teacher", "model_name_or_path", "config", "resume_from_checkpoint",
                  "scan_datasets")
RECIPES_DIR = PRESETS_DIR / "recipes"  # NAME.json: the options that trained the shipped model NAME
VALIDATION_SPLIT = "validation"  # the --eval_split name of the shapes --validation_per_class carves out


def _help(text: str, **kwargs) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass
class PretrainingArguments:
    """Every option of a pretraining run; `examples/pretrain.py` and `dual-denoising pretrain` expose them all."""

    # -- data ----------------------------------------------------------------------------------------------------
    dataset: str = _help("triples dataset: a local folder written by save_triples or a Hub dataset id")
    output_dir: str = _help("where checkpoints, logs, the final model and its model card are written: a new or empty "
                            "folder, or one an earlier run wrote (resume it with --resume_from_checkpoint latest)")
    overwrite_output_dir: bool = _help(
        "write into an --output_dir that holds other files (replacing those of the same names; files the trainer "
        "did not write are never deleted), or start afresh in an earlier run's folder (its checkpoints go)",
        default=False,
    )
    train_split: str = _help("split to train on", default="train")
    eval_split: str | None = _help("labelled split for zero-shot evaluation ('none' to skip)", default="test")
    streaming: bool = _help("stream the dataset instead of reading it into memory (needs --max_train_steps)",
                            default=False)
    shuffle_buffer_size: int = _help("shuffle buffer (rows) for --streaming", default=1000)
    train_on_seen_classes: bool = _help(
        "train only on the seen classes (the open-set protocol): every class but --unseen_classes", default=False
    )
    unseen_classes: str | None = _help(
        "comma-separated classes held out by --train_on_seen_classes (default: the metadata's unseen_classes)",
        default=None,
    )
    validation_per_class: int | None = _help(
        "carve a validation split out of the training split: the last N shapes of every class, never trained on; "
        "--eval_split validation scores them (choose settings there, never on the test split)", default=None
    )
    max_train_samples: int | None = _help("use only the first N training rows (debugging, quick runs)", default=None)
    max_eval_samples: int | None = _help(
        "evaluate on N rows of the eval split (a seeded random subset)", default=None
    )
    augmentations: Literal["ulip", "none"] = _help("training point augmentations", default="ulip")
    up_axis: Literal["x", "y", "z"] = _help("up axis of the clouds, for the rotation augmentation", default="y")
    orientation_augmentation: bool = _help(
        "turn every training cloud by one of the 24 axis-aligned rotations (uniform, per cloud and epoch), so the "
        "model learns to read clouds in any up axis", default=False
    )
    fps_cache: bool = _help(
        "reduce every training cloud once, before training, to the model's point count by farthest point sampling "
        "from its first point (datasets caches the result); --no-fps_cache draws a new FPS subset from a random "
        "start for every cloud in every epoch (ULIP's way; on a CPU the per-cloud FPS costs as much as the model)",
        default=True,
    )
    scan_datasets: list[str] | None = _help(
        "scan-style training: triples datasets (folders or Hub ids) holding a scan of every training shape under its "
        "shape_id, e.g. `dual-denoising make-synthetic --scan object` of the same shapes; each training cloud is "
        "replaced, with probability --scan_probability, by its scan from one of them (drawn uniformly), and keeps "
        "its shape's targets", default=None
    )
    scan_probability: float = _help("share of the training clouds replaced by a scan (with --scan_datasets)",
                                    default=0.6)
    dataloader_num_workers: int = _help("DataLoader worker processes (0 reads in the training process)", default=0)
    recipe: str | None = _help(
        "a training recipe: the name of a shipped one (`dual-denoising models` lists the models; each was trained "
        "by its recipe, presets/recipes/NAME.json) or a JSON file of these options; its values become the defaults "
        "and the options given on the command line override them", default=None
    )
    # -- teacher and model ----------------------------------------------------------------------------------------
    teacher: str | None = _help(
        "CLIP teacher (folder or Hub id): frozen text tower and tokenizer of the saved model; also computes missing "
        "image_embeds/text_embeds", default=None
    )
    preset: str | None = _help(
        "model preset: a hub_configs folder name (tiny, small, base-8k); the default when neither --config nor "
        "--model_name_or_path is given", default=None
    )
    config: str | None = _help("model config: a config.json, a folder holding one, or a Hub id", default=None)
    model_name_or_path: str | None = _help("continue from a saved DualDenoisingModel (folder or Hub id)", default=None)
    objective: Literal["dual_denoising", "contrastive"] | None = _help(
        "training objective (default: the config's): the method or the ULIP direct-alignment baseline", default=None
    )
    config_overrides: str | None = _help(
        'JSON merged into the config, e.g. \'{"mask_ratio": 0.6, "point_config": {"drop_path_rate": 0.0}}\'',
        default=None,
    )
    gradient_checkpointing: bool = _help("recompute block activations in the backward pass", default=False)
    # -- optimisation ---------------------------------------------------------------------------------------------
    per_device_train_batch_size: int = _help("clouds per process and forward pass", default=32)
    per_device_eval_batch_size: int = _help("clouds per forward pass in evaluation", default=64)
    gradient_accumulation_steps: int = _help("forward passes per optimizer update", default=1)
    learning_rate: float = _help("peak learning rate", default=5e-4)
    weight_decay: float = _help("AdamW weight decay (not applied to biases, norms, learned tokens)", default=0.05)
    adam_beta1: float = _help("AdamW beta1", default=0.9)
    adam_beta2: float = _help("AdamW beta2", default=0.999)
    adam_epsilon: float = _help("AdamW epsilon", default=1e-8)
    max_grad_norm: float = _help("clip the global gradient norm to this (0 disables)", default=1.0)
    num_train_epochs: int = _help("passes over the training split (ignored when --max_train_steps is set)",
                                  default=10)
    max_train_steps: int | None = _help("optimizer updates in total (overrides --num_train_epochs)", default=None)
    lr_scheduler_type: str = _help(
        "transformers scheduler name: linear, cosine, cosine_with_restarts, polynomial, constant, "
        "constant_with_warmup, ...", default="cosine"
    )
    num_warmup_steps: int | None = _help("warm-up updates (default: --warmup_ratio of the updates)", default=None)
    warmup_ratio: float = _help("warm-up as a fraction of the updates, when --num_warmup_steps is not set",
                                default=0.05)
    mixed_precision: Literal["no", "fp16", "bf16"] | None = _help(
        "mixed precision (default: the accelerate config's, else no)", default=None
    )
    seed: int = _help("seed of the model initialisation, the data order, the augmentations and the noise", default=0)
    # -- evaluation -----------------------------------------------------------------------------------------------
    eval_steps: int | None = _help("evaluate every N updates (always at the end when there is an eval split)",
                                   default=None)
    eval_num_noise_samples: int | None = _help("K chains of parallel noise inference in evaluation (default: the "
                                               "config's)", default=None)
    eval_num_inference_steps: int | None = _help("S denoising steps in evaluation (default: the config's)",
                                                 default=None)
    # -- logging, checkpoints, Hub --------------------------------------------------------------------------------
    logging_steps: int = _help("log the losses and learning rate every N updates", default=10)
    report_to: Literal["auto", "tensorboard", "none"] = _help(
        "tracker: tensorboard, none, or auto (tensorboard when installed); without one, logs are printed",
        default="auto",
    )
    checkpointing_steps: int | None = _help("save a resumable state every N updates", default=None)
    checkpoints_total_limit: int | None = _help("keep only the newest N checkpoints", default=None)
    resume_from_checkpoint: str | None = _help("'latest' (newest checkpoint-* in output_dir) or a checkpoint folder; "
                                               "resuming unpickles the folder's training state (optimizer, RNGs, "
                                               "step), so resume only from checkpoints you trust",
                                               default=None)
    push_to_hub: bool = _help("upload the final folder (not the checkpoints) to the Hub", default=False)
    hub_model_id: str | None = _help("Hub repository to push to (default: the output folder's name)", default=None)
    hub_private_repo: bool = _help("create the Hub repository as private", default=False)
    # -- debugging ------------------------------------------------------------------------------------------------
    debug_log_samples: bool = _help("write the shape_ids every process trains on to output_dir/debug/", default=False)
    debug_kill_after_checkpoint: int | None = _help(
        "SIGKILL the run right after writing checkpoint-N (to test resumption)", default=None
    )

    def __post_init__(self):
        sources = [name for name in ("preset", "config", "model_name_or_path") if getattr(self, name)]
        if len(sources) > 1:
            raise ValueError(f"give one of --preset, --config, --model_name_or_path; got {', '.join(sources)}")
        if not sources:
            self.preset = "tiny"
        if self.eval_split is not None and self.eval_split.lower() == "none":
            self.eval_split = None
        if self.eval_split == VALIDATION_SPLIT and not self.validation_per_class:
            raise ValueError("--eval_split validation needs --validation_per_class N (the shapes to carve out)")
        if self.validation_per_class is not None and (self.validation_per_class < 1 or self.streaming):
            raise ValueError("--validation_per_class must be >= 1, and a stream cannot be carved (drop --streaming)")
        if self.scan_datasets and self.streaming:
            raise ValueError("--scan_datasets pairs rows by shape_id, which a stream cannot look up: drop --streaming")
        if self.scan_datasets and not 0.0 < self.scan_probability <= 1.0:
            raise ValueError(f"--scan_probability must be in (0, 1]; got {self.scan_probability}")
        if self.streaming and self.max_train_steps is None:
            raise ValueError("--streaming has no epoch length: give --max_train_steps")
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                     "logging_steps", "num_train_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1; got {getattr(self, name)}")
        for name in ("max_train_steps", "eval_steps", "checkpointing_steps", "checkpoints_total_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1 when given; got {getattr(self, name)}")
        if self.debug_kill_after_checkpoint is not None and (
            self.checkpointing_steps is None or self.debug_kill_after_checkpoint % self.checkpointing_steps
        ):
            raise ValueError("--debug_kill_after_checkpoint must be a multiple of --checkpointing_steps")


# ----------------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------------
def add_pretraining_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add one `--option` per `PretrainingArguments` field (type, choices, default and help from the field)."""
    hints = typing.get_type_hints(PretrainingArguments)
    for spec in dataclasses.fields(PretrainingArguments):
        kind = hints[spec.name]
        if typing.get_origin(kind) in (typing.Union, types.UnionType):  # X | None
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        kwargs: dict[str, Any] = {"help": spec.metadata["help"]}
        if spec.default is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = spec.default
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is list:  # list[str]: one or more values after the option
            kwargs.update(nargs="+", type=typing.get_args(kind)[0])
        elif typing.get_origin(kind) is Literal:
            kwargs["choices"] = typing.get_args(kind)
        else:
            kwargs["type"] = kind
        parser.add_argument(f"--{spec.name}", **kwargs)
    return parser


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Adds "(default: X)" where the help text does not already say the default and there is one worth saying."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.required or action.default in (None, False, argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def load_recipe(name_or_path: str) -> dict[str, Any]:
    """A recipe's options: `presets/recipes/NAME.json` for a shipped name, else the JSON file at that path. Its
    `config_overrides` may be an object (it is passed on as JSON text)."""
    path = Path(name_or_path) if Path(name_or_path).suffix == ".json" else RECIPES_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = sorted(p.stem for p in RECIPES_DIR.glob("*.json"))
        raise ValueError(f"unknown recipe {name_or_path!r}: give one of {known} or a .json file of pretrain options")
    values = json.loads(path.read_text())
    fields = {spec.name for spec in dataclasses.fields(PretrainingArguments)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"recipe {name_or_path!r} sets unknown options {unknown}; options are the pretrain flags")
    if isinstance(values.get("config_overrides"), dict):
        values["config_overrides"] = json.dumps(values["config_overrides"])
    return values


def parse_args(argv: list[str] | None = None, prog: str | None = None) -> PretrainingArguments:
    """The options of `argv` (default: the command line); with `--recipe`, the recipe's values are the defaults and
    the options given in `argv` override them."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = add_pretraining_arguments(argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n")[0], formatter_class=DefaultsHelpFormatter
    ))
    recipe = argparse.ArgumentParser(add_help=False)
    recipe.add_argument("--recipe")
    name = recipe.parse_known_args(argv)[0].recipe
    if name:
        parser.set_defaults(**load_recipe(name))
    return PretrainingArguments(**vars(parser.parse_args(argv)))


def recipe_command(args: PretrainingArguments) -> str:
    """The command line that reruns `args` (`dual-denoising pretrain ...`): the options that differ from the
    defaults, a local path by its last component (the folder the user has under that name), a Hub id as it is; what
    a model card and `metadata.json` record."""
    from ..data import is_hub_id

    def path(value: str) -> str:
        return value if is_hub_id(value) else Path(value).name

    words = ["dual-denoising", "pretrain"]
    for spec in dataclasses.fields(PretrainingArguments):
        value = getattr(args, spec.name)
        if spec.name in ("recipe", "debug_log_samples", "debug_kill_after_checkpoint", "resume_from_checkpoint") or (
            spec.default is not dataclasses.MISSING and value == spec.default
        ):
            continue
        if spec.name == "preset" and value == "tiny" and not args.config and not args.model_name_or_path:
            continue
        flag = f"--{spec.name}"
        if isinstance(value, bool):
            words.append(flag if value else f"--no-{spec.name}")
        elif isinstance(value, list):
            words += [flag, *(shlex.quote(path(v)) for v in value)]
        else:
            words += [flag, shlex.quote(path(value) if spec.name in PATH_ARGUMENTS else str(value))]
    return " ".join(words)


def resolve_preset(name: str) -> Path:
    """A preset name (`tiny`, `small`, `base-8k`) -> its folder in the package; an existing path is returned as is."""
    if Path(name).exists():
        return Path(name)
    folder = PRESETS_DIR / name
    if not (folder / "config.json").is_file():
        known = sorted(p.parent.name for p in PRESETS_DIR.glob("*/config.json"))
        raise ValueError(f"unknown preset {name!r}; presets are {known} (or pass --config PATH)")
    return folder
