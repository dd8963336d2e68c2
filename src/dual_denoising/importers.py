"""Convert real 3D datasets into triples folders (`data.save_triples`), one function and one CLI subcommand each.

    dual-denoising import modelnet40-h5     SRC --out DIR    # PointNet's modelnet40_ply_hdf5_2048
    dual-denoising import modelnet40-normal SRC --out DIR    # modelnet40_normal_resampled (ULIP's ModelNet40)
    dual-denoising import scanobjectnn      SRC --variant OBJ_ONLY|OBJ_BG|PB_T50_RS --out DIR
    dual-denoising import shapenet55-ulip   SRC --out DIR    # ULIP's ShapeNet-55 triples (points, views, captions)
    dual-denoising import folder            SRC --out DIR    # SRC/<class>/<files>, optional train/test folders

Every importer writes `shape_id`, `points` (float32, xyz) and `label` (a `ClassLabel` with the dataset's class names),
records its source format, variant and class names in the folder's metadata, optionally resamples every cloud to
`num_points` (farthest point sampling by default, as ULIP does), shows a progress bar, and refuses a non-empty output
folder unless `overwrite=True` (`--overwrite`). Inputs are checked before anything is written: a missing file raises
`FileNotFoundError`, a malformed one (truncated HDF5, missing dataset, wrong shape, label out of range) a `ValueError`;
both name the file and say what is wrong. The layout each function expects is in its docstring.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .data import SAMPLE_METHODS, load_triples_metadata, resample_points, save_triples, triples_features
from .fileio import SUPPORTED_EXTENSIONS, load_points

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


def _check_out_dir(out_dir: str | Path, overwrite: bool) -> Path:
    """Refuse an existing non-empty output folder unless `overwrite`, before any work is done."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} already exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    return out


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
        "source_path": str(src.resolve()),
        "variant": None,
        "class_names": list(class_names),
        "prompt_names": [_prompt_name(n) for n in class_names],
        "num_points": num_points,
        "sample_method": method if num_points is not None else None,
    }


def _progress(total: int | None, desc: str, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="shape", disable=not enabled, dynamic_ncols=True)


# ----------------------------------------------------------------------------------------------------------------------
# HDF5 (ModelNet40 h5, ScanObjectNN)
# ----------------------------------------------------------------------------------------------------------------------


def _h5py():
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - h5py is in the `mesh` extra
        raise ImportError("reading .h5 files needs h5py: pip install 'dual-denoising[mesh]'") from err
    return h5py


