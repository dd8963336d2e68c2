"""What every importer shares: the datasets' constants, resampling, metadata, output checks and chunked writing."""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..outputs import check_not_an_input
from .triples import SAMPLE_METHODS, check_dataset_folder, portable, resample_points, save_triples

MODELNET40_CLASSES = (
    "airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car", "chair", "cone",
    "cup", "curtain", "desk", "door", "dresser", "flower_pot", "glass_box", "guitar", "keyboard", "lamp",
    "laptop", "mantel", "monitor", "night_stand", "person", "piano", "plant", "radio", "range_hood", "sink",
    "sofa", "stairs", "stool", "table", "tent", "toilet", "tv_stand", "vase", "wardrobe", "xbox",
)  # fmt: skip
SCANOBJECTNN_CLASSES = (
    "bag", "bin", "box", "cabinet", "chair", "desk", "display", "door", "shelf", "table",
    "bed", "pillow", "sink", "sofa", "toilet",
)  # fmt: skip
# variant -> (folder, training file, test file), as in the official h5_files release
SCANOBJECTNN_VARIANTS = {
    "OBJ_BG": ("main_split", "training_objectdataset.h5", "test_objectdataset.h5"),
    "OBJ_ONLY": ("main_split_nobg", "training_objectdataset.h5", "test_objectdataset.h5"),
    "PB_T50_RS": (
        "main_split",
        "training_objectdataset_augmentedrot_scale75.h5",
        "test_objectdataset_augmentedrot_scale75.h5",
    ),
}
ULIP_VIEW_ANGLES = tuple(range(0, 360, 12))  # ULIP picks one of these 30 rendered azimuths per step
ULIP_DEPTH_SUFFIX = "_depth0001"
SHAPENET_IMAGE_DIRS = ("rendered_images", "only_rgb_depth_images")
SPLIT_FOLDER_NAMES = ("train", "test", "val", "validation")
DEFAULT_CHUNK_SIZE = 128  # clouds read, resampled and written per step


# ----------------------------------------------------------------------------------------------------------------------
# Shared plumbing
# ----------------------------------------------------------------------------------------------------------------------


def _prompt_name(name: str) -> str:
    """`night_stand` -> `night stand`: the form ULIP puts in prompts (`data/labels.json`)."""
    return name.replace("_", " ")


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder ({what})")
    return path


def _read_lines(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; expected {what}")
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file ({err}); expected {what}") from err
    return [line for line in lines if line]


def _read_class_names(path: Path) -> list[str]:
    names = _read_lines(path, "one class name per line")
    if not names:
        raise ValueError(f"{path}: lists no class names; expected one class name per line")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: class names must be unique; repeated: {duplicates}")
    return names


def _check_out_dir(out_dir: str | Path, overwrite: bool, src: Path, walks_src: bool = False) -> Path:
    """Refuse an existing non-empty output folder unless `overwrite`, before any work is done; even with it, a file
    the dataset would replace that dual-denoising did not write (`check_dataset_folder`), and always the folder being
    imported (and, for an importer that walks every subfolder of it, `walks_src`, a folder that holds it or lies
    inside it: the next import would read the output)."""
    if walks_src:
        check_not_an_input(out_dir, {"source folder": src}, "--out")
    elif Path(out_dir).expanduser().resolve() == Path(src).expanduser().resolve():
        raise ValueError(f"--out {out_dir} is the source folder; write the dataset into a folder of its own")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} already exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    return check_dataset_folder(out, overwrite)


@contextlib.contextmanager
def _datasets_progress_bars_off() -> Iterator[None]:
    """Our own progress bar says how far an import is; hide the `datasets` ones for the duration."""
    from datasets.utils import logging as ds_logging

    was_enabled = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            ds_logging.enable_progress_bar()


def _write_triples(
    out: Path,
    splits: dict[str, Callable[[], Iterator[dict[str, Any]]]],
    features: Any,
    metadata: Callable[[], dict] | dict,
) -> Path:
    """Generate every split into an arrow cache inside `out` (same disk as the result), then `save_triples`.

    `metadata` may be a callable, evaluated after generation, so counts gathered while generating are recorded.
    An error raised while generating (a `ValueError` about some file) propagates as itself.
    """
    import datasets

    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=out, prefix=".import-cache-") as cache, _datasets_progress_bars_off():
            parts = {}
            for split, rows in splits.items():
                try:
                    parts[split] = datasets.Dataset.from_generator(
                        rows, features=features, cache_dir=cache, fingerprint=uuid.uuid4().hex, split=split
                    )
                except datasets.exceptions.DatasetGenerationError as err:
                    if err.__cause__ is not None:
                        raise err.__cause__ from None
                    raise
            meta = metadata() if callable(metadata) else metadata
            return save_triples(datasets.DatasetDict(parts), out, meta, overwrite=True)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


class _Resampler:
    """Resample equal-size clouds together (one batched FPS call per chunk) and pass rows on in their order."""

    def __init__(self, num_points: int | None, method: str, seed: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if method not in SAMPLE_METHODS:
            raise ValueError(f"sample_method must be one of {SAMPLE_METHODS}; got {method!r}")
        if num_points is not None and num_points < 1:
            raise ValueError(f"num_points must be a positive integer or None; got {num_points}")
        self.num_points, self.method, self.chunk_size = num_points, method, chunk_size
        self.rng = np.random.default_rng(seed)

    def __call__(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= self.chunk_size:
                yield from self._flush(chunk)
                chunk = []
        yield from self._flush(chunk)

    def _flush(self, chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.num_points is None or not chunk:
            return chunk
        by_size: dict[int, list[int]] = {}
        for index, row in enumerate(chunk):
            by_size.setdefault(len(row["points"]), []).append(index)
        for members in by_size.values():
            stacked = np.stack([chunk[i]["points"] for i in members])
            resampled = resample_points(stacked, self.num_points, self.method, rng=self.rng)
            for row_index, index in enumerate(members):
                chunk[index]["points"] = resampled[row_index]
        return chunk


def _xyz(path: Path | str, points: np.ndarray) -> np.ndarray:
    """The xyz channels as float32, refusing NaN/Inf with the file's name."""
    points = np.ascontiguousarray(points[:, :3], dtype=np.float32)
    if not np.isfinite(points).all():
        row = int(np.nonzero(~np.isfinite(points).all(axis=1))[0][0])
        raise ValueError(f"{path}: contains NaN or Inf coordinates (first in cloud/point {row})")
    return points


def _base_metadata(
    source_format: str, src: Path, class_names: Sequence[str], num_points: int | None, method: str
) -> dict:
    return {
        "source_format": source_format,
        "source_path": portable(str(src.resolve())),  # the folder's name: no path of this machine
        "variant": None,
        "class_names": list(class_names),
        "prompt_names": [_prompt_name(n) for n in class_names],
        "num_points": num_points,
        "sample_method": method if num_points is not None else None,
    }


def _progress(total: int | None, desc: str, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="shape", disable=not enabled, dynamic_ncols=True)
