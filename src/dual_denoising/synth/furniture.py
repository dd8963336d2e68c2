"""SynthShapes generators for furniture: seats, beds, tables, cabinets and shelves.

Each `make_<class>(rng) -> (mesh, attributes)`; units are roughly metres until `MeshBuilder.build` normalises, front
faces +z, and the attribute values feed the captions (`dual_denoising.synth.classes`).
"""


from __future__ import annotations

import math

import numpy as np
import trimesh

from .primitives import DARK, FABRIC, PALETTE, MeshBuilder, _pick, _rotation, _start, _u

# ---------------------------------------------------------------------------------------------------------------------
# Generators, one per class: (rng) -> (mesh, attributes). Units are roughly metres until `MeshBuilder.build`
# normalises. Front faces +z. Attribute values feed the captions (`classes._attribute_phrases`).
# ---------------------------------------------------------------------------------------------------------------------


def _leg(b: MeshBuilder, top, bottom, radius: float, square: bool) -> None:
    if square:
        b.bar(bottom, top, 2 * radius)
    else:
        b.rod(bottom, top, radius)


def _four_legs(b: MeshBuilder, half_x: float, half_z: float, y_top: float, radius: float, square: bool,
               splay: float = 0.0, y_bottom: float = 0.0) -> None:
    for sx in (-1, 1):
        for sz in (-1, 1):
            top = (sx * half_x, y_top, sz * half_z)
            bottom = (sx * (half_x + splay), y_bottom, sz * (half_z + splay))
            _leg(b, top, bottom, radius, square)


def _knob(b: MeshBuilder, center, size: float, bar: bool, color=None) -> None:
    """A drawer/door pull on a +z facing front: a small sphere, or a horizontal bar."""
    if bar:
        b.box((4 * size, size * 0.8, size * 0.8), (center[0], center[1], center[2] + size * 0.5), color=color)
    else:
        b.sphere(size, (center[0], center[1], center[2] + size * 0.6), rings=4, sections=6, color=color)


def _drawer_fronts(b: MeshBuilder, x0: float, x1: float, y0: float, y1: float, z_front: float, rows: int,
                   cols: int = 1, gap: float = 0.012, bar_pulls: bool = False) -> int:
    """A grid of drawer fronts (slightly proud of `z_front`) with pulls; returns the number of drawers."""
    depth = 0.015
    w = (x1 - x0 - (cols + 1) * gap) / cols
    h = (y1 - y0 - (rows + 1) * gap) / rows
    pull = max(0.008, min(w, h) * 0.09)
    for r in range(rows):
        for c in range(cols):
            cx = x0 + gap + w / 2 + c * (w + gap)
            cy = y0 + gap + h / 2 + r * (h + gap)
            b.box((w, h, depth), (cx, cy, z_front + depth / 2))
            _knob(b, (cx, cy, z_front + depth), pull, bar_pulls, color=DARK)
    return rows * cols


