"""Mesh primitives for SynthShapes: numpy (vertices, faces) pairs and `MeshBuilder`, which joins parts into one
`trimesh.Trimesh` (y up, front +z, normalised so the longest side is 1).
"""


from __future__ import annotations

import math

import numpy as np
import trimesh

GENERATOR_VERSION = "1"

# Colours a shape's main parts may take: shared by every class, so colour alone never tells the class.
PALETTE: dict[str, tuple[float, float, float]] = {
    "brown": (0.55, 0.36, 0.22),
    "beige": (0.80, 0.68, 0.50),
    "grey": (0.60, 0.61, 0.64),
    "white": (0.86, 0.86, 0.84),
    "black": (0.25, 0.25, 0.27),
    "red": (0.74, 0.22, 0.20),
    "blue": (0.24, 0.40, 0.72),
    "green": (0.30, 0.56, 0.32),
    "yellow": (0.88, 0.73, 0.22),
    "orange": (0.90, 0.50, 0.18),
}
DARK = (0.13, 0.13, 0.15)  # screens, tyres, keys
SOIL = (0.30, 0.20, 0.12)
FOLIAGE = ((0.22, 0.50, 0.20), (0.30, 0.60, 0.25), (0.18, 0.42, 0.22), (0.40, 0.62, 0.28))
FABRIC = (0.90, 0.90, 0.88)  # pillows, sheets


# ---------------------------------------------------------------------------------------------------------------------
# Primitives: (vertices (V, 3), faces (F, 3)) pairs in numpy. y is the up axis.
# ---------------------------------------------------------------------------------------------------------------------


