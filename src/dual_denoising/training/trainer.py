"""Pretraining with Accelerate: Dual Denoising (or the ULIP baseline) distilled from a frozen CLIP teacher.

    accelerate launch examples/pretrain.py --dataset data/synthshapes --teacher teacher/ --preset tiny --output_dir out
    dual-denoising pretrain --dataset ... (the same options; `python examples/pretrain.py --help` lists them)

A run, in order:
  1. loads a triples dataset (`data.load_triples`: a local folder or a Hub id, `--streaming` optional); when the
     frozen-teacher columns `image_embeds`/`text_embeds` are missing and `--teacher` is given, they are computed first
     (`teacher.precompute_features`, written into the folder, timed in the log);
  2. builds the model from a preset (`--preset`, a `hub_configs` folder), a config (`--config`) or a saved model
     (`--model_name_or_path`); with `--teacher` through `DualDenoisingModel.from_teacher`, so the model carries the
     teacher's frozen text tower and the final folder its tokenizer;
  3. trains with AdamW (no weight decay on biases, norms and learned tokens), a transformers `get_scheduler` schedule
     with warm-up, gradient accumulation, gradient clipping and mixed precision;
  4. evaluates zero-shot accuracy on a labelled split every `--eval_steps` and at the end (seen / unseen classes
     when the dataset metadata records them);
  5. saves `accelerator.save_state` to `output_dir/checkpoint-{step}` every `--checkpointing_steps`, keeping the newest
     `--checkpoints_total_limit`; `--resume_from_checkpoint latest|PATH` restores the step, model, optimizer,
     scheduler, every RNG and the position in the data. Resuming unpickles accelerate's saved state: a checkpoint
     folder must be trusted like code (the final model folder is safetensors and JSON only);
  6. writes the final model with `ZeroShot3DClassificationPipeline(...).save_pretrained(output_dir)` (3D tower,
     denoiser, text tower, tokenizer, pipeline code), a model card and `train_results.json`; `--push_to_hub`
     uploads that folder.

Step counting. A *step* is one optimizer update of all processes together (after gradient accumulation). The
scheduler is built for `max_train_steps` updates and stepped by hand once per update
(`step_scheduler_with_optimizer=False`), so the schedule is the same whatever the number of processes.

Exact resumption. The data order is a pure function of (seed, epoch) (accelerate's seedable sampler), and the
augmentations and view/caption picks of a row a pure function of (seed, epoch, row index), independent of the
process, the DataLoader worker and the resume point. The model's noise comes from torch's global RNG, which
`save_state` saves and `load_state` restores per process, and the DataLoader's own seed draws come from a private
generator, so nothing else consumes it. A resumed map-style run therefore ends with the same weights as an
uninterrupted one. With `--streaming` the position in the stream is restored, the augmentation draws are not.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator, DataLoaderConfiguration, DistributedType
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm
from transformers import get_scheduler

from ..configuration_dual_denoising import DualDenoisingConfig
from ..data import (
    EMBED_COLUMNS,
    portable,
)
from ..distributed import make_accelerator
from ..evaluation import InferenceOptions, class_embeddings, evaluate_zero_shot
from ..modeling_dual_denoising import DualDenoisingModel
from ..prompts import DEFAULT_TEMPLATES
from .arguments import (
    NO_DECAY_PARAMETERS,
    PATH_ARGUMENTS,
    TRAIN_RESULTS_FILE,
    VALIDATION_SPLIT,
    PretrainingArguments,
    recipe_command,
    resolve_preset,
)
from .card import check_hub_access, model_card, push_folder_to_hub
from .checkpoints import (
    TrainerState,
    check_output_dir,
    clear_earlier_checkpoints,
    record_written,
    resolve_checkpoint,
    save_checkpoint,
)
from .data import (
    SeededRows,
    embed_dim_of,
    load_split,
    load_training_data,
    make_train_dataloader,
    needed_embeddings,
    open_set_classes,
    reduce_clouds,
    split_training_rows,
)

logger = get_logger(__name__)


# ----------------------------------------------------------------------------------------------------------------------
# Model and optimizer
# ----------------------------------------------------------------------------------------------------------------------
def _merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        nested = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if nested else value
    return merged


def update_config(config: DualDenoisingConfig, overrides: dict) -> DualDenoisingConfig:
    """A new config with `overrides` merged in (nested dicts for `point_config` / `denoiser_config`), validated."""
    if not overrides:
        return config
    values = _merge(config.to_dict(), overrides)
    for key in ("model_type", "architectures", "auto_map", "custom_pipelines", "transformers_version"):
        values.pop(key, None)
    return DualDenoisingConfig(**values)


def load_model_config(args: PretrainingArguments) -> DualDenoisingConfig:
    """The config of the model to train: from the preset/config/checkpoint, with --objective and --config_overrides."""
    source = args.model_name_or_path or args.config or resolve_preset(args.preset)
    overrides = json.loads(args.config_overrides) if args.config_overrides else {}
    if args.objective is not None:
        overrides["objective"] = args.objective
    return update_config(DualDenoisingConfig.from_pretrained(str(source)), overrides)


def _load_tokenizer(*sources: str | None):
    from transformers import AutoTokenizer

    for source in sources:
        if source is None:
            continue
        try:
            return AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError, TypeError):
            continue
    return None


def build_model(
    args: PretrainingArguments, config: DualDenoisingConfig, data_embed_dim: int | None
) -> tuple[DualDenoisingModel, Any]:
    """The model to train and the tokenizer the final folder carries (None when no teacher provides one).

    With a teacher, the text tower, D and the logit scale come from it (`from_teacher`). Without one, D is taken from
    the dataset's precomputed embeddings, which define the teacher space.
    """
    if args.teacher is None and data_embed_dim is not None and config.embed_dim != data_embed_dim:
        if config.text_config is not None:
            raise ValueError(
                f"the model's text tower gives D={config.embed_dim}, the dataset's embeddings D={data_embed_dim}; "
                "they come from different teachers"
            )
        logger.info(f"embed_dim {config.embed_dim} -> {data_embed_dim}, the size of the dataset's teacher embeddings")
        config = update_config(config, {"embed_dim": data_embed_dim})
    if args.model_name_or_path:
        model = DualDenoisingModel.from_pretrained(args.model_name_or_path, config=config, dtype=torch.float32)
        if args.teacher is not None and model.text_model is None:
            trained = model.state_dict()
            model = DualDenoisingModel.from_teacher(args.teacher, config)
            missing, unexpected = model.load_state_dict(trained, strict=False)
            if unexpected or any(not key.startswith("text_model.") for key in missing):
                raise ValueError(
                    f"{args.model_name_or_path} does not fit the teacher: missing {missing}, unexpected {unexpected}"
                )
    elif args.teacher is not None:
        model = DualDenoisingModel.from_teacher(args.teacher, config)
    else:
        model = DualDenoisingModel(config)
    if data_embed_dim is not None and model.config.embed_dim != data_embed_dim:
        raise ValueError(
            f"the teacher's embedding size is {model.config.embed_dim} but the dataset's image_embeds/text_embeds "
            f"have D={data_embed_dim}: recompute them with this teacher (dual-denoising precompute-features)"
        )
    tokenizer = _load_tokenizer(args.model_name_or_path, args.teacher)
    if tokenizer is None and model.text_model is not None:
        logger.warning("no tokenizer found: the saved model will need text_embeds=... for zero-shot classification")
    return model, tokenizer


def freeze_unused_parameters(model: DualDenoisingModel) -> None:
    """Freeze what no loss of this configuration reaches, so DDP/FSDP do not wait for gradients that never come: the
    logit scale is trained by the contrastive objective only, the decoder's mask token only with mask_ratio > 0."""
    if model.config.objective != "contrastive":
        model.logit_scale.requires_grad_(False)
    if model.config.objective == "dual_denoising" and model.config.mask_ratio == 0:
        model.decoder.mask_token.requires_grad_(False)


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on weight matrices only; biases, norm weights (`ndim < 2`) and the learned tokens
    and scales of `NO_DECAY_PARAMETERS` are not decayed. Frozen parameters (the teacher's text tower) are left out."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim < 2 or name.rsplit(".", 1)[-1] in NO_DECAY_PARAMETERS:
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def create_optimizer(model: torch.nn.Module, args: PretrainingArguments) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        parameter_groups(model, args.weight_decay), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
    )


