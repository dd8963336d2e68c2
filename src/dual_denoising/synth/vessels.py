"""SynthShapes generators for lathe-built shapes: bottles, vases, cups, bowls, pots, plants, cones and lamps."""


from __future__ import annotations

import math

import numpy as np
import trimesh

from .primitives import FABRIC, FOLIAGE, PALETTE, SOIL, MeshBuilder, _pick, _rotation, _start, _u


def _smooth_profile(heights, radii, samples: int = 24) -> np.ndarray:
    """A smooth `(samples, 2)` (radius, y) profile through control points, cosine-eased between them."""
    y = np.linspace(heights[0], heights[-1], samples)
    seg = np.clip(np.searchsorted(heights, y, side="right") - 1, 0, len(heights) - 2)
    s = (y - np.asarray(heights)[seg]) / (np.asarray(heights)[seg + 1] - np.asarray(heights)[seg])
    ease = (1 - np.cos(math.pi * s)) / 2
    r = np.asarray(radii)[seg] * (1 - ease) + np.asarray(radii)[seg + 1] * ease
    return np.column_stack([r, y])


def _vessel(outer: np.ndarray, wall: float, floor: float) -> np.ndarray:
    """Close an outer (radius, y) profile (bottom to rim) into an open vessel with a wall and a floor."""
    outer = np.asarray(outer, dtype=np.float64)
    inner = outer[::-1].copy()
    inner[:, 0] = np.maximum(inner[:, 0] - wall, 0.0)
    inner = inner[inner[:, 1] >= floor]
    rim_y = outer[-1, 1]
    return np.concatenate([[[0.0, 0.0]], outer, [[max(outer[-1, 0] - wall, 0.0), rim_y]], inner,
                           [[max(inner[-1, 0], 0.0), floor], [0.0, floor]]])


