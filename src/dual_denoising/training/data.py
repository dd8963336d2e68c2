"""The training data of `pretrain`: the rows to train on (teacher embeddings computed when missing, the validation
split carved out, the seen-class filter, the FPS cache), scan mixing, the augmentations and the DataLoader whose
order and draws are a pure function of (seed, epoch, row), so that a resumed run sees the batches of an
uninterrupted one."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger

from ..configuration_dual_denoising import DualDenoisingConfig
from ..data import (
    EMBED_COLUMNS,
    METADATA_FILE,
    Compose,
    PointCloudTransform,
    RandomOrientation,
    TriplesCollator,
    load_triples,
    load_triples_metadata,
    prepare_dataset,
    resample_points,
    ulip_augmentations,
)
from .arguments import PretrainingArguments

logger = get_logger(__name__)

class SeededRows(torch.utils.data.Dataset):
    """Training rows made model-ready with a random stream that is a pure function of (seed, epoch, row index).

    The resampling, the augmentations and the pick of one view and one caption of a row do not depend on the process,
    the DataLoader worker or the point a run was resumed from, so a resumed run sees exactly the batches of an
    uninterrupted one. Call `set_epoch` before each pass.
    """

    def __init__(self, dataset: datasets.Dataset, transform: PointCloudTransform, seed: int,
                 scans: list[tuple[datasets.Dataset, np.ndarray]] | None = None, scan_probability: float = 0.0):
        self.dataset, self.transform, self.seed, self.epoch = dataset, transform, seed, 0
        self.scans, self.scan_probability = scans or [], scan_probability

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def _prepare(self, row: dict, index: int) -> dict:
        if self.scans:  # scan-style training, on a stream of its own: the other draws stay what they are without it
            pick = np.random.default_rng([self.seed, self.epoch, index, 1])
            if pick.random() < self.scan_probability:
                scans, scan_row = self.scans[int(pick.integers(len(self.scans)))]
                row = {**row, "points": scans[int(scan_row[index])]["points"]}
        rng = np.random.default_rng([self.seed, self.epoch, index])
        row = self.transform(row, rng=rng)
        for key in EMBED_COLUMNS:
            embeds = row.get(key)
            if embeds is None:
                continue
            embeds = embeds[None] if embeds.dim() == 1 else embeds
            row[key] = embeds[int(rng.integers(len(embeds)))] if len(embeds) else None
        return row

    def __getitem__(self, index: int) -> dict:
        return self._prepare(self.dataset[int(index)], int(index))

    def __getitems__(self, indices: list[int]) -> list[dict]:
        rows = self.dataset.__getitems__([int(i) for i in indices])
        return [self._prepare(row, int(i)) for row, i in zip(rows, indices)]


def embed_dim_of(features: datasets.Features | None) -> int | None:
    for key in EMBED_COLUMNS:
        feature = (features or {}).get(key)
        if feature is not None and getattr(feature, "shape", None):
            return int(feature.shape[-1])
    return None


def needed_embeddings(config: DualDenoisingConfig) -> set[str]:
    """The embedding columns the objective reads: those `feature_target` names (`image+text`: both, as ULIP)."""
    return {f"{part}_embeds" for part in config.feature_target.split("+")}


def load_metadata(dataset: str) -> dict:
    if Path(dataset).exists():
        return load_triples_metadata(dataset)
    try:  # a Hub dataset laid out like save_triples' folders
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(dataset, METADATA_FILE, repo_type="dataset")).read_text())
    except Exception:  # noqa: BLE001  (no metadata file, offline, ...: the run goes on without it)
        return {}


def load_training_data(
    args: PretrainingArguments, accelerator: Accelerator, needed: set[str]
) -> tuple[Any, dict, dict | None]:
    """The training split and the dataset's metadata, with the teacher embeddings computed first when they are
    missing; the third value is what computing them cost (main process; None when nothing was computed)."""
    split = load_split(args.dataset, args.train_split, args.streaming)
    missing = needed - set(split.column_names or ())
    cost = None
    if missing:
        if args.teacher is None:
            raise ValueError(
                f"{args.dataset} has no {sorted(missing)} columns: pass --teacher CLIP_DIR to compute them, or run "
                "`dual-denoising precompute-features` first"
            )
        if not Path(args.dataset).is_dir():
            raise ValueError(f"teacher features can be added to a local folder only; {args.dataset} is not one")
        from ..teacher import precompute_features

        if accelerator.is_main_process:
            start = time.perf_counter()
            record = precompute_features(args.dataset, args.teacher, device=accelerator.device, show_progress=False)
            seconds = time.perf_counter() - start
            rows = sum(load_triples_metadata(args.dataset).get("splits", {}).values())
            cost = {"rows": rows, "seconds": seconds, "device": accelerator.device.type, "reused": record["reused"]}
            logger.info(
                f"teacher features: {'reused' if record['reused'] else 'computed'} for {rows} rows of {args.dataset} "
                f"with {args.teacher} in {seconds:.1f} s ({rows / max(seconds, 1e-9):.1f} rows/s) on "
                f"{accelerator.device}"
            )
        accelerator.wait_for_everyone()
        split = load_split(args.dataset, args.train_split, args.streaming)
    return split, load_metadata(args.dataset), cost


def load_split(dataset: str, split: str, streaming: bool = False) -> Any:
    try:
        return load_triples(dataset, split=split, streaming=streaming)
    except (ValueError, KeyError) as error:  # datasets: 'Unknown split "x". Should be one of [...]'
        raise ValueError(f"{dataset}: no split {split!r} ({error})") from None


# The validation split settings are chosen on: the last shapes of every class of the training split
# (`--validation_per_class`), never trained on. The shipped models and every table in docs/ carve 16 per class.
VALIDATION_PER_CLASS = 16


def validation_indices(labels, per_class: int = VALIDATION_PER_CLASS) -> np.ndarray:
    """Rows of the training split that form the validation split: the last `per_class` of every class, in order."""
    labels = np.asarray(labels)
    return np.concatenate([np.flatnonzero(labels == c)[-per_class:] for c in np.unique(labels)])


def open_set_classes(metadata: dict, names: list[str], unseen: str | None = None,
                     dataset: str = "the dataset") -> tuple[list[str], list[str]]:
    """(seen, unseen) class names of the open-set protocol: `unseen` (comma-separated) or else the metadata's
    `unseen_classes`; every other class is seen."""
    held_out = [name.strip() for name in unseen.split(",") if name.strip()] if unseen else \
        list(metadata.get("unseen_classes") or [])
    if not held_out:
        raise ValueError(f"the metadata of {dataset} records no unseen_classes: pass --unseen_classes A,B,...")
    if unknown := [name for name in held_out if name not in names]:
        raise ValueError(f"unseen classes {unknown} are not classes of {dataset} (its classes: {', '.join(names)})")
    return [name for name in names if name not in held_out], [name for name in names if name in held_out]


def split_training_rows(split: Any, args: PretrainingArguments, metadata: dict) -> tuple[Any, Any]:
    """The rows to train on and the carved validation rows (None without `--validation_per_class`): the validation
    shapes are taken out first, of every class, then `--train_on_seen_classes` and `--max_train_samples` apply."""
    validation = None
    if args.validation_per_class:
        held_out = validation_indices(split["label"], args.validation_per_class)
        validation = split.select(held_out.tolist())
        split = split.select(np.setdiff1d(np.arange(len(split)), held_out).tolist())
    if args.train_on_seen_classes:
        names = split.features["label"].names
        seen, _ = open_set_classes(metadata, names, args.unseen_classes, args.dataset)
        seen_ids = {names.index(name) for name in seen}
        split = split.filter(lambda label: label in seen_ids, input_columns="label")
    if args.max_train_samples is not None:
        split = split.take(args.max_train_samples) if args.streaming else split.select(
            range(min(args.max_train_samples, len(split)))
        )
    return split, validation


def reduce_clouds(split: datasets.Dataset, num_points: int, min_points: int = 1) -> datasets.Dataset:
    """Every cloud of `split` reduced once to `num_points` by farthest point sampling from its first point (fewer
    points are padded as `resample_points` does, seeded): the FPS cache of `--fps_cache`. `datasets` caches the
    result by the split's fingerprint, so a second run, or the other processes, read it back."""

    def reduce(batch: dict, indices: list[int]) -> dict:
        clouds = [np.asarray(cloud, dtype=np.float32) for cloud in batch["points"]]
        by_size: dict[int, list[int]] = {}
        for row, cloud in enumerate(clouds):  # equal sizes share one batched FPS call
            by_size.setdefault(len(cloud) if len(cloud) > num_points else -1 - row, []).append(row)
        for members in by_size.values():
            reduced = resample_points(np.stack([clouds[row] for row in members]), num_points, min_points=min_points,
                                      rng=np.random.default_rng(indices[members[0]]))  # the seed pads a small cloud
            for row, cloud in zip(members, reduced):
                clouds[row] = cloud
        batch["points"] = clouds
        return batch

    return split.map(reduce, batched=True, batch_size=256, with_indices=True, desc="FPS cache")


