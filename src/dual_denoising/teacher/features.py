"""`precompute_features` (`dual-denoising precompute-features`): any CLIP's embeddings as columns of a triples folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from datasets.utils.logging import disable_progress_bar, enable_progress_bar, is_progress_bar_enabled

from ..data import load_triples, load_triples_metadata, portable, save_triples, triples_features
from .model import TEACHER_METRICS_FILE
from .zero_shot import _image_features, _text_features


def teacher_fingerprint(teacher: str | Path) -> str:
    """A content fingerprint of a teacher: for a local folder, SHA-256 over its config and weight files (so a
    retrained teacher at the same path is told apart); for a Hub id, the id itself."""
    path = Path(teacher)
    if not path.is_dir():
        return f"hub:{teacher}"
    digest = hashlib.sha256()
    suffixes = {".json", ".safetensors", ".bin", ".txt"}
    files = sorted(p for p in path.iterdir() if p.suffix in suffixes and p.name != TEACHER_METRICS_FILE)
    if not any(p.suffix in {".safetensors", ".bin"} for p in files):
        raise FileNotFoundError(
            f"{path} holds no model weights (*.safetensors / *.bin); is it a save_pretrained folder?"
        )
    for p in files:
        digest.update(p.name.encode())
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def _features_are_current(dataset_dir: Path, fingerprint: str) -> bool:
    """The metadata names this teacher and every split file has both columns (schemas only; no data is read)."""
    import pyarrow.parquet as pq

    record = load_triples_metadata(dataset_dir).get("teacher_features")
    if not record or record.get("fingerprint") != fingerprint:
        return False
    files = sorted((dataset_dir / "data").glob("*.parquet"))
    return bool(files) and all({"image_embeds", "text_embeds"} <= set(pq.read_schema(f).names) for f in files)


def precompute_features(
    dataset_dir: str | Path,
    teacher_dir: str | Path,
    batch_size: int = 64,
    overwrite: bool = False,
    device: str | torch.device | None = None,
    show_progress: bool = True,
) -> dict:
    """Add the frozen teacher's `image_embeds` (views, D) and `text_embeds` (captions, D) to every split of a
    triples folder, rewriting its parquet files in place.

    The teacher is any CLIP that `CLIPModel.from_pretrained` / `CLIPProcessor.from_pretrained` load: a local folder
    (such as one written by `train_teacher`) or a Hub id such as `openai/clip-vit-base-patch16`. The stored values
    are the **raw projected embeddings** (`get_image_features(...).pooler_output` and
    `get_text_features(...).pooler_output`), **not L2-normalised**: consumers normalise (the feature-denoising target
    is `sqrt(D) * normalize(e)`). A row without captions gets a `(0, D)` text array.

    The teacher, its fingerprint (`teacher_fingerprint`) and D are recorded under `"teacher_features"` in the
    folder's `dual_denoising.json`; a later call with the same teacher returns that record without recomputing,
    unless `overwrite=True`. Returns the record, with `"reused": True|False`.
    """
    from transformers import CLIPModel, CLIPProcessor

    dataset_dir = Path(dataset_dir)
    if not (dataset_dir / "data").is_dir():
        raise FileNotFoundError(f"{dataset_dir} is not a triples folder (no data/ inside); write one with save_triples")
    fingerprint = teacher_fingerprint(teacher_dir)
    if not overwrite and _features_are_current(dataset_dir, fingerprint):
        return {**load_triples_metadata(dataset_dir)["teacher_features"], "reused": True}

    if device is None:  # the machine's accelerator (CUDA, XPU, MPS ...) when it has one
        has_accelerator = hasattr(torch, "accelerator") and torch.accelerator.is_available()
        device = torch.accelerator.current_accelerator() if has_accelerator else torch.device("cpu")
    model = CLIPModel.from_pretrained(str(teacher_dir)).to(device).eval()
    processor = CLIPProcessor.from_pretrained(str(teacher_dir))
    embed_dim = model.config.projection_dim
    embed_features = triples_features(with_images=False, with_captions=False, embed_dim=embed_dim)

    @torch.no_grad()
    def embed(batch: dict) -> dict:
        views = [im.convert("RGB") for ims in batch["images"] for im in ims]
        texts = [c for caps in batch.get("captions", [[]] * len(batch["images"])) for c in caps]
        image_embeds = np.zeros((0, embed_dim), np.float32)
        if views:
            pixel_values = processor.image_processor(views, return_tensors="pt")["pixel_values"].to(device)
            image_embeds = _image_features(model, pixel_values).float().cpu().numpy()
        text_embeds = np.zeros((0, embed_dim), np.float32)
        if texts:
            inputs = processor.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
            inputs = {k: v.to(device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
            text_embeds = _text_features(model, **inputs).float().cpu().numpy()
        out_images, out_texts, i, j = [], [], 0, 0
        for r, ims in enumerate(batch["images"]):
            n_caps = len(batch["captions"][r]) if "captions" in batch else 0
            out_images.append(image_embeds[i : i + len(ims)])
            out_texts.append(text_embeds[j : j + n_caps])
            i, j = i + len(ims), j + n_caps
        return {"image_embeds": out_images, "text_embeds": out_texts}

    splits = load_triples(dataset_dir)
    for name, ds in splits.items():
        if "images" not in ds.column_names:
            raise ValueError(
                f"split {name!r} of {dataset_dir} has no 'images' column; the teacher embeds rendered views"
            )
        ds = ds.remove_columns([c for c in ("image_embeds", "text_embeds") if c in ds.column_names])
        features = ds.features.copy()
        features.update(embed_features)
        # rows are decoded in batches of `batch_size` shapes; one forward per batch for views and for captions
        map_kwargs = dict(
            batched=True,
            batch_size=batch_size,
            features=features,
            load_from_cache_file=False,
            new_fingerprint=hashlib.sha256(f"{fingerprint}:{name}:{ds._fingerprint}".encode()).hexdigest()[:16],
            desc=f"teacher features ({name})",
        )
        bars_were_on = is_progress_bar_enabled()
        if not show_progress:
            disable_progress_bar()
        try:
            splits[name] = ds.map(embed, **map_kwargs)
        finally:
            if bars_were_on:
                enable_progress_bar()

    record = {
        "teacher": portable(str(teacher_dir)),  # a Hub id, or the folder by its name: no path of this machine
        "fingerprint": fingerprint,
        "embed_dim": embed_dim,
        "normalized": False,
        "image_embeds": "CLIPModel.get_image_features(pixel_values).pooler_output, one row per view",
        "text_embeds": "CLIPModel.get_text_features(input_ids).pooler_output, one row per caption",
    }
    metadata = load_triples_metadata(dataset_dir)
    metadata["teacher_features"] = record
    metadata["splits"] = {name: len(ds) for name, ds in splits.items()}
    save_triples(splits, dataset_dir, metadata=metadata, overwrite=True)
    return {**record, "reused": False}