def make_bottle(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    R = 1.0
    hb = _u(rng, 1.8, 3.6)
    style = _pick(rng, ["wine", "water", "flat-shouldered"], p=[0.4, 0.4, 0.2])
    sh = {"wine": _u(rng, 1.0, 1.8), "water": _u(rng, 0.5, 1.0), "flat-shouldered": _u(rng, 0.2, 0.4)}[style]
    rn = _u(rng, 0.28, 0.45)
    nl = _u(rng, 0.6, 2.2)
    attrs["neck"] = "long" if nl > 1.4 else "short"
    a = np.linspace(0, math.pi / 2, 8)
    shoulder = np.column_stack([rn + (R - rn) * np.cos(a), hb + sh * np.sin(a)])
    if style == "wine":
        s = np.linspace(0, 1, 8)
        shoulder = np.column_stack([R - (R - rn) * (3 * s**2 - 2 * s**3), hb + sh * s])
    profile = np.concatenate([
        [[0, 0], [R * 0.92, 0], [R, 0.08]],
        shoulder,
        [[rn, hb + sh + nl], [rn * 1.15, hb + sh + nl], [rn * 1.15, hb + sh + nl + 0.15], [0, hb + sh + nl + 0.15]],
    ])
    b.lathe(profile, sections=24)
    cap = rng.random() < 0.5
    if cap:
        top = hb + sh + nl
        b.cylinder(rn * 1.25, top - 0.2, top + _u(rng, 0.3, 0.6), sections=16,
                   color=PALETTE[_pick(rng, list(PALETTE))])
    attrs["cap"] = cap
    attrs["style"] = style
    return b.build(), attrs


def make_vase(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    style = _pick(rng, ["bulbous", "cylindrical", "flared", "round"], p=[0.35, 0.2, 0.25, 0.2])
    H = _u(rng, 2.2, 4.5) if style != "round" else _u(rng, 1.6, 2.4)
    if style == "bulbous":
        hs = [0, 0.35, 0.75, 1.0]
        rs = [_u(rng, 0.5, 0.7), 1.0, _u(rng, 0.35, 0.5), _u(rng, 0.55, 0.75)]
    elif style == "cylindrical":
        hs = [0, 0.5, 1.0]
        rs = [_u(rng, 0.8, 1.0), _u(rng, 0.85, 1.0), _u(rng, 0.85, 1.1)]
    elif style == "flared":
        hs = [0, 0.15, 0.6, 1.0]
        rs = [_u(rng, 0.5, 0.7), _u(rng, 0.35, 0.5), _u(rng, 0.45, 0.6), 1.0]
    else:
        hs = [0, 0.45, 0.88, 1.0]
        rs = [_u(rng, 0.45, 0.6), 1.0, _u(rng, 0.35, 0.5), _u(rng, 0.4, 0.55)]
    outer = _smooth_profile(np.asarray(hs) * H, rs, samples=20)
    b.lathe(_vessel(outer, wall=0.05, floor=0.1), sections=28)
    handles = style in ("bulbous", "round") and rng.random() < 0.3  # amphora-like
    if handles:
        m = H * 0.18
        for sx in (-1, 1):
            rot = _rotation("z", -90) if sx > 0 else _rotation("z", 90)
            b.torus(m, 0.06, (sx * rs[-2] * 0.95, H * 0.7, 0), rot, arc=180, sections=12)
    attrs["handles"] = handles
    attrs["style"] = style
    return b.build(), attrs


def make_cup(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    R = 1.0
    H = _u(rng, 1.5, 2.6)
    rb = R * _u(rng, 0.75, 1.0)
    outer = np.array([[rb, 0.0], [rb, 0.05], [R, H]])
    b.lathe(_vessel(outer, wall=0.08, floor=0.15), sections=28)
    handle = rng.random() < 0.8
    if handle:
        m = H * _u(rng, 0.25, 0.33)
        arc = 220.0
        b.torus(m, _u(rng, 0.07, 0.12), ((rb + R) / 2 + 0.3 * m, H * 0.52, 0), _rotation("z", -arc / 2), arc=arc,
                sections=16)
    saucer = rng.random() < 0.2
    if saucer:
        sr = R * _u(rng, 1.6, 2.0)
        b.lathe([[0, -0.12], [sr * 0.6, -0.12], [sr, 0.02], [sr, 0.06], [0, -0.04]], sections=32)
    attrs["handle"] = handle
    attrs["saucer"] = saucer
    return b.build(), attrs


def make_bowl(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    R = 1.0
    deep = rng.random() < 0.5
    H = R * (_u(rng, 0.5, 0.7) if deep else _u(rng, 0.3, 0.48))
    rb = R * _u(rng, 0.35, 0.55)
    s = np.linspace(0, 1, 10)
    curve = _u(rng, 0.6, 1.0)
    outer = np.column_stack([rb + (R - rb) * np.sin(s * math.pi / 2) ** curve, H * (1 - np.cos(s * math.pi / 2))])
    if rng.random() < 0.5:  # foot ring
        foot = 0.06
        outer = np.concatenate([[[rb * 0.9, -foot], [rb * 0.9, 0.0]], outer])
    b.lathe(_vessel(outer, wall=0.05, floor=0.06), sections=32)
    attrs["style"] = "deep" if deep else "shallow"
    return b.build(), attrs


def make_flower_pot(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    R = 1.0
    H = _u(rng, 1.4, 2.4)
    rb = R * _u(rng, 0.6, 0.8)
    square = rng.random() < 0.25
    lip = rng.random() < 0.6
    if lip:
        outer = np.array([[rb, 0.0], [R * 0.93, H * 0.82], [R * 1.05, H * 0.82], [R * 1.05, H]])
    else:
        outer = np.array([[rb, 0.0], [R, H]])
    # A square planter is the same lathe with four sections, turned to face the front.
    b.lathe(_vessel(outer * [1.35 if square else 1.0, 1.0], wall=0.08, floor=0.1), sections=4 if square else 28,
            rotation=_rotation("y", 45) if square else None)
    attrs["shape"] = "square" if square else "round"
    soil = H * _u(rng, 0.82, 0.92)
    if square:
        b.box((R * 1.6, 0.05, R * 1.6), (0, soil - 0.025, 0), color=SOIL)
    else:
        b.cylinder(R * 0.9, soil - 0.05, soil, sections=24, color=SOIL)
    sprouts = rng.random() < 0.5
    if sprouts:
        for k in range(int(rng.integers(2, 6))):
            a = rng.uniform(0, 2 * math.pi)
            rr = rng.uniform(0, 0.5)
            length = _u(rng, 0.3, 0.7)
            rot = _rotation("y", math.degrees(a)) @ _rotation("z", _u(rng, -40, 40))
            b.sphere(1.0, (rr * math.cos(a), soil + length * 0.45, rr * math.sin(a)), scale=(0.12, length / 2, 0.04),
                     rotation=rot, rings=6, sections=8, color=FOLIAGE[int(rng.integers(len(FOLIAGE)))])
    saucer = not square and rng.random() < 0.3
    if saucer:
        b.cylinder(rb * 1.35, -0.08, 0.05, sections=28, radius_top=rb * 1.45)
    attrs["sprouts"] = sprouts
    attrs["saucer"] = saucer
    return b.build(), attrs


def make_plant(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    R = 1.0
    ph = _u(rng, 1.0, 1.8)
    b.lathe(_vessel(np.array([[R * 0.7, 0.0], [R, ph]]), wall=0.06, floor=0.1), sections=24)
    soil = ph * 0.9
    b.cylinder(R * 0.92, soil - 0.05, soil, sections=20, color=SOIL)
    style = _pick(rng, ["leafy", "bushy", "tree", "cactus"], p=[0.35, 0.25, 0.25, 0.15])
    green = lambda: FOLIAGE[int(rng.integers(len(FOLIAGE)))]  # noqa: E731
    H = ph * _u(rng, 2.0, 3.5)  # foliage height: the plant dominates its pot
    if style == "leafy":
        for k in range(int(rng.integers(6, 15))):
            a = rng.uniform(0, 360)
            tilt = _u(rng, 10, 65)
            length = H * _u(rng, 0.5, 1.0)
            rot = _rotation("y", a) @ _rotation("z", tilt)
            centre = rot @ np.array([0.0, length / 2, 0.0]) + np.array([0.0, soil, 0.0])
            b.sphere(1.0, centre, scale=(_u(rng, 0.15, 0.3), length / 2, 0.05), rotation=rot, rings=6, sections=8,
                     color=green())
    elif style == "bushy":
        for k in range(int(rng.integers(6, 13))):
            a = rng.uniform(0, 2 * math.pi)
            rr = _u(rng, 0.0, 1.0) * R * 1.1
            r = _u(rng, 0.4, 0.75) * R
            y = soil + r * 0.6 + _u(rng, 0, H * 0.5)
            b.sphere(r, (rr * math.cos(a), y, rr * math.sin(a)), rings=6, sections=10, color=green())
    elif style == "tree":
        trunk = H * _u(rng, 0.4, 0.6)
        b.rod((0, soil - 0.1, 0), (_u(rng, -0.2, 0.2), soil + trunk, _u(rng, -0.2, 0.2)), 0.1, color=SOIL)
        for k in range(int(rng.integers(5, 10))):
            a = rng.uniform(0, 2 * math.pi)
            rr = _u(rng, 0.0, 0.9) * R
            r = _u(rng, 0.45, 0.8) * R
            b.sphere(r, (rr * math.cos(a), soil + trunk + _u(rng, -0.2, 0.8) * R, rr * math.sin(a)), rings=6,
                     sections=10, color=green())
    else:  # cactus: a column with arms
        cr = R * _u(rng, 0.3, 0.5)
        col = green()
        b.cylinder(cr, soil - 0.1, soil + H, sections=12, color=col)
        b.sphere(cr, (0, soil + H, 0), rings=4, sections=12, color=col)
        for k in range(int(rng.integers(0, 4))):
            a = rng.uniform(0, 2 * math.pi)
            y = soil + H * _u(rng, 0.3, 0.6)
            reach = cr + _u(rng, 0.3, 0.6)
            elbow = (reach * math.cos(a), y, reach * math.sin(a))
            b.rod((0, y, 0), elbow, cr * 0.6, color=col)
            b.rod(elbow, (elbow[0], y + _u(rng, 0.4, 0.9) * H * 0.5, elbow[2]), cr * 0.6, color=col)
    attrs["style"] = style
    return b.build(), attrs


def make_cone(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    R = 1.0
    style = _pick(rng, ["traffic", "plain", "truncated"], p=[0.45, 0.35, 0.2])
    if style == "traffic":
        H = _u(rng, 2.5, 3.5)
        base = _u(rng, 1.2, 1.5)
        b.box((2 * base, 0.12, 2 * base), (0, 0.06, 0))
        top = R * _u(rng, 0.08, 0.15)
        b.cylinder(R, 0.12, H, radius_top=top, sections=24)
        if rng.random() < 0.7:  # a white reflective band
            y0, y1 = H * 0.45, H * 0.65
            r0, r1 = R + (top - R) * (y0 - 0.12) / (H - 0.12), R + (top - R) * (y1 - 0.12) / (H - 0.12)
            b.cylinder(r0 + 0.02, y0, y1, radius_top=r1 + 0.02, sections=24, color=PALETTE["white"])
    elif style == "plain":
        H = _u(rng, 1.2, 3.5)
        b.cylinder(R, 0.0, H, radius_top=0.0, sections=32)
    else:
        H = _u(rng, 1.0, 2.5)
        b.cylinder(R, 0.0, H, radius_top=R * _u(rng, 0.2, 0.45), sections=32)
    attrs["style"] = style
    return b.build(), attrs


def _shade(b: MeshBuilder, rng: np.random.Generator, y_bottom: float, r_bottom: float, r_top: float, height: float,
           color) -> None:
    """An open lampshade (a thin frustum wall, visible inside and out)."""
    outer = np.array([[r_bottom, 0.0], [r_top, height]])
    profile = np.concatenate([outer, outer[::-1] * [0.97, 1.0]])
    b.lathe(profile, base=(0, y_bottom, 0), sections=28, color=color)


def make_lamp(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    style = _pick(rng, ["floor", "small", "articulated", "arc"], p=[0.3, 0.3, 0.25, 0.15])
    shade_color = FABRIC if rng.random() < 0.5 else None
    if style == "floor":
        H = _u(rng, 1.3, 1.7)
        if rng.random() < 0.6:
            b.cylinder(_u(rng, 0.12, 0.2), 0.0, 0.03, sections=24)
        else:  # tripod
            for k in range(3):
                a = 2 * math.pi * k / 3
                b.rod((0, 0.4, 0), (0.3 * math.cos(a), 0.0, 0.3 * math.sin(a)), 0.02)
        b.rod((0, 0.0, 0), (0, H, 0), 0.02)
        sh = _u(rng, 0.2, 0.32)
        _shade(b, rng, H - sh * 0.6, _u(rng, 0.16, 0.24), _u(rng, 0.08, 0.16), sh, shade_color)
    elif style == "small":
        bh = _u(rng, 0.2, 0.35)
        if rng.random() < 0.5:  # a vase-shaped body
            prof = _smooth_profile(np.array([0, 0.5, 1.0]) * bh, [_u(rng, 0.05, 0.08), _u(rng, 0.08, 0.13), 0.02], 12)
            b.lathe(np.concatenate([[[0, 0]], prof, [[0, bh]]]), sections=20)
        else:
            b.cylinder(_u(rng, 0.07, 0.11), 0.0, 0.03, sections=20)
            b.rod((0, 0, 0), (0, bh, 0), 0.012)
        stem = _u(rng, 0.05, 0.15)
        b.rod((0, bh, 0), (0, bh + stem, 0), 0.008)
        sh = _u(rng, 0.18, 0.28)
        _shade(b, rng, bh + stem - sh * 0.3, _u(rng, 0.14, 0.22), _u(rng, 0.08, 0.14), sh, shade_color)
    elif style == "articulated":
        b.cylinder(_u(rng, 0.08, 0.12), 0.0, 0.03, sections=20)
        a1, a2 = _u(rng, 50, 80), _u(rng, -40, 10)
        l1, l2 = _u(rng, 0.3, 0.45), _u(rng, 0.3, 0.45)
        p0 = np.array([0.0, 0.03, 0.0])
        p1 = p0 + l1 * np.array([-math.cos(math.radians(a1)), math.sin(math.radians(a1)), 0])
        p2 = p1 + l2 * np.array([math.cos(math.radians(a2)), math.sin(math.radians(a2)), 0])
        b.rod(p0, p1, 0.015)
        b.rod(p1, p2, 0.015)
        b.sphere(0.025, p1, rings=4, sections=8)
        head = _rotation("z", _u(rng, -30, 10))
        hl = _u(rng, 0.1, 0.16)
        cone = np.array([[0.0, 0.0], [0.02, 0.0], [_u(rng, 0.06, 0.09), -hl], [_u(rng, 0.06, 0.09) * 0.95, -hl],
                         [0.018, -0.005]])
        b.lathe(cone, base=p2, sections=20, rotation=head)
    else:  # arc
        b.cylinder(_u(rng, 0.15, 0.22), 0.0, 0.05, sections=24)
        H = _u(rng, 1.2, 1.6)
        reach = _u(rng, 0.5, 0.8)
        b.rod((0, 0.05, 0), (0, H - reach, 0), 0.02)
        # A quarter circle from the top of the pole over to the lamp's head, then a short drop.
        b.torus(reach, 0.02, (reach, H - reach, 0), _rotation("z", 90), arc=90, sections=12)
        tip = (reach + _u(rng, 0.2, 0.5) * reach, H - _u(rng, 0.05, 0.2), 0)
        b.rod((reach, H, 0), tip, 0.02)
        dome = _u(rng, 0.15, 0.22)
        a = np.linspace(0, math.pi / 2, 8)
        prof = np.column_stack([dome * np.sin(a), dome * np.cos(a) * 0.8])
        prof = np.concatenate([prof, prof[::-1] * [0.96, 0.96]])
        b.lathe(prof, base=(tip[0], tip[1] - dome * 0.8, 0), sections=24, color=shade_color)
    attrs["style"] = style
    return b.build(), attrs