def match_scans(split: datasets.Dataset, args: PretrainingArguments, config: DualDenoisingConfig
                ) -> list[tuple[datasets.Dataset, np.ndarray]]:
    """For each of `--scan_datasets`: its `--train_split` (shape_id and points) and, for every training row, the row
    of that shape's scan. Every training shape must have a scan in every scan dataset."""
    if not args.scan_datasets:
        return []
    if "shape_id" not in split.column_names:
        raise ValueError(f"--scan_datasets pairs clouds by shape_id, and {args.dataset} has no shape_id column")
    wanted = [str(s) for s in split["shape_id"]]
    matched = []
    for name in args.scan_datasets:
        scans = load_split(name, args.train_split).select_columns(["shape_id", "points"])
        if args.fps_cache:  # scans are clouds of the training rows: the same cache
            scans = reduce_clouds(scans, config.point_config.num_points)
        where = {str(s): i for i, s in enumerate(scans["shape_id"])}
        missing = [s for s in wanted if s not in where]
        if missing:
            raise ValueError(
                f"--scan_datasets {name}: no scan of {len(missing)} of the {len(wanted)} training shapes (e.g. "
                f"{missing[0]!r}); scan the same shapes (make-synthetic --scan VARIANT with the training set's "
                "--shapes-per-class and --seed)"
            )
        matched.append((scans.with_format("numpy"), np.asarray([where[s] for s in wanted])))
    return matched