# ----------------------------------------------------------------------------------------------------------------------
# Zero-shot evaluation (the computation is `evaluation.evaluate_zero_shot`)
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class ZeroShotEvaluation:
    """What the run's zero-shot evaluation needs: a labelled split and one embedding per class of its `label`."""

    dataset: datasets.Dataset
    class_embeds: torch.Tensor  # (C, D)
    class_embeds_source: str
    seen_classes: list[str]
    unseen_classes: list[str]


def caption_prototypes(split: datasets.Dataset, num_classes: int, column: str = "text_embeds") -> torch.Tensor:
    """Per-class mean of the normalised teacher embeddings of a labelled split, normalised again: `(C, D)`, NaN for
    a class without rows. The class embeddings of a run without the teacher's text tower."""
    sums, counts = None, torch.zeros(num_classes)
    for batch in split.select_columns(["label", column]).with_format("numpy").iter(batch_size=256):
        for label, embeds in zip(batch["label"], batch[column]):
            embeds = torch.as_tensor(np.asarray(embeds, dtype=np.float32)).reshape(-1, np.shape(embeds)[-1])
            if len(embeds) == 0:
                continue
            if sums is None:
                sums = torch.zeros(num_classes, embeds.shape[-1])
            sums[int(label)] += F.normalize(embeds, dim=-1).mean(0)
            counts[int(label)] += 1
    if sums is None:
        raise ValueError(f"the training split holds no {column} to build class prototypes from")
    prototypes = F.normalize(sums, dim=-1)
    prototypes[counts == 0] = float("nan")
    return prototypes


