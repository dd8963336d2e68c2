"""SynthShapes generators for everything else: vehicles, instruments, people, architecture, fixtures and electronics."""


from __future__ import annotations

import math

import numpy as np
import trimesh

from .primitives import DARK, PALETTE, MeshBuilder, _pick, _prism_mesh, _rotation, _start, _torus_mesh, _u
from .vessels import _smooth_profile, _vessel

_Y_TO_X = _rotation("z", -90)  # lathe axis (+y) onto +x
_XZ_PLANE = _rotation("x", 90)  # prism polygon (x, y) onto (x, z), extrusion onto -y


def make_airplane(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    L = 1.0
    fr = L * _u(rng, 0.04, 0.07)
    style = _pick(rng, ["jet", "propeller"], p=[0.7, 0.3])
    s = np.linspace(0, 1, 16)
    nose, tail = _u(rng, 0.08, 0.15), _u(rng, 0.25, 0.35)
    radius = np.where(s > 1 - nose, fr * np.sqrt(np.clip((1 - s) / nose, 0, 1)),
                      np.where(s < tail, fr * (0.25 + 0.75 * np.clip(s / tail, 0, 1) ** 0.7), fr))
    b.lathe(np.column_stack([radius, s * L]), base=(-L / 2, 0, 0), sections=16, rotation=_Y_TO_X)
    # Wings: a trapezoid per side, swept back, with dihedral.
    swept = style == "jet" and rng.random() < 0.8
    span = L * _u(rng, 0.4, 0.6)
    cr = L * _u(rng, 0.15, 0.25)
    ct = cr * _u(rng, 0.3, 0.6)
    sweep = span * (_u(rng, 0.4, 0.8) if swept else _u(rng, 0.0, 0.15))
    x_le = L * _u(rng, 0.05, 0.15)
    wy = fr * _pick(rng, [-0.6, 0.0, 0.7], p=[0.6, 0.2, 0.2])
    dih = _u(rng, 0.0, 7.0)
    for sz in (-1, 1):
        poly = np.array([[x_le, 0], [x_le - sweep, sz * span], [x_le - sweep - ct, sz * span], [x_le - cr, 0]])
        b.prism(poly, fr * 0.25, (0, wy, 0), _rotation("x", -sz * dih) @ _XZ_PLANE)
    # Tail: stabilisers and a fin.
    hs, hc = span * _u(rng, 0.3, 0.45), cr * _u(rng, 0.45, 0.65)
    xt = -L / 2 + hc + 0.02
    for sz in (-1, 1):
        poly = np.array([[xt, 0], [xt - hs * 0.5, sz * hs], [xt - hs * 0.5 - hc * 0.5, sz * hs], [xt - hc, 0]])
        b.prism(poly, fr * 0.15, (0, fr * 0.3, 0), _XZ_PLANE)
    fh = L * _u(rng, 0.1, 0.18)
    fin = np.array([[xt + 0.02, 0], [xt - fh * 0.8, fh], [xt - fh * 0.8 - hc * 0.5, fh], [-L / 2, 0]])
    b.prism(fin, fr * 0.2, (0, fr * 0.5, 0))
    engines = 0
    if style == "jet":
        engines = int(rng.choice([0, 2, 4], p=[0.15, 0.6, 0.25]))
        for k in range(engines // 2):
            zf = (0.35 if engines == 2 else 0.3 + 0.3 * k) * span
            xc = x_le - sweep * zf / span - 0.02
            el = L * _u(rng, 0.1, 0.15)
            nacelle = [[0.0, 0.0], [fr * 0.5, 0.0], [fr * 0.42, el], [0.0, el]]
            for sz in (-1, 1):
                b.lathe(nacelle, base=(xc - el * 0.5, wy - fr * 0.7, sz * zf), sections=12, rotation=_Y_TO_X)
        attrs["engines"] = engines
    else:  # a nose propeller
        b.sphere(fr * 0.5, (L / 2, 0, 0), scale=(1.6, 1, 1), rings=6, sections=10, color=DARK)
        pl = fr * _u(rng, 2.5, 4.0)
        blade = _rotation("x", _u(rng, 0, 180))
        b.box((0.01, 2 * pl, fr * 0.35), (L / 2 + fr * 0.6, 0, 0), blade, color=DARK)
    attrs["wings"] = "swept" if swept else "straight"
    attrs["style"] = style
    return b.build(), attrs


def make_car(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    style = _pick(rng, ["sedan", "hatchback", "suv", "pickup"], p=[0.35, 0.25, 0.25, 0.15])
    L, W = _u(rng, 3.8, 4.8), _u(rng, 1.6, 1.9)
    tall = style in ("suv", "pickup")
    c = _u(rng, 0.2, 0.28) if tall else _u(rng, 0.14, 0.2)
    hb = c + _u(rng, 0.5, 0.6) + (0.15 if tall else 0.0)  # belt line
    hr = hb + _u(rng, 0.4, 0.52)  # roof
    nose = [(L, c), (L, hb - 0.15), (L - 0.06, hb)]
    if style == "sedan":
        cabin = [(0.72 * L, hb + 0.04), (0.55 * L, hr), (0.3 * L, hr), (0.15 * L, hb + 0.04)]
        tail = [(0.0, hb), (0.0, c + 0.15)]
    elif style == "hatchback":
        cabin = [(0.74 * L, hb + 0.04), (0.57 * L, hr), (0.15 * L, hr), (0.02 * L, hb + 0.1)]
        tail = [(0.0, hb), (0.0, c + 0.15)]
    elif style == "suv":
        cabin = [(0.76 * L, hb + 0.04), (0.62 * L, hr), (0.04 * L, hr), (0.0, hr - 0.1)]
        tail = [(0.0, c + 0.15)]
    else:
        cabin = [(0.74 * L, hb + 0.04), (0.62 * L, hr), (0.42 * L, hr), (0.42 * L, hb)]
        tail = [(0.0, hb), (0.0, c + 0.15)]
    poly = np.array([(0.0, c)] + nose + cabin + tail)
    b.prism(poly, W, (-L / 2, 0, 0))
    # Dark side windows: the cabin outline shrunk towards its centre, slightly wider than the body.
    win = np.array([cabin[0], cabin[1], cabin[2], cabin[3]] if style != "suv" else cabin)
    win = np.concatenate([win, [(win[-1][0], hb + 0.02), (win[0][0], hb + 0.02)]]) if style == "suv" else win
    centre = win.mean(0)
    b.prism(centre + (win - centre) * 0.85, W + 0.02, (-L / 2, 0, 0), color=DARK)
    if style == "pickup":  # an open bed behind the cabin
        bl = 0.4 * L
        for sz in (-1, 1):
            b.box((bl, 0.25, 0.06), (-L / 2 + bl / 2, hb + 0.1, sz * (W / 2 - 0.03)))
        b.box((0.06, 0.25, W), (-L / 2 + 0.03, hb + 0.1, 0))
    rw = _u(rng, 0.3, 0.38) + (0.04 if tall else 0.0)
    for x in (0.18 * L, 0.8 * L):
        for sz in (-1, 1):
            b.rod((-L / 2 + x, rw, sz * (W / 2 - 0.2)), (-L / 2 + x, rw, sz * (W / 2 + 0.03)), rw, sections=16,
                  color=DARK)
    attrs["style"] = style
    return b.build(), attrs


def _union_of_circles_outline(circles, center, samples: int = 64) -> np.ndarray:
    """Boundary of a union of circles `[(cx, cy, r)]` that is star-shaped from `center`, as a `(samples, 2)` polygon."""
    theta = np.linspace(0, 2 * math.pi, samples, endpoint=False)
    u = np.column_stack([np.cos(theta), np.sin(theta)])
    best = np.zeros(samples)
    for cx, cy, r in circles:
        p = np.array([cx, cy]) - center
        along = u @ p
        disc = r**2 - (p @ p - along**2)
        best = np.maximum(best, np.where(disc >= 0, along + np.sqrt(np.clip(disc, 0, None)), 0))
    return center + u * best[:, None]


def make_guitar(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    style = _pick(rng, ["acoustic", "electric"], p=[0.6, 0.4])
    r1 = 1.0 if style == "acoustic" else _u(rng, 0.8, 0.9)
    r2 = r1 * _u(rng, 0.68, 0.85)
    up = r1 * _u(rng, 1.05, 1.3)
    circles = [(0, 0, r1), (0, up, r2)]
    if style == "electric" and rng.random() < 0.7:  # horns
        circles += [(-0.45 * r1, up + 0.35, 0.35 * r1), (0.45 * r1, up + 0.15, 0.3 * r1)]
    outline = _union_of_circles_outline(circles, np.array([0.0, up * 0.5]))
    depth = _u(rng, 0.3, 0.42) if style == "acoustic" else _u(rng, 0.1, 0.15)
    b.prism(outline, depth)
    front = depth / 2
    top = up + r2
    neck_len = _u(rng, 2.0, 2.6)
    nw = _u(rng, 0.22, 0.3)
    b.box((nw, neck_len, 0.12), (0, top - 0.1 + neck_len / 2, front - 0.06))
    b.box((nw * 0.95, neck_len + 0.1, 0.02), (0, top - 0.2 + neck_len / 2, front + 0.01), color=DARK)
    head_y = top - 0.1 + neck_len
    hl = _u(rng, 0.5, 0.7)
    tilt = _rotation("x", -_u(rng, 5, 15))
    b.box((nw * 1.5, hl, 0.08), (0, head_y + hl / 2, front - 0.08), tilt)
    for k in range(3):
        for sx in (-1, 1):
            b.sphere(0.05, (sx * nw * 0.95, head_y + 0.12 + k * hl * 0.3, front - 0.08 - k * 0.03), rings=4, sections=6,
                     color=DARK)
    if style == "acoustic":
        hole = [[0.0, 0.0], [0.3 * r2, 0.0], [0.3 * r2, 0.01], [0.0, 0.01]]
        b.lathe(hole, base=(0, up * 0.75, front), sections=20, rotation=_rotation("x", 90), color=DARK)
        b.box((0.5, 0.1, 0.04), (0, -0.35 * r1, front + 0.02), color=DARK)
    else:
        for y in (-0.1, 0.35):
            b.box((0.35, 0.12, 0.03), (0, y, front + 0.015), color=DARK)
        for k in range(int(rng.integers(2, 5))):
            b.sphere(0.05, (0.5 * r1, -0.4 + 0.15 * k, front + 0.02), rings=4, sections=6, color=DARK)
    attrs["style"] = style
    return b.build(), attrs


def make_person(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    H = _u(rng, 1.5, 1.9)
    u = H / 8.0  # head heights
    sw = u * _u(rng, 1.6, 2.1)  # shoulder width
    hip = 4.0 * u
    shoulder = 6.5 * u
    style = _pick(rng, ["standing", "waving", "walking", "cheering", "pointing"], p=[0.3, 0.2, 0.2, 0.15, 0.15])
    limb = u * _u(rng, 0.2, 0.26)
    # Legs: hip -> knee -> ankle, feet forward.
    for sx in (-1, 1):
        hip_p = np.array([sx * u * 0.4, hip, 0.0])
        if style == "walking":
            swing = sx * _u(rng, 15, 30)
        else:
            swing = 0.0
        spread = _u(rng, 0, 8)
        direction = np.array([sx * math.sin(math.radians(spread)), -math.cos(math.radians(swing)),
                              math.sin(math.radians(swing))])
        knee = hip_p + direction * 2.0 * u
        ankle = knee + direction * 1.9 * u
        b.rod(hip_p, knee, limb * 1.3, sections=10)
        b.rod(knee, ankle, limb * 1.1, sections=10)
        b.box((limb * 2.2, limb * 1.5, u * 0.9), (ankle[0], ankle[1] - limb * 0.5, ankle[2] + u * 0.25))
    dress = rng.random() < 0.2
    if dress:
        b.cylinder(sw * 0.4, hip - 1.3 * u, hip + 0.6 * u, radius_top=sw * 0.28, sections=16)
    b.box((sw * 0.8, 0.7 * u, u * 0.9), (0, hip + 0.2 * u, 0))
    b.cylinder(sw * 0.35, hip + 0.4 * u, shoulder, radius_top=sw * 0.5, sections=12, scale=(1.0, 1.0, 0.55))
    b.rod((0, shoulder - 0.1 * u, 0), (0, shoulder + 0.4 * u, 0), limb)
    b.sphere(u * 0.45, (0, shoulder + 0.85 * u, 0.02 * u), scale=(0.9, 1.05, 1.0), rings=8, sections=12)
    # Arms: (upper-arm direction, forearm direction) per side, as (angle from down in the frontal plane, forward tilt).
    poses = {
        "standing": [(10, 0, 5, 0), (10, 0, 5, 0)],
        "walking": [(8, 25, 5, 40), (8, -25, 5, -10)],
        "waving": [(10, 0, 5, 0), (100, 0, 160, 0)],
        "cheering": [(150, 0, 170, 0), (150, 0, 170, 0)],
        "pointing": [(10, 0, 5, 0), (60, 60, 70, 80)],
    }[style]
    for sx, (a_up, f_up, a_lo, f_lo) in zip((-1, 1), poses):
        start = np.array([sx * sw / 2, shoulder - 0.2 * u, 0.0])
        a_up, a_lo = a_up + _u(rng, -8, 8), a_lo + _u(rng, -8, 8)

        def direction(a: float, f: float) -> np.ndarray:
            a, f = math.radians(a), math.radians(f)
            return np.array([sx * math.sin(a) * math.cos(f), -math.cos(a) * math.cos(f), math.sin(f)])

        elbow = start + direction(a_up, f_up) * 1.5 * u
        wrist = elbow + direction(a_lo, f_lo) * 1.3 * u
        b.rod(start, elbow, limb, sections=8)
        b.rod(elbow, wrist, limb * 0.85, sections=8)
        b.sphere(limb * 1.2, wrist, rings=4, sections=6)
    attrs["style"] = style
    attrs["dress"] = dress
    return b.build(), attrs


def make_door(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    h, t = _u(rng, 1.95, 2.1), _u(rng, 0.04, 0.06)
    double = rng.random() < 0.15
    leaf_w = _u(rng, 0.7, 0.9) if double else _u(rng, 0.75, 1.0)
    leaves = 2 if double else 1
    panels = int(rng.choice([1, 2, 4, 6], p=[0.25, 0.25, 0.3, 0.2]))
    lever = rng.random() < 0.5
    window = rng.random() < 0.15
    for i in range(leaves):
        xc = (i - (leaves - 1) / 2) * leaf_w
        b.box((leaf_w - 0.004, h, t), (xc, h / 2, 0))
        if panels > 1 or window:
            cols = 1 if panels <= 2 else 2
            rows = max(1, panels // cols)
            m = leaf_w * 0.12
            pw = (leaf_w - 2 * m - (cols - 1) * m * 0.8) / cols
            ph = (h - 2 * m - (rows - 1) * m * 0.8) / rows
            for r in range(rows):
                for c in range(cols):
                    px = xc - leaf_w / 2 + m + pw / 2 + c * (pw + m * 0.8)
                    py = m + ph / 2 + r * (ph + m * 0.8)
                    glass = window and r == rows - 1
                    for sz in (-1, 1):
                        b.box((pw, ph, 0.012), (px, py, sz * (t / 2 + 0.004)),
                              color=(0.72, 0.80, 0.88) if glass else None)
        hx = xc + (leaf_w / 2 - 0.08) * (1 if i == leaves - 1 else -1) * (1 if double else 1)
        for sz in (-1, 1):
            if lever:
                b.box((0.12, 0.02, 0.02), (hx - 0.05 * (1 if hx > 0 else -1), 1.0, sz * (t / 2 + 0.04)), color=DARK)
                b.rod((hx, 1.0, sz * t / 2), (hx, 1.0, sz * (t / 2 + 0.04)), 0.01, color=DARK)
            else:
                b.sphere(0.03, (hx, 1.0, sz * (t / 2 + 0.03)), rings=4, sections=8, color=DARK)
    frame = rng.random() < 0.6
    if frame:
        fw, fd = _u(rng, 0.05, 0.1), t + _u(rng, 0.03, 0.08)
        total = leaf_w * leaves
        for sx in (-1, 1):
            b.box((fw, h + fw, fd), (sx * (total / 2 + fw / 2), (h + fw) / 2, 0))
        b.box((total + 2 * fw, fw, fd), (0, h + fw / 2, 0))
    attrs["panels"] = panels
    attrs["frame"] = frame
    attrs["style"] = "double" if double else None
    return b.build(), attrs


def make_stairs(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    n = int(rng.integers(4, 15))
    rise, run, w = _u(rng, 0.15, 0.2), _u(rng, 0.25, 0.32), _u(rng, 0.8, 1.5)
    solid = rng.random() < 0.6
    # Steps climb towards -z from the front edge at z = 0.
    for i in range(n):
        z = -(i + 0.5) * run
        if solid:
            b.box((w, rise * (i + 1), run), (0, rise * (i + 1) / 2, z))
        else:
            b.box((w, 0.04, run + 0.02), (0, rise * (i + 1) - 0.02, z))
    if not solid:
        for sx in (-1, 1):
            b.bar((sx * (w / 2 + 0.03), 0, 0), (sx * (w / 2 + 0.03), rise * n, -run * n), 0.06, 0.25)
    railing = rng.random() < 0.55
    if railing:
        sides = (-1, 1) if rng.random() < 0.5 else (int(_pick(rng, [-1, 1])),)
        ph = _u(rng, 0.8, 0.95)
        every = max(1, n // int(rng.integers(2, 6)))
        for sx in sides:
            x = sx * (w / 2 - 0.03)
            for i in list(range(0, n, every)) + [n - 1]:
                y = rise * (i + 1)
                b.rod((x, y, -(i + 0.5) * run), (x, y + ph, -(i + 0.5) * run), 0.015)
            b.rod((x, rise + ph, -0.5 * run), (x, rise * n + ph, -(n - 0.5) * run), 0.025)
    attrs["steps"] = n
    attrs["railing"] = railing
    return b.build(), attrs


def make_tent(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    style = _pick(rng, ["ridge", "dome", "teepee", "tunnel"], p=[0.35, 0.3, 0.2, 0.15])
    door = rng.random() < 0.7
    if style == "ridge":
        w, h, L = _u(rng, 1.2, 2.0), _u(rng, 0.9, 1.4), _u(rng, 1.8, 2.6)
        b.prism(np.array([[-w / 2, 0], [w / 2, 0], [0, h]]), L)
        if door:
            b.prism(np.array([[-w * 0.25, 0], [w * 0.25, 0], [0, h * 0.7]]), 0.01, (0, 0, L / 2 + 0.005), color=DARK)
        for sz in (-1, 1):
            b.rod((0, h - 0.05, sz * L / 2), (0, h + 0.15, sz * L / 2), 0.02)
    elif style == "dome":
        R, h = _u(rng, 1.0, 1.4), _u(rng, 0.9, 1.3)
        a = np.linspace(0, math.pi / 2, 10)
        b.lathe(np.column_stack([np.concatenate([[0], R * np.cos(a)]), np.concatenate([[0], h * np.sin(a)])]),
                sections=24, scale=(1.0, 1.0, _u(rng, 0.8, 1.2)))
        if rng.random() < 0.6:  # poles crossing over the top
            for ang in (45, -45):
                v, f = _torus_mesh(1.0, 0.02 / R, arc=180, sections=16)
                b.add((v @ _rotation("y", ang).T) * [R * 1.01, h * 1.01, R * 1.01], f)
        if door:
            a = np.linspace(0, math.pi, 12)
            arch = np.column_stack([0.35 * R * np.cos(a), 0.7 * h * np.sin(a)])
            b.prism(arch, 0.25 * R, (0, 0, R * 0.78), color=DARK)
    elif style == "teepee":
        R, h = _u(rng, 0.8, 1.2), _u(rng, 1.8, 2.6)
        b.cylinder(R, 0, h, radius_top=0.05, sections=16)
        for k in range(int(rng.integers(4, 7))):
            a = 2 * math.pi * k / 6 + 0.3
            b.rod((R * 0.9 * math.cos(a), 0, R * 0.9 * math.sin(a)), (-0.1 * math.cos(a), h + 0.35, -0.1 * math.sin(a)),
                  0.025)
        if door:  # a flat triangle lying on the cone's front slope
            slope = _rotation("x", -math.degrees(math.atan2(R, h)))
            b.prism(np.array([[-0.22 * R, 0], [0.22 * R, 0], [0, 0.5 * h]]), 0.01, (0, 0, R * 1.0), slope, color=DARK)
    else:  # tunnel: hoops joined by the fabric
        R, L = _u(rng, 0.6, 0.9), _u(rng, 2.0, 3.0)
        a = np.linspace(0, math.pi, 16)
        b.prism(np.column_stack([R * np.cos(a), R * np.sin(a) * _u(rng, 0.8, 1.1)]), L)
        for k in range(int(rng.integers(2, 4))):
            z = -L / 2 + (k + 1) * L / (int(3) + 1)
            b.torus(R * 1.02, 0.03, (0, 0, z), None, arc=180, sections=16)
        if door:
            arch = np.column_stack([0.5 * R * np.cos(a), 0.6 * R * np.sin(a)])
            b.prism(arch, 0.01, (0, 0, L / 2 + 0.005), color=DARK)
    attrs["style"] = style
    return b.build(), attrs


def make_toilet(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    stretch = _u(rng, 1.25, 1.45)
    rb, top = _u(rng, 0.17, 0.21), _u(rng, 0.38, 0.44)
    zc = 0.05
    foot = _u(rng, 0.1, 0.13)
    outer = _smooth_profile(np.array([0.0, 0.12, 0.45, 0.8, 1.0]) * top,
                            [foot * 1.15, foot, foot * 1.1, rb * 0.9, rb], samples=16)
    b.lathe(_vessel(outer, wall=0.03, floor=top * 0.5), base=(0, 0, zc), sections=24, scale=(1.0, 1.0, stretch))
    v, f = _torus_mesh(rb * 0.82, 0.025, sections=20)  # the seat: a flattened, stretched ring
    b.add((v @ _rotation("x", 90).T) * [1.0, 0.6, stretch], f, (0, top + 0.015, zc))
    lid_open = rng.random() < 0.5
    lid = np.array([[0, 0], [rb, 0], [rb, 0.02], [0, 0.02]])
    back = zc - rb * stretch
    if lid_open:  # standing up at the back, leaning slightly backwards
        rot = _rotation("x", -100)
        hinge = np.array([0.0, top + 0.03, back + 0.03])
        b.lathe(lid, base=hinge - rot @ np.array([0.0, 0.0, -rb * stretch]), sections=20, scale=(1.0, 1.0, stretch),
                rotation=rot)
    else:
        b.lathe(lid, base=(0, top + 0.03, zc), sections=20, scale=(1.0, 1.0, stretch))
    tank = rng.random() < 0.85
    if tank:
        tw, th, td = _u(rng, 0.36, 0.46), _u(rng, 0.28, 0.4), _u(rng, 0.14, 0.2)
        b.box((tw, th, td), (0, top + th / 2 - 0.02, back - td / 2 + 0.04))
        b.box((tw + 0.02, 0.03, td + 0.02), (0, top + th, back - td / 2 + 0.04))
        b.cylinder(0.02, top + th + 0.01, top + th + 0.03, (0, back - td / 2 + 0.04), sections=8, color=DARK)
    else:
        b.box((rb * 1.6, top * 0.5, 0.06), (0, top * 0.75, back - 0.02))
    attrs["lid"] = "open" if lid_open else "closed"
    attrs["tank"] = tank
    return b.build(), attrs


def make_bathtub(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    L, W, H = _u(rng, 1.5, 1.8), _u(rng, 0.7, 0.85), _u(rng, 0.45, 0.6)
    style = _pick(rng, ["built-in", "freestanding", "clawfoot"], p=[0.45, 0.3, 0.25])
    if style == "built-in":
        wt = _u(rng, 0.06, 0.12)
        b.box((L, 0.08, W), (0, 0.04, 0))
        for sz in (-1, 1):
            b.box((L, H, wt), (0, H / 2, sz * (W / 2 - wt / 2)))
        for sx in (-1, 1):
            b.box((wt, H, W - 2 * wt), (sx * (L / 2 - wt / 2), H / 2, 0))
        b.box((L - 2 * wt, 0.1, W - 2 * wt), (0, 0.12, 0), color=PALETTE["white"])  # basin floor
    else:
        y0 = _u(rng, 0.12, 0.2) if style == "clawfoot" else 0.0
        a = np.linspace(0, math.pi / 2, 8)
        rbot = _u(rng, 0.6, 0.8)
        outer = np.column_stack([rbot + (1 - rbot) * np.sin(a), (H - y0) / (W / 2) * (1 - np.cos(a))])
        outer = np.concatenate([outer, [[1.05, outer[-1, 1]], [1.05, outer[-1, 1] + 0.04]]])
        b.lathe(_vessel(outer, wall=0.06, floor=0.08), base=(0, y0, 0), sections=32, scale=(L / 2 * 0.97, W / 2, W / 2))
        if style == "clawfoot":
            for sx in (-1, 1):
                for sz in (-1, 1):
                    foot = (sx * L * 0.32, 0.0, sz * W * 0.25)
                    b.rod(foot, (foot[0], y0 + 0.06, foot[2]), 0.03)
                    b.sphere(0.045, (foot[0], 0.04, foot[2]), rings=4, sections=8)
    faucet = rng.random() < 0.6
    if faucet:
        x = L / 2 - 0.12
        b.rod((x, H - 0.02, 0), (x, H + 0.18, 0), 0.02, color=PALETTE["grey"])
        b.rod((x, H + 0.18, 0), (x - 0.15, H + 0.15, 0), 0.018, color=PALETTE["grey"])
        for sz in (-1, 1):
            b.sphere(0.03, (x, H + 0.04, sz * 0.1), rings=4, sections=6, color=PALETTE["grey"])
    attrs["style"] = style
    attrs["faucet"] = faucet
    return b.build(), attrs


def make_monitor(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    sw = _u(rng, 0.45, 0.7)
    aspect = _pick(rng, [16 / 9, 16 / 10, 4 / 3, 21 / 9], p=[0.5, 0.2, 0.15, 0.15])
    sh = sw / aspect
    crt = rng.random() < 0.12
    base_kind = _pick(rng, ["round", "rectangular", "v-shaped"], p=[0.35, 0.45, 0.2])
    lift = _u(rng, 0.06, 0.16)
    tilt = _rotation("x", -_u(rng, 0, 10))
    thick = 0.35 if crt else _u(rng, 0.02, 0.05)
    centre = np.array([0.0, lift + sh / 2, 0.0])
    if crt:
        b.box((sw, sh, 0.06), centre + [0, 0, 0.03], tilt)
        back = np.array([[0.0, -sh / 2], [0.0, sh / 2], [-0.3, sh * 0.3], [-0.3, -sh * 0.35]])
        b.prism(back, sw * 0.75, centre, _rotation("y", 90))
    else:
        b.box((sw, sh, thick), centre, tilt)
    margin = _u(rng, 0.01, 0.03)
    b.box((sw - 2 * margin, sh - 2 * margin, 0.005), centre + tilt @ np.array([0, 0, thick / 2 if not crt else 0.06]),
          tilt, color=DARK)
    # Stand: a neck from the base up behind the screen.
    bz = -thick / 2 - 0.03 if not crt else -0.15
    if not crt:
        b.box((0.05, lift + sh * 0.4, 0.025), (0, (lift + sh * 0.4) / 2, bz))
    if base_kind == "round":
        b.cylinder(_u(rng, 0.1, 0.14), 0, 0.02, (0, bz), sections=24, scale=(1.3, 1.0, 1.0))
    elif base_kind == "rectangular":
        b.box((_u(rng, 0.2, 0.3), 0.02, _u(rng, 0.14, 0.2)), (0, 0.01, bz + 0.02))
    else:
        for sx in (-1, 1):
            b.bar((0, 0.01, bz), (sx * 0.15, 0.01, bz + 0.15), 0.03, 0.015)
    attrs["style"] = "crt" if crt else "widescreen" if aspect > 1.7 else "flat"
    attrs["base"] = base_kind
    return b.build(), attrs


def make_laptop(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    w, d, bt = _u(rng, 0.3, 0.4), _u(rng, 0.22, 0.27), _u(rng, 0.015, 0.025)
    b.box((w, bt, d), (0, bt / 2, 0))
    b.box((w * 0.86, 0.003, d * 0.42), (0, bt + 0.0015, -d * 0.18), color=DARK)  # keyboard
    b.box((w * 0.3, 0.002, d * 0.25), (0, bt + 0.001, d * 0.28), color=(0.45, 0.45, 0.48))  # touchpad
    angle = _u(rng, 95, 135)
    rot = _rotation("x", -(angle - 90))
    lt = _u(rng, 0.006, 0.012)
    hinge = np.array([0.0, bt, -d / 2])
    ld = d * 0.97
    b.box((w, ld, lt), hinge + rot @ np.array([0, ld / 2, -lt / 2]), rot)
    b.box((w * 0.9, ld * 0.85, 0.002), hinge + rot @ np.array([0, ld / 2 + 0.005, 0.001]), rot, color=DARK)
    attrs["lid"] = "wide-open" if angle > 120 else "upright"
    return b.build(), attrs


def _keys(b: MeshBuilder, x0: float, x1: float, y: float, z_front: float, depth: float) -> None:
    """A piano keyboard: a white key bed with groups of black keys (2 + 3 per octave)."""
    b.box((x1 - x0, 0.03, depth), ((x0 + x1) / 2, y + 0.015, z_front - depth / 2), color=PALETTE["white"])
    octave = 7 * (x1 - x0) / 52
    x = x0
    while x + octave <= x1 + 1e-9:
        for k in (1, 2, 4, 5, 6):
            b.box((octave / 14, 0.02, depth * 0.6), (x + k * octave / 7, y + 0.04, z_front - depth * 0.7), color=DARK)
        x += octave


def make_piano(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    style = _pick(rng, ["upright", "grand"], p=[0.6, 0.4])
    if style == "upright":
        W, H, D = _u(rng, 1.4, 1.55), _u(rng, 1.05, 1.35), _u(rng, 0.35, 0.45)
        ky = _u(rng, 0.68, 0.74)
        b.box((W, H, D), (0, H / 2, -D / 2))
        b.box((W + 0.02, 0.03, D + 0.04), (0, H + 0.015, -D / 2))
        b.box((W * 0.96, 0.06, 0.26), (0, ky, 0.13))
        _keys(b, -W * 0.45, W * 0.45, ky + 0.03, 0.26, 0.2)
        for sx in (-1, 1):
            b.box((0.06, ky, 0.08), (sx * (W * 0.48 - 0.03), ky / 2, 0.2))
        b.box((W * 0.5, 0.25, 0.02), (0, ky + 0.3, 0.02))  # music rest
        b.box((0.2, 0.05, 0.08), (0, 0.05, 0.1), color=PALETTE["yellow"])  # pedals
    else:
        W, Lg = _u(rng, 1.4, 1.6), _u(rng, 1.5, 2.6)
        top, ct = _u(rng, 0.95, 1.02), _u(rng, 0.25, 0.35)
        t = np.linspace(0, 1, 20)
        right = np.column_stack([W / 2 - W * 0.55 * np.clip((t - 0.2) / 0.8, 0, 1) ** 1.5, -t * Lg * 0.85])
        tail_c = np.array([(right[-1, 0] - W / 2) / 2, -Lg * 0.85])
        tr = (right[-1, 0] + W / 2) / 2
        a = np.linspace(0, math.pi, 12)[1:-1]
        tail = np.column_stack([tail_c[0] + tr * np.cos(a), tail_c[1] - tr * np.sin(a) * 0.6])
        outline = np.concatenate([[[-W / 2, 0.0]], right, tail])  # (x, z): z grows towards the keyboard
        # The case: the outline drawn in the xy plane and laid flat (polygon y -> z), spanning top - ct .. top.
        b.prism(outline, ct, (0, top - ct / 2, 0), _XZ_PLANE)
        if rng.random() < 0.6:  # lid propped open, hinged on the straight (left) side
            angle = _u(rng, 20, 40)
            v, f = _prism_mesh(outline, 0.02)
            v = v @ _XZ_PLANE.T + [W / 2, 0, 0]
            b.add(v, f, (-W / 2, top + 0.01, 0), _rotation("z", angle))
            reach = W * 0.75
            prop = reach * math.tan(math.radians(angle))
            b.rod((-W / 2 + reach, top, -Lg * 0.35), (-W / 2 + reach, top + prop, -Lg * 0.35), 0.012)
            attrs["lid"] = "open"
        else:
            b.prism(outline, 0.02, (0, top + 0.01, 0), _XZ_PLANE)
            attrs["lid"] = "closed"
        for x, z in ((-W / 2 + 0.1, -0.15), (W / 2 - 0.1, -0.15), (tail_c[0], tail_c[1] - tr * 0.4)):
            b.box((0.09, top - ct, 0.09), (x, (top - ct) / 2, z))
        b.box((W, 0.08, 0.3), (0, top - ct + 0.04, 0.15))
        _keys(b, -W * 0.45, W * 0.45, top - ct + 0.08, 0.3, 0.22)
        b.box((W * 0.5, 0.22, 0.02), (0, top + 0.12, -0.05))
        b.box((0.2, 0.3, 0.05), (0, 0.15, -0.3), color=PALETTE["yellow"])  # lyre and pedals
    attrs["style"] = style
    return b.build(), attrs
