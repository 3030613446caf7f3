"""Procedural tracking videos: a textured target on clutter, with drift, occlusion and look-alikes.

A `SyntheticVideo` is fully determined by `(seed, index, frame_size, length)`. All trajectories
and appearance schedules are computed when it is built, so `render(k)` draws frame k directly
(no state carried between frames) in about a millisecond for 320 x 320.

What a video contains, and why:
- a background canvas (smooth colour field + mid-frequency noise + 20-40 clutter shapes, some
  striped, some saturated) seen through a slowly panning camera: the target is not the only
  structure, and a static box also loses the background alignment;
- the target: a textured superellipse (stripes, checks, rings, patchwork or dots in 2-3
  saturated colours) of 10-18 % of the frame side, moving along a smooth Catmull-Rom path that
  travels about 0.1 target sizes per frame (several target sizes per clip), with scale
  in [0.6, 1.6] of the initial size and a mild aspect drift;
- gradual appearance drift: its texture blends into a related texture (shifted hues, rotated
  and rescaled pattern), its outline morphs (superellipse exponent), the pattern rotates and
  its brightness changes;
- 1-3 look-alike distractors: same pattern family and similar size, but other hues and pattern
  parameters, on their own paths (drawn under the target);
- usually one moving bar that crosses the target and hides part of it (drawn over it).

Ground truth boxes are integers (the target covers exactly the pixels of its box), 0-based
`[x, y, w, h]`; OTB files written by `write_otb_sequences` are 1-based.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import tempfile

import cv2
import numpy as np

# Index ranges that keep train, validation and test (written to disk) videos disjoint whatever
# the seed: video i of a split is SyntheticVideo(seed, SPLIT_INDEX_BASE[split] + i).
SPLIT_INDEX_BASE = {"train": 0, "val": 1_000_000_000, "test": 2_000_000_000}
TEXTURE_SIZE = 64
PATTERNS = ("stripes", "checker", "rings", "patchwork", "dots")
_SQRT2 = math.sqrt(2.0)


def sequence_index(split: str, i: int) -> int:
    """Index of the i-th video of a split ("train", "val" or "test")."""
    if split not in SPLIT_INDEX_BASE:
        raise ValueError(f"split={split!r}: expected one of {sorted(SPLIT_INDEX_BASE)}")
    if not 0 <= i < 1_000_000_000:
        raise ValueError(f"video number {i} out of range [0, 1e9)")
    return SPLIT_INDEX_BASE[split] + i


def _frame_shape(frame_size) -> tuple[int, int]:
    if np.isscalar(frame_size):
        height = width = int(frame_size)
    else:
        height, width = (int(v) for v in frame_size)
    if min(height, width) < 64:
        raise ValueError(f"frame_size={frame_size}: frames must be at least 64 x 64")
    return height, width


@functools.lru_cache(maxsize=1)
def _noise_tile() -> np.ndarray:
    """A fixed 512 x 512 x 3 int16 noise field in [-12, 12] (fine texture, shared by all videos)."""
    return np.random.default_rng(20180901).integers(-12, 13, size=(512, 512, 3)).astype(np.int16)


def _hsv_to_rgb(hue_deg, sat, val) -> np.ndarray:
    """Colours from HSV (hue in degrees, s and v in [0, 1]) as float32 `[n, 3]` RGB 0-255."""
    hsv = np.stack([np.mod(np.asarray(hue_deg, np.float64), 360.0) / 2.0,
                    np.asarray(sat, np.float64) * 255.0,
                    np.asarray(val, np.float64) * 255.0], axis=-1)
    hsv = np.clip(np.round(hsv), 0, 255).astype(np.uint8).reshape(1, -1, 3)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).reshape(-1, 3).astype(np.float32)


def _catmull_rom(points: np.ndarray, spacing: int, length: int) -> np.ndarray:
    """Samples a Catmull-Rom spline through `points` (one every `spacing` frames) at 0..length-1.

    Args:
        points: `[num_points, dims]` control points; point j sits at frame j * spacing.
        spacing: frames between control points.
        length: frames to sample.

    Returns:
        `[length, dims]` smooth curve passing through the control points.
    """
    k = np.arange(length, dtype=np.float64)
    seg = np.minimum((k // spacing).astype(np.int64), len(points) - 2)
    tau = (k - seg * spacing)[:, None] / spacing
    padded = np.concatenate([points[:1], points, points[-1:]], axis=0)
    p0, p1, p2, p3 = (padded[seg + i] for i in range(4))
    tau2, tau3 = tau * tau, tau * tau * tau
    return 0.5 * (2 * p1 + (p2 - p0) * tau + (2 * p0 - 5 * p1 + 4 * p2 - p3) * tau2
                  + (3 * p1 - p0 - 3 * p2 + p3) * tau3)


def _smooth_walk(rng, length, spacing, step_std, low, high, start=0.0) -> np.ndarray:
    """A smooth scalar random walk clipped to [low, high], `[length]`."""
    num = length // spacing + 3
    values = [start]
    for _ in range(num - 1):
        values.append(float(np.clip(values[-1] + rng.normal(0.0, step_std), low, high)))
    curve = _catmull_rom(np.asarray(values)[:, None], spacing, length)[:, 0]
    return np.clip(curve, low, high)


def _path(rng, length, frame_hw, mean_size, margin_xy, speed) -> np.ndarray:
    """Centre path `[length, 2]` (x, y): persistent heading, one control point per 8-13 frames.

    Args:
        rng: generator.
        length: frames.
        frame_hw: (height, width).
        mean_size: target size in pixels (steps are measured in it).
        margin_xy: (mx, my) the centre keeps at least this far from the frame border.
        speed: mean travel per frame in target sizes.
    """
    height, width = frame_hw
    lo = np.array(margin_xy, dtype=np.float64)
    hi = np.array([width, height], dtype=np.float64) - lo
    hi = np.maximum(hi, lo + 1.0)
    spacing = int(rng.integers(8, 14))
    num = length // spacing + 3
    point = rng.uniform(lo, hi)
    heading = rng.uniform(0, 2 * math.pi)
    points = [point]
    for _ in range(num - 1):
        heading += rng.normal(0.0, 0.8)
        step = rng.uniform(0.6, 1.4) * speed * spacing * mean_size
        proposal = point + step * np.array([math.cos(heading), math.sin(heading)])
        if np.any(proposal < lo) or np.any(proposal > hi):
            # Turn back towards the frame centre instead of sticking to the border.
            to_centre = (lo + hi) / 2 - point
            heading = math.atan2(to_centre[1], to_centre[0]) + rng.normal(0.0, 0.5)
            proposal = point + step * np.array([math.cos(heading), math.sin(heading)])
        point = np.clip(proposal, lo, hi)
        points.append(point)
    return _catmull_rom(np.asarray(points), spacing, length)


@functools.lru_cache(maxsize=1)
def _texture_grid() -> tuple[np.ndarray, np.ndarray]:
    """Texture pixel centres in [-1, 1]: x and y, each `[TEXTURE_SIZE, TEXTURE_SIZE]`."""
    coords = (np.arange(TEXTURE_SIZE, dtype=np.float32) - (TEXTURE_SIZE - 1) / 2) / (
        TEXTURE_SIZE / 2)
    return np.meshgrid(coords, coords)


def _pattern(rng, kind: str, palette: np.ndarray, params: dict) -> np.ndarray:
    """A `[TEXTURE_SIZE, TEXTURE_SIZE, 3]` float32 texture of `kind` coloured by `palette`."""
    size = TEXTURE_SIZE
    x, y = _texture_grid()
    angle, period = params["angle"], params["period"]
    u = x * math.cos(angle) + y * math.sin(angle)
    v = -x * math.sin(angle) + y * math.cos(angle)
    if kind == "stripes":
        index = (np.floor(u / period) % len(palette)).astype(np.int64)
    elif kind == "checker":
        index = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.int64)
        index += (np.floor(u / (2 * period)) % 2).astype(np.int64) * (len(palette) > 2)
    elif kind == "rings":
        radius = np.sqrt((x - params["cx"]) ** 2 + (y - params["cy"]) ** 2)
        index = (np.floor(radius / period) % len(palette)).astype(np.int64)
    elif kind == "patchwork":
        cells = params["cells"]
        grid = params["grid"]
        gx = np.clip(((u + 1.5) / 3.0 * cells).astype(np.int64), 0, cells - 1)
        gy = np.clip(((v + 1.5) / 3.0 * cells).astype(np.int64), 0, cells - 1)
        index = grid[gy, gx]
    elif kind == "dots":
        fu = (u / period) % 1.0 - 0.5
        fv = (v / period) % 1.0 - 0.5
        index = (fu * fu + fv * fv < 0.09).astype(np.int64)
    else:
        raise ValueError(f"unknown pattern {kind!r}")
    texture = palette[np.clip(index, 0, len(palette) - 1)]
    noise = rng.integers(-8, 9, size=(size, size, 3)).astype(np.float32)
    return np.clip(texture + noise, 0, 255)


def _pattern_params(rng, kind: str, num_colours: int) -> dict:
    params = {"angle": rng.uniform(0, math.pi), "period": rng.uniform(0.25, 0.6),
              "cx": rng.uniform(-0.4, 0.4), "cy": rng.uniform(-0.4, 0.4), "cells": 4}
    params["grid"] = rng.integers(0, num_colours, size=(4, 4))
    if kind == "rings":
        params["period"] = rng.uniform(0.18, 0.4)
    return params


def _palette(rng, base_hue: float, num: int, hue_spread: float = 120.0) -> np.ndarray:
    """`num` saturated colours around `base_hue`, alternating dark/bright for contrast."""
    hues = base_hue + np.cumsum(np.concatenate([[0.0], rng.uniform(0.35, 1.0, num - 1)])) * \
        hue_spread / max(num - 1, 1)
    sats = rng.uniform(0.55, 1.0, num)
    vals = np.where(np.arange(num) % 2 == 0, rng.uniform(0.75, 1.0, num),
                    rng.uniform(0.3, 0.6, num))
    return _hsv_to_rgb(hues, sats, vals)


class _Appearance:
    """Textures A and B of one object plus its per-frame drift schedule."""

    def __init__(self, texture_a, texture_b, blend, exponent, angle, gain):
        self.texture_a = texture_a  # [S, S, 3] float32
        self.texture_b = texture_b  # [S, S, 3] float32
        self.blend = blend          # [length] weight of B
        self.exponent = exponent    # [length] superellipse exponent (2 ellipse .. 8 box)
        self.angle = angle          # [length] in-plane pattern rotation (radians)
        self.gain = gain            # [length] brightness factor


def _make_appearance(rng, length, kind, palette, hue_drift, drift_frames, drift_amount,
                     spin) -> _Appearance:
    params = _pattern_params(rng, kind, len(palette))
    texture_a = _pattern(rng, kind, palette, params)
    # B: the same family with shifted hues and a perturbed pattern (texture + colour drift).
    drifted = dict(params)
    drifted["angle"] = params["angle"] + rng.normal(0.0, 0.5)
    drifted["period"] = params["period"] * rng.uniform(0.75, 1.35)
    hsv = cv2.cvtColor(np.clip(palette, 0, 255).astype(np.uint8)[None], cv2.COLOR_RGB2HSV)[0]
    palette_b = _hsv_to_rgb(hsv[:, 0] * 2.0 + hue_drift, hsv[:, 1] / 255.0, hsv[:, 2] / 255.0)
    texture_b = _pattern(rng, kind, palette_b, drifted)
    k = np.arange(length, dtype=np.float64)
    ramp = np.minimum(k / drift_frames, 1.0)
    blend = drift_amount * (0.5 - 0.5 * np.cos(math.pi * ramp))
    exponent = np.exp(np.log(rng.uniform(2.0, 8.0)) * (1 - ramp)
                      + np.log(rng.uniform(2.0, 8.0)) * ramp)
    angle = rng.uniform(-0.3, 0.3) + spin * k
    gain = 1.0 + rng.uniform(0.05, 0.2) * np.sin(2 * math.pi * k / rng.uniform(40, 120)
                                                  + rng.uniform(0, 2 * math.pi))
    return _Appearance(texture_a, texture_b, blend, exponent, angle, gain)


def _integer_boxes(centres, sizes, frame_hw) -> np.ndarray:
    """Rounds centre/size tracks to integer xywh boxes kept inside the frame, `[length, 4]`."""
    height, width = frame_hw
    w = np.clip(np.round(sizes[:, 0]), 4, width)
    h = np.clip(np.round(sizes[:, 1]), 4, height)
    x = np.clip(np.round(centres[:, 0] - w / 2), 0, width - w)
    y = np.clip(np.round(centres[:, 1] - h / 2), 0, height - h)
    return np.stack([x, y, w, h], axis=1)


def _paint(frame: np.ndarray, box, appearance: _Appearance, k: int) -> None:
    """Draws a textured superellipse filling integer `box` (x, y, w, h) into `frame` in place."""
    x, y, w, h = (int(v) for v in box)
    x1, y1 = max(x, 0), max(y, 0)
    x2, y2 = min(x + w, frame.shape[1]), min(y + h, frame.shape[0])
    if x2 <= x1 or y2 <= y1:
        return
    # Normalised coordinates in (-1, 1) of the pixel centres inside the box.
    u = ((np.arange(x1, x2, dtype=np.float32) + 0.5 - (x + w / 2)) / (w / 2))[None, :]
    v = ((np.arange(y1, y2, dtype=np.float32) + 0.5 - (y + h / 2)) / (h / 2))[:, None]
    p = appearance.exponent[k]
    mask = np.abs(u) ** p + np.abs(v) ** p <= 1.0
    cos_a, sin_a = math.cos(appearance.angle[k]), math.sin(appearance.angle[k])
    # Rotated pattern coordinates; corners reach sqrt(2), so map [-sqrt2, sqrt2] to the texture.
    scale = (TEXTURE_SIZE - 1) / (2 * _SQRT2)
    tx = (u * cos_a - v * sin_a + _SQRT2) * scale
    ty = (u * sin_a + v * cos_a + _SQRT2) * scale
    a = appearance.blend[k]
    texture = appearance.texture_a * (1.0 - a) + appearance.texture_b * a
    x0 = np.floor(tx).astype(np.int64)
    y0 = np.floor(ty).astype(np.int64)
    fx = (tx - x0)[..., None]
    fy = (ty - y0)[..., None]
    x0 = np.clip(x0, 0, TEXTURE_SIZE - 2)
    y0 = np.clip(y0, 0, TEXTURE_SIZE - 2)
    # Bilinear texture lookup: magnified patterns stay smooth as the object moves and scales.
    colour = (texture[y0, x0] * (1 - fx) * (1 - fy) + texture[y0, x0 + 1] * fx * (1 - fy)
              + texture[y0 + 1, x0] * (1 - fx) * fy + texture[y0 + 1, x0 + 1] * fx * fy)
    colour = np.clip(colour * appearance.gain[k], 0, 255).astype(np.uint8)
    region = frame[y1:y2, x1:x2]
    region[mask] = colour[mask]


class SyntheticVideo:
    """One procedurally generated tracking video.

    Args:
        seed: the dataset seed.
        index: which video (see `sequence_index` for the disjoint train/val/test ranges).
        frame_size: side of square frames, or (height, width).
        length: number of frames.

    Attributes:
        boxes: float64 `[length, 4]` target boxes `[x, y, w, h]`, 0-based, integer valued.
    """

    def __init__(self, seed: int, index: int, frame_size=320, length: int = 60):
        if length < 2:
            raise ValueError(f"length={length}: a video needs at least 2 frames")
        self.seed, self.index, self.length = int(seed), int(index), int(length)
        self.frame_hw = _frame_shape(frame_size)
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.index, 0x4D454D])
        height, width = self.frame_hw
        side = min(height, width)
        self._build_background(rng)

        # Target: size, scale/aspect drift, path.
        base = rng.uniform(0.10, 0.18) * side
        log_aspect = rng.uniform(math.log(0.55), math.log(1.8))
        log_scale = _smooth_walk(rng, length, int(rng.integers(15, 30)), 0.22,
                                 math.log(0.6), math.log(1.6))
        aspect_drift = _smooth_walk(rng, length, int(rng.integers(15, 30)), 0.08, -0.2, 0.2)
        la = log_aspect + aspect_drift
        sizes = base * np.exp(log_scale)[:, None] * np.stack(
            [np.exp(la / 2), np.exp(-la / 2)], axis=1)
        sizes = np.minimum(sizes, 0.45 * side)
        margin = sizes.max(axis=0) / 2 + 2
        centres = _path(rng, length, self.frame_hw, base, margin, rng.uniform(0.07, 0.14))
        self._boxes = _integer_boxes(centres, sizes, self.frame_hw)
        self._boxes.setflags(write=False)

        kind = PATTERNS[int(rng.integers(len(PATTERNS)))]
        num_colours = int(rng.integers(2, 4))
        hue = rng.uniform(0, 360)
        palette = _palette(rng, hue, num_colours)
        self._target = _make_appearance(
            rng, length, kind, palette, hue_drift=rng.choice([-1, 1]) * rng.uniform(15, 45),
            drift_frames=rng.uniform(40, 150), drift_amount=rng.uniform(0.5, 1.0),
            spin=rng.normal(0.0, 0.006))

        # Look-alike distractors: same pattern family and size class, other hues and parameters.
        self._distractors = []
        for _ in range(int(rng.integers(1, 4))):
            d_base = base * rng.uniform(0.75, 1.25)
            d_sizes = np.tile(d_base * np.array([[math.exp(log_aspect / 2),
                                                  math.exp(-log_aspect / 2)]]), (length, 1))
            d_sizes *= np.exp(_smooth_walk(rng, length, 20, 0.15, -0.3, 0.3))[:, None]
            d_sizes = np.minimum(d_sizes, 0.45 * side)
            d_margin = d_sizes.max(axis=0) / 2 + 2
            d_path = None
            for _attempt in range(5):
                d_path = _path(rng, length, self.frame_hw, d_base, d_margin,
                               rng.uniform(0.05, 0.14))
                # Start away from the target so the first frame is unambiguous.
                if np.linalg.norm(d_path[0] - centres[0]) > 1.5 * (base + d_base):
                    break
            d_hue = hue + rng.choice([-1, 1]) * rng.uniform(30, 150)
            d_palette = _palette(rng, d_hue, num_colours)
            appearance = _make_appearance(
                rng, length, kind, d_palette, hue_drift=rng.uniform(-30, 30),
                drift_frames=rng.uniform(60, 200), drift_amount=rng.uniform(0.0, 0.8),
                spin=rng.normal(0.0, 0.006))
            self._distractors.append((_integer_boxes(d_path, d_sizes, self.frame_hw), appearance))

        self._occluder = self._make_occluder(rng, centres, sizes)

    def _build_background(self, rng) -> None:
        """A cluttered canvas larger than the frame, and a smooth camera pan over it."""
        height, width = self.frame_hw
        pad = max(8, int(0.08 * max(height, width)))
        ch, cw = height + 2 * pad, width + 2 * pad
        # Colour field at quarter resolution, upsampled once: smooth regions plus blotches.
        qh, qw = max(ch // 4, 4), max(cw // 4, 4)
        grey = rng.uniform(70, 180)
        coarse = grey + 0.6 * (rng.uniform(40, 215, size=(4, 4, 3)) - grey)
        field = cv2.resize(coarse.astype(np.float32), (qw, qh), interpolation=cv2.INTER_CUBIC)
        medium = rng.normal(0.0, 22.0, size=(12, 12, 3)).astype(np.float32)
        field += cv2.resize(medium, (qw, qh), interpolation=cv2.INTER_LINEAR)
        canvas = cv2.resize(np.clip(field, 0, 255).astype(np.uint8), (cw, ch),
                            interpolation=cv2.INTER_LINEAR)
        side = min(ch, cw)
        num_shapes = int(rng.integers(20, 41))
        # Mostly muted clutter, a quarter saturated (so saturation alone does not find the target).
        saturated = rng.random(num_shapes) < 0.25
        colours = _hsv_to_rgb(rng.uniform(0, 360, num_shapes),
                              np.where(saturated, rng.uniform(0.5, 1.0, num_shapes),
                                       rng.uniform(0.0, 0.35, num_shapes)),
                              rng.uniform(0.2, 0.95, num_shapes)).astype(np.int64)
        others = _hsv_to_rgb(rng.uniform(0, 360, num_shapes), rng.uniform(0, 0.6, num_shapes),
                             rng.uniform(0.2, 0.9, num_shapes)).astype(np.int64)
        centres = rng.integers(0, [cw, ch], size=(num_shapes, 2))
        radii = (rng.uniform(0.015, 0.1, size=(num_shapes, 2)) * side).astype(np.int64)
        shapes = rng.integers(0, 4, num_shapes)
        angles = rng.uniform(0, math.pi, num_shapes)
        extras = rng.integers(2, 8, num_shapes)
        for i in range(num_shapes):
            colour = tuple(int(c) for c in colours[i])
            (cx, cy), (rx, ry) = (int(v) for v in centres[i]), (int(v) for v in radii[i])
            if shapes[i] == 0:
                cv2.rectangle(canvas, (cx - rx, cy - ry), (cx + rx, cy + ry), colour, -1)
            elif shapes[i] == 1:
                cv2.ellipse(canvas, (cx, cy), (rx, ry), float(np.degrees(angles[i])), 0, 360,
                            colour, -1)
            elif shapes[i] == 2:
                dx, dy = int(2 * rx * math.cos(angles[i])), int(2 * rx * math.sin(angles[i]))
                cv2.line(canvas, (cx - dx, cy - dy), (cx + dx, cy + dy), colour,
                         int(extras[i]) // 2 + 1)
            else:
                # A striped block: background structure with a pattern, like the objects.
                other = tuple(int(c) for c in others[i])
                cv2.rectangle(canvas, (cx - rx, cy - ry), (cx + rx, cy + ry), colour, -1)
                step = int(extras[i])
                for yy in range(cy - ry, cy + ry, 2 * step):
                    cv2.rectangle(canvas, (cx - rx, yy), (cx + rx, yy + step - 1), other, -1)
        # Fine texture: a window of the shared noise tile (repeated if the canvas is larger).
        noise = _noise_tile()
        if ch >= noise.shape[0] or cw >= noise.shape[1]:
            noise = np.tile(noise, (ch // noise.shape[0] + 1, cw // noise.shape[1] + 1, 1))
        oy = int(rng.integers(0, noise.shape[0] - ch + 1))
        ox = int(rng.integers(0, noise.shape[1] - cw + 1))
        tile = noise[oy:oy + ch, ox:ox + cw]
        self._canvas = np.clip(canvas.astype(np.int16) + tile, 0, 255).astype(np.uint8)
        pan = np.stack([_smooth_walk(rng, self.length, 20, 0.35 * pad, 0, 2 * pad, start=pad),
                        _smooth_walk(rng, self.length, 20, 0.35 * pad, 0, 2 * pad, start=pad)],
                       axis=1)
        self._pan = np.round(pan).astype(np.int64)  # [length, 2] (x, y) canvas offset

    def _make_occluder(self, rng, centres, sizes):
        """A bar crossing the target once; `None` for a quarter of the videos."""
        if rng.random() < 0.25:
            return None
        length = self.length
        crossing = int(rng.uniform(0.2, 0.8) * (length - 1))
        vertical = rng.random() < 0.5
        w_t, h_t = sizes[crossing]
        # Covers at most about half of the target while it passes.
        if vertical:
            size = np.array([rng.uniform(0.25, 0.45) * w_t, rng.uniform(1.5, 3.0) * h_t])
            velocity = np.array([rng.choice([-1, 1]) * rng.uniform(0.08, 0.2) * w_t, 0.0])
        else:
            size = np.array([rng.uniform(1.5, 3.0) * w_t, rng.uniform(0.25, 0.45) * h_t])
            velocity = np.array([0.0, rng.choice([-1, 1]) * rng.uniform(0.08, 0.2) * h_t])
        k = np.arange(length, dtype=np.float64)[:, None]
        path = centres[crossing] + (k - crossing) * velocity
        boxes = np.concatenate([np.round(path - size / 2), np.tile(np.round(size), (length, 1))],
                               axis=1)
        colour = _hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0.0, 0.4), rng.uniform(0.15, 0.8))
        stripes = int(rng.integers(0, 2))
        return boxes, tuple(int(c) for c in colour[0]), stripes

    @property
    def boxes(self) -> np.ndarray:
        """float64 `[length, 4]` target boxes `[x, y, w, h]` (0-based, integer valued)."""
        return self._boxes

    def render(self, k: int, with_target: bool = True) -> np.ndarray:
        """Frame k as uint8 `[height, width, 3]` RGB.

        Args:
            k: frame index.
            with_target: False leaves the target out (the rest of the scene is unchanged), to see
                exactly which pixels the target covers.
        """
        if not 0 <= k < self.length:
            raise IndexError(f"frame {k} out of range for a video of {self.length} frames")
        height, width = self.frame_hw
        ox, oy = self._pan[k]
        frame = self._canvas[oy:oy + height, ox:ox + width].copy()
        for boxes, appearance in self._distractors:
            _paint(frame, boxes[k], appearance, k)
        if with_target:
            _paint(frame, self._boxes[k], self._target, k)
        if self._occluder is not None:
            boxes, colour, stripes = self._occluder
            x, y, w, h = (int(v) for v in boxes[k])
            cv2.rectangle(frame, (x, y), (x + w - 1, y + h - 1), colour, -1)
            if stripes:
                darker = tuple(int(c * 0.6) for c in colour)
                for yy in range(y, y + h, 8):
                    cv2.line(frame, (x, yy), (x + w - 1, yy), darker, 2)
        return frame


def _write_jpeg(path: str, image: np.ndarray, quality: int = 95) -> None:
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                              [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"{path}: JPEG encoding failed")
    with open(path, "wb") as f:
        f.write(buffer.tobytes())


def write_otb_sequences(out_dir: str, num_sequences: int, seed: int, frame_size=320,
                        length: int = 60, *, split: str = "test", first: int = 0,
                        prefix: str = "Synthetic") -> list[str]:
    """Writes held-out videos in OTB layout: `<Seq>/img/0001.jpg ...` and `groundtruth_rect.txt`.

    Sequence i is `SyntheticVideo(seed, sequence_index(split, first + i), frame_size, length)`,
    disjoint from every training video. Ground truth lines are 1-based OTB boxes
    `x+1,y+1,w,h`. Each sequence is written into a temporary folder in `out_dir` and renamed into
    place, so a folder that exists is complete; an existing sequence of the same name is replaced.

    Args:
        out_dir: destination folder (created if needed).
        num_sequences: how many sequences.
        seed: dataset seed.
        frame_size: side of square frames, or (height, width).
        length: frames per sequence.
        split: index range to draw from ("test" by default; "val" gives the validation videos).
        first: number of the first video in that range.
        prefix: sequence names are f"{prefix}{first + i:04d}".

    Returns:
        The sequence folders, in order.
    """
    if num_sequences < 0:
        raise ValueError(f"num_sequences={num_sequences} must be >= 0")
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i in range(num_sequences):
        name = f"{prefix}{first + i:04d}"
        video = SyntheticVideo(seed, sequence_index(split, first + i), frame_size, length)
        final = os.path.join(out_dir, name)
        tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=out_dir)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the result is an ordinary folder
        try:
            os.makedirs(os.path.join(tmp, "img"))
            for k in range(length):
                _write_jpeg(os.path.join(tmp, "img", f"{k + 1:04d}.jpg"), video.render(k))
            lines = [f"{int(x) + 1},{int(y) + 1},{int(w)},{int(h)}" for x, y, w, h in video.boxes]
            with open(os.path.join(tmp, "groundtruth_rect.txt"), "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
            if os.path.isdir(final):
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        paths.append(final)
    return paths
