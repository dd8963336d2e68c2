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

Feeding a model (all numbers are arguments; defaults documented where they are defined):

    ds = load_triples(folder)                                   # DatasetDict, or IterableDataset(Dict) when streaming
    ds = prepare_dataset(ds, num_points=1024, train=True)       # FPS -> unit sphere -> ULIP augmentations (train split)
    loader = DataLoader(ds["train"], batch_size=32, collate_fn=TriplesCollator())
    batch = next(iter(loader))   # points (B, N, 3), labels (B,), image_embeds (B, D), text_embeds (B, D)

Point transforms (`NormalizeToUnitSphere`, `Resample`, `RandomPointDropout`, `RandomScaleAndTranslate`,
`RandomRotationPerturbation`, `RandomUpAxisRotation`, `Compose`) take one cloud `(N, C)` as a numpy array or a torch
tensor, xyz in the first three channels (extra channels such as RGB ride along unchanged), and return the same type.
`PointCloudTransform` applies them to dataset rows or batches.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import datasets
import numpy as np
import torch
from datasets import Array2D, ClassLabel, Dataset, DatasetDict, Features, Image, List, Value

from ..orientations import ORIENTATIONS
from ..point_ops import farthest_point_sample, normalize_to_unit_sphere

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


DATASET_MANIFEST = ".dual_denoising_dataset.json"  # the files `save_triples` wrote into a dataset folder


def dataset_files_written(out_dir: str | Path) -> set[str]:
    """The files of `out_dir` (relative paths) that `save_triples` wrote: its manifest's list; for a folder saved
    before the manifest existed, its JSON metadata file and the `data/{split}-00000-of-00001.parquet` files beside it."""
    out_dir = Path(out_dir)
    manifest = out_dir / DATASET_MANIFEST
    if manifest.is_file():
        return set(json.loads(manifest.read_text())["written"]) | {DATASET_MANIFEST}
    splits = {f"data/{p.name}" for p in (out_dir / "data").glob("*-00000-of-00001.parquet")}
    try:
        legacy = splits and isinstance(json.loads((out_dir / METADATA_FILE).read_text()), dict)
    except (OSError, ValueError):
        legacy = False
    return {METADATA_FILE} | splits if legacy else set()