def _keep_classes(split: datasets.Dataset, keep: list[int]) -> datasets.Dataset:
    """The rows of the classes `keep`, relabelled `0 .. len(keep) - 1` (a ClassLabel of their names)."""
    names = split.features["label"].names
    new_label = {old: new for new, old in enumerate(keep)}
    split = split.filter(lambda label: label in new_label, input_columns="label")
    split = split.map(lambda label: {"label": new_label[label]}, input_columns="label")
    return split.cast_column("label", datasets.ClassLabel(names=[names[i] for i in keep]))


def make_evaluation(
    args: PretrainingArguments, train_split: Any, metadata: dict, model: DualDenoisingModel, tokenizer,
    validation: datasets.Dataset | None = None,
) -> ZeroShotEvaluation | None:
    """The zero-shot evaluation of this run, or None (with a log line) when the data cannot give one.

    Class embeddings are the teacher's text embeddings of the prompt ensemble (`prompts.DEFAULT_TEMPLATES`) when the
    model has a text tower and a tokenizer: zero-shot classification proper. Without them they are per-class means of
    the training split's caption embeddings (`caption_prototypes`), a proxy that has no embedding for a class absent
    from training: such classes are then left out of the candidates and of the scores. The eval split is read whole
    (not streamed). `--eval_split validation` scores the carved `validation` rows. With `--fps_cache` the clouds are
    reduced once (evaluation reads FPS from the first point too, so the scores are the same).
    """
    if args.eval_split is None:
        return None
    if args.eval_split == VALIDATION_SPLIT:
        split = validation
    else:
        try:
            split = load_split(args.dataset, args.eval_split)
        except ValueError as error:
            logger.warning(f"{error}: no evaluation")
            return None
    if args.fps_cache and "points" in split.column_names:
        split = reduce_clouds(split, model.config.point_config.num_points)
    if not isinstance(split.features.get("label"), datasets.ClassLabel):
        logger.warning(f"split {args.eval_split!r} has no ClassLabel 'label' column: no evaluation")
        return None
    class_names = list(split.features["label"].names)
    if model.text_model is not None and tokenizer is not None:
        class_embeds = class_embeddings(model, class_names, tokenizer, DEFAULT_TEMPLATES)
        source = f"teacher text tower, {len(DEFAULT_TEMPLATES)} prompt templates"
    elif not args.streaming and "text_embeds" in train_split.column_names:
        class_embeds = caption_prototypes(train_split, len(class_names))
        source = "class means of the training captions' teacher embeddings (no text tower: not zero-shot proper)"
        known = (~class_embeds.isnan().any(dim=1)).nonzero().squeeze(1).tolist()
        if len(known) < len(class_names):
            split, class_embeds = _keep_classes(split, known), class_embeds[known]
    else:
        logger.warning("no text tower + tokenizer and no caption embeddings to build class embeddings: no evaluation")
        return None
    # a run on every class has no unseen class; a class without class embeddings was dropped from the split
    seen, unseen = open_set_classes(metadata, class_names, args.unseen_classes, args.dataset) \
        if args.train_on_seen_classes else ([], [])
    scored = set(split.features["label"].names)
    return ZeroShotEvaluation(split, class_embeds.float().cpu(), source, [c for c in seen if c in scored],
                              [c for c in unseen if c in scored])


