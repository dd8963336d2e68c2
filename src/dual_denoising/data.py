"""Point/image/text triples as `datasets` parquet folders.

A triples folder is laid out like a Hub dataset repository, so `datasets.load_dataset(folder)` reads it as well as
`load_triples(folder)`:

    folder/
      data/{split}-00000-of-00001.parquet   one file per split; the parquet schema carries the `datasets` features
      dual_denoising.json                   metadata: class names, seen/unseen split, how the data was made

Columns (see `triples_features`):
    shape_id      string
    points        float32 (N, 3), N may vary from row to row
    colors        float32 (N, 3) in [0, 1]                      optional
    images        list of rendered views (PIL images)           optional
    captions      list of strings                               optional
    label         ClassLabel                                    where known
    image_embeds  float32 (views, D): frozen-CLIP embedding of each view      added by precompute-features
    text_embeds   float32 (captions, D): frozen-CLIP embedding of each caption added by precompute-features
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
from datasets import Array2D, ClassLabel, Dataset, DatasetDict, Features, Image, List, Value

METADATA_FILE = "dual_denoising.json"


def triples_features(
    class_names: list[str] | None = None,
    with_colors: bool = False,
    with_images: bool = True,
    with_captions: bool = True,
    embed_dim: int | None = None,
) -> Features:
    """The `datasets.Features` of a triples dataset; optional columns are present only when asked for."""
    features: dict[str, Any] = {
        "shape_id": Value("string"),
        "points": Array2D(shape=(None, 3), dtype="float32"),
    }
    if with_colors:
        features["colors"] = Array2D(shape=(None, 3), dtype="float32")
    if with_images:
        features["images"] = List(Image())
    if with_captions:
        features["captions"] = List(Value("string"))
    if class_names is not None:
        features["label"] = ClassLabel(names=list(class_names))
    if embed_dim is not None:
        features["image_embeds"] = Array2D(shape=(None, embed_dim), dtype="float32")
        features["text_embeds"] = Array2D(shape=(None, embed_dim), dtype="float32")
    return Features(features)


def save_triples(
    dataset: DatasetDict, out_dir: str | Path, metadata: dict | None = None, overwrite: bool = False
) -> Path:
    """Write every split of `dataset` as `out_dir/data/{split}-00000-of-00001.parquet` plus the metadata file.

    An existing folder is refused unless `overwrite=True`, so nothing a user made is replaced by accident.
    """
    out_dir = Path(out_dir)
    data_dir = out_dir / "data"
    if data_dir.exists() and any(data_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} already holds a dataset; pass overwrite=True (--overwrite) to replace it")
    data_dir.mkdir(parents=True, exist_ok=True)
    for old in data_dir.glob("*.parquet"):
        old.unlink()
    for split, ds in dataset.items():
        ds.to_parquet(str(data_dir / f"{split}-00000-of-00001.parquet"))
    meta = dict(metadata or {})
    meta.setdefault("splits", {split: len(ds) for split, ds in dataset.items()})
    (out_dir / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir


def load_triples_metadata(path: str | Path) -> dict:
    """The metadata saved next to a local triples folder (an empty dict when there is none)."""
    meta_path = Path(path) / METADATA_FILE
    return json.loads(meta_path.read_text()) if meta_path.is_file() else {}


def load_triples(
    path_or_id: str | Path, split: str | None = None, streaming: bool = False
) -> DatasetDict | Dataset | datasets.IterableDatasetDict | datasets.IterableDataset:
    """Load a triples dataset from a local folder written by `save_triples` or from a Hub dataset id."""
    path = Path(path_or_id)
    if path.exists():
        files = sorted((path / "data").glob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"{path} holds no data/*.parquet files; is it a folder written by save_triples?")
        data_files = {f.name.split("-")[0]: str(f) for f in files}
        return datasets.load_dataset("parquet", data_files=data_files, split=split, streaming=streaming)
    return datasets.load_dataset(str(path_or_id), split=split, streaming=streaming)
