"""The SynthShapes world, stage by stage: the recipe behind the embedded default model, the replication table and
`make demo`. Each stage is skipped when its output is already there, so an interrupted run continues where it
stopped and a second run reuses everything.

    data = ensure_synthshapes("outputs/world/synthshapes")            # 32 classes x 200 shapes x 2 views
    teacher = ensure_teacher(data, "outputs/world/teacher")            # a small CLIPModel + tokenizer
    ensure_features(data, teacher)                                     # image_embeds / text_embeds columns
    model_dir = pretrain_variant(data, teacher, "outputs/world/dd", objective="dual_denoising")
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from .data import METADATA_FILE
from .pipeline_dual_denoising import EMBEDDED_MODEL, PRETRAINED_DIR

# The pretraining budget every variant of the replication table gets: same data, teacher, steps and schedule.
DEFAULT_BUDGET = {
    "num_train_epochs": 5,
    "per_device_train_batch_size": 32,
    "learning_rate": 1e-3,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.05,
}


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def ensure_synthshapes(out_dir: str | Path, shapes_per_class: int | None = None, views: int | None = None,
                       seed: int = 0) -> Path:
    """SynthShapes at its default size (or the given one), generated once."""
    from .synthshapes import DEFAULT_SHAPES_PER_CLASS, DEFAULT_VIEWS, save_synthshapes

    out_dir = Path(out_dir)
    if (out_dir / METADATA_FILE).is_file():
        _log(f"SynthShapes: reusing {out_dir}")
        return out_dir
    shapes_per_class = shapes_per_class or DEFAULT_SHAPES_PER_CLASS
    views = views or DEFAULT_VIEWS
    _log(f"SynthShapes: generating {shapes_per_class} shapes/class x {views} views (seed {seed}) in {out_dir}")
    save_synthshapes(out_dir, shapes_per_class, views, seed=seed, progress=False)
    return out_dir


def ensure_teacher(dataset_dir: str | Path, out_dir: str | Path, config=None) -> Path:
    """The small CLIP teacher trained on the dataset's training renders and captions, trained once (`TeacherConfig`
    defaults: 92.0% zero-shot top-1 on SynthShapes test renders after 800 s of training on 2 CPU cores)."""
    from .teacher import TeacherConfig, train_teacher

    out_dir = Path(out_dir)
    if (out_dir / "teacher_metrics.json").is_file():
        _log(f"teacher: reusing {out_dir}")
        return out_dir
    _log(f"teacher: training in {out_dir}")
    metrics = train_teacher(dataset_dir, out_dir, config or TeacherConfig(), show_progress=False)
    _log(f"teacher: zero-shot top-1 on test renders {100 * metrics['zero_shot_top1']:.1f}% "
         f"({metrics['train_seconds']:.0f} s of training)")
    return out_dir


def ensure_features(dataset_dir: str | Path, teacher_dir: str | Path) -> None:
    """The teacher's image and text embeddings as dataset columns (reused when computed with the same teacher)."""
    from .teacher import precompute_features

    precompute_features(dataset_dir, teacher_dir, show_progress=False)