def summarize_zero_shot(results: dict, seen_classes: list[str] = ()) -> dict:
    """The run's evaluation figures from `evaluation.evaluate_zero_shot`: top-1 over all rows and, when the dataset
    records unseen classes, the open-set figures (seen, unseen and unseen-only top-1, H; Wilson 95% intervals); with
    seen classes only among the candidates, their top-1."""
    summary = {"accuracy": results["clean"]["top1"], "num_samples": results["num_samples"]}
    open_set = results.get("open_set")
    seen_ids = [results["class_names"].index(c) for c in seen_classes if c in results["class_names"]]
    if not open_set and seen_ids:
        confusion = np.asarray(results["clean"]["confusion_matrix"])
        summary["num_seen_samples"] = int(confusion[seen_ids].sum())
        summary["seen_accuracy"] = float(confusion[seen_ids, seen_ids].sum() / max(summary["num_seen_samples"], 1))
    if open_set:
        for key in ("seen", "unseen", "unseen_only"):
            summary[f"{key}_accuracy"] = open_set[key]["accuracy"]
            summary[f"{key}_accuracy_interval"] = open_set[key]["interval"]
        summary["harmonic_mean"] = open_set["harmonic_mean"]["accuracy"]
        summary["harmonic_mean_interval"] = open_set["harmonic_mean"]["interval"]
        summary["num_seen_samples"] = open_set["seen"]["num_samples"]
        summary["num_unseen_samples"] = open_set["unseen"]["num_samples"]
    return summary


def _full_model(accelerator: Accelerator, model: torch.nn.Module, keep_autocast: bool) -> DualDenoisingModel | None:
    """The trained model with whole (unsharded) weights on the main process, None on the others. Under FSDP or
    DeepSpeed the weights are gathered (a collective: every process must call this) into a fresh copy."""
    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        state_dict = accelerator.get_state_dict(model)
        if not accelerator.is_main_process:
            return None
        copy = DualDenoisingModel(accelerator.unwrap_model(model).config)
        copy.load_state_dict(state_dict)
        return copy.to(accelerator.device)
    unwrapped = accelerator.unwrap_model(model, keep_fp32_wrapper=keep_autocast)
    return unwrapped if accelerator.is_main_process else None


# ----------------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------------
def _tracker(report_to: str) -> str | None:
    from accelerate.utils import is_tensorboard_available

    if report_to == "none":
        return None
    if not is_tensorboard_available():
        if report_to == "tensorboard":
            raise ValueError("--report_to tensorboard: tensorboard is not installed (pip install tensorboard)")
        return None
    return "tensorboard"


def _hparams(args: PretrainingArguments, config: DualDenoisingConfig) -> dict:
    """Flat, tensorboard-friendly run configuration."""
    values = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in dataclasses.asdict(args).items()}
    values.update(objective=config.objective, embed_dim=config.embed_dim, num_points=config.point_config.num_points)
    return values


@dataclass
class TrainingRun:
    """Everything the steps of `pretrain` hand to each other: the run's objects and its fixed numbers."""

    args: PretrainingArguments
    accelerator: Accelerator
    output_dir: Path
    config: DualDenoisingConfig
    model: Any  # the prepared (possibly wrapped) model
    tokenizer: Any
    optimizer: Any
    lr_scheduler: Any
    train_dataloader: Any
    train_rows: SeededRows | None
    train_split: Any
    metadata: dict
    evaluation: ZeroShotEvaluation | None
    state: TrainerState
    max_train_steps: int
    num_warmup_steps: int
    batches_per_epoch: int | None
    total_batch_size: int
    total_parameters: int
    trainable_parameters: int
    features_cost: dict | None
    log_path: Path
    resumed: bool = False
    train_seconds: float = 0.0
    updates_done: int = 0
    last_lr: float | None = None


def setup_accelerator(args: PretrainingArguments) -> Accelerator:
    """The Accelerator of the run: seedable sampler, the scheduler stepped by hand once per optimizer update."""
    return make_accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=_tracker(args.report_to),
        project_config=ProjectConfiguration(project_dir=args.output_dir, logging_dir=str(Path(args.output_dir) / "runs")),
        # seedable sampler: the order of every epoch is a function of (seed, epoch), the same on every process;
        # streaming: every process reads its own shard (no dispatching of non-tensor fields)
        dataloader_config=DataLoaderConfiguration(
            use_seedable_sampler=True, data_seed=args.seed, dispatch_batches=False if args.streaming else None
        ),
        # the scheduler counts optimizer updates; it is stepped by hand once per update
        step_scheduler_with_optimizer=False,
    )


