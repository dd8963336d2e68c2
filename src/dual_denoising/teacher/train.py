"""`train_teacher`: a small CLIP trained contrastively from scratch on the renders and captions of a triples dataset."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data import load_triples, portable
from ..distributed import make_accelerator
from ..outputs import check_not_an_input
from ..prompts import DEFAULT_TEMPLATES, label_to_text
from .model import (
    TEACHER_METRICS_FILE,
    TeacherConfig,
    build_image_processor,
    build_teacher_model,
    train_caption_tokenizer,
)
from .zero_shot import evaluate_teacher


def _views_to_uint8(images: list, image_processor, batch_size: int = 512) -> torch.Tensor:
    """Resize/crop PIL views exactly as `image_processor` does, without rescaling or normalising: `(V, 3, S, S)`
    uint8. Training normalises with the processor's mean/std after augmentation, so the two paths agree."""
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = [im.convert("RGB") for im in images[start : start + batch_size]]
        pixels = image_processor(batch, do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"]
        chunks.append(torch.from_numpy(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)))
    return torch.cat(chunks)


def augment_views(images: torch.Tensor, config: TeacherConfig, generator: torch.Generator) -> torch.Tensor:
    """Random resized crop, horizontal flip and brightness/contrast/saturation jitter of a batch `(B, 3, H, W)` of
    floats in [0, 1]; one draw per image, from `generator` (a CPU generator; the ops run on the images' device)."""
    b, _, h, w = images.shape
    device = images.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return (low + (high - low) * torch.rand(b, generator=generator)).to(device)

    # random resized crop as an affine resampling: area fraction in [crop_scale_min, 1], log-uniform aspect ratio
    area = uniform(config.crop_scale_min, 1.0)
    log_ratio = uniform(-math.log(config.crop_aspect_max), math.log(config.crop_aspect_max))
    sx = (area * log_ratio.exp()).sqrt().clamp(max=1.0)
    sy = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    tx = (uniform(-1.0, 1.0)) * (1 - sx)
    ty = (uniform(-1.0, 1.0)) * (1 - sy)
    flip = torch.where(uniform(0.0, 1.0) < config.flip_prob, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0] = sx * flip
    theta[:, 0, 2] = tx
    theta[:, 1, 1] = sy
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta, (b, 3, h, w), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)

    # colour jitter (no hue: captions may name colours)
    gray = (0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]).unsqueeze(1)  # (B, 1, H, W)
    images = images * uniform(1 - config.brightness, 1 + config.brightness).view(b, 1, 1, 1)
    mean = gray.mean(dim=(2, 3), keepdim=True)
    images = (images - mean) * uniform(1 - config.contrast, 1 + config.contrast).view(b, 1, 1, 1) + mean
    s = uniform(1 - config.saturation, 1 + config.saturation).view(b, 1, 1, 1)
    images = images * s + gray * (1 - s)
    return images.clamp(0.0, 1.0)


