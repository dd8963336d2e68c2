"""The SynthShapes world, stage by stage: the recipe behind the shipped default model, the replication table and
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

from ..data import METADATA_FILE
from ..shipped import PRETRAINED_DIR

# The pretraining budget every variant of the replication table gets: same data, teacher, steps and schedule.
DEFAULT_BUDGET = {
    "num_train_epochs": 5,
    "per_device_train_batch_size": 32,
    "learning_rate": 1e-3,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.05,
}


# the PGD-Linf radius at which the shipped default is chosen (`choose_default`)
DEFAULT_CHOICE_EPS = 0.02


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def ensure_synthshapes(out_dir: str | Path, shapes_per_class: int | None = None, views: int | None = None,
                       seed: int = 0) -> Path:
    """SynthShapes at its default size (or the given one), generated once."""
    from ..synth import DEFAULT_SHAPES_PER_CLASS, DEFAULT_VIEWS, save_synthshapes

    out_dir = Path(out_dir)
    if (out_dir / METADATA_FILE).is_file():
        _log(f"SynthShapes: reusing {out_dir}")
        return out_dir
    shapes_per_class = shapes_per_class or DEFAULT_SHAPES_PER_CLASS
    views = views or DEFAULT_VIEWS
    _log(f"SynthShapes: generating {shapes_per_class} shapes/class x {views} views (seed {seed}) in {out_dir}")
    save_synthshapes(out_dir, shapes_per_class, views, seed=seed, progress=False)
    return out_dir


def ensure_synthshapes_scan(out_dir: str | Path, variant: str, seed: int = 0) -> Path:
    """SynthShapes-Scan's `variant` ("object", "background" or "perturbed") at its default size, generated once (as
    `dual-denoising make-synthetic --scan VARIANT`)."""
    from ..synth.scan import save_synthshapes_scan

    out_dir = Path(out_dir)
    if (out_dir / METADATA_FILE).is_file():
        _log(f"SynthShapes-Scan ({variant}): reusing {out_dir}")
        return out_dir
    _log(f"SynthShapes-Scan ({variant}): generating in {out_dir}")
    save_synthshapes_scan(out_dir, variant, seed=seed, progress=False)
    return out_dir


def ensure_teacher(dataset_dir: str | Path, out_dir: str | Path, config=None) -> Path:
    """The small CLIP teacher trained on the dataset's training renders and captions, trained once (`TeacherConfig`
    defaults: 92.0% zero-shot top-1 on SynthShapes test renders after 800 s of training on 2 CPU cores)."""
    from ..teacher import TeacherConfig, train_teacher

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
    from ..teacher import precompute_features

    precompute_features(dataset_dir, teacher_dir, show_progress=False)


def ensure_resampled(dataset_dir: str | Path, out_dir: str | Path, num_points: int = 1024) -> Path:
    """A copy of a triples folder with every cloud reduced once by farthest point sampling (start index 0) to the
    model's point count, and without the rendered views (training and evaluation read points and embeddings). On
    2 CPU cores this halves the pretraining time: per-sample FPS in the training loop cost as much as the model."""
    import torch

    from ..data import load_triples, save_triples
    from ..point_ops import farthest_point_sample, gather_points

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
    from . import PretrainingArguments, pretrain

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


def save_shipped_weights(model, dest: Path, config_updates: dict | None = None) -> dict:
    """Write `model` into the package folder `dest` as the shipped models are stored: float16 weights, a config that
    says float32 (so `from_pretrained` loads float32), no remote-code copies, and the frozen text tower moved into
    `shared/` beside it (`share_text_weights`). Returns the config written."""
    import torch

    model.to(torch.float16).save_pretrained(dest)
    model.to(torch.float32)
    for code in Path(dest).glob("*.py"):  # the trust_remote_code copies: inside the package, the package's code runs
        code.unlink()
    config = json.loads((Path(dest) / "config.json").read_text())
    config.pop("auto_map", None)
    config["dtype"] = "float32"
    config.update(config_updates or {})
    (Path(dest) / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    share_text_weights(Path(dest))
    return json.loads((Path(dest) / "config.json").read_text())


SHARED_TEXT_PREFIX = "text_model."


def share_text_weights(folder: Path) -> str | None:
    """Store a packed model's frozen text tower once for all the shipped models: move it out of
    `folder/model.safetensors` into `shared/text-model-<sha256>.safetensors` beside the model folders (named by its
    content, so models with the same teacher share one file and a new teacher gets a new one) and name that file in
    the config's `shared_text_weights`, which `from_pretrained` reads. Files no shipped model names any more are
    removed. Returns the file's name (None for a model without a text tower)."""
    import hashlib

    from safetensors.torch import load_file, save, save_file

    from ..modeling_dual_denoising import SHARED_WEIGHTS_FOLDER

    weights, config_file = folder / "model.safetensors", folder / "config.json"
    state = load_file(weights)
    text = {k[len(SHARED_TEXT_PREFIX):]: v for k, v in state.items() if k.startswith(SHARED_TEXT_PREFIX)}
    if not text:
        return None
    blob = save(text, metadata={"format": "pt"})
    name = f"text-model-{hashlib.sha256(blob).hexdigest()[:16]}.safetensors"
    shared = folder.parent / SHARED_WEIGHTS_FOLDER
    shared.mkdir(exist_ok=True)
    if not (shared / name).is_file():
        (shared / name).write_bytes(blob)
    save_file({k: v for k, v in state.items() if not k.startswith(SHARED_TEXT_PREFIX)}, weights,
              metadata={"format": "pt"})
    config = json.loads(config_file.read_text())
    config["shared_text_weights"] = name
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    named = {json.loads(c.read_text()).get("shared_text_weights") for c in folder.parent.glob("*/config.json")}
    for old in shared.glob("text-model-*.safetensors"):
        if old.name not in named:
            old.unlink()
    return name


