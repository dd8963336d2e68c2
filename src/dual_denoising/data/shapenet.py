"""ULIP's ShapeNet-55 triples (points, rendered views, captions) as a triples folder."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..fileio import load_points
from .common import (
    DEFAULT_CHUNK_SIZE,
    SHAPENET_IMAGE_DIRS,
    ULIP_DEPTH_SUFFIX,
    ULIP_VIEW_ANGLES,
    _base_metadata,
    _check_out_dir,
    _progress,
    _read_lines,
    _require_dir,
    _Resampler,
    _write_triples,
    _xyz,
)
from .triples import portable, triples_features

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


def _shapenet55_folders(src: Path, pc_dir, split_dir, taxonomy, image_dir, with_images: bool):
    """Where ULIP's layout (or the overrides) puts the clouds, the split lists, the taxonomy and the views."""
    pc_root = _require_dir(Path(pc_dir) if pc_dir is not None else src / "shapenet_pc", "point clouds (pc_dir)")
    if split_dir is not None:
        split_root = _require_dir(Path(split_dir), "train.txt/test.txt (split_dir)")
    else:
        split_root = _first_existing([src / "train.txt", src / "ShapeNet-55" / "train.txt"])
        split_root = split_root.parent if split_root is not None else src
    taxonomy_file = Path(taxonomy) if taxonomy is not None else src / "taxonomy.json"
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
    return pc_root, split_root, taxonomy_file, image_root


def _read_shapenet55_list(listing: Path, names: dict, taxonomy_file: Path) -> list[tuple[str, str]]:
    """`(synset, file name)` of each line of a Point-BERT split list, each synset checked against the taxonomy."""
    entries = []
    for lineno, line in enumerate(_read_lines(listing, "one {synset}-{model}.npy file name per line"), 1):
        name = Path(line).name
        synset, sep, _ = name.partition("-")
        if not sep or not synset:
            raise ValueError(f"{listing}: line {lineno} is {line!r}; expected {{synset}}-{{model}}.npy")
        if synset not in names:
            raise ValueError(f"{listing}: line {lineno}: synset {synset} is not in {taxonomy_file}")
        entries.append((synset, name))
    return entries


def _shapenet55_views(image_root: Path, shape_id: str, angles: Sequence[int], suffixes: Sequence[str]) -> list[dict]:
    """The rendered views of one shape found for `angles` (each suffix: RGB, depth), as image rows."""
    found = []
    for angle in angles:
        for suffix in suffixes:
            file_name = f"{shape_id}_r_{angle:03d}{suffix}.png"
            path = _first_existing([image_root / shape_id / file_name, image_root / file_name])
            if path is not None:
                found.append({"bytes": path.read_bytes(), "path": file_name})
    return found


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
    out = _check_out_dir(out_dir, overwrite, src)
    resampler = _Resampler(num_points, sample_method, seed, chunk_size)
    pc_root, split_root, taxonomy_file, image_root = _shapenet55_folders(src, pc_dir, split_dir, taxonomy, image_dir,
                                                                          with_images)
    names = _read_taxonomy(taxonomy_file)
    lists = {split: _read_shapenet55_list(split_root / f"{split}.txt", names, taxonomy_file)
             for split in ("train", "test")}
    if whole:
        lists = {"train": lists["test"] + lists["train"]}  # ULIP's order: test lines first
    synsets = sorted({synset for entries in lists.values() for synset, _ in entries})
    class_names = [names[s][0] for s in synsets]
    class_names = [n if class_names.count(n) == 1 else f"{n} ({s})" for n, s in zip(class_names, synsets)]
    label_of = {s: i for i, s in enumerate(synsets)}
    suffixes = [""] + ([ULIP_DEPTH_SUFFIX] if include_depth else [])
    skipped: dict[str, list[str]] = {"missing_points": [], "missing_images": []}

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
                row["images"] = _shapenet55_views(image_root, shape_id, angles, suffixes)
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
                {"folder": portable(str(image_root)), "view_angles": list(angles), "include_depth": include_depth}
                if with_images else None
            ),
            skipped={k: len(v) for k, v in skipped.items()},
        )
        return meta

    features = triples_features(class_names, with_images=with_images, with_captions=True)
    return _write_triples(out, {split: rows(split) for split in lists}, features, metadata)