def ensure_resampled(dataset_dir: str | Path, out_dir: str | Path, num_points: int = 1024) -> Path:
    """A copy of a triples folder with every cloud reduced once by farthest point sampling (start index 0) to the
    model's point count, and without the rendered views (training and evaluation read points and embeddings). On
    2 CPU cores this halves the pretraining time: per-sample FPS in the training loop cost as much as the model."""
    import torch

    from .data import load_triples, save_triples
    from .point_ops import farthest_point_sample, gather_points

    out_dir = Path(out_dir)
    if (out_dir / METADATA_FILE).is_file():
        _log(f"resampled data: reusing {out_dir}")
        return out_dir
    _log(f"resampled data: {dataset_dir} -> {num_points} points per cloud in {out_dir}")

    def reduce(batch):
        clouds = torch.as_tensor(batch["points"])
        batch["points"] = gather_points(clouds, farthest_point_sample(clouds, num_points)).numpy()
        return batch

    splits = load_triples(dataset_dir)
    splits = splits.remove_columns([c for c in ("images",) if c in splits["train"].column_names])
    save_triples(splits.map(reduce, batched=True, batch_size=256), out_dir)
    meta = json.loads((Path(dataset_dir) / METADATA_FILE).read_text())
    meta.update(num_points=num_points, resampled_from=str(dataset_dir))
    (out_dir / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir


def pretrain_variant(
    dataset_dir: str | Path,
    teacher_dir: str | Path,
    out_dir: str | Path,
    objective: str = "dual_denoising",
    preset: str = "tiny",
    config_overrides: dict | None = None,
    train_on_seen_classes: bool = False,
    seed: int = 0,
    **budget,
) -> Path:
    """One pretraining run with the shared budget (`DEFAULT_BUDGET`, overridable); skipped when already finished."""
    from .training import PretrainingArguments, pretrain

    out_dir = Path(out_dir)
    if (out_dir / "train_results.json").is_file():
        _log(f"pretrain: reusing {out_dir}")
        return out_dir
    args = PretrainingArguments(
        dataset=str(dataset_dir),
        output_dir=str(out_dir),
        teacher=str(teacher_dir),
        preset=preset,
        objective=objective,
        config_overrides=json.dumps(config_overrides) if config_overrides else None,
        train_on_seen_classes=train_on_seen_classes,
        seed=seed,
        report_to="none",
        logging_steps=50,
        checkpointing_steps=200,
        checkpoints_total_limit=1,
        resume_from_checkpoint="latest" if any(out_dir.glob("checkpoint-*")) else None,
        **{**DEFAULT_BUDGET, **budget},
    )
    _log(f"pretrain: {objective} {preset} {config_overrides or ''} -> {out_dir}")
    pretrain(args)
    return out_dir


def pack_embedded_model(model_dir: str | Path, dataset_dir: str | Path, teacher_dir: str | Path, recipe: str,
                        name: str, summary: str, make_default: bool = False, default_reason: str | None = None,
                        extra_metadata: dict | None = None) -> Path:
    """Copy a trained model folder (weights, config, text tower, tokenizer, model card) into the package data as
    `pretrained/<name>`, with a `metadata.json` that lists its classes and says how it was made; `make_default`
    also names it the task's default in `pretrained/index.json`, with the reason."""
    model_dir, dest = Path(model_dir), PRETRAINED_DIR / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    # the model's code copies (its trust_remote_code export) are left out: inside the package the package's code runs
    for path in model_dir.iterdir():
        if path.is_file() and path.suffix in (".json", ".safetensors", ".txt", ".md") and path.name != "metadata.json":
            shutil.copy2(path, dest / path.name)
    data_meta = json.loads((Path(dataset_dir) / METADATA_FILE).read_text())
    teacher_metrics = json.loads((Path(teacher_dir) / "teacher_metrics.json").read_text())
    results_file = model_dir / "train_results.json"
    metadata = {
        "name": name,
        "summary": summary,
        "classes": data_meta["classes"],
        "dataset": {k: data_meta.get(k) for k in ("seed", "shapes_per_class", "views", "image_size", "num_points",
                                                   "generator_version", "splits")},
        "teacher_zero_shot_top1": teacher_metrics.get("zero_shot_top1"),
        "training": json.loads(results_file.read_text()) if results_file.is_file() else None,
        "recipe": recipe,
        **(extra_metadata or {}),
    }
    if make_default:
        metadata["default_reason"] = default_reason
        (PRETRAINED_DIR / "index.json").write_text(json.dumps({"default": name, "reason": default_reason},
                                                              indent=2) + "\n")
    (dest / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return dest


def embedded_model_classes() -> list[str]:
    """The classes the embedded default model was trained on (its candidate labels for SynthShapes)."""
    meta = EMBEDDED_MODEL / "metadata.json"
    if not meta.is_file():
        raise FileNotFoundError(
            f"the embedded model is missing ({meta}); rebuild it with python examples/train_embedded_default.py"
        )
    return json.loads(meta.read_text())["classes"]