def make_chair(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    w, d, h = _u(rng, 0.42, 0.56), _u(rng, 0.40, 0.52), _u(rng, 0.42, 0.50)
    base = _pick(rng, ["legs", "swivel", "sled"], p=[0.6, 0.25, 0.15])
    t = _u(rng, 0.06, 0.10) if base == "swivel" else _u(rng, 0.03, 0.06)
    round_seat = rng.random() < 0.2 and base != "sled"
    if round_seat:
        b.cylinder(w / 2, h - t, h, sections=20, scale=(1.0, 1.0, d / w))
    else:
        b.box((w, t, d), (0, h - t / 2, 0))
    r = _u(rng, 0.014, 0.025)
    square = rng.random() < 0.5
    if base == "legs":
        inset = 0.7 if round_seat else 1.0
        _four_legs(b, inset * w / 2 - r - 0.01, inset * d / 2 - r - 0.01, h - t, r, square, splay=_u(rng, 0.0, 0.03))
        if rng.random() < 0.35:  # stretchers between the legs
            y = _u(rng, 0.1, 0.2)
            for sx in (-1, 1):
                b.rod((sx * (w / 2 - r - 0.005), y, -d / 2 + r), (sx * (w / 2 - r - 0.005), y, d / 2 - r), r * 0.6)
        attrs["legs"] = 4
    elif base == "swivel":
        b.cylinder(0.025, 0.08, h - t, sections=10)
        spokes, reach = int(rng.choice([4, 5])), _u(rng, 0.24, 0.32)
        for k in range(spokes):
            ang = 2 * math.pi * k / spokes
            end = (reach * math.cos(ang), 0.05, reach * math.sin(ang))
            b.bar((0, 0.09, 0), end, 0.035)
            b.sphere(0.025, (end[0], 0.025, end[2]), rings=4, sections=6, color=DARK)
        attrs["base"] = "swivel"
    else:  # sled: a U-shaped runner on each side
        for sx in (-1, 1):
            x = sx * (w / 2 - 0.01)
            b.rod((x, 0.01, -d / 2), (x, 0.01, d / 2), 0.012)
            b.rod((x, 0.01, d / 2 - 0.03), (x, h - t, d / 2 - 0.05), 0.012)
            b.rod((x, 0.01, -d / 2 + 0.03), (x, h - t, -d / 2 + 0.05), 0.012)
        attrs["base"] = "sled"
    # Backrest, tilted backwards about the rear edge of the seat.
    back = _pick(rng, ["solid", "slatted", "ladder", "tall"], p=[0.35, 0.25, 0.2, 0.2])
    bh = _u(rng, 0.55, 0.75) if back == "tall" else _u(rng, 0.32, 0.5)
    tilt = _u(rng, 4.0, 15.0)
    rot = _rotation("x", -tilt)
    zb = -d / 2 + 0.02
    sin, cos = math.sin(math.radians(tilt)), math.cos(math.radians(tilt))

    def at(x: float, up: float) -> tuple[float, float, float]:
        return (x, h + up * cos, zb - up * sin)

    bt = _u(rng, 0.02, 0.05)
    if back in ("solid", "tall"):
        start = 0.05 if base == "swivel" else 0.0
        b.box((w * _u(rng, 0.85, 1.0), bh - start, bt), at(0, start + (bh - start) / 2), rot)
        if start > 0:
            b.bar(at(0, -t), at(0, start + 0.02), 0.05, 0.02)
    else:
        post = max(r, 0.015)
        for sx in (-1, 1):
            b.box((2 * post, bh, 2 * post), at(sx * (w / 2 - post), bh / 2), rot)
        b.box((w, _u(rng, 0.05, 0.1), bt), at(0, bh - 0.04), rot)  # top rail
        if back == "slatted":
            n = int(rng.integers(2, 6))
            for k in range(n):
                x = -w / 2 + post * 2 + (k + 0.5) * (w - 4 * post) / n
                b.box(((w - 4 * post) / n * 0.5, bh - 0.08, bt * 0.7), at(x, (bh - 0.08) / 2), rot)
        else:
            n = int(rng.integers(2, 4))
            for k in range(n):
                b.box((w - 2 * post, 0.035, bt * 0.7), at(0, (k + 1) * (bh - 0.08) / (n + 1)), rot)
    attrs["back"] = back
    arms = rng.random() < (0.5 if base == "swivel" else 0.25)
    if arms:
        ah = _u(rng, 0.18, 0.25)
        for sx in (-1, 1):
            x = sx * (w / 2 + 0.02)
            b.box((0.05, 0.03, d * 0.85), (x, h + ah, -d * 0.05))
            b.box((0.03, ah, 0.03), (x, h + ah / 2, d * 0.25))
    attrs["arms"] = arms
    return b.build(), attrs


def make_stool(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    tall = rng.random() < 0.5
    h = _u(rng, 0.62, 0.80) if tall else _u(rng, 0.38, 0.50)
    rs = _u(rng, 0.15, 0.21)
    t = _u(rng, 0.03, 0.07)
    round_seat = rng.random() < 0.7
    if round_seat:
        b.cylinder(rs, h - t, h, sections=24)
    else:
        b.box((2 * rs * 0.9, t, 2 * rs * 0.9), (0, h - t / 2, 0))
    base = _pick(rng, ["legs3", "legs4", "pedestal"], p=[0.4, 0.45, 0.15])
    if base == "pedestal":
        b.cylinder(_u(rng, 0.025, 0.045), 0.02, h - t, sections=12)
        b.cylinder(_u(rng, 0.16, 0.22), 0.0, 0.025, sections=24, radius_top=0.14)
        attrs["base"] = "pedestal"
    else:
        n = 3 if base == "legs3" else 4
        r = _u(rng, 0.013, 0.022)
        top_r, bottom_r = rs * 0.75, rs * _u(rng, 0.95, 1.35)
        phase = math.pi / 4 if n == 4 else math.pi / 2
        feet = []
        for k in range(n):
            a = phase + 2 * math.pi * k / n
            top = (top_r * math.cos(a), h - t, top_r * math.sin(a))
            foot = (bottom_r * math.cos(a), 0.0, bottom_r * math.sin(a))
            _leg(b, top, foot, r, square=not round_seat and n == 4)
            feet.append((top, foot))
        if tall or rng.random() < 0.3:  # rungs
            f = _u(rng, 0.25, 0.4)
            pts = [np.asarray(foot) + f * (np.asarray(top) - np.asarray(foot)) for top, foot in feet]  # on the legs
            for k in range(n):
                b.rod(pts[k], pts[(k + 1) % n], r * 0.7)
            attrs["footrest"] = True
        attrs["legs"] = n
    if base == "pedestal" and tall:
        b.torus(rs * 0.9, 0.012, (0, h * 0.35, 0), _rotation("x", 90))
        attrs["footrest"] = True
    attrs["style"] = "tall" if tall else "low"
    return b.build(), attrs


def make_bench(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    L, d, h = _u(rng, 1.1, 1.9), _u(rng, 0.3, 0.42), _u(rng, 0.40, 0.48)  # long and narrow: L / d >= 2.6
    t = _u(rng, 0.035, 0.07)
    if rng.random() < 0.4:
        n = int(rng.integers(3, 6))
        gap = 0.015
        sw = (d - (n - 1) * gap) / n
        for k in range(n):
            b.box((L, t, sw), (0, h - t / 2, -d / 2 + sw / 2 + k * (sw + gap)))
        attrs["style"] = "slatted"
    else:
        b.box((L, t, d), (0, h - t / 2, 0))
    support = _pick(rng, ["legs", "panel"], p=[0.65, 0.35])
    inset = _u(rng, 0.03, 0.15)
    if support == "panel":
        pw = _u(rng, 0.03, 0.06)
        for sx in (-1, 1):
            b.box((pw, h - t, d * _u(rng, 0.8, 1.0)), (sx * (L / 2 - inset - pw / 2), (h - t) / 2, 0))
        attrs["base"] = "panel"
    else:
        r = _u(rng, 0.018, 0.03)
        square = rng.random() < 0.5
        _four_legs(b, L / 2 - inset, d / 2 - r - 0.01, h - t, r, square, splay=_u(rng, 0.0, 0.03))
        n_legs = 4
        if L > 1.5 and rng.random() < 0.5:
            for sz in (-1, 1):
                _leg(b, (0, h - t, sz * (d / 2 - r - 0.01)), (0, 0, sz * (d / 2 - r - 0.01)), r, square)
            n_legs = 6
        if rng.random() < 0.4:
            b.rod((-L / 2 + inset, 0.12, 0), (L / 2 - inset, 0.12, 0), r * 0.7)
        attrs["legs"] = n_legs
    backrest = rng.random() < 0.4
    if backrest:
        bh = _u(rng, 0.3, 0.45)
        rot = _rotation("x", -_u(rng, 5, 15))
        for sx in (-1, 1):
            b.box((0.04, bh + 0.02, 0.04), (sx * (L / 2 - inset), h + bh / 2, -d / 2 + 0.02), rot)
        for k in range(int(rng.integers(2, 4))):
            b.box((L, 0.06, 0.025), (0, h + bh - 0.05 - k * 0.1, -d / 2 - 0.01 - 0.02 * (bh - k * 0.1)), rot)
        if rng.random() < 0.5:
            for sx in (-1, 1):
                b.box((0.05, 0.03, d * 0.9), (sx * (L / 2 - inset), h + 0.2, 0))
                b.box((0.03, 0.2, 0.03), (sx * (L / 2 - inset), h + 0.1, d / 2 - 0.05))
    attrs["backrest"] = backrest
    return b.build(), attrs


def make_sofa(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    W, D, h = _u(rng, 1.4, 2.4), _u(rng, 0.75, 0.95), _u(rng, 0.40, 0.46)
    leg_h = _u(rng, 0.0, 0.14)
    cush_t = _u(rng, 0.09, 0.15)
    arms = rng.random() < 0.85
    aw = _u(rng, 0.1, 0.25) if arms else 0.0
    bt = _u(rng, 0.15, 0.25)
    bh = _u(rng, 0.3, 0.5)
    base_y0 = max(leg_h, 0.0)
    b.box((W, h - cush_t - base_y0, D), (0, (h - cush_t + base_y0) / 2, 0))
    n = int(rng.choice([1, 2, 3], p=[0.15, 0.45, 0.4]))
    inner = W - 2 * aw
    gap = 0.012
    cw = (inner - (n - 1) * gap) / n
    for k in range(n):
        b.box((cw, cush_t, D - bt), (-inner / 2 + cw / 2 + k * (cw + gap), h - cush_t / 2, bt / 2))
    rot = _rotation("x", -_u(rng, 3, 10))
    b.box((W, bh + cush_t, bt), (0, h - cush_t + (bh + cush_t) / 2, -D / 2 + bt / 2), rot)
    if rng.random() < 0.5:  # back cushions
        for k in range(n):
            b.box((cw, bh * 0.8, 0.1), (-inner / 2 + cw / 2 + k * (cw + gap), h + bh * 0.4, -D / 2 + bt + 0.04), rot)
    if arms:
        ah = h + _u(rng, 0.12, 0.25)
        rolled = rng.random() < 0.3
        for sx in (-1, 1):
            x = sx * (W / 2 - aw / 2)
            b.box((aw, ah - base_y0, D), (x, (ah + base_y0) / 2, 0))
            if rolled:
                b.rod((x, ah, -D / 2), (x, ah, D / 2), aw * 0.6, sections=12)
    attrs["arms"] = arms
    if rng.random() < 0.2:  # sectional: a chaise on one side
        side = _pick(rng, [-1, 1])
        cl = _u(rng, 0.5, 0.8)
        cwid = inner / max(n, 2)
        x = side * (inner / 2 - cwid / 2)
        b.box((cwid + aw, h - cush_t - base_y0, cl), (x + side * aw / 2, (h - cush_t + base_y0) / 2, D / 2 + cl / 2))
        b.box((cwid, cush_t, cl), (x, h - cush_t / 2, D / 2 + cl / 2))
        attrs["style"] = "sectional"
    if leg_h > 0.05:
        for sx in (-1, 1):
            for sz in (-1, 1):
                b.box((0.04, leg_h, 0.04), (sx * (W / 2 - 0.05), leg_h / 2, sz * (D / 2 - 0.05)), color=DARK)
    attrs["cushions"] = n
    return b.build(), attrs


def make_bed(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    W, L = _u(rng, 0.95, 1.9), _u(rng, 1.9, 2.2)
    frame_top = _u(rng, 0.2, 0.45)
    mt = _u(rng, 0.15, 0.3)
    legs = rng.random() < 0.5
    ft = _u(rng, 0.08, 0.15)
    y0 = frame_top - ft if legs else 0.0
    b.box((W + 0.04, frame_top - y0, L), (0, (frame_top + y0) / 2, 0))
    if legs:
        _four_legs(b, W / 2 - 0.03, L / 2 - 0.03, y0 + 0.01, 0.03, square=True)
    top = frame_top + mt
    b.box((W, mt, L - 0.04), (0, frame_top + mt / 2, 0.0), color=FABRIC)
    hb_h = _u(rng, 0.35, 0.9)
    hb_t = _u(rng, 0.04, 0.09)
    if rng.random() < 0.65:
        b.box((W + 0.08, top + hb_h, hb_t), (0, (top + hb_h) / 2, -L / 2 - hb_t / 2))
    else:  # posts and slats
        for sx in (-1, 1):
            b.box((0.06, top + hb_h, 0.06), (sx * (W / 2 + 0.01), (top + hb_h) / 2, -L / 2 - 0.03))
        b.box((W, 0.07, 0.05), (0, top + hb_h - 0.05, -L / 2 - 0.03))
        slats = int(rng.integers(3, 8))
        for k in range(slats):
            x = -W / 2 + (k + 1) * W / (slats + 1)
            b.box((0.03, hb_h, 0.03), (x, top + hb_h / 2 - 0.05, -L / 2 - 0.03))
    footboard = rng.random() < 0.4
    if footboard:
        fb_h = _u(rng, 0.0, 0.3)
        b.box((W + 0.08, top + fb_h, hb_t), (0, (top + fb_h) / 2, L / 2 + hb_t / 2))
    attrs["footboard"] = footboard
    pillows = 0
    if rng.random() < 0.85:
        pillows = 1 if W < 1.25 else 2
        pw = W / pillows * 0.8
        for k in range(pillows):
            x = -W / 2 + (k + 0.5) * W / pillows
            b.sphere(1.0, (x, top + 0.05, -L / 2 + 0.25), scale=(pw / 2, 0.07, 0.17), color=FABRIC)
    attrs["pillows"] = pillows
    if rng.random() < 0.5:  # a blanket over the foot end, draped over the sides
        bl = L * _u(rng, 0.5, 0.7)
        zc = L / 2 - bl / 2 - 0.01
        b.box((W + 0.03, 0.03, bl), (0, top + 0.015, zc))
        for sx in (-1, 1):
            b.box((0.02, mt * 0.9, bl), (sx * (W / 2 + 0.025), top - mt * 0.45, zc))
    if rng.random() < 0.1:  # bunk: a second level on corner posts, with a ladder
        up = top + _u(rng, 0.8, 1.0)
        for sx in (-1, 1):
            for sz in (-1, 1):
                b.box((0.06, up + 0.3, 0.06), (sx * (W / 2 + 0.03), (up + 0.3) / 2, sz * (L / 2 + 0.03)))
        b.box((W + 0.04, ft, L), (0, up - ft / 2, 0))
        b.box((W, mt, L - 0.04), (0, up + mt / 2, 0), color=FABRIC)
        for sx in (-1, 1):
            b.box((0.03, 0.3, L), (sx * (W / 2 + 0.03), up + 0.15, 0))
        attrs["style"] = "bunk"
    else:
        attrs["style"] = "double" if W > 1.3 else "single"
    return b.build(), attrs


def make_table(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    coffee = rng.random() < 0.25
    h = _u(rng, 0.38, 0.48) if coffee else _u(rng, 0.70, 0.78)
    shape = _pick(rng, ["rectangular", "square", "round"], p=[0.55, 0.15, 0.3])
    if shape == "rectangular":
        w, d = (_u(rng, 0.8, 1.3), _u(rng, 0.45, 0.7)) if coffee else (_u(rng, 0.9, 1.8), _u(rng, 0.6, 1.0))
    else:
        w = d = _u(rng, 0.6, 0.9) if coffee else _u(rng, 0.7, 1.2)
    t = _u(rng, 0.03, 0.06)
    if shape == "round":
        b.cylinder(w / 2, h - t, h, sections=32)
        support = _pick(rng, ["pedestal", "legs3", "legs4"], p=[0.5, 0.25, 0.25])
    else:
        b.box((w, t, d), (0, h - t / 2, 0))
        support = _pick(rng, ["legs4", "trestle", "pedestal"], p=[0.72, 0.14, 0.14])
        if support == "trestle" and shape == "square":
            support = "pedestal"
    r = _u(rng, 0.02, 0.04)
    square = rng.random() < 0.5
    if support == "legs4" and shape != "round":
        inset = _u(rng, 0.03, 0.1)
        _four_legs(b, w / 2 - inset, d / 2 - inset, h - t, r, square, splay=_u(rng, 0.0, 0.02))
        if rng.random() < 0.5:  # apron
            ah = _u(rng, 0.05, 0.1)
            b.box((w - 2 * inset, ah, 0.02), (0, h - t - ah / 2, d / 2 - inset))
            b.box((w - 2 * inset, ah, 0.02), (0, h - t - ah / 2, -d / 2 + inset))
            b.box((0.02, ah, d - 2 * inset), (w / 2 - inset, h - t - ah / 2, 0))
            b.box((0.02, ah, d - 2 * inset), (-w / 2 + inset, h - t - ah / 2, 0))
        if rng.random() < (0.4 if coffee else 0.1):  # lower shelf
            b.box((w - 2 * inset + 2 * r, 0.025, d - 2 * inset + 2 * r), (0, _u(rng, 0.08, 0.15), 0))
        attrs["legs"] = 4
    elif support in ("legs3", "legs4"):
        n = 3 if support == "legs3" else 4
        rad = w / 2 * _u(rng, 0.55, 0.75)
        for k in range(n):
            a = 2 * math.pi * k / n + math.pi / 4
            _leg(b, (rad * math.cos(a), h - t, rad * math.sin(a)),
                 (rad * 1.1 * math.cos(a), 0, rad * 1.1 * math.sin(a)), r, square)
        attrs["legs"] = n
    elif support == "pedestal":
        cr = _u(rng, 0.04, 0.08)
        b.cylinder(cr, 0.03, h - t, sections=16)
        if rng.random() < 0.5:
            b.cylinder(_u(rng, 0.2, 0.3) * (w / 0.9), 0.0, 0.04, sections=24, radius_top=0.12)
        else:
            reach = min(w, d) * _u(rng, 0.3, 0.42)
            for k in range(4):
                a = 2 * math.pi * k / 4 + (math.pi / 4 if shape != "round" else 0)
                b.bar((0, 0.06, 0), (reach * math.cos(a), 0.02, reach * math.sin(a)), 0.05, 0.04)
        attrs["base"] = "pedestal"
    else:  # trestle ends joined by a stretcher
        inset = _u(rng, 0.1, 0.2)
        for sx in (-1, 1):
            x = sx * (w / 2 - inset)
            b.box((0.05, h - t - 0.05, 0.08), (x, (h - t) / 2, 0))
            b.box((0.07, 0.05, d * 0.8), (x, 0.025, 0))
            b.box((0.07, 0.05, d * 0.7), (x, h - t - 0.025, 0))
        b.box((w - 2 * inset, 0.06, 0.04), (0, h * 0.4, 0))
        attrs["base"] = "trestle"
    attrs["top"] = shape
    attrs["style"] = "coffee" if coffee else "dining"
    return b.build(), attrs


def make_desk(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    w, d, h = _u(rng, 1.0, 1.6), _u(rng, 0.5, 0.75), _u(rng, 0.72, 0.78)
    t = _u(rng, 0.025, 0.05)
    b.box((w, t, d), (0, h - t / 2, 0))
    style = _pick(rng, ["pedestal", "double-pedestal", "panelled", "writing"], p=[0.35, 0.25, 0.2, 0.2])
    drawers = 0
    bars = rng.random() < 0.5
    cw = _u(rng, 0.3, 0.45)

    def cabinet(x: float) -> int:
        b.box((cw, h - t, d * 0.95), (x, (h - t) / 2, -d * 0.025))
        rows = int(rng.integers(2, 5))
        return _drawer_fronts(b, x - cw / 2, x + cw / 2, 0.05, h - t, d * 0.475, rows, bar_pulls=bars)

    side = _pick(rng, [-1, 1])
    panel_t = _u(rng, 0.03, 0.05)
    if style == "pedestal":
        drawers += cabinet(side * (w / 2 - cw / 2))
        if rng.random() < 0.5:
            b.box((panel_t, h - t, d * 0.95), (-side * (w / 2 - panel_t / 2), (h - t) / 2, 0))
        else:
            x = -side * (w / 2 - 0.04)
            for sz in (-1, 1):
                b.bar((x, 0, sz * (d / 2 - 0.04)), (x, h - t, sz * (d / 2 - 0.04)), 0.04)
    elif style == "double-pedestal":
        drawers += cabinet(-(w / 2 - cw / 2)) + cabinet(w / 2 - cw / 2)
    elif style == "panelled":
        for sx in (-1, 1):
            b.box((panel_t, h - t, d * 0.95), (sx * (w / 2 - panel_t / 2), (h - t) / 2, 0))
        if rng.random() < 0.5:
            dw = _u(rng, 0.35, 0.5)
            b.box((dw, 0.12, d * 0.9), (side * (w / 2 - panel_t - dw / 2), h - t - 0.06, 0))
            xc = side * (w / 2 - panel_t - dw / 2)
            drawers += _drawer_fronts(b, xc - dw / 2, xc + dw / 2, h - t - 0.12, h - t, d * 0.45, 1, bar_pulls=bars)
    else:  # writing desk: four legs and an apron holding drawers
        inset = 0.04
        _four_legs(b, w / 2 - inset, d / 2 - inset, h - t, _u(rng, 0.018, 0.03), rng.random() < 0.6)
        ah = _u(rng, 0.1, 0.15)
        b.box((w - 2 * inset, ah, d - 2 * inset), (0, h - t - ah / 2, 0))
        n = int(rng.integers(1, 4))
        x0, x1 = -w / 2 + inset + 0.05, w / 2 - inset - 0.05
        drawers += _drawer_fronts(b, x0, x1, h - t - ah, h - t, d / 2 - inset, 1, n, bar_pulls=bars)
    if style != "writing" and rng.random() < 0.7:  # modesty panel at the back
        b.box((w - 0.1, (h - t) * 0.55, 0.02), (0, h - t - (h - t) * 0.275, -d / 2 + 0.04))
    hutch = rng.random() < 0.2
    if hutch:
        hh = _u(rng, 0.3, 0.5)
        for sx in (-1, 1):
            b.box((0.025, hh, d * 0.35), (sx * (w / 2 - 0.0125), h + hh / 2, -d / 2 + d * 0.175))
        b.box((w, 0.025, d * 0.35), (0, h + hh, -d / 2 + d * 0.175))
        b.box((w, hh, 0.015), (0, h + hh / 2, -d / 2 + 0.0075))
    attrs["hutch"] = hutch
    attrs["drawers"] = drawers
    attrs["style"] = style
    return b.build(), attrs


def _legs_or_plinth(b: MeshBuilder, rng: np.random.Generator, w: float, d: float, tall: tuple[float, float]) -> float:
    """Short legs or a recessed plinth under a cabinet; returns the height at which the body starts."""
    lh = _u(rng, *tall)
    if rng.random() < 0.5:
        r = _u(rng, 0.012, 0.025)
        _four_legs(b, w / 2 - 0.03, d / 2 - 0.03, lh, r, rng.random() < 0.5, splay=_u(rng, 0.0, 0.015))
    else:
        lh = min(lh, 0.08)
        b.box((w - 0.04, lh, d - 0.04), (0, lh / 2, -0.01))
    return lh


def make_dresser(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    w, hb, d = _u(rng, 0.9, 1.6), _u(rng, 0.7, 1.0), _u(rng, 0.4, 0.55)
    y0 = _legs_or_plinth(b, rng, w, d, (0.05, 0.15))
    b.box((w, hb, d), (0, y0 + hb / 2, 0))
    b.box((w + 0.03, 0.03, d + 0.02), (0, y0 + hb + 0.015, 0))
    cols = 1 if w < 1.05 else int(rng.choice([2, 3], p=[0.7, 0.3]))
    rows = int(rng.integers(3, 6))
    bars = rng.random() < 0.5
    if rng.random() < 0.3:  # a row of small drawers on top
        top_h = hb / (rows + 1)
        n = _drawer_fronts(b, -w / 2, w / 2, y0 + hb - top_h, y0 + hb, d / 2, 1, cols + 1, bar_pulls=bars)
        n += _drawer_fronts(b, -w / 2, w / 2, y0, y0 + hb - top_h, d / 2, rows, cols, bar_pulls=bars)
    else:
        n = _drawer_fronts(b, -w / 2, w / 2, y0, y0 + hb, d / 2, rows, cols, bar_pulls=bars)
    mirror = rng.random() < 0.35
    if mirror:
        mw, mh = w * _u(rng, 0.55, 0.9), _u(rng, 0.5, 0.9)
        top = y0 + hb + 0.03
        b.box((mw, mh, 0.04), (0, top + mh / 2, -d / 2 + 0.05))
        b.box((mw - 0.08, mh - 0.08, 0.01), (0, top + mh / 2, -d / 2 + 0.075), color=(0.80, 0.85, 0.90))
    attrs["drawers"] = n
    attrs["mirror"] = mirror
    return b.build(), attrs


def make_night_stand(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    w, d = _u(rng, 0.4, 0.58), _u(rng, 0.35, 0.45)
    y0 = _legs_or_plinth(b, rng, w, d, (0.06, 0.25))
    hb = _u(rng, 0.4, 0.55)
    pt = 0.02
    b.box((w + 0.02, 0.025, d + 0.01), (0, y0 + hb + 0.0125, 0))
    n = int(rng.choice([1, 2, 3], p=[0.45, 0.4, 0.15]))
    shelf = rng.random() < 0.45
    bars = rng.random() < 0.3
    dh = hb * (_u(rng, 0.3, 0.5) if shelf else 1.0)
    b.box((w, dh, d), (0, y0 + hb - dh / 2, 0))
    if shelf:  # an open compartment under the drawers
        n = min(n, 2)
        oh = hb - dh
        for sx in (-1, 1):
            b.box((pt, oh, d), (sx * (w / 2 - pt / 2), y0 + oh / 2, 0))
        b.box((w, pt, d), (0, y0 + pt / 2, 0))
        b.box((w, oh, pt), (0, y0 + oh / 2, -d / 2 + pt / 2))
    _drawer_fronts(b, -w / 2, w / 2, y0 + hb - dh, y0 + hb, d / 2, n, bar_pulls=bars)
    attrs["drawers"] = n
    attrs["shelf"] = shelf
    return b.build(), attrs


def make_tv_stand(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    w, d = _u(rng, 1.1, 2.0), _u(rng, 0.35, 0.5)
    y0 = _legs_or_plinth(b, rng, w, d, (0.04, 0.15))
    hb = _u(rng, 0.3, 0.5)
    pt = _u(rng, 0.02, 0.04)
    b.box((w, pt, d), (0, y0 + hb - pt / 2, 0))
    b.box((w, pt, d), (0, y0 + pt / 2, 0))
    b.box((w, hb, pt), (0, y0 + hb / 2, -d / 2 + pt / 2))
    k = int(rng.integers(2, 5))
    cw = (w - pt) / k
    for i in range(k + 1):
        b.box((pt, hb, d), (-w / 2 + pt / 2 + i * cw, y0 + hb / 2, 0))
    for i in range(k):
        x0 = -w / 2 + pt + i * cw
        kind = _pick(rng, ["open", "door", "drawers"], p=[0.5, 0.3, 0.2])
        if kind == "open" and rng.random() < 0.4:
            b.box((cw - pt, pt * 0.7, d - pt), (x0 + (cw - pt) / 2, y0 + hb / 2, 0))
        elif kind == "door":
            b.box((cw - pt - 0.01, hb - 2 * pt - 0.01, 0.015), (x0 + (cw - pt) / 2, y0 + hb / 2, d / 2 - 0.005))
            _knob(b, (x0 + (cw - pt) * 0.8, y0 + hb / 2, d / 2 + 0.003), 0.012, False, color=DARK)
        elif kind == "drawers":
            _drawer_fronts(b, x0, x0 + cw - pt, y0 + pt, y0 + hb - pt, d / 2 - 0.01, int(rng.integers(1, 3)))
    tv = rng.random() < 0.25
    if tv:
        sw = w * _u(rng, 0.5, 0.75)
        sh = sw * 9 / 16
        top = y0 + hb
        b.box((sw * 0.3, 0.02, 0.15), (0, top + 0.01, 0), color=DARK)
        b.box((0.05, 0.08, 0.03), (0, top + 0.05, -0.02), color=DARK)
        b.box((sw, sh, 0.04), (0, top + 0.08 + sh / 2, -0.02), color=DARK)
    attrs["compartments"] = k
    attrs["television"] = tv
    return b.build(), attrs


def make_wardrobe(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    w, hb, d = _u(rng, 0.8, 1.6), _u(rng, 1.6, 2.1), _u(rng, 0.5, 0.62)
    y0 = _legs_or_plinth(b, rng, w, d, (0.04, 0.12))
    b.box((w, hb, d), (0, y0 + hb / 2, 0))
    if rng.random() < 0.5:  # crown
        b.box((w + 0.06, 0.06, d + 0.04), (0, y0 + hb + 0.03, 0.01))
    n_doors = 1 if w < 0.9 else (3 if w > 1.25 and rng.random() < 0.5 else 2)
    drawers = 0
    dy0 = y0
    if rng.random() < 0.4:
        rows = int(rng.integers(1, 3))
        dh = 0.2 * rows
        drawers = _drawer_fronts(b, -w / 2, w / 2, y0, y0 + dh, d / 2, rows, 2)
        dy0 = y0 + dh
    gap = 0.012
    dw = (w - (n_doors + 1) * gap) / n_doors
    for i in range(n_doors):
        x = -w / 2 + gap + dw / 2 + i * (dw + gap)
        b.box((dw, y0 + hb - dy0 - 2 * gap, 0.02), (x, (dy0 + y0 + hb) / 2, d / 2 + 0.01))
        hx = x + (dw / 2 - 0.05) * (1 if i % 2 == 0 else -1)
        b.box((0.02, 0.25, 0.02), (hx, dy0 + (y0 + hb - dy0) * 0.5, d / 2 + 0.03), color=DARK)
    attrs["drawers"] = drawers
    attrs["style"] = "tall" if hb > 1.9 else "wide" if w > 1.3 else "narrow" if w < 0.95 else None
    return b.build(), attrs


def make_bookshelf(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    b, attrs = _start(rng)
    w, hgt, d = _u(rng, 0.6, 1.4), _u(rng, 0.8, 2.0), _u(rng, 0.25, 0.38)
    pt = _u(rng, 0.02, 0.04)
    plinth = _u(rng, 0.0, 0.1)
    for sx in (-1, 1):
        b.box((pt, hgt, d), (sx * (w / 2 - pt / 2), hgt / 2, 0))
    b.box((w, pt, d), (0, hgt - pt / 2, 0))
    b.box((w - 2 * pt, pt + plinth, d), (0, (pt + plinth) / 2, 0))
    if rng.random() < 0.75:
        b.box((w, hgt, 0.012), (0, hgt / 2, -d / 2 + 0.006))
    n_gaps = max(2, int(round((hgt - plinth) / _u(rng, 0.28, 0.42))))
    bottom, top = plinth + pt, hgt - pt
    gap = (top - bottom) / n_gaps
    for i in range(1, n_gaps):
        b.box((w - 2 * pt, pt, d - 0.01), (0, bottom + i * gap, 0.005))
    columns = [(-w / 2 + pt, w / 2 - pt)]
    if w > 1.0 and rng.random() < 0.3:
        b.box((pt, top - bottom, d - 0.01), (0, (top + bottom) / 2, 0.005))
        columns = [(-w / 2 + pt, -pt / 2), (pt / 2, w / 2 - pt)]
    books = rng.random() < 0.75
    if books:
        names = list(PALETTE)
        for i in range(n_gaps):
            y = bottom + i * gap + (pt / 2 if i else 0)
            for x0, x1 in columns:
                if rng.random() < 0.2:
                    continue
                x, stop = x0 + 0.005, x0 + (x1 - x0) * _u(rng, 0.4, 1.0)
                while x < stop - 0.05:
                    bw = _u(rng, 0.02, 0.06)
                    bh = (gap - pt) * _u(rng, 0.6, 0.9)
                    bd = d * _u(rng, 0.65, 0.85)
                    b.box((bw, bh, bd), (x + bw / 2, y + bh / 2, -d / 2 + 0.012 + bd / 2),
                          color=PALETTE[names[int(rng.integers(len(names)))]])
                    x += bw + 0.002
    attrs["shelves"] = n_gaps
    attrs["books"] = books
    return b.build(), attrs
