"""SynthShapes-Scan: ScanObjectNN-like clouds of the SynthShapes meshes, as a depth camera would see them.

The complete, evenly sampled SynthShapes clouds are the CAD side of the paper's cross-domain claim (ModelNet40 ->
ScanObjectNN); these are the scan side, made from the very same meshes (same seed, classes and train/test split), so
that a drop in accuracy measures the change of domain and nothing else:

- **one view.** A virtual depth camera at a random azimuth (all around the object) and elevation 15-45 degrees sees
  the object through the z-buffer of `synth.render`; every covered pixel is back-projected to a 3D point, so the back
  and the underside are missing and the density follows the pixel grid;
- **sensor noise.** Gaussian depth noise along the ray (0.5% of the depth), and dropout that grows at grazing angles
  (no return below a 15 degree incidence, certain above 35) plus 5% of returns lost at random;
- **variants** in the spirit of ScanObjectNN's three:
    `object`      the object's points only (OBJ_ONLY);
    `background`  the same view of a scene: a floor and two neighbouring SynthShapes objects of other classes beside
                  it, cropped to the object's bounding box enlarged by 15%, so floor and clutter points come in (OBJ_BG);
    `perturbed`   the background crop with the box translated by up to 25% of its size either way per horizontal
                  axis (a 50% range), rotated about the up axis by up to 45 degrees and scaled by 0.8-1.2: parts of the
                  object are cut off and more background comes in (PB_T50_RS).

Clouds keep the scene's frame (y up); like every cloud they are centred and scaled to the unit sphere when a model
reads them, so floor and clutter points also move the centre and the scale, as they do for real scans.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import trimesh
from datasets import Dataset, DatasetDict
from PIL import Image
from tqdm.auto import tqdm

from ..data import save_triples, triples_features
from .classes import GENERATORS
from .primitives import GENERATOR_VERSION
from .render import contact_sheet, first_hits, frame_camera, look_at_rotation, project, render_points
from .synthshapes import _shape_streams, check_class_list, check_output, shape_seed, split_sizes

SCAN_VARIANTS = {"object": "OBJ_ONLY", "background": "OBJ_BG", "perturbed": "PB_T50_RS"}  # ours -> ScanObjectNN's
DEPTH_NOISE = 0.005  # relative depth noise (sigma / depth)
GRAZING = (math.radians(15.0), math.radians(35.0))  # incidence angles below which a return is lost / above which kept
DROPOUT = 0.05  # returns lost at random
BOX_MARGIN = 0.15  # the background crop: the object's bounding box enlarged by this fraction of its size


def depth_scan(
    vertices: np.ndarray,
    faces: np.ndarray,
    azimuth: float,
    elevation: float,
    rng: np.random.Generator,
    image_size: int = 160,
    frame: tuple[np.ndarray, float] | None = None,
    fill: float = 0.92,
    distance: float = 2.8,
) -> tuple[np.ndarray, np.ndarray]:
    """Back-projected depth pixels of one view of a mesh (or scene), with sensor noise and dropout.

    Args:
        vertices: `(V, 3)` world coordinates; faces: `(F, 3)`.
        azimuth, elevation: camera angles in degrees, as in `render_mesh`.
        frame: `(centre, radius)` of the sphere the camera frames (default: the mesh's bounding sphere); a scene is
            framed on its object.
    Returns:
        `points (M, 3)` in world coordinates and `face_id (M,)`, the face each point lies on.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if frame is None:
        centre = (vertices.min(0) + vertices.max(0)) / 2.0
        radius = float(np.linalg.norm(vertices - centre, axis=1).max()) or 1.0
    else:
        centre, radius = np.asarray(frame[0], dtype=np.float64), float(frame[1])
    camera_distance, focal = frame_camera(radius, image_size, fill, distance)
    rotation = look_at_rotation(azimuth, elevation)
    _, depth, px, py = project(vertices - centre, rotation, camera_distance, focal, image_size)
    pixel, face_id, inv_depth = first_hits(px, py, depth, faces, image_size)
    # 1. back-project each pixel centre: camera coordinates (x right, y up, the camera looking along -z)
    d = 1.0 / inv_depth
    d = d * (1.0 + DEPTH_NOISE * rng.standard_normal(len(d)))  # noise along the ray
    half = image_size / 2.0
    u, v = pixel % image_size + 0.5, pixel // image_size + 0.5
    cam = np.stack([(u - half) * d / focal, -(v - half) * d / focal, camera_distance - d], axis=1)
    points = cam @ rotation + centre  # rotation is orthonormal: world = R^T cam
    # 2. incidence: the angle between the face and the ray; returns fade out at grazing angles
    tri = vertices[faces[face_id]]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True).clip(1e-12)
    ray = points - (rotation[2] * camera_distance + centre)
    ray /= np.linalg.norm(ray, axis=1, keepdims=True).clip(1e-12)
    incidence = np.arcsin(np.abs((normal * ray).sum(1)).clip(0.0, 1.0))  # 90 degrees: facing the camera
    keep_prob = ((incidence - GRAZING[0]) / (GRAZING[1] - GRAZING[0])).clip(0.0, 1.0) * (1.0 - DROPOUT)
    keep = rng.random(len(points)) < keep_prob
    return points[keep].astype(np.float32), face_id[keep]