def prepare_data(args: PretrainingArguments, accelerator: Accelerator, config: DualDenoisingConfig) -> dict:
    """Step 1, the data: the training rows (teacher embeddings computed first when missing; the validation shapes
    carved out; the FPS cache), the carved validation rows, the dataset's metadata and what the embeddings cost."""
    split, metadata, features_cost = load_training_data(args, accelerator, needed_embeddings(config))
    split, validation = split_training_rows(split, args, metadata)
    if args.fps_cache and not args.streaming:
        point_config = config.point_config
        wanted = ["shape_id", "points", "label", *EMBED_COLUMNS, *(["colors"] if point_config.in_channels == 6 else [])]
        split = split.select_columns([c for c in wanted if c in split.column_names])  # no images to rewrite
        with accelerator.main_process_first():  # the main process fills the cache, the others read it
            split = reduce_clouds(split, point_config.num_points, max(point_config.group_size, point_config.num_groups))
    return {"train_split": split, "validation": validation, "metadata": metadata, "features_cost": features_cost}


def create_scheduler(args: PretrainingArguments, optimizer: torch.optim.Optimizer, updates_per_epoch: int | None
                     ) -> tuple[Any, int, int]:
    """Step 3, the schedule: a transformers `get_scheduler` over `max_train_steps` updates with its warm-up;
    returns it with the number of updates and of warm-up updates."""
    max_train_steps = args.max_train_steps or args.num_train_epochs * updates_per_epoch
    num_warmup_steps = (
        args.num_warmup_steps if args.num_warmup_steps is not None else math.ceil(args.warmup_ratio * max_train_steps)
    )
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer=optimizer, num_warmup_steps=num_warmup_steps,
                              num_training_steps=max_train_steps)
    return scheduler, max_train_steps, num_warmup_steps


def set_up_run(args: PretrainingArguments, accelerator: Accelerator) -> TrainingRun:
    """Steps 1-3: data, model, optimizer and schedule, prepared by Accelerate, and the resumed state when asked."""
    output_dir = Path(args.output_dir)
    inputs = {"dataset": args.dataset, "teacher": args.teacher, "model_name_or_path": args.model_name_or_path,
              "config": args.config, **{"scan_datasets": name for name in args.scan_datasets or []}}
    check_output_dir(output_dir, inputs, resuming=bool(args.resume_from_checkpoint), overwrite=args.overwrite_output_dir,
                     checkpointing=bool(args.checkpointing_steps))
    if args.push_to_hub and accelerator.is_main_process:  # fail now, not after the whole run
        check_hub_access(args.hub_model_id or output_dir.resolve().name, args.hub_private_repo)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        if args.overwrite_output_dir and not args.resume_from_checkpoint:
            clear_earlier_checkpoints(output_dir)
        record_written(output_dir, "trainer_log.jsonl", "runs", "debug")
    accelerator.wait_for_everyone()
    set_seed(args.seed)  # the same initial weights on every process

    config = load_model_config(args)
    data = prepare_data(args, accelerator, config)
    train_split = data["train_split"]
    # step 2, the model
    model, tokenizer = build_model(args, config, embed_dim_of(train_split.features))
    config = model.config
    freeze_unused_parameters(model)
    if args.gradient_checkpointing:  # `gradient_checkpointing_enable` before its rename in transformers 5.x
        enable = getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)
        enable()
    total_parameters = sum(p.numel() for p in model.parameters())
    trainable_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # step 3, the optimizer; class embeddings from the frozen text tower while the model is whole (before FSDP)
    optimizer = create_optimizer(model, args)
    evaluation = make_evaluation(args, train_split, data["metadata"], model, tokenizer, data["validation"])
    train_dataloader, train_rows = make_train_dataloader(train_split, args, config, accelerator.process_index)
    model, optimizer, train_dataloader = accelerator.prepare(model, optimizer, train_dataloader)
    # accumulation as accelerate resolved it (`accelerate launch --gradient_accumulation_steps`, DeepSpeed's config)
    accumulation = accelerator.gradient_accumulation_steps
    batches_per_epoch = None if args.streaming else len(train_dataloader)
    updates_per_epoch = None if args.streaming else math.ceil(batches_per_epoch / accumulation)
    lr_scheduler, max_train_steps, num_warmup_steps = create_scheduler(args, optimizer.optimizer, updates_per_epoch)
    lr_scheduler = accelerator.prepare(lr_scheduler)
    state = TrainerState()
    accelerator.register_for_checkpointing(state)

    set_seed(args.seed, device_specific=True)  # a different noise stream per process
    checkpoint = resolve_checkpoint(args.resume_from_checkpoint, output_dir) if args.resume_from_checkpoint else None
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))  # model, optimizer, scheduler, RNGs, TrainerState
        logger.info(
            f"resumed from {checkpoint}: step {state.global_step}, epoch {state.epoch}, "
            f"{state.batches_in_epoch} batches into it", main_process_only=True,
        )
    elif args.resume_from_checkpoint:
        logger.info(f"no checkpoint in {output_dir}: starting a new run", main_process_only=True)
    log_path = output_dir / "trainer_log.jsonl"  # a resumed run appends to it, a new run starts it afresh
    if checkpoint is None and accelerator.is_main_process:
        log_path.unlink(missing_ok=True)
    return TrainingRun(
        args=args, accelerator=accelerator, output_dir=output_dir, config=config, model=model, tokenizer=tokenizer,
        optimizer=optimizer, lr_scheduler=lr_scheduler, train_dataloader=train_dataloader, train_rows=train_rows,
        train_split=train_split, metadata=data["metadata"], evaluation=evaluation, state=state,
        max_train_steps=max_train_steps, num_warmup_steps=num_warmup_steps, batches_per_epoch=batches_per_epoch,
        total_batch_size=args.per_device_train_batch_size * accelerator.num_processes * accumulation,
        total_parameters=total_parameters, trainable_parameters=trainable_parameters,
        features_cost=data["features_cost"], log_path=log_path, resumed=checkpoint is not None,
    )


