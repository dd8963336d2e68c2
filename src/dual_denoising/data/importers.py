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

import json
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import load_points
from .common import (
    DEFAULT_CHUNK_SIZE,
    MODELNET40_CLASSES,
    SCANOBJECTNN_CLASSES,
    SCANOBJECTNN_VARIANTS,
    ULIP_VIEW_ANGLES,
    _base_metadata,
    _check_out_dir,
    _progress,
    _read_class_names,
    _read_lines,
    _require_dir,
    _Resampler,
    _write_triples,
    _xyz,
)
from .folder import import_folder
from .shapenet import import_shapenet55_ulip
from .triples import triples_features

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
    out = _check_out_dir(out_dir, overwrite, src)
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
    out = _check_out_dir(out_dir, overwrite, src)
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
    out = _check_out_dir(out_dir, overwrite, src)
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
# Command line
# ----------------------------------------------------------------------------------------------------------------------


__all__ = [
    "MODELNET40_CLASSES",
    "SCANOBJECTNN_CLASSES",
    "SCANOBJECTNN_VARIANTS",
    "ULIP_VIEW_ANGLES",
    "import_folder",
    "import_modelnet40_h5",
    "import_modelnet40_normal",
    "import_scanobjectnn",
    "import_shapenet55_ulip",
]