def _floor(centre: np.ndarray, y: float, half: float) -> tuple[np.ndarray, np.ndarray]:
    x, z = centre[0], centre[2]
    vertices = np.array([[x - half, y, z - half], [x + half, y, z - half], [x + half, y, z + half],
                         [x - half, y, z + half]])
    return vertices, np.array([[0, 1, 2], [0, 2, 3]])


def scan_scene(mesh: trimesh.Trimesh, neighbours: list[trimesh.Trimesh], rng: np.random.Generator,
               camera_azimuth: float = 0.0):
    """The object on a floor with `neighbours` standing beside or behind it (never between it and a camera at
    `camera_azimuth` degrees): `(vertices, faces, object_faces)`."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    lo, hi = vertices.min(0), vertices.max(0)
    centre, radius = (lo + hi) / 2.0, float(np.linalg.norm(hi - lo)) / 2.0
    parts_v, parts_f, offset = [vertices], [np.asarray(mesh.faces)], len(vertices)
    for other in neighbours:  # stood on the same floor, close enough that their boxes overlap the object's crop
        v = np.asarray(other.vertices, dtype=np.float64)
        size = rng.uniform(0.5, 0.8) * radius
        v = (v - (v.min(0) + v.max(0)) / 2.0) * size / (float(np.linalg.norm(v.max(0) - v.min(0))) / 2.0)
        towards_camera = math.radians(90.0 - camera_azimuth)  # the camera's direction as an angle in the x-z plane
        angle = towards_camera + math.radians(rng.uniform(60.0, 300.0))
        gap = 0.8 * radius + 0.8 * size
        v += [centre[0] + gap * math.cos(angle), lo[1] - v[:, 1].min(), centre[2] + gap * math.sin(angle)]
        parts_v.append(v)
        parts_f.append(np.asarray(other.faces) + offset)
        offset += len(v)
    floor_v, floor_f = _floor(centre, lo[1] - 1e-3, 1.5 * radius)
    parts_v.append(floor_v)
    parts_f.append(floor_f + offset)
    return np.concatenate(parts_v), np.concatenate(parts_f), len(mesh.faces)


def crop_box(points: np.ndarray, lo: np.ndarray, hi: np.ndarray, yaw: float = 0.0) -> np.ndarray:
    """Boolean mask of `points` inside the box `[lo, hi]` turned by `yaw` radians about the up axis (its centre)."""
    centre = (lo + hi) / 2.0
    c, s = math.cos(yaw), math.sin(yaw)
    local = points - centre
    x, z = c * local[:, 0] + s * local[:, 2], -s * local[:, 0] + c * local[:, 2]
    half = (hi - lo) / 2.0
    return (np.abs(x) <= half[0]) & (np.abs(local[:, 1]) <= half[1]) & (np.abs(z) <= half[2])


def _crop(lo: np.ndarray, hi: np.ndarray, variant: str, rng: np.random.Generator):
    """The crop box `(box_lo, box_hi, yaw)` of the `background` and `perturbed` variants for an object box `[lo, hi]`."""
    margin = BOX_MARGIN * (hi - lo)
    box_lo, box_hi, yaw = lo - margin, hi + margin, 0.0
    box_lo[1] = lo[1] - 0.02 * (hi - lo)[1]  # the floor's returns just under the object are inside
    if variant == "perturbed":
        size, scale = box_hi - box_lo, rng.uniform(0.8, 1.2)
        shift = rng.uniform(-0.25, 0.25, 3) * size * [1.0, 0.0, 1.0]
        centre = (box_lo + box_hi) / 2.0 + shift
        box_lo, box_hi = centre - scale * size / 2.0, centre + scale * size / 2.0
        yaw = math.radians(rng.uniform(-45.0, 45.0))
    return box_lo, box_hi, yaw


def scan_points(
    mesh: trimesh.Trimesh,
    variant: str,
    rng: np.random.Generator,
    num_points: int = 2048,
    neighbours: list[trimesh.Trimesh] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One SynthShapes-Scan cloud of `mesh` (see the module docstring for the variants): `points (num_points, 3)`
    float32 and `is_object (num_points,)`, which tells the object's returns from the floor's and the clutter's.
    `neighbours` are the clutter of the `background` and `perturbed` variants (two meshes)."""
    if variant not in SCAN_VARIANTS:
        raise ValueError(f"unknown scan variant {variant!r}; choose one of {', '.join(SCAN_VARIANTS)}")
    azimuth, elevation = rng.uniform(0.0, 360.0), rng.uniform(15.0, 45.0)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    lo, hi = vertices.min(0), vertices.max(0)
    frame = ((lo + hi) / 2.0, float(np.linalg.norm(hi - lo)) / 2.0)
    object_faces = len(mesh.faces)
    if variant == "object":
        scene_v, scene_f = vertices, np.asarray(mesh.faces)
    else:
        if not neighbours:
            raise ValueError(f"the {variant!r} variant needs neighbouring meshes for its clutter")
        scene_v, scene_f, _ = scan_scene(mesh, neighbours, rng, azimuth)
    points, face_id = np.zeros((0, 3), np.float32), np.zeros(0, np.int64)
    for image_size in (160, 240, 360):  # a thin object seen from the side covers few pixels: look closer
        points, face_id = depth_scan(scene_v, scene_f, azimuth, elevation, rng, image_size=image_size, frame=frame)
        if variant != "object":
            seen = int((face_id < object_faces).sum())
            for _ in range(10):  # a perturbed box that cuts away nearly all of the object is drawn again
                inside = crop_box(points, *_crop(lo, hi, variant, rng))
                if (face_id[inside] < object_faces).sum() >= 0.1 * seen:
                    break
            points, face_id = points[inside], face_id[inside]
        if len(points) >= num_points:
            break
    if not (face_id < object_faces).any():
        raise ValueError("the scan saw nothing of the object")
    choice = rng.choice(len(points), num_points, replace=len(points) < num_points)
    return points[choice], face_id[choice] < object_faces