def _rotation(axis: str, degrees: float) -> np.ndarray:
    """(3, 3) rotation matrix about a coordinate axis ('x', 'y' or 'z')."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _align_y(direction: np.ndarray) -> np.ndarray:
    """(3, 3) rotation taking the +y axis onto `direction` (Rodrigues)."""
    d = direction / np.linalg.norm(direction)
    y = np.array([0.0, 1.0, 0.0])
    v, c = np.cross(y, d), float(y @ d)
    if c < -1 + 1e-9:
        return np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def _box_mesh() -> tuple[np.ndarray, np.ndarray]:
    """Unit cube centred on the origin."""
    v = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)], dtype=np.float64)
    f = np.array(
        [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
    )  # fmt: skip
    return v, f


_BOX = _box_mesh()


def _grid_faces(rows: int, cols: int, wrap: bool) -> np.ndarray:
    """Two triangles per cell of a `rows` x `cols` vertex grid (row-major), optionally wrapping the columns."""
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols if wrap else cols - 1), indexing="ij")
    r, c = r.ravel(), c.ravel()
    c1 = (c + 1) % cols
    a, b, d, e = r * cols + c, r * cols + c1, (r + 1) * cols + c, (r + 1) * cols + c1
    return np.concatenate([np.stack([a, d, b], 1), np.stack([b, d, e], 1)])


def _lathe_mesh(profile: np.ndarray, sections: int) -> tuple[np.ndarray, np.ndarray]:
    """Surface of revolution about the y axis of a `(P, 2)` profile of `(radius, y)` points."""
    theta = np.linspace(0.0, 2.0 * math.pi, sections, endpoint=False)
    r, y = profile[:, 0:1], profile[:, 1:2]
    v = np.stack(
        [r * np.cos(theta), np.broadcast_to(y, (len(profile), sections)), r * np.sin(theta)], axis=-1
    ).reshape(-1, 3)
    return v, _grid_faces(len(profile), sections, wrap=True)


def _triangulate(polygon: np.ndarray) -> np.ndarray:
    """Ear-clipping triangulation of a simple 2D polygon `(K, 2)`; returns `(K - 2, 3)` vertex indices."""
    pts = np.asarray(polygon, dtype=np.float64)
    signed = 0.5 * np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
    idx = list(range(len(pts))) if signed > 0 else list(range(len(pts)))[::-1]
    tris = []
    guard = 0
    while len(idx) > 3 and guard < 10 * len(pts):
        guard += 1
        for k in range(len(idx)):
            i, j, n = idx[k - 1], idx[k], idx[(k + 1) % len(idx)]
            a, b, c = pts[i], pts[j], pts[n]
            if (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]) <= 1e-12:
                continue  # reflex corner
            others = pts[[m for m in idx if m not in (i, j, n)]]
            if len(others):
                d0 = (b[0] - a[0]) * (others[:, 1] - a[1]) - (b[1] - a[1]) * (others[:, 0] - a[0])
                d1 = (c[0] - b[0]) * (others[:, 1] - b[1]) - (c[1] - b[1]) * (others[:, 0] - b[0])
                d2 = (a[0] - c[0]) * (others[:, 1] - c[1]) - (a[1] - c[1]) * (others[:, 0] - c[0])
                if ((d0 > 0) & (d1 > 0) & (d2 > 0)).any():
                    continue  # another vertex inside this ear
            tris.append((i, j, n))
            idx.pop(k)
            break
        else:  # numerically degenerate polygon: fall back to a fan
            break
    for k in range(1, len(idx) - 1):
        tris.append((idx[0], idx[k], idx[k + 1]))
    return np.array(tris, dtype=np.int64)


def _prism_mesh(polygon: np.ndarray, depth: float) -> tuple[np.ndarray, np.ndarray]:
    """A 2D polygon `(K, 2)` in the xy plane extruded along z from -depth/2 to +depth/2."""
    k = len(polygon)
    caps = _triangulate(polygon)
    front = np.column_stack([polygon, np.full(k, depth / 2)])
    back = np.column_stack([polygon, np.full(k, -depth / 2)])
    i = np.arange(k)
    j = (i + 1) % k
    sides = np.concatenate([np.stack([i, j, k + j], 1), np.stack([i, k + j, k + i], 1)])
    faces = np.concatenate([caps, caps[:, ::-1] + k, sides])
    return np.concatenate([front, back]), faces


def _torus_mesh(
    major: float, minor: float, arc: float = 360.0, sections: int = 24, tube_sections: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """A torus (or an arc of one, `arc` degrees from +x towards +y) around the z axis, lying in the xy plane."""
    full = arc >= 360.0
    u = np.linspace(0.0, math.radians(arc), sections, endpoint=not full)
    v = np.linspace(0.0, 2.0 * math.pi, tube_sections, endpoint=False)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    ring = major + minor * np.cos(vv)
    verts = np.stack([ring * np.cos(uu), ring * np.sin(uu), minor * np.sin(vv)], -1).reshape(-1, 3)
    faces = _grid_faces(sections, tube_sections, wrap=True)
    if full:  # close the seam between the last and the first ring
        last = (sections - 1) * tube_sections + np.arange(tube_sections)
        first = np.arange(tube_sections)
        nxt = (np.arange(tube_sections) + 1) % tube_sections
        seam = np.concatenate(
            [np.stack([last, first, last[nxt]], 1), np.stack([last[nxt], first, first[nxt]], 1)]
        )
        faces = np.concatenate([faces, seam])
    return verts, faces


class MeshBuilder:
    """Collects coloured parts and returns one normalised `trimesh.Trimesh`.

    Every method places one part: sizes in (x, y, z), `center` is the part's centre unless said otherwise, `rotation`
    a (3, 3) matrix applied about that centre, `color` an RGB triple in [0, 1] (default: the shape's main colour).
    """

    def __init__(self, color: tuple[float, float, float]):
        self.color = color
        self._parts: list[tuple[np.ndarray, np.ndarray, tuple[float, float, float]]] = []

    def add(self, vertices, faces, center=(0.0, 0.0, 0.0), rotation=None, color=None) -> None:
        v = np.asarray(vertices, dtype=np.float64)
        if rotation is not None:
            v = v @ np.asarray(rotation).T
        self._parts.append((v + np.asarray(center, dtype=np.float64), np.asarray(faces), color or self.color))

    def box(self, size, center, rotation=None, color=None) -> None:
        self.add(_BOX[0] * np.asarray(size, dtype=np.float64), _BOX[1], center, rotation, color)

    def rod(self, start, end, radius: float, sections: int = 8, color=None) -> None:
        """A closed cylinder from `start` to `end`."""
        start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
        length = float(np.linalg.norm(end - start))
        profile = np.array([[0.0, 0.0], [radius, 0.0], [radius, length], [0.0, length]])
        v, f = _lathe_mesh(profile, sections)
        self.add(v, f, start, _align_y(end - start), color)

    def bar(self, start, end, width: float, depth: float | None = None, color=None) -> None:
        """A square-section beam from `start` to `end` (width across x, depth across z before alignment)."""
        start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
        length = float(np.linalg.norm(end - start))
        v = _BOX[0] * np.array([width, length, depth or width]) + np.array([0.0, length / 2, 0.0])
        self.add(v, _BOX[1], start, _align_y(end - start), color)

    def lathe(self, profile, base=(0.0, 0.0, 0.0), sections: int = 24, scale=(1.0, 1.0, 1.0), rotation=None,
              color=None) -> None:
        """Surface of revolution of `(radius, y)` profile points; `base` is where profile y = 0 lands."""
        v, f = _lathe_mesh(np.asarray(profile, dtype=np.float64), sections)
        self.add(v * np.asarray(scale), f, base, rotation, color)

    def cylinder(self, radius: float, y0: float, y1: float, center_xz=(0.0, 0.0), sections: int = 24,
                 radius_top: float | None = None, scale=(1.0, 1.0, 1.0), color=None) -> None:
        """A closed vertical cylinder (or frustum with `radius_top`) from y0 to y1."""
        rt = radius if radius_top is None else radius_top
        profile = [[0.0, 0.0], [radius, 0.0], [rt, y1 - y0], [0.0, y1 - y0]]
        self.lathe(profile, (center_xz[0], y0, center_xz[1]), sections, scale, color=color)

    def sphere(self, radius: float, center, scale=(1.0, 1.0, 1.0), rings: int = 8, sections: int = 12,
               rotation=None, color=None) -> None:
        a = np.linspace(0.0, math.pi, rings + 1)
        profile = np.column_stack([np.sin(a), -np.cos(a)]) * radius
        v, f = _lathe_mesh(profile, sections)
        self.add(v * np.asarray(scale), f, center, rotation, color)

    def torus(self, major: float, minor: float, center, rotation=None, arc: float = 360.0, sections: int = 24,
              color=None) -> None:
        """A torus (or arc) in the xy plane before `rotation`."""
        v, f = _torus_mesh(major, minor, arc, sections)
        self.add(v, f, center, rotation, color)

    def prism(self, polygon, depth: float, center=(0.0, 0.0, 0.0), rotation=None, color=None) -> None:
        """A polygon drawn in the xy plane, extruded along z (before `rotation`)."""
        v, f = _prism_mesh(np.asarray(polygon, dtype=np.float64), depth)
        self.add(v, f, center, rotation, color)

    def build(self) -> trimesh.Trimesh:
        """One mesh: bounding box centred on the origin, longest side 1, per-face colours."""
        offsets = np.cumsum([0] + [len(v) for v, _, _ in self._parts])
        vertices = np.concatenate([v for v, _, _ in self._parts])
        faces = np.concatenate([f + o for (_, f, _), o in zip(self._parts, offsets)])
        colors = np.concatenate([np.tile(c, (len(f), 1)) for _, f, c in self._parts])
        lo, hi = vertices.min(0), vertices.max(0)
        vertices = (vertices - (lo + hi) / 2.0) / float((hi - lo).max())
        rgba = np.column_stack([np.clip(colors * 255.0 + 0.5, 0, 255), np.full(len(colors), 255)]).astype(np.uint8)
        return trimesh.Trimesh(vertices=vertices, faces=faces, face_colors=rgba, process=False)


def _main_color(rng: np.random.Generator) -> tuple[str, tuple[float, float, float]]:
    name = list(PALETTE)[int(rng.integers(len(PALETTE)))]
    return name, PALETTE[name]


def _start(rng: np.random.Generator) -> tuple[MeshBuilder, dict]:
    """A builder in a random palette colour and the attribute dict that records that colour."""
    name, rgb = _main_color(rng)
    return MeshBuilder(rgb), {"color": name}


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _pick(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))]