def _open_h5(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return _h5py().File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: cannot be read as HDF5 ({err}); the file may be truncated or not HDF5") from err


def _inspect_h5(path: Path, num_classes: int, class_source: str) -> np.ndarray:
    """Check an h5 file's `data` (n, P, 3) and `label` (n,) or (n, 1) in [0, num_classes); return the labels."""
    with _open_h5(path) as f:
        missing = [key for key in ("data", "label") if key not in f]
        if missing:
            raise ValueError(f"{path}: no dataset {missing[0]!r}; the file holds {sorted(f.keys())}")
        data, label = f["data"], f["label"]
        if data.ndim != 3 or data.shape[2] != 3 or data.shape[1] == 0:
            raise ValueError(f"{path}: dataset 'data' has shape {data.shape}; expected (shapes, points, 3)")
        count = data.shape[0]
        if label.shape not in ((count,), (count, 1)):
            raise ValueError(
                f"{path}: dataset 'label' has shape {label.shape}; expected ({count},) or ({count}, 1), "
                f"one label per cloud of 'data' {data.shape}"
            )
        try:
            labels = np.asarray(label[...]).reshape(-1)
        except OSError as err:
            raise ValueError(f"{path}: cannot read dataset 'label' ({err}); the file may be truncated") from err
    if labels.size and not np.issubdtype(labels.dtype, np.number):
        raise ValueError(f"{path}: dataset 'label' holds {labels.dtype} values; expected integer class indices")
    if labels.size and not np.all(np.isfinite(labels) & (labels == np.round(labels))):
        raise ValueError(f"{path}: dataset 'label' holds non-integer values; expected integer class indices")
    labels = labels.astype(np.int64)
    bad = np.nonzero((labels < 0) | (labels >= num_classes))[0]
    if bad.size:
        row = int(bad[0])
        raise ValueError(
            f"{path}: label {labels[row]} at row {row} is out of range: {class_source} names {num_classes} classes "
            f"(valid labels 0..{num_classes - 1})"
        )
    return labels


def _h5_rows(path: Path, labels: np.ndarray, shape_ids: Sequence[str], chunk_size: int) -> Iterator[dict[str, Any]]:
    with _open_h5(path) as f:
        data = f["data"]
        for start in range(0, len(labels), chunk_size):
            stop = min(start + chunk_size, len(labels))
            try:
                block = np.asarray(data[start:stop])
            except OSError as err:
                raise ValueError(f"{path}: cannot read rows {start}..{stop - 1} of 'data' ({err}); truncated?") from err
            for offset, cloud in enumerate(block):
                row = start + offset
                yield {"shape_id": shape_ids[row], "points": _xyz(f"{path} (cloud {row})", cloud),
                       "label": int(labels[row])}


def _trailing_number(path: Path) -> int:
    match = re.search(r"(\d+)$", path.stem)
    return int(match.group(1)) if match else -1


# ----------------------------------------------------------------------------------------------------------------------
# ModelNet40, PointNet's HDF5 release
# ----------------------------------------------------------------------------------------------------------------------


def _modelnet_h5_files(src: Path, split: str) -> list[Path]:
    listing = src / f"{split}_files.txt"
    if listing.is_file():
        files = []
        for line in _read_lines(listing, "one .h5 path per line"):
            # the release lists paths relative to PointNet's repository (data/modelnet40_ply_hdf5_2048/...):
            # only the file name counts
            path = src / Path(line.replace("\\", "/")).name
            if not path.is_file():
                raise FileNotFoundError(f"{listing} lists {line!r} but {path} does not exist")
            files.append(path)
        if not files:
            raise ValueError(f"{listing}: lists no .h5 files")
        return files
    files = sorted(src.glob(f"ply_data_{split}*.h5"), key=_trailing_number)
    if not files:
        raise FileNotFoundError(
            f"{src}: no {split}_files.txt and no ply_data_{split}*.h5 files; "
            "is this the modelnet40_ply_hdf5_2048 folder?"
        )
    return files


def _modelnet_h5_shape_ids(path: Path, split: str, count: int) -> list[str]:
    """Shape ids from `ply_data_{split}_{i}_id2file.json` when present ("airplane/airplane_0627.ply" ->
    "airplane_0627"), else `{file stem}_{row:04d}`."""
    id_file = path.with_name(f"ply_data_{split}_{_trailing_number(path)}_id2file.json")
    if not id_file.is_file():
        return [f"{path.stem}_{row:04d}" for row in range(count)]
    try:
        entries = json.loads(id_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{id_file}: not valid JSON ({err})") from err
    if not isinstance(entries, list) or len(entries) != count or not all(isinstance(e, str) for e in entries):
        size = len(entries) if isinstance(entries, list) else type(entries).__name__
        raise ValueError(f"{id_file}: expected a list of {count} file names (one per cloud of {path.name}); got {size}")
    return [Path(entry).stem for entry in entries]


def import_modelnet40_h5(
    src: str | Path,
    out_dir: str | Path,
    *,
    num_points: int | None = None,
    sample_method: str = "fps",
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Path:
    """Import PointNet's `modelnet40_ply_hdf5_2048` (2048 points per shape, 9843 train / 2468 test).

    Layout:
        SRC/shape_names.txt                        the class names, one per line; label i is line i (required)
        SRC/train_files.txt, SRC/test_files.txt    the h5 files of each split, one path per line (only the file name
                                                   is used); without them, `ply_data_{split}*.h5` in numeric order
        SRC/ply_data_train{0..4}.h5, ply_data_test{0,1}.h5
                                                   `data` (n, 2048, 3) float32, `label` (n, 1) uint8
        SRC/ply_data_{split}_{i}_id2file.json      optional: each row's source file, giving shape ids like
                                                   "airplane_0627"; without it ids are "ply_data_train0_0000", ...
    Returns the output folder; its `train` and `test` splits keep the file and row order.
    """
    src = _require_dir(Path(src), "the modelnet40_ply_hdf5_2048 folder")
    out = _check_out_dir(out_dir, overwrite)
    resampler = _Resampler(num_points, sample_method, seed, chunk_size)
    names_file = src / "shape_names.txt"
    class_names = _read_class_names(names_file)
    plan: dict[str, list[tuple[Path, np.ndarray, list[str]]]] = {}
    for split in ("train", "test"):
        plan[split] = []
        for path in _modelnet_h5_files(src, split):
            labels = _inspect_h5(path, len(class_names), str(names_file))
            plan[split].append((path, labels, _modelnet_h5_shape_ids(path, split, len(labels))))

    def rows(split: str) -> Callable[[], Iterator[dict]]:
        def generate() -> Iterator[dict]:
            total = sum(len(labels) for _, labels, _ in plan[split])
            with _progress(total, f"modelnet40-h5 {split}", progress) as bar:
                for path, labels, shape_ids in plan[split]:
                    for row in resampler(_h5_rows(path, labels, shape_ids, chunk_size)):
                        bar.update()
                        yield row

        return generate

    metadata = _base_metadata("modelnet40_ply_hdf5_2048", src, class_names, num_points, sample_method)
    metadata["files"] = {split: [path.name for path, _, _ in entries] for split, entries in plan.items()}
    features = triples_features(class_names, with_images=False, with_captions=False)
    return _write_triples(out, {split: rows(split) for split in plan}, features, metadata)


# ----------------------------------------------------------------------------------------------------------------------
# ModelNet40, modelnet40_normal_resampled (ULIP's ModelNet40)
# ----------------------------------------------------------------------------------------------------------------------


def import_modelnet40_normal(
    src: str | Path,
    out_dir: str | Path,
    *,
    num_points: int | None = None,
    sample_method: str = "fps",
    num_categories: int = 40,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Path:
    """Import `modelnet40_normal_resampled` (10000 points with normals per shape; the data ULIP evaluates on).

    Layout (`num_categories=10` reads the `modelnet10_*` lists of the same folder):
        SRC/modelnet40_shape_names.txt             the class names, one per line; label i is line i
        SRC/modelnet40_train.txt, modelnet40_test.txt
                                                   shape ids, one per line, e.g. `night_stand_0001`; the class is
                                                   everything before the last underscore
        SRC/<class>/<shape id>.txt                 10000 lines `x,y,z,nx,ny,nz`; xyz is kept
    `num_points` resamples every cloud (ULIP takes 8192 by FPS); by default all 10000 points are kept.
    """
    src = _require_dir(Path(src), "the modelnet40_normal_resampled folder")
    out = _check_out_dir(out_dir, overwrite)
    if num_categories not in (10, 40):
        raise ValueError(f"num_categories must be 10 or 40; got {num_categories}")
    resampler = _Resampler(num_points, sample_method, seed, chunk_size)
    prefix = f"modelnet{num_categories}"
    names_file = src / f"{prefix}_shape_names.txt"
    class_names = _read_class_names(names_file)
    index = {name: i for i, name in enumerate(class_names)}
    plan: dict[str, list[tuple[str, Path, int]]] = {}
    for split in ("train", "test"):
        listing = src / f"{prefix}_{split}.txt"
        entries = []
        for lineno, shape_id in enumerate(_read_lines(listing, "one shape id per line (e.g. airplane_0001)"), 1):
            class_name = shape_id.rsplit("_", 1)[0]
            if class_name not in index:
                raise ValueError(
                    f"{listing}: line {lineno} names shape {shape_id!r} of class {class_name!r}, "
                    f"which {names_file.name} does not list"
                )
            path = src / class_name / f"{shape_id}.txt"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing; {listing.name} line {lineno} lists shape {shape_id!r}")
            entries.append((shape_id, path, index[class_name]))
        plan[split] = entries

    def rows(split: str) -> Callable[[], Iterator[dict]]:
        def read() -> Iterator[dict]:
            for shape_id, path, label in plan[split]:
                yield {"shape_id": shape_id, "points": _xyz(path, load_points(path)), "label": label}

        def generate() -> Iterator[dict]:
            with _progress(len(plan[split]), f"modelnet40-normal {split}", progress) as bar:
                for row in resampler(read()):
                    bar.update()
                    yield row

        return generate

    metadata = _base_metadata("modelnet40_normal_resampled", src, class_names, num_points, sample_method)
    metadata["variant"] = prefix
    features = triples_features(class_names, with_images=False, with_captions=False)
    return _write_triples(out, {split: rows(split) for split in plan}, features, metadata)


# ----------------------------------------------------------------------------------------------------------------------
# ScanObjectNN
# ----------------------------------------------------------------------------------------------------------------------


def _scanobjectnn_folder(src: Path, variant: str) -> Path:
    folder, train_file, test_file = SCANOBJECTNN_VARIANTS[variant]
    candidates = [src / folder, src / "h5_files" / folder]
    if src.name == folder:
        candidates.insert(0, src)
    for candidate in candidates:
        if (candidate / train_file).is_file() and (candidate / test_file).is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"ScanObjectNN {variant}: found no {train_file} and {test_file} in {looked}; pass the folder that holds "
        f"{folder}/ (the official h5_files release)"
    )


def import_scanobjectnn(
    src: str | Path,
    out_dir: str | Path,
    *,
    variant: str,
    num_points: int | None = None,
    sample_method: str = "fps",
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Path:
    """Import one ScanObjectNN variant from the official `h5_files` release (15 classes, 2048 points per object).

    Layout (SRC is `h5_files/` or the folder holding it; `SRC` may also be the variant's folder itself):
        OBJ_BG      SRC/main_split/training_objectdataset.h5, test_objectdataset.h5
        OBJ_ONLY    SRC/main_split_nobg/training_objectdataset.h5, test_objectdataset.h5
        PB_T50_RS   SRC/main_split/training_objectdataset_augmentedrot_scale75.h5, test_..._augmentedrot_scale75.h5
    Each file holds `data` (n, 2048, 3) and `label` (n,) in 0..14 (`SCANOBJECTNN_CLASSES`). Papers disagree on
    which variant a "ScanObjectNN" number refers to, so the variant is always recorded in the metadata.
    """
    if variant not in SCANOBJECTNN_VARIANTS:
        raise ValueError(f"variant must be one of {sorted(SCANOBJECTNN_VARIANTS)}; got {variant!r}")
    src = _require_dir(Path(src), "the ScanObjectNN h5_files folder")
    out = _check_out_dir(out_dir, overwrite)
    resampler = _Resampler(num_points, sample_method, seed, chunk_size)
    folder = _scanobjectnn_folder(src, variant)
    _, train_file, test_file = SCANOBJECTNN_VARIANTS[variant]
    class_names = list(SCANOBJECTNN_CLASSES)
    plan = {}
    for split, name in (("train", train_file), ("test", test_file)):
        path = folder / name
        labels = _inspect_h5(path, len(class_names), "ScanObjectNN")
        plan[split] = (path, labels, [f"scanobjectnn_{split}_{row:05d}" for row in range(len(labels))])

    def rows(split: str) -> Callable[[], Iterator[dict]]:
        def generate() -> Iterator[dict]:
            path, labels, shape_ids = plan[split]
            with _progress(len(labels), f"scanobjectnn {variant} {split}", progress) as bar:
                for row in resampler(_h5_rows(path, labels, shape_ids, chunk_size)):
                    bar.update()
                    yield row

        return generate

    metadata = _base_metadata("scanobjectnn_h5", src, class_names, num_points, sample_method)
    metadata["variant"] = variant
    metadata["files"] = {split: str(path.relative_to(src)) for split, (path, _, _) in plan.items()}
    features = triples_features(class_names, with_images=False, with_captions=False)
    return _write_triples(out, {split: rows(split) for split in plan}, features, metadata)


# ----------------------------------------------------------------------------------------------------------------------
# ShapeNet-55, ULIP's triples
# ----------------------------------------------------------------------------------------------------------------------


def _first_existing(paths: Sequence[Path]) -> Path | None:
    return next((p for p in paths if p.exists()), None)


def _read_taxonomy(path: Path) -> dict[str, list[str]]:
    """synset id -> its names (`"airplane,aeroplane,plane"` -> `["airplane", "aeroplane", "plane"]`)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing; ULIP's shapenet-55 folder ships taxonomy.json (ShapeNetCore's taxonomy); "
            "pass its location with taxonomy=... (--taxonomy)"
        )
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if isinstance(entries, dict):  # also accept a plain {"02691156": "airplane,aeroplane,plane"} mapping
        entries = [{"synsetId": k, "name": v} for k, v in entries.items()]
    well_formed = isinstance(entries, list) and all(
        isinstance(e, dict) and "synsetId" in e and "name" in e for e in entries
    )
    if not well_formed:
        raise ValueError(f'{path}: expected a list of {{"synsetId": ..., "name": ...}} entries (ShapeNetCore taxonomy)')
    taxonomy = {}
    for entry in entries:
        names = [n.strip() for n in str(entry["name"]).split(",") if n.strip()]
        if not names:
            raise ValueError(f"{path}: synset {entry['synsetId']} has an empty name")
        taxonomy[str(entry["synsetId"])] = names
    return taxonomy


def import_shapenet55_ulip(
    src: str | Path,
    out_dir: str | Path,
    *,
    pc_dir: str | Path | None = None,
    split_dir: str | Path | None = None,
    taxonomy: str | Path | None = None,
    image_dir: str | Path | None = None,
    with_images: bool = True,
    view_angles: Sequence[int] = ULIP_VIEW_ANGLES,
    include_depth: bool = False,
    whole: bool = False,
    on_missing: str = "error",
    num_points: int | None = None,
    sample_method: str = "fps",
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Path:
    """Import ULIP's ShapeNet-55 triples: point clouds, rendered views and captions from the taxonomy names.

    Layout (ULIP's `data/ShapeNet-55.yaml`: DATA_PATH `shapenet-55`, PC_PATH `shapenet-55/shapenet_pc`, IMAGE_PATH
    `shapenet-55/rendered_images`); every path can be overridden:
        SRC/train.txt, SRC/test.txt          one `{synset}-{model}.npy` per line (Point-BERT's split; also looked
                                             for in SRC/ShapeNet-55/)                         `split_dir`
        SRC/shapenet_pc/{synset}-{model}.npy  (8192, 3) float32                                `pc_dir`
        SRC/taxonomy.json                    ShapeNetCore's taxonomy, a list of {"synsetId": "02691156",
                                             "name": "airplane,aeroplane,plane", ...}          `taxonomy`
        SRC/rendered_images/{synset}-{model}/{synset}-{model}_r_{deg:03d}.png, with `_depth0001` before `.png` for
                                             the depth render; deg in 0, 12, ..., 348. ULIP's smaller release
                                             `only_rgb_depth_images/` uses the same names; a flat folder of
                                             `{synset}-{model}_r_{deg:03d}.png` is accepted too   `image_dir`
    Rows: `images` are the views found for `view_angles` (default ULIP's 30 azimuths; RGB only unless
    `include_depth`, as ULIP draws between RGB and depth); `captions` are all names of the shape's synset (ULIP
    draws one per step). Labels are the synsets present in the split lists, sorted by id; a class is called by its
    first name (`metadata["synset_ids"]` keeps the ids). ULIP pre-trains on train and test together (`whole: True`):
    `whole=True` writes them as one `train` split.
    `on_missing="skip"` drops shapes whose cloud or every view is missing (counted in the metadata) instead of failing.
    """
    if on_missing not in ("error", "skip"):
        raise ValueError(f"on_missing must be 'error' or 'skip'; got {on_missing!r}")
    angles = tuple(int(a) for a in view_angles)
    if with_images and (not angles or any(not 0 <= a < 360 for a in angles)):
        raise ValueError(f"view_angles must be a non-empty list of degrees in [0, 360); got {list(view_angles)}")
    src = _require_dir(Path(src), "ULIP's shapenet-55 folder")
    out = _check_out_dir(out_dir, overwrite)
    resampler = _Resampler(num_points, sample_method, seed, chunk_size)
    pc_root = _require_dir(Path(pc_dir) if pc_dir is not None else src / "shapenet_pc", "point clouds (pc_dir)")
    if split_dir is not None:
        split_root = _require_dir(Path(split_dir), "train.txt/test.txt (split_dir)")
    else:
        split_root = _first_existing([src / "train.txt", src / "ShapeNet-55" / "train.txt"])
        split_root = split_root.parent if split_root is not None else src
    taxonomy_file = Path(taxonomy) if taxonomy is not None else src / "taxonomy.json"
    names = _read_taxonomy(taxonomy_file)
    image_root = None
    if with_images:
        if image_dir is not None:
            image_root = _require_dir(Path(image_dir), "rendered views (image_dir)")
        else:
            image_root = _first_existing([src / d for d in SHAPENET_IMAGE_DIRS])
            if image_root is None:
                raise FileNotFoundError(
                    f"{src}: no {' or '.join(SHAPENET_IMAGE_DIRS)} folder; pass image_dir=... (--image-dir), "
                    "or with_images=False (--no-images) to import points and captions only"
                )

    lists: dict[str, list[tuple[str, str]]] = {}
    for split in ("train", "test"):
        listing = split_root / f"{split}.txt"
        entries = []
        for lineno, line in enumerate(_read_lines(listing, "one {synset}-{model}.npy file name per line"), 1):
            name = Path(line).name
            synset, sep, _ = name.partition("-")
            if not sep or not synset:
                raise ValueError(f"{listing}: line {lineno} is {line!r}; expected {{synset}}-{{model}}.npy")
            if synset not in names:
                raise ValueError(f"{listing}: line {lineno}: synset {synset} is not in {taxonomy_file}")
            entries.append((synset, name))
        lists[split] = entries
    if whole:
        lists = {"train": lists["test"] + lists["train"]}  # ULIP's order: test lines first
    synsets = sorted({synset for entries in lists.values() for synset, _ in entries})
    class_names = [names[s][0] for s in synsets]
    class_names = [n if class_names.count(n) == 1 else f"{n} ({s})" for n, s in zip(class_names, synsets)]
    label_of = {s: i for i, s in enumerate(synsets)}
    suffixes = [""] + ([ULIP_DEPTH_SUFFIX] if include_depth else [])
    skipped: dict[str, list[str]] = {"missing_points": [], "missing_images": []}

    def views(shape_id: str) -> list[dict[str, Any]]:
        found = []
        for angle in angles:
            for suffix in suffixes:
                file_name = f"{shape_id}_r_{angle:03d}{suffix}.png"
                path = _first_existing([image_root / shape_id / file_name, image_root / file_name])
                if path is not None:
                    found.append({"bytes": path.read_bytes(), "path": file_name})
        return found

    def read(split: str) -> Iterator[dict]:
        for synset, file_name in lists[split]:
            shape_id = Path(file_name).stem
            path = pc_root / file_name
            if not path.is_file():
                if on_missing == "skip":
                    skipped["missing_points"].append(shape_id)
                    continue
                raise FileNotFoundError(
                    f"{path}: missing; {split}.txt lists {file_name!r} (on_missing='skip' drops such shapes)"
                )
            row = {"shape_id": shape_id, "points": _xyz(path, load_points(path)), "label": label_of[synset],
                   "captions": list(names[synset])}
            if with_images:
                row["images"] = views(shape_id)
                if not row["images"]:
                    if on_missing == "skip":
                        skipped["missing_images"].append(shape_id)
                        continue
                    raise FileNotFoundError(
                        f"{image_root}: no rendered view of {shape_id} (looked for {shape_id}/{shape_id}_r_000.png and "
                        f"the other view_angles); on_missing='skip' drops such shapes, with_images=False skips views"
                    )
            yield row

    def rows(split: str) -> Callable[[], Iterator[dict]]:
        def generate() -> Iterator[dict]:
            with _progress(len(lists[split]), f"shapenet55-ulip {split}", progress) as bar:
                for row in resampler(read(split)):
                    bar.update()
                    yield row

        return generate

    def metadata() -> dict:
        meta = _base_metadata("ulip_shapenet55", src, class_names, num_points, sample_method)
        meta.update(
            variant="whole" if whole else "train/test",
            synset_ids=synsets,
            prompt_names=[names[s][0] for s in synsets],
            captions="all names of the synset in taxonomy.json",
            images=(
                {"folder": str(image_root), "view_angles": list(angles), "include_depth": include_depth}
                if with_images else None
            ),
            skipped={k: len(v) for k, v in skipped.items()},
        )
        return meta

    features = triples_features(class_names, with_images=with_images, with_captions=True)
    return _write_triples(out, {split: rows(split) for split in lists}, features, metadata)


# ----------------------------------------------------------------------------------------------------------------------
# A folder of files, one subfolder per class
# ----------------------------------------------------------------------------------------------------------------------


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _shape_files(path: Path) -> list[Path]:
    return sorted(
        p
        for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SUPPORTED_EXTENSIONS
    )


def _folder_plan(src: Path) -> tuple[str, dict[str, dict[str, list[Path]]]]:
    """(layout, {split: {class: files}}) for SRC/<class>/, SRC/<split>/<class>/ or SRC/<class>/<split>/."""
    top = _subdirs(src)
    if any(d.name in SPLIT_FOLDER_NAMES for d in top):
        layout = "split/class"
        plan = {d.name: {c.name: _shape_files(c) for c in _subdirs(d)} for d in top if d.name in SPLIT_FOLDER_NAMES}
    elif any(s.name in SPLIT_FOLDER_NAMES for d in top for s in _subdirs(d)):
        layout = "class/split"  # ModelNet's own layout: ModelNet40/chair/train/chair_0001.off
        plan = {}
        for class_dir in top:
            for split_dir in _subdirs(class_dir):
                if split_dir.name in SPLIT_FOLDER_NAMES:
                    plan.setdefault(split_dir.name, {})[class_dir.name] = _shape_files(split_dir)
    else:
        layout = "class"
        plan = {"train": {c.name: _shape_files(c) for c in top}}
    plan = {split: {c: files for c, files in classes.items() if files} for split, classes in plan.items()}
    plan = {split: classes for split, classes in plan.items() if classes}
    if not plan:
        raise ValueError(
            f"{src}: found no point or mesh files in class folders (SRC/<class>/<file>, optionally under train/ and "
            f"test/); supported extensions: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    return layout, plan


def import_folder(
    src: str | Path,
    out_dir: str | Path,
    *,
    num_points: int | None = None,
    sample_method: str = "fps",
    mesh_samples: int = 8192,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Path:
    """Import a folder of point or mesh files, one subfolder per class.

    Layouts (class names are the folder names, sorted; hidden files and other extensions are ignored):
        SRC/<class>/<file>                   one `train` split
        SRC/<split>/<class>/<file>           when SRC holds train/, test/, val/ or validation/
        SRC/<class>/<split>/<file>           ModelNet's own layout (ModelNet40/chair/train/chair_0001.off)
    Files are read by `fileio.load_points` (any of `fileio.SUPPORTED_EXTENSIONS`; xyz is kept). A mesh is sampled on
    its surface with `num_points` points, or `mesh_samples` (8192) without `num_points`, seeded by (`seed`, file
    index); a point file is resampled to `num_points` when given. Shape ids are the paths below the split folder
    without the extension, e.g. `chair/chair_0001`.
    """
    src = _require_dir(Path(src), "the folder to import")
    out = _check_out_dir(out_dir, overwrite)
    resampler = _Resampler(num_points, sample_method, seed, chunk_size)
    layout, plan = _folder_plan(src)
    class_names = sorted({c for classes in plan.values() for c in classes})
    label_of = {c: i for i, c in enumerate(class_names)}
    samples = num_points or mesh_samples

    def rows(split: str) -> Callable[[], Iterator[dict]]:
        files = [(c, f) for c in sorted(plan[split]) for f in plan[split][c]]

        def read() -> Iterator[dict]:
            for index, (class_name, path) in enumerate(files):
                points = load_points(path, seed=[seed, index], mesh_samples=samples)
                yield {
                    "shape_id": f"{class_name}/{path.stem}",
                    "points": _xyz(path, points),
                    "label": label_of[class_name],
                }

        def generate() -> Iterator[dict]:
            with _progress(len(files), f"folder {split}", progress) as bar:
                for row in resampler(read()):
                    bar.update()
                    yield row

        return generate

    metadata = _base_metadata("folder", src, class_names, num_points, sample_method)
    metadata.update(variant=layout, mesh_samples=samples)
    features = triples_features(class_names, with_images=False, with_captions=False)
    return _write_triples(out, {split: rows(split) for split in sorted(plan)}, features, metadata)


# ----------------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------------


def _view_angles(text: str) -> tuple[int, ...]:
    if text.strip().lower() == "all":
        return ULIP_VIEW_ANGLES
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated degrees (e.g. 0,90,180,270) or 'all'; got {text!r}")


def _add_common(parser: argparse.ArgumentParser, src_help: str) -> None:
    parser.add_argument("src", type=Path, metavar="SRC", help=src_help)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output triples folder")
    parser.add_argument("--num-points", type=int, default=None, metavar="N",
                        help="resample every cloud to N points (default: keep the source's points)")
    parser.add_argument("--sample-method", choices=SAMPLE_METHODS, default="fps",
                        help="how --num-points reduces a cloud (default fps, as ULIP)")
    parser.add_argument("--seed", type=int, default=0, help="seed for random sampling (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _common_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return dict(num_points=args.num_points, sample_method=args.sample_method, seed=args.seed,
                overwrite=args.overwrite, progress=not args.no_progress)


def _report(out: Path) -> int:
    meta = load_triples_metadata(out)
    splits = meta.get("splits", {})
    detail = ", ".join(f"{split}: {count}" for split, count in splits.items())
    print(f"wrote {sum(splits.values())} shapes ({detail}) of {len(meta.get('class_names', []))} classes to {out}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add `import` and its formats to the `dual-denoising` command line."""
    parser = subparsers.add_parser(
        "import",
        help="convert ModelNet40, ScanObjectNN, ULIP ShapeNet-55 or a folder of files into a triples folder",
        description=__doc__.split("\n\n")[0],
    )
    formats = parser.add_subparsers(dest="import_format", metavar="FORMAT", required=True)

    raw = argparse.RawDescriptionHelpFormatter
    p = formats.add_parser("modelnet40-h5", help="PointNet's modelnet40_ply_hdf5_2048",
                           description=import_modelnet40_h5.__doc__, formatter_class=raw)
    _add_common(p, "the modelnet40_ply_hdf5_2048 folder")
    p.set_defaults(func=lambda a: _report(import_modelnet40_h5(a.src, a.out, **_common_kwargs(a))))

    p = formats.add_parser("modelnet40-normal", help="modelnet40_normal_resampled (ULIP's ModelNet40)",
                           description=import_modelnet40_normal.__doc__, formatter_class=raw)
    _add_common(p, "the modelnet40_normal_resampled folder")
    p.add_argument("--num-categories", type=int, choices=(10, 40), default=40, help="ModelNet40 or ModelNet10 lists")
    p.set_defaults(func=lambda a: _report(
        import_modelnet40_normal(a.src, a.out, num_categories=a.num_categories, **_common_kwargs(a))))

    p = formats.add_parser("scanobjectnn", help="ScanObjectNN h5_files (one variant)",
                           description=import_scanobjectnn.__doc__, formatter_class=raw)
    _add_common(p, "the ScanObjectNN h5_files folder")
    p.add_argument("--variant", required=True, choices=sorted(SCANOBJECTNN_VARIANTS), help="which split to import")
    p.set_defaults(func=lambda a: _report(import_scanobjectnn(a.src, a.out, variant=a.variant, **_common_kwargs(a))))

    p = formats.add_parser("shapenet55-ulip", help="ULIP's ShapeNet-55 triples (points, rendered views, captions)",
                           description=import_shapenet55_ulip.__doc__, formatter_class=raw)
    _add_common(p, "ULIP's shapenet-55 folder")
    p.add_argument("--pc-dir", type=Path, help="point clouds (default SRC/shapenet_pc)")
    p.add_argument("--split-dir", type=Path, help="folder of train.txt/test.txt (default SRC or SRC/ShapeNet-55)")
    p.add_argument("--taxonomy", type=Path, help="ShapeNetCore taxonomy.json (default SRC/taxonomy.json)")
    p.add_argument("--image-dir", type=Path,
                   help="rendered views (default SRC/rendered_images or SRC/only_rgb_depth_images)")
    p.add_argument("--no-images", action="store_true", help="import points and captions only")
    p.add_argument("--view-angles", type=_view_angles, default=ULIP_VIEW_ANGLES,
                   help="comma-separated azimuths in degrees, or 'all' (default: ULIP's 0,12,...,348)")
    p.add_argument("--include-depth", action="store_true", help="also import the _depth0001 renders")
    p.add_argument("--whole", action="store_true", help="one train split of train+test, as ULIP pre-trains")
    p.add_argument("--skip-missing", action="store_true", help="drop shapes whose cloud or views are missing")
    p.set_defaults(func=lambda a: _report(import_shapenet55_ulip(
        a.src, a.out, pc_dir=a.pc_dir, split_dir=a.split_dir, taxonomy=a.taxonomy, image_dir=a.image_dir,
        with_images=not a.no_images, view_angles=a.view_angles, include_depth=a.include_depth, whole=a.whole,
        on_missing="skip" if a.skip_missing else "error", **_common_kwargs(a),
    )))

    p = formats.add_parser("folder", help="SRC/<class>/<point or mesh files>, optionally in train/ and test/",
                           description=import_folder.__doc__, formatter_class=raw)
    _add_common(p, "the folder to import")
    p.add_argument("--mesh-samples", type=int, default=8192,
                   help="surface samples per mesh without --num-points (default 8192)")
    p.set_defaults(func=lambda a: _report(
        import_folder(a.src, a.out, mesh_samples=a.mesh_samples, **_common_kwargs(a))))