def scan_neighbours(class_name: str, classes: list[str], rng: np.random.Generator, count: int = 2):
    """`count` meshes of other classes than `class_name`, drawn with `rng` (the clutter of one scan)."""
    others = [c for c in classes if c != class_name] or list(classes)
    picks = rng.choice(len(others), count, replace=len(others) < count)
    return [GENERATORS[others[i]](np.random.default_rng(rng.integers(2**63)))[0] for i in picks]


# ---------------------------------------------------------------------------------------------------------------------
# The dataset: `dual-denoising make-synthetic --scan VARIANT`.
# ---------------------------------------------------------------------------------------------------------------------
def scan_shape(class_name: str, index: int, seed: int, variant: str, classes: list[str], num_points: int = 2048):
    """Shape `index` of `class_name` under `seed` (the SynthShapes mesh) scanned as `variant`: `(points, is_object)`,
    where `is_object (num_points,)` tells the object's returns from the floor's and the clutter's. The viewpoint is
    the same for every variant of a shape."""
    mesh = GENERATORS[class_name](_shape_streams(class_name, index, seed)[0])[0]
    view_rng, clutter_rng = (np.random.default_rng(c) for c in shape_seed(class_name, index, seed, 7).spawn(2))
    neighbours = None if variant == "object" else scan_neighbours(class_name, classes, clutter_rng)
    return scan_points(mesh, variant, view_rng, num_points, neighbours)


