"""A folder of point-cloud or mesh files, one subfolder per class, as a triples folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from ..fileio import SUPPORTED_EXTENSIONS, load_points
from .common import (
    DEFAULT_CHUNK_SIZE,
    SPLIT_FOLDER_NAMES,
    _base_metadata,
    _check_out_dir,
    _progress,
    _require_dir,
    _Resampler,
    _write_triples,
    _xyz,
)
from .triples import triples_features

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
    out = _check_out_dir(out_dir, overwrite, src, walks_src=True)
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