def check_dataset_folder(out_dir: str | Path, overwrite: bool, splits=("train", "test")) -> Path:
    """Before any work: may a dataset of `splits` be written into `out_dir`? A folder holding a dataset written here
    needs `overwrite`; a file there of a name the dataset uses (its metadata, `data/*.parquet`) that was not written
    here is never replaced (`FileExistsError` naming it)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} is a file; name a folder for the dataset")
    ours = dataset_files_written(out_dir)
    names = {f"data/{split}-00000-of-00001.parquet" for split in splits} | {METADATA_FILE}
    names |= {f"data/{p.name}" for p in (out_dir / "data").glob("*.parquet")}  # the splits a dataset there has
    foreign = sorted(name for name in names if (out_dir / name).exists() and name not in ours)
    if foreign:
        raise FileExistsError(f"{out_dir / foreign[0]} was not written by dual-denoising; move it away or choose "
                              "another folder (nothing of yours is replaced)")
    if any((out_dir / name).exists() for name in ours - {DATASET_MANIFEST}) and not overwrite:
        raise FileExistsError(f"{out_dir} already holds a dataset; pass overwrite=True (--overwrite) to replace it")
    return out_dir


def save_triples(
    dataset: DatasetDict, out_dir: str | Path, metadata: dict | None = None, overwrite: bool = False
) -> Path:
    """Write every split of `dataset` as `out_dir/data/{split}-00000-of-00001.parquet` plus the metadata file, and
    list them in the folder's manifest (`DATASET_MANIFEST`).

    A folder that already holds a dataset written here is refused unless `overwrite=True`; then only the files this
    function wrote before are replaced or removed. A file of the same name that it did not write is never replaced,
    whatever `overwrite` says: nothing a user made is lost by accident.
    """
    out_dir = check_dataset_folder(out_dir, overwrite, list(dataset))
    ours = dataset_files_written(out_dir)
    targets = {f"data/{split}-00000-of-00001.parquet" for split in dataset} | {METADATA_FILE}
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in ours:  # the earlier dataset's splits (its other files are rewritten below)
        if name.startswith("data/") and name.endswith(".parquet"):
            (out_dir / name).unlink(missing_ok=True)
    for split, ds in dataset.items():
        ds.to_parquet(str(data_dir / f"{split}-00000-of-00001.parquet"))
    meta = dict(metadata or {})
    meta.setdefault("splits", {split: len(ds) for split, ds in dataset.items()})
    (out_dir / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    (out_dir / DATASET_MANIFEST).write_text(json.dumps({"written": sorted(targets)}, indent=2) + "\n")
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


# ----------------------------------------------------------------------------------------------------------------------
# Point transforms: one cloud (N, C), numpy or torch in, the same type out
# ----------------------------------------------------------------------------------------------------------------------

PointArray = TypeVar("PointArray", np.ndarray, torch.Tensor)

AXIS_INDEX = {"x": 0, "y": 1, "z": 2}
SAMPLE_METHODS = ("fps", "random")
PAD_MODES = ("random", "repeat")


def _axis_index(axis: str | int) -> int:
    if isinstance(axis, str) and axis.lower() in AXIS_INDEX:
        return AXIS_INDEX[axis.lower()]
    if isinstance(axis, int) and not isinstance(axis, bool) and 0 <= axis <= 2:
        return axis
    raise ValueError(f"up_axis must be 'x', 'y', 'z' or 0, 1, 2; got {axis!r}")


def _check_cloud(points: Any, name: str = "points", min_points: int = 1, batched: bool = False) -> None:
    """Raise a `ValueError` unless `points` is a finite float `(N, C>=3)` (or `(B, N, C)`) array with enough points."""
    if not isinstance(points, (np.ndarray, torch.Tensor)):
        raise ValueError(f"{name} must be a numpy array or a torch tensor of shape (N, 3); got {type(points).__name__}")
    dims = (2, 3) if batched else (2,)
    if points.ndim not in dims or points.shape[-1] < 3:
        expected = "(N, C) or (B, N, C)" if batched else "(N, C)"
        raise ValueError(f"{name} must have shape {expected} with C >= 3 (xyz first); got {tuple(points.shape)}")
    if isinstance(points, torch.Tensor):
        floating = points.is_floating_point()
    else:
        floating = np.issubdtype(points.dtype, np.floating)
    if not floating:
        raise ValueError(f"{name} must hold floating-point values; got dtype {points.dtype}")
    num_points = points.shape[-2]
    if num_points < max(min_points, 1):
        raise ValueError(f"{name} has {num_points} points; at least {max(min_points, 1)} are needed (min_points)")
    finite = bool(torch.isfinite(points).all()) if isinstance(points, torch.Tensor) else bool(np.isfinite(points).all())
    if not finite:
        raise ValueError(f"{name} contains NaN or Inf values; drop or repair those points first")


def _with_xyz(points: PointArray, xyz: PointArray) -> PointArray:
    """`points` with its first three channels replaced by `xyz` (a new array; extra channels are copied)."""
    if points.shape[-1] == 3:
        return xyz
    if isinstance(points, torch.Tensor):
        return torch.cat([xyz, points[..., 3:]], dim=-1)
    return np.concatenate([xyz, points[..., 3:]], axis=-1)


def _affine_xyz(points: PointArray, matrix: np.ndarray | None = None, shift: np.ndarray | None = None) -> PointArray:
    """`xyz @ matrix + shift` on the xyz channels (row vectors, as ULIP writes it); other channels unchanged."""
    xyz = points[..., :3]
    if isinstance(points, torch.Tensor):
        if matrix is not None:
            xyz = xyz @ torch.as_tensor(matrix, dtype=points.dtype, device=points.device)
        if shift is not None:
            xyz = xyz + torch.as_tensor(shift, dtype=points.dtype, device=points.device)
    else:
        if matrix is not None:
            xyz = xyz @ matrix.astype(points.dtype)
        if shift is not None:
            xyz = xyz + shift.astype(points.dtype)
    return _with_xyz(points, xyz)


def rotation_matrix(axis: str | int, angle: float) -> np.ndarray:
    """The `(3, 3)` rotation by `angle` radians about the x, y or z axis (right-handed, column-vector convention)."""
    c, s = math.cos(angle), math.sin(angle)
    index = _axis_index(axis)
    if index == 0:
        return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    if index == 1:
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def normalize_points(points: PointArray) -> PointArray:
    """Centre a cloud `(N, C)` on its xyz centroid and scale it into the unit ball.

    `point_ops.normalize_to_unit_sphere` on a numpy array or a torch tensor; the result has the input's type.
    """
    _check_cloud(points, batched=True)
    if isinstance(points, torch.Tensor):
        return normalize_to_unit_sphere(points)
    return normalize_to_unit_sphere(torch.from_numpy(np.ascontiguousarray(points))).numpy()


def resample_points(
    points: PointArray,
    num_points: int,
    method: str = "fps",
    *,
    min_points: int = 1,
    pad: str = "random",
    random_start: bool = False,
    rng: np.random.Generator | None = None,
) -> PointArray:
    """Resample a cloud `(N, C)`, or a batch of equal-size clouds `(B, N, C)`, to exactly `num_points` points.

    Args:
        num_points: points per cloud after resampling.
        method: with more than `num_points` points, `"fps"` keeps farthest point sampling's picks
            (`point_ops.farthest_point_sample`; ULIP's choice) and `"random"` a uniform subset without replacement.
        min_points: a cloud with fewer points raises `ValueError` (default 1: only empty clouds are refused).
        pad: with fewer than `num_points` points, `"random"` (default) keeps every point once and fills the rest with
            points drawn uniformly **with replacement**; `"repeat"` tiles the cloud in order (0, 1, .., N-1, 0, 1, ..),
            deterministic. Duplicated points do not change the shape's surface.
        random_start: FPS starts at a random index per cloud (drawn from `rng`) instead of index 0.
        rng: numpy Generator for every random choice; a fresh unseeded one when `None`.
    Returns:
        The same type (numpy or torch) and dtype, `(num_points, C)` or `(B, num_points, C)`.
    """
    if method not in SAMPLE_METHODS:
        raise ValueError(f"method must be one of {SAMPLE_METHODS}; got {method!r}")
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}; got {pad!r}")
    if not isinstance(num_points, int) or num_points < 1:
        raise ValueError(f"num_points must be a positive integer; got {num_points!r}")
    _check_cloud(points, min_points=min_points, batched=True)
    single = points.ndim == 2
    batch = points[None] if single else points  # (B, N, C)
    batch_size, count = batch.shape[0], batch.shape[1]
    if count == num_points:
        return points
    rng = np.random.default_rng() if rng is None else rng
    if count > num_points and method == "fps":
        as_torch = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(batch))
        generator = None
        if random_start:
            generator = torch.Generator(device=as_torch.device).manual_seed(int(rng.integers(2**62)))
        indices = farthest_point_sample(as_torch, num_points, generator=generator).cpu().numpy()
    elif count > num_points:
        indices = np.stack([rng.choice(count, num_points, replace=False) for _ in range(batch_size)])
    elif pad == "repeat":
        indices = np.broadcast_to(np.arange(num_points) % count, (batch_size, num_points))
    else:
        keep = np.broadcast_to(np.arange(count), (batch_size, count))
        indices = np.concatenate([keep, rng.integers(0, count, (batch_size, num_points - count))], axis=1)
    if isinstance(batch, torch.Tensor):
        rows = torch.arange(batch_size, device=batch.device)[:, None]
        result = batch[rows, torch.as_tensor(indices, device=batch.device)]
    else:
        result = np.take_along_axis(batch, np.ascontiguousarray(indices)[..., None], axis=1)
    return result[0] if single else result


class PointTransform:
    """Base of the point transforms: `transform(points, rng=None)` maps one cloud `(N, C)` to a new one.

    A transform owns a numpy Generator seeded by `seed` (unseeded: OS entropy), with one independent stream per
    process and DataLoader worker: in a worker the stream is seeded by (`seed`, the worker's torch seed), which
    `DataLoader` draws afresh every epoch, so workers never repeat each other's augmentations, nor their own from
    one epoch to the next, and a run is still reproducible under `torch.manual_seed`. Inside `Compose` or
    `PointCloudTransform` the container's generator is passed down as `rng` and drives every member: seed the
    outermost object.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._generators: dict[tuple[int, int], np.random.Generator] = {}

    def generator(self, rng: np.random.Generator | None = None) -> np.random.Generator:
        """`rng` when given, else this transform's own generator for the current process and worker."""
        if rng is not None:
            return rng
        info = torch.utils.data.get_worker_info()
        key = (os.getpid(), -1 if info is None else info.id)
        if key not in self._generators:
            if self.seed is None:
                seed = None
            else:
                seed = [self.seed] if info is None else [self.seed, info.seed % 2**63]
            self._generators[key] = np.random.default_rng(seed)
        return self._generators[key]

    def __call__(self, points: PointArray, rng: np.random.Generator | None = None) -> PointArray:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Compose(PointTransform):
    """Apply transforms in order; `PointTransform` members get this object's generator, plain callables `points`."""

    def __init__(self, transforms: Sequence[Callable], seed: int | None = None) -> None:
        super().__init__(seed)
        self.transforms = list(transforms)

    def __call__(self, points: PointArray, rng: np.random.Generator | None = None) -> PointArray:
        rng = self.generator(rng)
        for transform in self.transforms:
            points = transform(points, rng=rng) if isinstance(transform, PointTransform) else transform(points)
        return points


class NormalizeToUnitSphere(PointTransform):
    """Subtract the xyz centroid, divide by the largest norm (`point_ops.normalize_to_unit_sphere`)."""

    def __call__(self, points: PointArray, rng: np.random.Generator | None = None) -> PointArray:
        return normalize_points(points)


class Resample(PointTransform):
    """Resample to exactly `num_points` points; see `resample_points` for `method`, `min_points`, `pad`."""

    def __init__(
        self,
        num_points: int,
        method: str = "fps",
        min_points: int = 1,
        pad: str = "random",
        random_start: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        if method not in SAMPLE_METHODS:
            raise ValueError(f"method must be one of {SAMPLE_METHODS}; got {method!r}")
        if pad not in PAD_MODES:
            raise ValueError(f"pad must be one of {PAD_MODES}; got {pad!r}")
        self.num_points, self.method, self.min_points, self.pad = num_points, method, min_points, pad
        self.random_start = random_start

    def __call__(self, points: PointArray, rng: np.random.Generator | None = None) -> PointArray:
        return resample_points(
            points, self.num_points, self.method, min_points=self.min_points, pad=self.pad,
            random_start=self.random_start, rng=self.generator(rng),
        )


class RandomPointDropout(PointTransform):
    """ULIP's `random_point_dropout`: draw a ratio r ~ U(0, max_dropout_ratio), then replace each point with
    probability r by the cloud's first point. The shape `(N, C)` is kept (dropped points collapse onto one point).

    Default `max_dropout_ratio=0.875` is ULIP's (`data/dataset_3d.py`, ShapeNet-55 pre-training).
    """

    def __init__(self, max_dropout_ratio: float = 0.875, seed: int | None = None) -> None:
        super().__init__(seed)
        if not 0.0 <= max_dropout_ratio < 1.0:
            raise ValueError(f"max_dropout_ratio must be in [0, 1); got {max_dropout_ratio}")
        self.max_dropout_ratio = max_dropout_ratio

    def __call__(self, points: PointArray, rng: np.random.Generator | None = None) -> PointArray:
        rng = self.generator(rng)
        ratio = rng.random() * self.max_dropout_ratio
        drop = rng.random(points.shape[0]) <= ratio
        if not drop.any():
            return points
        if isinstance(points, torch.Tensor):
            out = points.clone()
            out[torch.from_numpy(drop).to(points.device)] = points[0]
        else:
            out = points.copy()
            out[drop] = points[0]
        return out


class RandomScaleAndTranslate(PointTransform):
    """Scale xyz by s ~ U(scale_low, scale_high), then shift by t ~ U(-translate_range, translate_range) per axis.

    Defaults are ULIP's pre-training augmentation (`random_scale_point_cloud(0.8, 1.25)`, one isotropic scale per
    cloud, then `shift_point_cloud(0.1)`). Point-BERT/Point-MAE's `PointcloudScaleAndTranslate` is
    `scale_low=2/3, scale_high=3/2, translate_range=0.2, anisotropic=True` (one scale per axis).
    """

    def __init__(
        self,
        scale_low: float = 0.8,
        scale_high: float = 1.25,
        translate_range: float = 0.1,
        anisotropic: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        if not 0.0 < scale_low <= scale_high:
            raise ValueError(f"need 0 < scale_low <= scale_high; got {scale_low}, {scale_high}")
        if translate_range < 0:
            raise ValueError(f"translate_range must be >= 0; got {translate_range}")
        self.scale_low, self.scale_high = scale_low, scale_high
        self.translate_range, self.anisotropic = translate_range, anisotropic

    def __call__(self, points: PointArray, rng: np.random.Generator | None = None) -> PointArray:
        rng = self.generator(rng)
        scale = rng.uniform(self.scale_low, self.scale_high, size=3 if self.anisotropic else 1)
        shift = rng.uniform(-self.translate_range, self.translate_range, size=3)
        return _affine_xyz(points, np.diag(np.broadcast_to(scale, (3,))), shift)


class RandomRotationPerturbation(PointTransform):
    """ULIP's `rotate_perturbation_point_cloud`: small rotations about x, y and z, each angle
    ~ N(0, angle_sigma) clipped to +-angle_clip radians (defaults 0.06 and 0.18, ULIP's and PointNet's)."""

    def __init__(self, angle_sigma: float = 0.06, angle_clip: float = 0.18, seed: int | None = None) -> None:
        super().__init__(seed)
        if angle_sigma < 0 or angle_clip < 0:
            raise ValueError(f"angle_sigma and angle_clip must be >= 0; got {angle_sigma}, {angle_clip}")
        self.angle_sigma, self.angle_clip = angle_sigma, angle_clip

    def __call__(self, points: PointArray, rng: np.random.Generator | None = None) -> PointArray:
        rng = self.generator(rng)
        ax, ay, az = np.clip(self.angle_sigma * rng.standard_normal(3), -self.angle_clip, self.angle_clip)
        matrix = rotation_matrix(2, az) @ rotation_matrix(1, ay) @ rotation_matrix(0, ax)
        return _affine_xyz(points, matrix)


class RandomUpAxisRotation(PointTransform):
    """Rotate about the up axis by an angle ~ U(angle_range) radians (ULIP's `rotate_point_cloud`: y up,
    the full turn). The up coordinate of every point is unchanged. `up_axis` is "x", "y", "z" or 0, 1, 2;
    the default "y" matches ModelNet40 (h5 and resampled), ShapeNet-55 and ULIP."""

    def __init__(
        self, up_axis: str | int = "y", angle_range: tuple[float, float] = (0.0, 2 * math.pi), seed: int | None = None
    ) -> None:
        super().__init__(seed)
        self.up_axis = _axis_index(up_axis)
        self.angle_range = (float(angle_range[0]), float(angle_range[1]))

    def __call__(self, points: PointArray, rng: np.random.Generator | None = None) -> PointArray:
        angle = self.generator(rng).uniform(*self.angle_range)
        return _affine_xyz(points, rotation_matrix(self.up_axis, angle))


class RandomOrientation(PointTransform):
    """Turn the cloud by one of the 24 axis-aligned rotations (`orientations.ORIENTATIONS`), drawn uniformly: the
    training side of `up_axis="auto"`, so that a model learns to read a cloud whatever its up axis."""

    def __call__(self, points: PointArray, rng: np.random.Generator | None = None) -> PointArray:
        rotation = ORIENTATIONS[int(self.generator(rng).integers(len(ORIENTATIONS)))]
        return _affine_xyz(points, rotation.T)  # row vectors: x @ R^T = (R x)^T


def ulip_augmentations(
    up_axis: str | int = "y",
    max_dropout_ratio: float = 0.875,
    scale_low: float = 0.8,
    scale_high: float = 1.25,
    translate_range: float = 0.1,
    angle_sigma: float = 0.06,
    angle_clip: float = 0.18,
    seed: int | None = None,
) -> Compose:
    """ULIP's training augmentations, in ULIP's order (`data/dataset_3d.py`, applied after FPS and normalisation):
    point dropout -> isotropic scale -> shift -> small rotation perturbation -> random rotation about the up axis.
    `max_dropout_ratio=0` leaves the dropout out."""
    transforms: list[PointTransform] = []
    if max_dropout_ratio > 0:
        transforms.append(RandomPointDropout(max_dropout_ratio))
    transforms += [
        RandomScaleAndTranslate(scale_low, scale_high, translate_range),
        RandomRotationPerturbation(angle_sigma, angle_clip),
        RandomUpAxisRotation(up_axis),
    ]
    return Compose(transforms, seed=seed)


# ----------------------------------------------------------------------------------------------------------------------
# Rows and batches of a triples dataset
# ----------------------------------------------------------------------------------------------------------------------

EMBED_COLUMNS = ("image_embeds", "text_embeds")


def _is_batch_of_clouds(value: Any) -> bool:
    """Whether a `points` value is a batch of clouds (what `with_transform`/batched `map` pass) or a single cloud."""
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.ndim == 3
    if isinstance(value, (list, tuple)):
        if not value:
            return True
        first = value[0]
        if isinstance(first, (np.ndarray, torch.Tensor)):
            return first.ndim == 2
        if isinstance(first, (list, tuple)):
            return not first or isinstance(first[0], (list, tuple, np.ndarray, torch.Tensor))
    return False


def _to_numpy(value: Any, dtype: Any = np.float32) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().astype(dtype, copy=False)
    return np.asarray(value, dtype=dtype)


class PointCloudTransform(PointTransform):
    """Make dataset rows model-ready: check -> resample to `num_points` -> unit sphere -> augment -> float32 tensor.

    Call it on one row (`{"points": (N, 3), ...}`) or on a batch of rows (`{"points": [cloud, ...], ...}`, what
    `Dataset.with_transform` and `IterableDataset.map(batched=True)` pass); `prepare_dataset` wires it up.
    `points` become float32 tensors `(num_points, C)`; `image_embeds`/`text_embeds` become float32 tensors;
    every other column passes through unchanged.

    Args:
        num_points: points per cloud (default 1024, the paper's); `None` keeps each cloud's own size.
        sample_method: `"fps"` (default, ULIP) or `"random"`; see `resample_points` (also for `pad`, `min_points`).
        normalize: centre and scale into the unit sphere (default True; docs/design.md section 2).
        augmentations: a callable on one cloud, e.g. `ulip_augmentations()`; `None` for none (evaluation).
        random_start: FPS starts at a random point per cloud (training) instead of index 0 (evaluation).
        with_colors: append the `colors` column as channels 3:6, giving `(num_points, 6)`.
        seed: seeds this transform's generator, which drives resampling and every augmentation.
    """

    def __init__(
        self,
        num_points: int | None = 1024,
        sample_method: str = "fps",
        normalize: bool = True,
        augmentations: Callable | None = None,
        min_points: int = 1,
        pad: str = "random",
        random_start: bool = False,
        with_colors: bool = False,
        seed: int | None = None,
        points_column: str = "points",
    ) -> None:
        super().__init__(seed)
        if sample_method not in SAMPLE_METHODS:
            raise ValueError(f"sample_method must be one of {SAMPLE_METHODS}; got {sample_method!r}")
        if pad not in PAD_MODES:
            raise ValueError(f"pad must be one of {PAD_MODES}; got {pad!r}")
        if num_points is not None and num_points < 1:
            raise ValueError(f"num_points must be a positive integer or None; got {num_points}")
        self.num_points, self.sample_method, self.normalize = num_points, sample_method, normalize
        self.augmentations, self.min_points, self.pad = augmentations, min_points, pad
        self.random_start, self.with_colors, self.points_column = random_start, with_colors, points_column

    def __call__(self, example: Mapping[str, Any], rng: np.random.Generator | None = None) -> dict[str, Any]:
        column = self.points_column
        if column not in example:
            raise ValueError(f"rows have no {column!r} column; columns are {sorted(example)}")
        batched = _is_batch_of_clouds(example[column])
        raw = list(example[column]) if batched else [example[column]]
        colors = example.get("colors") if self.with_colors else None
        if self.with_colors and colors is None:
            raise ValueError("with_colors=True but the rows have no 'colors' column")
        colors = (list(colors) if batched else [colors]) if colors is not None else [None] * len(raw)
        shape_ids = example.get("shape_id")
        shape_ids = (list(shape_ids) if batched else [shape_ids]) if shape_ids is not None else [None] * len(raw)

        clouds = []
        for cloud, color, shape_id in zip(raw, colors, shape_ids):
            name = f"points of shape {shape_id!r}" if shape_id is not None else "points"
            cloud = _to_numpy(cloud)
            if color is not None:
                color = _to_numpy(color)
                if cloud.ndim != 2 or color.shape != (cloud.shape[0], 3):
                    raise ValueError(f"colors of {shape_id!r} have shape {color.shape}; expected ({len(cloud)}, 3)")
                cloud = np.concatenate([cloud[:, :3], color], axis=1)
            _check_cloud(cloud, name, self.min_points)
            clouds.append(cloud)
        processed = self.process(clouds, rng)

        out = dict(example)
        if self.with_colors:
            out.pop("colors", None)  # folded into the points' channels 3:6
        out[column] = processed if batched else processed[0]
        for key in EMBED_COLUMNS:
            if key in out and out[key] is not None:
                values = out[key]
                out[key] = [torch.from_numpy(_to_numpy(v)) for v in values] if batched else torch.from_numpy(
                    _to_numpy(values)
                )
        return out

    def process(self, clouds: list[np.ndarray], rng: np.random.Generator | None = None) -> list[torch.Tensor]:
        """Resample, normalise and augment checked float32 clouds; equal-size clouds share one batched FPS call."""
        rng = self.generator(rng)
        if self.num_points is not None:
            by_size: dict[int, list[int]] = defaultdict(list)
            for index, cloud in enumerate(clouds):
                by_size[cloud.shape[0]].append(index)
            resampled: list[np.ndarray] = [None] * len(clouds)  # type: ignore[list-item]
            for members in by_size.values():
                stacked = np.stack([clouds[i] for i in members])  # (b, N, C)
                result = resample_points(
                    stacked, self.num_points, self.sample_method, min_points=self.min_points, pad=self.pad,
                    random_start=self.random_start, rng=rng,
                )
                for row, index in enumerate(members):
                    resampled[index] = result[row]
            clouds = resampled
        out = []
        for cloud in clouds:
            if self.normalize:
                cloud = normalize_points(cloud)
            if self.augmentations is not None:
                augment = self.augmentations
                cloud = augment(cloud, rng=rng) if isinstance(augment, PointTransform) else augment(cloud)
            out.append(torch.as_tensor(np.ascontiguousarray(cloud), dtype=torch.float32))
        return out


AnyDataset = Dataset | DatasetDict | datasets.IterableDataset | datasets.IterableDatasetDict


def prepare_dataset(
    ds: AnyDataset,
    num_points: int | None = 1024,
    *,
    train: bool = True,
    sample_method: str = "fps",
    normalize: bool = True,
    augmentations: Callable | str | None = "ulip",
    up_axis: str | int = "y",
    min_points: int = 1,
    pad: str = "random",
    with_colors: bool = False,
    keep_columns: Sequence[str] = (),
    seed: int | None = None,
    train_split: str = "train",
    map_batch_size: int = 64,
) -> AnyDataset:
    """Attach a `PointCloudTransform` to a triples dataset, lazily (nothing is rewritten on disk).

    Map-style `Dataset`s get `with_transform` (applied on access, so augmentations differ every epoch); streaming
    `IterableDataset`s get a batched `.map`. Only the columns the model needs are read (`shape_id`, `points`, `label`,
    `image_embeds`, `text_embeds`, plus `colors` with `with_colors` and any `keep_columns`), so rendered images are not
    decoded unless asked for.

    Args:
        num_points: points per cloud (default 1024); `None` keeps each cloud's size (the collator then needs equal
            sizes).
        train: training mode: FPS from a random start and `augmentations`. On a `DatasetDict`/`IterableDatasetDict`
            only the split named `train_split` ("train") gets training mode; every other split is prepared for
            evaluation (FPS from index 0, no augmentation).
        augmentations: `"ulip"` (default: `ulip_augmentations(up_axis)`), a callable on one cloud, or `None`.
        seed: seeds the transform (resampling and augmentations); `None` draws fresh entropy per process/worker.
        map_batch_size: rows per `.map` batch for streaming datasets.
    Other arguments are those of `PointCloudTransform`.

    Cost: FPS runs on the fly, batched per access; 8192 -> 1024 points takes about 30 ms per cloud on one CPU core.
    For large datasets resample once at import time (`dual-denoising import ... --num-points 1024`), or use
    `sample_method="random"`.
    """
    if isinstance(ds, (DatasetDict, datasets.IterableDatasetDict)):
        kwargs = dict(
            num_points=num_points, sample_method=sample_method, normalize=normalize, augmentations=augmentations,
            up_axis=up_axis, min_points=min_points, pad=pad, with_colors=with_colors, keep_columns=keep_columns,
            seed=seed, map_batch_size=map_batch_size,
        )
        return type(ds)({split: prepare_dataset(part, train=train and split == train_split, **kwargs)
                         for split, part in ds.items()})
    if not isinstance(ds, (Dataset, datasets.IterableDataset)):
        raise ValueError(
            f"prepare_dataset expects a datasets Dataset/IterableDataset (or a dict of them); got {type(ds).__name__}"
        )
    if augmentations == "ulip":
        augmentations = ulip_augmentations(up_axis)
    elif isinstance(augmentations, str):
        raise ValueError(f"augmentations must be 'ulip', a callable or None; got {augmentations!r}")
    transform = PointCloudTransform(
        num_points=num_points, sample_method=sample_method, normalize=normalize,
        augmentations=augmentations if train else None, min_points=min_points, pad=pad, random_start=train,
        with_colors=with_colors, seed=seed,
    )
    wanted = ["shape_id", "points", "label", *EMBED_COLUMNS, *(["colors"] if with_colors else []), *keep_columns]
    names = ds.column_names
    if names is not None and "points" not in names:
        raise ValueError(f"the dataset has no 'points' column; columns are {names}")
    columns = [c for c in dict.fromkeys(wanted) if names is None or c in names]
    if isinstance(ds, Dataset):
        return ds.with_transform(transform, columns=columns)
    if names is not None:
        ds = ds.select_columns(columns)
    return ds.map(transform, batched=True, batch_size=map_batch_size)


# ----------------------------------------------------------------------------------------------------------------------
# Collation
# ----------------------------------------------------------------------------------------------------------------------

SELECTIONS = ("random", "first", "all")
RandomGenerator = torch.Generator | np.random.Generator


class TriplesCollator:
    """Stack prepared rows into a batch for the model.

    Returns a dict with
        points        float32 (B, N, C)   every row must have the same N (use `prepare_dataset(num_points=...)`)
        labels        int64 (B,)          when every row has a `label`
        image_embeds  float32 (B, D)      one view per row, or (B, V, D) with selection "all"
        text_embeds   float32 (B, D)      one caption per row, or (B, T, D) with selection "all"
        image_embeds_mask / text_embeds_mask  bool (B, V)  only with "all" and a different count per row (zero-padded)
        shape_ids     list[str]           only with `return_shape_ids=True`

    Args:
        view_selection: `"random"` (default: one view drawn uniformly per row and call, as ULIP draws one rendered view
            per step), `"first"` (deterministic, for evaluation) or `"all"`.
        caption_selection: the same for `text_embeds`.
        generator: a `torch.Generator` or `numpy.random.Generator` for the random picks; `None` uses torch's global
            RNG, which `DataLoader` seeds differently in every worker.
    """

    def __init__(
        self,
        view_selection: str = "random",
        caption_selection: str = "random",
        generator: RandomGenerator | None = None,
        return_shape_ids: bool = False,
    ) -> None:
        for name, value in (("view_selection", view_selection), ("caption_selection", caption_selection)):
            if value not in SELECTIONS:
                raise ValueError(f"{name} must be one of {SELECTIONS}; got {value!r}")
        if generator is not None and not isinstance(generator, (torch.Generator, np.random.Generator)):
            raise ValueError(f"generator must be a torch.Generator or numpy Generator; got {type(generator).__name__}")
        self.view_selection, self.caption_selection = view_selection, caption_selection
        self.generator, self.return_shape_ids = generator, return_shape_ids

    def _pick(self, count: int) -> int:
        if isinstance(self.generator, np.random.Generator):
            return int(self.generator.integers(count))
        return int(torch.randint(count, (1,), generator=self.generator))

    def _embeds(self, rows: Sequence[Mapping], key: str, selection: str) -> dict[str, torch.Tensor]:
        tensors = []
        for i, row in enumerate(rows):
            value = torch.as_tensor(_to_numpy(row[key]))
            value = value[None] if value.dim() == 1 else value  # a single (D,) embedding is one view
            if value.dim() != 2 or value.shape[0] == 0:
                shape_id = row.get("shape_id", i)
                raise ValueError(f"{key} of row {shape_id!r} has shape {tuple(value.shape)}; expected (count >= 1, D)")
            tensors.append(value)
        dims = {t.shape[1] for t in tensors}
        if len(dims) > 1:
            raise ValueError(f"{key} have different embedding sizes in one batch: {sorted(dims)}")
        if selection == "first":
            return {key: torch.stack([t[0] for t in tensors])}
        if selection == "random":
            return {key: torch.stack([t[self._pick(t.shape[0])] for t in tensors])}
        counts = [t.shape[0] for t in tensors]
        if len(set(counts)) == 1:
            return {key: torch.stack(tensors)}
        padded = torch.zeros(len(tensors), max(counts), tensors[0].shape[1])
        mask = torch.zeros(len(tensors), max(counts), dtype=torch.bool)
        for i, t in enumerate(tensors):
            padded[i, : t.shape[0]], mask[i, : t.shape[0]] = t, True
        return {key: padded, f"{key}_mask": mask}

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if not rows:
            raise ValueError("cannot collate an empty batch")
        clouds = [torch.as_tensor(_to_numpy(row["points"])) for row in rows]
        shapes = {tuple(c.shape) for c in clouds}
        if len(shapes) > 1 or clouds[0].dim() != 2:
            raise ValueError(
                f"clouds in a batch must share one shape (N, C); got {sorted(shapes)}. Resample them first: "
                "prepare_dataset(ds, num_points=...) or Resample(num_points)"
            )
        batch: dict[str, Any] = {"points": torch.stack(clouds)}
        label_key = "label" if "label" in rows[0] else "labels" if "labels" in rows[0] else None
        if label_key is not None and all(row.get(label_key) is not None for row in rows):
            batch["labels"] = torch.as_tensor([int(row[label_key]) for row in rows], dtype=torch.long)
        for key, selection in (("image_embeds", self.view_selection), ("text_embeds", self.caption_selection)):
            if all(row.get(key) is not None for row in rows):
                batch.update(self._embeds(rows, key, selection))
        if self.return_shape_ids:
            batch["shape_ids"] = [row.get("shape_id") for row in rows]
        return batch


def collate_triples(
    rows: Sequence[Mapping[str, Any]],
    view_selection: str = "random",
    caption_selection: str = "random",
    generator: RandomGenerator | None = None,
    return_shape_ids: bool = False,
) -> dict[str, Any]:
    """Functional form of `TriplesCollator` (see there for the returned keys and shapes)."""
    return TriplesCollator(view_selection, caption_selection, generator, return_shape_ids)(rows)


def is_hub_id(name: str | None) -> bool:
    """`owner/name` that is not a local path: a Hub repository id."""
    return bool(name) and not Path(name).exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", name) is not None


def portable(name: str | None) -> str | None:
    """What a saved artefact records of a dataset, teacher or folder: a Hub id as it is, a local path by its folder
    name only (a path of the machine that trained would mean nothing elsewhere, and may say too much)."""
    if not name or is_hub_id(name):
        return name
    return f"{Path(name).name} (local folder)"