def build_synthshapes_scan(
    variant: str,
    shapes_per_class: int = 200,
    seed: int = 0,
    num_points: int = 2048,
    classes: list[str] | None = None,
    test_fraction: float = 0.2,
    progress: bool = True,
) -> tuple[DatasetDict, dict]:
    """SynthShapes-Scan as a train/test `DatasetDict` (shape_id, points, label; no renders or captions): the same
    shapes, classes and split as `build_synthshapes` with the same arguments, each scanned once as `variant`."""
    if variant not in SCAN_VARIANTS:
        raise ValueError(f"unknown scan variant {variant!r}; choose one of {', '.join(SCAN_VARIANTS)}")
    classes = check_class_list(classes)
    n_train, n_test = split_sizes(shapes_per_class, test_fraction)
    columns = {split: {"shape_id": [], "points": [], "label": []} for split in ("train", "test")[: 1 + bool(n_test)]}
    bar = tqdm(total=len(classes) * shapes_per_class, desc=f"SynthShapes-Scan ({variant})", unit="shape",
               disable=not progress)
    for label, class_name in enumerate(classes):
        for index in range(shapes_per_class):
            points, _ = scan_shape(class_name, index, seed, variant, classes, num_points)
            target = columns["train" if index < n_train else "test"]
            target["shape_id"].append(f"{class_name}_{index:04d}")
            target["points"].append(points)
            target["label"].append(label)
            bar.update()
    bar.close()
    features = triples_features(class_names=classes, with_images=False, with_captions=False)
    dataset = DatasetDict({split: Dataset.from_dict(c, features=features) for split, c in columns.items()})
    metadata = {
        "dataset": "synthshapes-scan",
        "variant": variant,
        "scanobjectnn_analogue": SCAN_VARIANTS[variant],
        "generator_version": GENERATOR_VERSION,
        "classes": classes,
        "splits": {split: len(ds) for split, ds in dataset.items()},
        "seed": int(seed),
        "shapes_per_class": int(shapes_per_class),
        "train_shapes_per_class": n_train,
        "test_shapes_per_class": n_test,
        "num_points": int(num_points),
        "points": "one depth-camera view (azimuth 0-360, elevation 15-45 degrees), back-projected pixels with 0.5% "
                  "depth noise and grazing-angle dropout, in the scene's frame (y up), not normalised",
    }
    return dataset, metadata


def scan_preview_sheet(variant: str, classes: list[str] | None = None, shapes_per_class: int = 6, seed: int = 0,
                       tile_size: int = 96) -> Image.Image:
    """A contact sheet of scans: one row per class, its first `shapes_per_class` shapes scanned as `variant` and
    drawn from the front-left (azimuth 30, elevation 25), the background's and the clutter's returns in orange."""
    classes = check_class_list(classes)
    rows = []
    for class_name in classes:
        tiles = []
        for index in range(shapes_per_class):
            points, is_object = scan_shape(class_name, index, seed, variant, classes)
            tiles.append(render_points(points, image_size=tile_size, highlight=~is_object))
        rows.append((class_name, tiles))
    return contact_sheet(rows, panels=2 if len(rows) > 12 else 1)


def save_synthshapes_scan(
    out_dir: str | Path,
    variant: str,
    shapes_per_class: int = 200,
    seed: int = 0,
    num_points: int = 2048,
    classes: list[str] | None = None,
    test_fraction: float = 0.2,
    overwrite: bool = False,
    preview: str | Path | None = None,
    progress: bool = True,
) -> tuple[Path, dict]:
    """Generate SynthShapes-Scan (`build_synthshapes_scan`) and write it with `save_triples`; with `preview`, also a
    contact sheet PNG of the scans (`scan_preview_sheet`)."""
    out_dir = check_output(out_dir, overwrite, preview)
    dataset, metadata = build_synthshapes_scan(variant, shapes_per_class, seed, num_points, classes, test_fraction,
                                               progress=progress)
    save_triples(dataset, out_dir, metadata, overwrite=overwrite)
    if preview is not None:
        Path(preview).parent.mkdir(parents=True, exist_ok=True)
        scan_preview_sheet(variant, metadata["classes"], min(6, shapes_per_class), seed).save(preview)
    return out_dir, metadata