def training_augmentations(args: PretrainingArguments) -> Compose | None:
    """The per-cloud augmentations of `--augmentations` and `--orientation_augmentation`, in that order."""
    transforms = [*(ulip_augmentations(args.up_axis).transforms if args.augmentations == "ulip" else []),
                  *([RandomOrientation()] if args.orientation_augmentation else [])]
    return Compose(transforms) if transforms else None


def make_train_dataloader(
    split: Any, args: PretrainingArguments, config: DualDenoisingConfig, process_index: int
) -> tuple[torch.utils.data.DataLoader, SeededRows | None]:
    """The training DataLoader (shuffled, whole batches only) and, for map-style data, its `SeededRows`."""
    point_config = config.point_config
    with_colors = point_config.in_channels == 6
    min_points = max(point_config.group_size, point_config.num_groups)
    if args.streaming:
        stream = split.shuffle(seed=args.seed, buffer_size=args.shuffle_buffer_size)
        rows = prepare_dataset(
            stream, point_config.num_points, train=True, up_axis=args.up_axis, min_points=min_points,
            augmentations=training_augmentations(args), with_colors=with_colors, seed=args.seed,
        )
        generator = torch.Generator().manual_seed(args.seed + process_index)
        collator = TriplesCollator(generator=generator, return_shape_ids=args.debug_log_samples)
        loader = torch.utils.data.DataLoader(
            rows, batch_size=args.per_device_train_batch_size, collate_fn=collator, drop_last=True,
            num_workers=args.dataloader_num_workers,
        )
        return loader, None
    wanted = ["shape_id", "points", "label", *EMBED_COLUMNS, *(["colors"] if with_colors else [])]
    split = split.select_columns([c for c in wanted if c in split.column_names]).with_format("numpy")
    transform = PointCloudTransform(
        point_config.num_points, min_points=min_points, random_start=True, with_colors=with_colors,
        augmentations=training_augmentations(args),
    )
    if args.scan_datasets and with_colors:
        raise ValueError("--scan_datasets: scans carry no colors, and this model reads 6 channels")
    rows = SeededRows(split, transform, args.seed, match_scans(split, args, config), args.scan_probability)
    loader = torch.utils.data.DataLoader(
        rows,
        batch_size=args.per_device_train_batch_size,
        shuffle=True,  # accelerate swaps in its seedable sampler: the order is a function of (seed, epoch)
        drop_last=True,  # every step sees a full batch (BatchNorm, InfoNCE)
        collate_fn=TriplesCollator("first", "first", return_shape_ids=args.debug_log_samples),
        num_workers=args.dataloader_num_workers,
        generator=torch.Generator().manual_seed(args.seed),  # the loader's seed draws leave the global RNG alone
    )
    if len(loader) == 0:
        raise ValueError(
            f"{len(rows)} training rows are fewer than one batch of {args.per_device_train_batch_size}; lower "
            "--per_device_train_batch_size"
        )
    return loader, rows