def pack_shipped_model(model_dir: str | Path, dataset_dir: str | Path, teacher_dir: str | Path, recipe: str,
                        name: str, summary: str, make_default: bool = False, default_reason: str | None = None,
                        extra_metadata: dict | None = None, config_updates: dict | None = None) -> Path:
    """Copy a trained model folder into the package data as `pretrained/<name>`: the weights stored in float16 (the
    config says float32, so `from_pretrained` loads float32; the embeddings move by ~1e-4), the config, the text
    tower (stored once for all shipped models, `share_text_weights`), the tokenizer, a short model card and a
    `metadata.json` that lists its classes and says how it was made.
    `make_default` also names it the task's default in `pretrained/index.json`, with the reason; `config_updates`
    (e.g. the inference settings it was evaluated with, or `orientation_head=False` to leave a head out) are applied
    when the model is loaded, so they shape the weights written as well as its config."""
    import torch

    from ..data import portable
    from ..modeling_dual_denoising import DualDenoisingModel

    model_dir, dest = Path(model_dir), PRETRAINED_DIR / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    model = DualDenoisingModel.from_pretrained(model_dir, dtype=torch.float32, **(config_updates or {}))
    config = save_shipped_weights(model, dest)  # config_updates are in the loaded model's config already
    for path in model_dir.iterdir():
        if path.is_file() and path.name.startswith(("tokenizer", "vocab", "merges", "special_tokens")):
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
        "teacher": portable(str(teacher_dir)),
        "teacher_zero_shot_top1": teacher_metrics.get("zero_shot_top1"),
        "training": json.loads(results_file.read_text()) if results_file.is_file() else None,
        "recipe": recipe,
        "weights": "stored in float16, loaded as float32",
        **(extra_metadata or {}),
    }
    (dest / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    if make_default:
        set_default_reason(name, default_reason)
    (dest / "README.md").write_text(f"""---
library_name: transformers
license: apache-2.0
tags: [dual-denoising, point-cloud, 3d, zero-shot-3d-classification, {config["objective"].replace("_", "-")}]
---
# {name}

{summary}

Shipped inside the `dual-denoising` package (`dual-denoising models` lists it; `--model {name}` on the command line,
`dual_denoising.resolve_model("{name}")` for `pipeline(model=...)`). It holds the 3D tower and the tokenizer; the
teacher's frozen text tower, the same for every shipped model, is stored once, in the package's
`pretrained/shared/` folder, and read by `from_pretrained`. It has no model code: load it with the package installed (`save_pretrained` writes a whole copy). Trained on SynthShapes
({len(data_meta["classes"])} classes), released with `{recipe}`; `metadata.json` has the data, the training run and
the evaluation.{training_command(metadata["training"])}
""")
    return dest


def training_command(results: dict | None) -> str:
    """The model card's lines that give the `pretrain` command a model was trained by (from `train_results.json`)."""
    if not results or not results.get("command"):
        return ""
    return f"\n\nThe command that trained it (paths by folder name):\n\n```bash\n{results['command']}\n```"


def set_default_reason(name: str, reason: str, best_open_set_h: float | None = None) -> None:
    """Name the shipped model `name` the task's default in `pretrained/index.json`, with the README rule's reason,
    which its `metadata.json` carries too, and the best open-set H the rule compared with (when it had one)."""
    for folder in PRETRAINED_DIR.iterdir():  # only the default carries a reason
        meta_file = folder / "metadata.json"
        if meta_file.is_file():
            metadata = json.loads(meta_file.read_text())
            if folder.name == name:
                metadata["default_reason"] = reason
            elif metadata.pop("default_reason", None) is None:
                continue
            meta_file.write_text(json.dumps(metadata, indent=2) + "\n")
    index = {"default": name, "reason": reason} | ({"best_open_set_h": best_open_set_h} if best_open_set_h else {})
    (PRETRAINED_DIR / "index.json").write_text(json.dumps(index, indent=2) + "\n")


def choose_default(rows: dict[str, dict], eps: float = DEFAULT_CHOICE_EPS,
                   best_open_set_h: float | None = None) -> tuple[str, str]:
    """The default's rule (the README's "Shipped models"). Of the models within 2 points of the best clean top-1 (and,
    where rows carry `open_set_h`, whose recipe's harmonic mean H on the open-set protocol is within 2 points of the
    best H measured, `best_open_set_h`, which may be a recipe not shipped), the one with the best robust accuracy
    at `eps` (for a stochastic model, the lower of the adaptive and fixed-randomness numbers); Dual Denoising
    instead, if it passes the same filters and is within 1 point of that model on clean and robust accuracy. When no
    model passes the open-set filter, the reason says so: the default's recipe then has to change."""
    def clean(name):
        return 100 * rows[name]["clean"]["accuracy"]

    def robust(name):
        return 100 * rows[name][f"pgd_linf_{eps}"]["robust"]["accuracy"]

    def open_h(name):
        h = rows[name].get("open_set_h")
        return None if h is None else 100 * h

    best_clean = max(clean(n) for n in rows)
    candidates = sorted(n for n in rows if clean(n) >= best_clean - 2)  # by name: the reason reads the same
    reason = f"of the models within 2 points of the best clean top-1 ({best_clean:.1f}%: {', '.join(candidates)})"
    measured = [open_h(n) for n in rows if open_h(n) is not None]
    if measured:
        best_h = max(measured + ([100 * best_open_set_h] if best_open_set_h is not None else []))
        passing = [n for n in candidates if open_h(n) is not None and open_h(n) >= best_h - 2]
        if passing:
            candidates = passing
            reason += (f" and within 2 points of the best open-set H ({best_h:.1f}%: "
                       f"{', '.join(f'{n} {open_h(n):.1f}%' for n in passing)})")
        else:
            reason += (f"; none is within 2 points of the best open-set H ({best_h:.1f}%), so the default's recipe "
                       "has to change")
    pick = max(candidates, key=robust)
    reason += f", {pick} has the best robust accuracy at PGD-Linf eps {eps} ({robust(pick):.1f}%, clean {clean(pick):.1f}%)"
    method = next((n for n in candidates if rows[n]["objective"] == "dual_denoising"), None)
    if method and method != pick and abs(clean(method) - clean(pick)) <= 1 and abs(robust(method) - robust(pick)) <= 1:
        reason += (f"; {method} is within 1 point of it on both ({clean(method):.1f}% clean, {robust(method):.1f}% "
                   "robust), so the method is the default")
        pick = method
    return pick, reason