def clip_contrastive_loss(
    logits_per_image: torch.Tensor, labels: torch.Tensor | None = None, same_class_weight: float = 0.0
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE over a `(B, B)` image-text logit matrix whose diagonal holds the pairs.

    With `labels` `(B,)` and `same_class_weight` w > 0, each row's target is `(1 - w) * own pair + w * uniform over
    the pairs of the same class` (UniCL-style soft targets); w = 0 is plain CLIP.
    """
    n = logits_per_image.shape[0]
    targets = torch.eye(n, device=logits_per_image.device)
    if labels is not None and same_class_weight > 0:
        same = (labels[:, None] == labels[None, :]).float()  # (B, B), symmetric
        targets = (1 - same_class_weight) * targets + same_class_weight * same / same.sum(dim=1, keepdim=True)
    loss_image = torch.sum(-targets * F.log_softmax(logits_per_image, dim=1), dim=1).mean()
    loss_text = torch.sum(-targets * F.log_softmax(logits_per_image.T, dim=1), dim=1).mean()
    return 0.5 * (loss_image + loss_text)


def _lr_factor(progress: float, warmup_ratio: float) -> float:
    """Linear warmup over the first `warmup_ratio` of training, then cosine decay to zero; `progress` in [0, 1]."""
    if progress < warmup_ratio:
        return max(progress / warmup_ratio, 1e-3)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (progress - warmup_ratio) / max(1e-8, 1.0 - warmup_ratio))))


def _param_groups(model, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        # no decay on biases, norms, embeddings and the temperature
        if param.ndim < 2 or "embedding" in name or "logit_scale" in name:
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@dataclass
class TeacherData:
    """The training split, ready for the loop: every view as uint8, every caption pre-tokenised."""

    class_names: list[str]
    bank: torch.Tensor  # (V, 3, S, S) uint8, every view of every shape
    view_rows: torch.Tensor  # (V,) the shape (row) of each view
    labels: torch.Tensor  # (R,) the class of each shape
    caption_ids: torch.Tensor  # (Ncap, L) every caption, padded to max_length
    row_caption_start: torch.Tensor  # (R,) where each shape's captions start in caption_ids
    row_caption_count: torch.Tensor  # (R,)
    template_ids: torch.Tensor  # (C * T, L) every prompt template filled with every class name
    text_length: int  # one length for the whole run: the longest text used, + 1
    image_mean: torch.Tensor  # (3,)
    image_std: torch.Tensor  # (3,)
    tokenizer: object
    processor: object
    num_captions: int


def prepare_teacher_data(dataset_dir: Path, config: TeacherConfig, templates: Sequence[str], accelerator) -> TeacherData:
    """Read the `train` split, train the caption tokenizer, convert the views and normalise them by their own
    statistics (the image processor saved with the teacher carries them)."""
    from transformers import CLIPProcessor

    train = load_triples(dataset_dir, split="train")
    missing = {"images", "captions", "label"} - set(train.column_names)
    if missing:
        raise ValueError(
            f"{dataset_dir} train split lacks columns {sorted(missing)}; a teacher needs views, captions and labels"
        )
    class_names = train.features["label"].names
    rows = train.select_columns(["images", "captions", "label"])
    images, view_rows, captions, caption_rows, labels = [], [], [], [], []
    for r, row in enumerate(rows):
        if not row["images"] or not row["captions"]:
            raise ValueError(f"train row {r} has no images or no captions; every shape needs both")
        images.extend(row["images"])
        view_rows.extend([r] * len(row["images"]))
        captions.extend(row["captions"])
        caption_rows.extend([r] * len(row["captions"]))
        labels.append(row["label"])

    tokenizer = train_caption_tokenizer(captions, config.tokenizer_vocab_size, model_max_length=config.max_length)
    image_processor = build_image_processor(config.image_size, [0.5] * 3, [0.5] * 3)
    bank = _views_to_uint8(images, image_processor)  # (V, 3, S, S) uint8
    del images
    as_float = bank.float().div_(255.0)
    image_mean = as_float.mean(dim=(0, 2, 3))
    image_std = as_float.std(dim=(0, 2, 3)).clamp(min=1e-3)
    del as_float
    image_processor = build_image_processor(config.image_size, image_mean.tolist(), image_std.tolist())
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)

    def tokenize(texts: list[str]) -> torch.Tensor:
        ids = tokenizer(texts, padding="max_length", truncation=True, max_length=config.max_length, return_tensors="pt")
        return ids["input_ids"]

    caption_ids = tokenize(captions)  # (Ncap, L)
    truncated = sum(len(ids) > config.max_length for ids in tokenizer(captions)["input_ids"])
    if truncated:
        accelerator.print(f"warning: {truncated} captions are longer than max_length={config.max_length} and are cut")
    caption_rows_t = torch.tensor(caption_rows)
    row_caption_start = torch.zeros(len(labels), dtype=torch.long)
    row_caption_count = torch.bincount(caption_rows_t, minlength=len(labels))
    row_caption_start[1:] = row_caption_count.cumsum(0)[:-1]
    template_ids = tokenize([t.format(label_to_text(c)) for c in class_names for t in templates])  # (C*T, L)
    used = torch.cat([caption_ids, template_ids] if config.template_caption_prob > 0 else [caption_ids])
    text_length = min(int((used != tokenizer.pad_token_id).sum(dim=1).max()) + 1, config.max_length)
    return TeacherData(list(class_names), bank, torch.tensor(view_rows), torch.tensor(labels), caption_ids,
                       row_caption_start, row_caption_count, template_ids, text_length, image_mean, image_std,
                       tokenizer, processor, len(captions))


def caption_batch(data: TeacherData, row: torch.Tensor, config: TeacherConfig, num_templates: int,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One caption per shape of the batch, drawn at random (or, with probability `template_caption_prob`, a
    prompt template filled with its class name): `input_ids` and `attention_mask`, `(B, text_length)`."""
    pick = (torch.rand(len(row), generator=generator) * data.row_caption_count[row]).long()
    input_ids = data.caption_ids[data.row_caption_start[row] + pick]
    if config.template_caption_prob > 0:
        use_template = torch.rand(len(row), generator=generator) < config.template_caption_prob
        template = torch.randint(num_templates, (len(row),), generator=generator)
        input_ids = torch.where(
            use_template[:, None], data.template_ids[data.labels[row] * num_templates + template], input_ids
        )
    attention_mask = (input_ids != data.tokenizer.pad_token_id).long()
    eos_position = attention_mask.sum(dim=1).clamp(max=input_ids.shape[1] - 1)
    attention_mask[torch.arange(len(row)), eos_position] = 1  # the EOS has the padding id
    # one text length for the whole run (the longest caption), not per batch: CPU kernels (oneDNN) are built once
    # per input shape, and a new length every step costs far more than the padding
    return input_ids[:, :data.text_length], attention_mask[:, :data.text_length]


def teacher_loss(model, data: TeacherData, view_index: torch.Tensor, config: TeacherConfig, num_templates: int,
                 generator: torch.Generator, accelerator) -> torch.Tensor:
    """The contrastive loss of one batch of views: each view augmented and normalised, each paired with a caption of
    its shape (`caption_batch`), the same-class pairs weighted by `same_class_target_weight`."""
    row = data.view_rows[view_index]
    input_ids, attention_mask = caption_batch(data, row, config, num_templates, generator)
    pixels = data.bank[view_index].to(accelerator.device).float().div_(255.0)
    mean = data.image_mean.view(1, 3, 1, 1).to(accelerator.device)
    std = data.image_std.view(1, 3, 1, 1).to(accelerator.device)
    pixels = (augment_views(pixels, config, generator) - mean) / std
    with accelerator.autocast():
        out = model(input_ids=input_ids.to(accelerator.device), attention_mask=attention_mask.to(accelerator.device),
                    pixel_values=pixels)
        return clip_contrastive_loss(out.logits_per_image.float(), data.labels[row].to(accelerator.device),
                                     config.same_class_target_weight)


def run_record(data: TeacherData, dataset_dir: Path, templates: Sequence[str], config: TeacherConfig, accelerator,
               step: int, steps_per_epoch: int, stopped_early: bool, losses: list[float], train_seconds: float) -> dict:
    """What `teacher_metrics.json` says of the run: the data, the steps, the machine and the config (the dataset by
    its folder name only, `portable`)."""
    return {
        "dataset": portable(str(dataset_dir)),
        "classes": data.class_names,
        "num_train_shapes": len(data.labels),
        "num_train_views": len(data.view_rows),
        "num_train_captions": data.num_captions,
        "steps": step,
        "epochs_completed": step / steps_per_epoch,
        "stopped_early": stopped_early,
        "final_loss": float(np.mean(losses[-50:])) if losses else None,
        "train_seconds": train_seconds,
        "num_processes": accelerator.num_processes,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1m_5m_15m": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "device": str(accelerator.device),
        "mixed_precision": str(accelerator.mixed_precision),
        "templates": list(templates),
        "config": asdict(config),
    }


TEACHER_MANIFEST = ".dual_denoising_teacher.json"  # the top-level files `train_teacher` wrote into its folder


def check_teacher_folder(output_dir: str | Path, dataset_dir: str | Path, overwrite: bool = False) -> Path:
    """Before any work: the teacher goes into a new or empty folder, or one holding only a teacher written here (its
    manifest, `TEACHER_MANIFEST`), which needs `overwrite`. A folder with anything else in it is refused whatever
    `overwrite` says (nothing of the user's is replaced), and so is a folder that is, holds or is inside the dataset."""
    check_not_an_input(output_dir, {"dataset": dataset_dir}, "the teacher's folder")
    out = Path(output_dir).expanduser().resolve()
    if not out.exists():
        return out
    if not out.is_dir():
        raise FileExistsError(f"{output_dir} is a file; name a folder for the teacher")
    manifest = out / TEACHER_MANIFEST
    ours = set(json.loads(manifest.read_text())["written"]) | {TEACHER_MANIFEST} if manifest.is_file() else set()
    foreign = sorted(p.name for p in out.iterdir() if p.name not in ours)
    if foreign:
        raise FileExistsError(f"{output_dir} holds files the teacher training did not write ({', '.join(foreign[:3])}"
                              f"{', ...' if len(foreign) > 3 else ''}); name a new or empty folder (nothing of yours "
                              "is replaced)")
    if ours and not overwrite:
        raise FileExistsError(f"{output_dir} already holds a teacher; pass --overwrite (overwrite=True) to replace it, "
                              "or name a new folder")
    return out


def save_and_evaluate_teacher(model, data: TeacherData, dataset_dir: Path, output_dir: Path, templates: Sequence[str],
                              evaluate: bool, show_progress: bool, accelerator) -> dict:
    """Save the teacher and its processor; with `evaluate`, reload them as a user would and measure zero-shot top-1
    on the `test` split. Returns the evaluation's figures."""
    from transformers import CLIPModel, CLIPProcessor

    output_dir.mkdir(parents=True, exist_ok=True)
    accelerator.unwrap_model(model).save_pretrained(output_dir)
    data.processor.save_pretrained(output_dir)
    # the folder held nothing but an earlier teacher (check_teacher_folder), so everything in it is the teacher's
    written = {p.name for p in output_dir.iterdir()} - {TEACHER_MANIFEST} | {TEACHER_METRICS_FILE}
    (output_dir / TEACHER_MANIFEST).write_text(json.dumps({"written": sorted(written)}, indent=2) + "\n")
    if not evaluate:
        return {}
    # load back through the public path, exactly as a user (or precompute-features) will
    loaded = CLIPModel.from_pretrained(output_dir).to(accelerator.device).eval()
    loaded_processor = CLIPProcessor.from_pretrained(output_dir)
    test = load_triples(dataset_dir, split="test")
    result = evaluate_teacher(loaded, loaded_processor, test, data.class_names, templates, show_progress=show_progress)
    return {"zero_shot_top1": result["top1"], "zero_shot_shape_top1": result["shape_top1"],
            "zero_shot_per_class": result["per_class"], "num_test_views": result["num_images"],
            "num_test_shapes": result["num_shapes"]}


def train_teacher(
    dataset_dir: str | Path,
    output_dir: str | Path,
    config: TeacherConfig | None = None,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    accelerator=None,
    evaluate: bool = True,
    show_progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Train the small CLIP teacher on the `train` split of a triples folder and save it to `output_dir`.

    Every view of every training shape is one image per epoch, paired with one caption of its shape drawn at random
    (or, with probability `template_caption_prob`, a prompt template filled with its class name). Runs under
    `accelerate launch`, `torchrun` or plain python; with several processes each computes the contrastive loss over
    its own batch. After training, the main process reloads the folder with `CLIPModel.from_pretrained` /
    `CLIPProcessor.from_pretrained` and (with `evaluate`) measures zero-shot top-1 on the `test` split with
    `templates`. The metrics, the config and the timings go to `output_dir/teacher_metrics.json` and are returned.
    `output_dir` is checked first (`check_teacher_folder`): a folder holding a teacher written here needs `overwrite`,
    one holding anything else is refused.
    """
    from accelerate.utils import set_seed

    config = config or TeacherConfig()
    accelerator = accelerator or make_accelerator(mixed_precision=config.mixed_precision)
    set_seed(config.seed)
    t_start = time.perf_counter()
    dataset_dir, output_dir = Path(dataset_dir), Path(output_dir)
    check_teacher_folder(output_dir, dataset_dir, overwrite)
    # 1. data: every view as uint8, every caption pre-tokenised
    data = prepare_teacher_data(dataset_dir, config, templates, accelerator)

    # 2. model, optimiser, loader
    model = build_teacher_model(config, data.tokenizer)
    optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.learning_rate, betas=(0.9, 0.98))
    loader = torch.utils.data.DataLoader(
        torch.arange(len(data.view_rows)), batch_size=config.batch_size, shuffle=True, drop_last=True
    )
    if len(loader) == 0:
        raise ValueError(f"{len(data.view_rows)} training views are fewer than one batch of {config.batch_size}")
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    total_steps = config.epochs * len(loader)  # optimiser steps of this process
    generator = torch.Generator().manual_seed(config.seed + accelerator.process_index)
    max_logit_scale = math.log(100.0)

    accelerator.print(
        f"teacher: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, {len(data.labels)} shapes, "
        f"{len(data.view_rows)} views, {data.num_captions} captions, {len(data.class_names)} classes, vocab "
        f"{len(data.tokenizer)}, {total_steps} steps"
    )
    # 3. the loop
    t_train = time.perf_counter()
    step, losses, stopped_early = 0, [], False
    progress = tqdm(total=total_steps, desc="teacher", disable=not (show_progress and accelerator.is_main_process))
    model.train()
    for epoch in range(config.epochs):
        for view_index in loader:
            # the learning rate follows the schedule's progress: by steps, or by time when that is further along
            done = step / total_steps
            if config.max_train_seconds is not None:
                elapsed = torch.tensor(time.perf_counter() - t_train, device=accelerator.device)
                elapsed = accelerator.reduce(elapsed, "max").item()  # every rank stops at the same step
                if elapsed >= config.max_train_seconds:
                    stopped_early = True
                    break
                done = max(done, elapsed / config.max_train_seconds)
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate * _lr_factor(done, config.warmup_ratio)

            loss = teacher_loss(model, data, view_index.cpu(), config, len(templates), generator, accelerator)
            accelerator.backward(loss)
            if config.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                accelerator.unwrap_model(model).logit_scale.clamp_(0, max_logit_scale)
            step += 1
            losses.append(loss.item())
            progress.update(1)
            if step % 50 == 0:
                progress.set_postfix(epoch=epoch, loss=f"{np.mean(losses[-50:]):.3f}")
            if not show_progress and (step % max(1, total_steps // 20) == 0 or step == total_steps):
                accelerator.print(
                    f"step {step}/{total_steps} epoch {epoch} loss {np.mean(losses[-50:]):.3f} "
                    f"T {1 / accelerator.unwrap_model(model).logit_scale.exp().item():.3f} "
                    f"lr {optimizer.param_groups[0]['lr']:.2e} {time.perf_counter() - t_train:.0f} s"
                )
        if stopped_early:
            break
    progress.close()
    train_seconds = time.perf_counter() - t_train

    # 4. save, reload and evaluate
    accelerator.wait_for_everyone()
    metrics: dict = {}
    if accelerator.is_main_process:
        metrics = run_record(data, dataset_dir, templates, config, accelerator, step, len(loader), stopped_early,
                             losses, train_seconds)
        metrics.update(save_and_evaluate_teacher(model, data, dataset_dir, output_dir, templates, evaluate,
                                                 show_progress, accelerator))
        metrics["total_seconds"] = time.perf_counter() - t_start
        (output_dir / TEACHER_METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    accelerator.wait_for_everyone()
    return metrics
