"""Read one point cloud from a file: arrays, text, or a mesh sampled on its surface.

`load_points(path)` returns a float32 array `(N, 3)`, or `(N, 6)` when the file carries six columns (xyz + normals or
colours, as written) or a point-cloud PLY/GLB carries vertex colours (then RGB in [0, 1]).

    .npy            an (N, 3) or (N, 6) array
    .npz            the array under key `points`, or the only array in the archive
    .xyz .txt .pts .csv
                    one point per line, 3 or 6 values separated by whitespace, commas or semicolons
                    (ModelNet40 `modelnet40_normal_resampled` files are `x,y,z,nx,ny,nz`); leading header lines
                    (column names, a point count) and `#` / `//` comment lines are skipped
    .ply .obj .off .stl .glb
                    read with trimesh: a file with faces is a mesh, sampled on its surface (area-weighted, seeded);
                    a file with vertices only (a point-cloud PLY, an OBJ of `v` lines) is a point cloud

Errors name the file and the problem: `FileNotFoundError` for a missing file, `ValueError` for an unsupported
extension (the message lists the supported ones), an unreadable, empty or non-finite file, or wrong columns.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ARRAY_EXTENSIONS = (".npy", ".npz")
TEXT_EXTENSIONS = (".xyz", ".txt", ".pts", ".csv")
MESH_EXTENSIONS = (".ply", ".obj", ".off", ".stl", ".glb")
SUPPORTED_EXTENSIONS = ARRAY_EXTENSIONS + TEXT_EXTENSIONS + MESH_EXTENSIONS
ALLOWED_COLUMNS = (3, 6)
DEFAULT_MESH_SAMPLES = 8192  # ULIP's ShapeNet-55 clouds hold 8192 points
# the bounds on an input file (the README's inputs table), checked before the data is expanded: a point array's
# size is read from its header, every other file's from its size on disk
MAX_POINTS = 5_000_000  # points per cloud (a LiDAR sweep is ~100k-2M); a larger cloud: subsample it first
MAX_FILE_BYTES = 512 * 2**20  # 512 MiB


def load_points(
    path: str | Path,
    num_points: int | None = None,
    seed: int | Sequence[int] = 0,
    *,
    mesh_samples: int = DEFAULT_MESH_SAMPLES,
) -> np.ndarray:
    """Load a point cloud as float32 `(N, 3)` or `(N, 6)`.

    Args:
        path: a file with one of `SUPPORTED_EXTENSIONS` (case-insensitive).
        num_points: a mesh is sampled with exactly this many points; a point file with more points is cut to a
            seeded uniform random subset of this size (kept in file order), one with fewer is returned whole.
            For farthest point sampling or padding use `data.resample_points` on the result.
        seed: seeds the surface sampling and the random subset (an int or a sequence of ints, as
            `numpy.random.default_rng` takes); the same seed gives the same points.
        mesh_samples: surface samples for a mesh when `num_points` is None (default 8192, ULIP's cloud size).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise ValueError(
            f"{path}: unsupported file extension {path.suffix or '(none)'!r}; "
            f"supported: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; pass a point or mesh file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if num_points is not None and num_points < 1:
        raise ValueError(f"num_points must be a positive integer or None; got {num_points}")
    _check_size(path, suffix)
    rng = np.random.default_rng(seed)
    if suffix in MESH_EXTENSIONS:
        points, sampled = _read_mesh(path, num_points or mesh_samples, rng)
    elif suffix in ARRAY_EXTENSIONS:
        points, sampled = _read_array(path), False
    else:
        points, sampled = _read_text(path), False
    points = _validate(path, points)
    if not sampled and num_points is not None and len(points) > num_points:
        keep = np.sort(rng.choice(len(points), num_points, replace=False))
        points = points[keep]
    return points


def _check_size(path: Path, suffix: str) -> None:
    """Refuse, before reading, a file over `MAX_FILE_BYTES` or an array of more than `MAX_POINTS` points (from the
    `.npy` header, or each `.npz` member's: a compressed archive is small on disk and large in memory)."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{path}: the file is {size / 2**20:.0f} MiB; at most {MAX_FILE_BYTES // 2**20} MiB are read: "
                         "subsample the cloud first")
    shapes = []
    try:
        if suffix == ".npy":
            with open(path, "rb") as handle:
                shapes.append(_npy_shape(handle))
        elif suffix == ".npz":
            import zipfile

            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    if member.endswith(".npy"):
                        with archive.open(member) as handle:
                            shapes.append(_npy_shape(handle))
    except (ValueError, OSError, EOFError, zipfile.BadZipFile if suffix == ".npz" else ValueError):
        return  # not a readable array header: `_read_array` says what is wrong with the file
    for shape in shapes:
        if shape and shape[0] > MAX_POINTS:
            raise ValueError(f"{path}: the array holds {shape[0]:,} points; at most {MAX_POINTS:,} are read: subsample "
                             "the cloud first")


def _array_file_kind(path: Path) -> str:
    """What an array file is by its first bytes: ".npy", ".npz" (a zip archive), or a description of what else."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(8)
    except PermissionError:
        raise ValueError(f"{path}: cannot be read (permission denied); check the file's permissions") from None
    if start.startswith(b"\x93NUMPY"):
        return ".npy"
    if start.startswith(b"PK"):
        return ".npz"
    if start.startswith(b"\x1f\x8b"):
        return "gzip-compressed: decompress it first"
    if start and all(32 <= b < 127 or b in b"\t\r\n" for b in start):
        return "text: name it .xyz, .txt or .csv to read it as one point per line"
    return "something else, with no numpy header" if start else "empty"


def _npy_shape(handle) -> tuple[int, ...]:
    version = np.lib.format.read_magic(handle)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read_header(handle)[0]


def _validate(path: Path, points: np.ndarray) -> np.ndarray:
    if points.ndim != 2 or points.shape[1] not in ALLOWED_COLUMNS:
        raise ValueError(
            f"{path}: expected points of shape (N, 3) or (N, 6) (xyz, optionally normals or colours); "
            f"got {tuple(points.shape)}"
        )
    if len(points) == 0:
        raise ValueError(f"{path}: the file holds no points")
    if not np.issubdtype(points.dtype, np.number) or np.issubdtype(points.dtype, np.complexfloating):
        raise ValueError(f"{path}: expected real numbers; got dtype {points.dtype}")
    points = np.ascontiguousarray(points, dtype=np.float32)
    finite = np.isfinite(points)
    if not finite.all():
        row = int(np.nonzero(~finite.all(axis=1))[0][0])
        raise ValueError(f"{path}: contains NaN or Inf values (first at point {row}); repair or drop those points")
    return points


def _read_array(path: Path) -> np.ndarray:
    kind = _array_file_kind(path)
    if kind != path.suffix.lower():
        what = {".npy": "a numpy .npy array: name it .npy", ".npz": "a numpy .npz archive: name it .npz"}.get(kind, kind)
        raise ValueError(f"{path}: is not a numpy {path.suffix} file (it is {what})")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as err:  # numpy raises ValueError/OSError/EOFError/BadZipFile depending on the damage
        # numpy's own message may suggest allow_pickle=True: never do that for a file of unknown origin
        reason = "it holds pickled Python objects, which are not loaded" if "pickle" in str(err) else (
            "the file is truncated or damaged")
        raise ValueError(f"{path}: cannot be read as a numpy {path.suffix} array ({reason})") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        keys = list(loaded.files)
        if "points" in keys:
            key = "points"
        elif len(keys) == 1:
            key = keys[0]
        else:
            raise ValueError(f"{path}: expected an array named 'points' or a single array; found {keys or 'none'}")
        try:
            return loaded[key]
        except Exception as err:
            raise ValueError(f"{path}: cannot read array {key!r} ({err})") from err


def _split_line(line: str) -> list[str]:
    return line.replace(",", " ").replace(";", " ").split()


def _read_text(path: Path) -> np.ndarray:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file ({err})") from err
    lines = text.splitlines()
    # Skip leading lines that are not a row of >= 3 numbers: column names, a point count, comments.
    start, columns = None, 0
    for index, line in enumerate(lines):
        tokens = _split_line(line)
        if not tokens or tokens[0].startswith(("#", "//")):
            continue
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            continue
        if len(values) >= 3:
            start, columns = index, len(values)
            break
    if start is None:
        raise ValueError(f"{path}: no line holds 3 or more numbers; expected one point per line (x y z [a b c])")
    if columns not in ALLOWED_COLUMNS:
        raise ValueError(
            f"{path}: line {start + 1} has {columns} values; expected 3 (xyz) or 6 (xyz + normals/colours)"
        )
    body = lines[start:]
    data_lines = [line for line in body if line.strip()]
    try:  # fast path: one numpy conversion for the whole body
        flat = np.array(_split_line("\n".join(data_lines)), dtype=np.float64)
        if flat.size == columns * len(data_lines):
            return flat.reshape(-1, columns)
    except ValueError:
        pass
    rows = []  # slow path, to name the offending line
    for offset, line in enumerate(body):
        tokens = _split_line(line)
        if not tokens or tokens[0].startswith(("#", "//")):
            continue
        lineno = start + offset + 1
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            raise ValueError(f"{path}: line {lineno} is not numeric: {line.strip()[:80]!r}") from None
        if len(values) != columns:
            raise ValueError(f"{path}: line {lineno} has {len(values)} values; the first point line has {columns}")
        rows.append(values)
    return np.asarray(rows, dtype=np.float64)


def _read_mesh(path: Path, count: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """`(points, sampled)`: surface samples of a mesh, or the vertices (+ colours) of a point cloud."""
    try:
        import trimesh
    except ImportError as err:  # pragma: no cover - trimesh is in the `mesh` extra
        raise ImportError(f"reading {path.suffix} files needs trimesh: pip install 'dual-denoising[mesh]'") from err
    try:
        geometry = trimesh.load(path, process=False)  # processing would silently drop NaN vertices
    except Exception as err:  # trimesh raises many types on damaged files
        raise ValueError(f"{path}: cannot be read as a {path.suffix} file ({type(err).__name__}: {err})") from err
    if isinstance(geometry, trimesh.Scene):
        if geometry.is_empty:
            raise ValueError(f"{path}: the file holds no geometry (no vertices or faces were read)")
        parts = [name for name, g in geometry.geometry.items() if len(getattr(g, "vertices", ())) > 0]
        if len(parts) > 1:  # one object in several parts (common) or several objects: read as one, and say so
            shown = ", ".join(parts[:4]) + (", ..." if len(parts) > 4 else "")
            warnings.warn(f"{path.name}: the scene holds {len(parts)} meshes ({shown}), read as one object; if they "
                          "are separate objects, export the one to classify on its own", UserWarning, stacklevel=3)
        geometry = geometry.to_geometry()
    vertices = np.asarray(getattr(geometry, "vertices", np.empty((0, 3))))
    faces = getattr(geometry, "faces", None)
    if len(vertices) == 0:
        raise ValueError(f"{path}: the file holds no vertices")
    if not np.isfinite(vertices).all():
        row = int(np.nonzero(~np.isfinite(vertices).all(axis=1))[0][0])
        raise ValueError(f"{path}: vertex {row} is NaN or Inf; repair the mesh (its faces would be sampled wrongly)")
    if faces is not None and len(faces) > 0:
        if not geometry.area > 0:
            raise ValueError(f"{path}: the mesh has {len(faces)} faces but zero surface area; cannot sample it")
        points, _ = trimesh.sample.sample_surface(geometry, count, seed=rng)
        return np.asarray(points), True
    colors = getattr(geometry, "colors", None)
    if colors is not None and len(colors) == len(vertices):  # uint8 RGBA vertex colours -> RGB in [0, 1]
        return np.concatenate([vertices, np.asarray(colors)[:, :3] / 255.0], axis=1), False
    return vertices, False