def run_evaluation(run: TrainingRun) -> dict | None:
    """Step 5, zero-shot top-1 on the eval split (all, seen and unseen classes), logged; None without an eval split.
    A collective under FSDP/DeepSpeed: every process calls it."""
    if run.evaluation is None:
        return None
    args, accelerator = run.args, run.accelerator
    full = _full_model(accelerator, run.model, keep_autocast=True)
    metrics = None
    if accelerator.is_main_process:
        with accelerator.autocast():
            results = evaluate_zero_shot(
                full, run.evaluation.dataset, class_embeds=run.evaluation.class_embeds,
                batch_size=args.per_device_eval_batch_size, max_samples=args.max_eval_samples,
                inference=InferenceOptions(num_noise_samples=args.eval_num_noise_samples,
                                           num_inference_steps=args.eval_num_inference_steps),
                seed=args.seed, unseen_classes=run.evaluation.unseen_classes, show_progress=False,
            )
        run.model.train()  # evaluate_zero_shot leaves the model in eval mode
        metrics = summarize_zero_shot(results, run.evaluation.seen_classes)
        metrics["class_embeds_source"] = run.evaluation.class_embeds_source
        accelerator.log({f"eval/{k}": v for k, v in metrics.items() if isinstance(v, float)},
                        step=run.state.global_step)
        _append_json(run.log_path, {"step": run.state.global_step, **{f"eval_{k}": v for k, v in metrics.items()}})
        logger.info(f"step {run.state.global_step}: zero-shot {metrics}", main_process_only=True)
    accelerator.wait_for_everyone()
    return metrics


def _log_update(run: TrainingRun, running: dict, running_batches: int, seconds: float, grad_norm, progress) -> None:
    """The losses (averaged over processes and the window), learning rate, epoch and throughput of a logging step."""
    args, accelerator, state = run.args, run.accelerator, run.state
    losses = {k: accelerator.reduce(v / running_batches, "mean").item() for k, v in running.items()}
    epoch = state.epoch + (state.batches_in_epoch / run.batches_per_epoch if run.batches_per_epoch else 0.0)
    metrics = {
        **{f"train/{k}": v for k, v in losses.items()},
        "train/learning_rate": run.last_lr,
        "train/epoch": epoch,
        "train/samples_per_second": running_batches * args.per_device_train_batch_size * accelerator.num_processes
        / seconds,
    }
    if grad_norm is not None:
        metrics["train/grad_norm"] = float(grad_norm)
    accelerator.log(metrics, step=state.global_step)
    if accelerator.is_main_process:
        _append_json(run.log_path, {"step": state.global_step, **{k.split("/")[1]: v for k, v in metrics.items()}})
        progress.set_postfix(loss=f"{losses['loss']:.4f}", lr=f"{run.last_lr:.2e}")
        if not accelerator.trackers:  # no tracker: the log goes to the terminal
            progress.write(f"step {state.global_step}: " + ", ".join(
                f"{k.split('/')[1]} {v:.4g}" for k, v in metrics.items()))


def train_loop(run: TrainingRun) -> None:
    """Step 4, the loop: forward, backward, clipping and one optimizer update per `gradient_accumulation_steps`
    batches, until `max_train_steps`; logging, evaluation and checkpoints at their intervals."""
    args, accelerator, state, model, optimizer = run.args, run.accelerator, run.state, run.model, run.optimizer
    samples_log = None
    if args.debug_log_samples:
        (run.output_dir / "debug").mkdir(parents=True, exist_ok=True)
        path = run.output_dir / "debug" / f"samples_rank{accelerator.process_index}.jsonl"
        samples_log = open(path, "a" if run.resumed else "w")
    progress = tqdm(total=run.max_train_steps, initial=state.global_step, desc="pretrain",
                    disable=not accelerator.is_local_main_process)
    running: dict[str, torch.Tensor] = {}
    running_batches, window_start, train_start = 0, time.perf_counter(), time.perf_counter()
    first_step, grad_norm = state.global_step, None
    model.train()
    while state.global_step < run.max_train_steps:
        run.train_dataloader.set_epoch(state.epoch)
        if run.train_rows is not None:
            run.train_rows.set_epoch(state.epoch)
        # resumed mid-epoch: the sampler skips what was consumed, nothing is read
        batches = (accelerator.skip_first_batches(run.train_dataloader, state.batches_in_epoch)
                   if state.batches_in_epoch else run.train_dataloader)
        consumed = 0
        for batch in batches:
            consumed += 1
            state.batches_in_epoch += 1
            with accelerator.accumulate(model):
                outputs = model(points=batch["points"], image_embeds=batch.get("image_embeds"),
                                text_embeds=batch.get("text_embeds"))
                accelerator.backward(outputs.loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    # None under DeepSpeed, which clips by its own `gradient_clipping`
                    grad_norm = accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            for name in ("loss", "reconstruction_loss", "feature_loss", "contrastive_loss", "head_loss"):
                value = getattr(outputs, name)
                if value is not None:  # summed on the device: no host sync per batch
                    running[name] = running.get(name, 0.0) + value.detach().float()
            running_batches += 1
            if samples_log is not None:
                samples_log.write(json.dumps({"step": state.global_step + 1, "epoch": state.epoch,
                                              "shape_ids": [str(s) for s in batch["shape_ids"]]}) + "\n")
            if not accelerator.sync_gradients:
                continue

            # -- one optimizer update is done ------------------------------------------------------------------
            run.last_lr = run.lr_scheduler.get_last_lr()[0]  # the rate this update used
            if not optimizer.step_was_skipped:  # fp16 overflow: the update did not happen, nor does the schedule
                run.lr_scheduler.step()
            state.global_step += 1
            if run.config.objective == "contrastive":
                with torch.no_grad():  # CLIP's cap on the temperature
                    accelerator.unwrap_model(model).logit_scale.clamp_(0, math.log(100))
            progress.update(1)
            if state.global_step % args.logging_steps == 0 or state.global_step == run.max_train_steps:
                _log_update(run, running, running_batches, time.perf_counter() - window_start, grad_norm, progress)
                running, running_batches, window_start = {}, 0, time.perf_counter()
            if args.eval_steps and state.global_step % args.eval_steps == 0 and state.global_step < run.max_train_steps:
                run_evaluation(run)
            if args.checkpointing_steps and state.global_step % args.checkpointing_steps == 0:
                path = save_checkpoint(accelerator, run.output_dir, state.global_step, args.checkpoints_total_limit)
                logger.info(f"saved {path}", main_process_only=True)
                if args.debug_kill_after_checkpoint == state.global_step:
                    if samples_log is not None:
                        samples_log.close()
                    os.kill(os.getpid(), signal.SIGKILL)
            if state.global_step >= run.max_train_steps:
                break
        if state.global_step >= run.max_train_steps:
            break
        if consumed == 0 and state.batches_in_epoch == 0:
            raise ValueError(f"the training split {args.train_split!r} gave no batch")
        state.epoch, state.batches_in_epoch = state.epoch + 1, 0
    progress.close()
    run.train_seconds = time.perf_counter() - train_start
    run.updates_done = state.global_step - first_step
    if samples_log is not None:
        samples_log.close()


def save_final_model(run: TrainingRun, eval_metrics: dict | None) -> dict:
    """Step 6: the self-contained folder (`ZeroShot3DClassificationPipeline.save_pretrained`), `train_results.json`
    and the model card on the main process; returns the results (an empty dict on the other processes)."""
    args, accelerator, state = run.args, run.accelerator, run.state
    final = _full_model(accelerator, run.model, keep_autocast=False)
    if not accelerator.is_main_process:
        return {}
    from ..pipeline_dual_denoising import ZeroShot3DClassificationPipeline

    final.eval()
    before = {p.name: p.stat().st_mtime_ns for p in run.output_dir.iterdir()}
    ZeroShot3DClassificationPipeline(model=final, tokenizer=run.tokenizer).save_pretrained(run.output_dir)
    features = run.train_split.features or {}
    names = features["label"].names if "label" in features else None
    results = {
        "global_step": state.global_step,
        "epoch": state.epoch + (state.batches_in_epoch / run.batches_per_epoch if run.batches_per_epoch else 0.0),
        "learning_rate": run.last_lr,
        "train_runtime_seconds": run.train_seconds,
        "train_samples_per_second": run.updates_done * run.total_batch_size / max(run.train_seconds, 1e-9),
        "num_processes": accelerator.num_processes,
        "device": accelerator.device.type,
        "mixed_precision": accelerator.mixed_precision,
        "total_batch_size": run.total_batch_size,
        "gradient_accumulation_steps": accelerator.gradient_accumulation_steps,
        "self_contained": final.text_model is not None and run.tokenizer is not None,
        "max_train_steps": run.max_train_steps,
        "num_warmup_steps": run.num_warmup_steps,
        "total_parameters": run.total_parameters,
        "trainable_parameters": run.trainable_parameters,
        "objective": run.config.objective,
        "eval": eval_metrics,
        "data": {
            "dataset": portable(args.dataset),
            "num_train_rows": None if args.streaming else len(run.train_split),
            "classes": run.metadata.get("classes") or names,
            **dict(zip(("seen_classes", "unseen_classes"), open_set_classes(run.metadata, names, args.unseen_classes)
                       if args.train_on_seen_classes else (None, None))),
            "teacher_features_cost": run.features_cost,
            "scan_datasets": _portable_argument("scan_datasets", args.scan_datasets),
            "scan_probability": args.scan_probability if args.scan_datasets else None,
        },
        "command": recipe_command(args),
        "args": {k: _portable_argument(k, v) for k, v in dataclasses.asdict(args).items()},
    }
    (run.output_dir / TRAIN_RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    model_card(args, run.config, results).save(run.output_dir / "README.md")
    record_written(run.output_dir, *(p.name for p in run.output_dir.iterdir()
                                     if before.get(p.name) != p.stat().st_mtime_ns))
    logger.info(f"saved the model, its tokenizer and model card to {run.output_dir}", main_process_only=True)
    return results


def pretrain(args: PretrainingArguments) -> dict:
    """Run a pretraining job (see the module docstring); returns the results written to `train_results.json`
    (on the main process; the other processes get an empty dict)."""
    accelerator = setup_accelerator(args)
    logger.info(accelerator.state, main_process_only=True)
    run = set_up_run(args, accelerator)  # 1-3: data, model, optimizer and schedule (and the resumed state)
    if accelerator.log_with:
        accelerator.init_trackers("pretrain", config=_hparams(args, run.config))
    logger.info(
        f"training {run.config.objective}: {run.trainable_parameters:,} trainable of {run.total_parameters:,} "
        f"parameters, {len(run.train_split) if not args.streaming else 'streamed'} rows, {run.max_train_steps} "
        f"updates of {run.total_batch_size} clouds ({args.per_device_train_batch_size} x {accelerator.num_processes} "
        f"processes x {accelerator.gradient_accumulation_steps} accumulation), warm-up {run.num_warmup_steps}, "
        f"mixed precision {accelerator.mixed_precision}", main_process_only=True,
    )
    train_loop(run)  # 4
    accelerator.wait_for_everyone()
    eval_metrics = run_evaluation(run)  # 5
    results = save_final_model(run, eval_metrics)  # 6
    if args.push_to_hub and accelerator.is_main_process:
        repo_id = push_folder_to_hub(run.output_dir, args.hub_model_id or run.output_dir.resolve().name,
                                     args.hub_private_repo)
        logger.info(f"pushed {run.output_dir} to the Hub: {repo_id}", main_process_only=True)
    accelerator.wait_for_everyone()
    accelerator.end_training()  # closes the trackers and the process group: nothing collective after this
    return results


def _portable_argument(name: str, value: Any) -> Any:
    """An argument as `train_results.json` records it: paths (one or a list) by their folder names only (`portable`)."""
    if name not in PATH_ARGUMENTS:
        return value
    return [portable(v) for v in value] if isinstance(value, list) else portable(value)


def _append_json(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")

