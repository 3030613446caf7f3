"""Response post-processing: bicubic up-sampling, scale choice, window, peak to frame displacement.

The coordinate chain, from a response cell to frame pixels (SiamFC-TF style; MemTrack defaults
r = 17, factor = 16, U = 272, stride = 8, search crop n = 255 of side s frame pixels):

1. **Response cell -> search-crop pixel.** Response cell i is the correlation of the template
   with the search features at offset i. One cell is `total_stride` (8) search-crop pixels.
   The centre cell (r - 1) / 2 = 8 sits on the centre of the crop, pixel (n - 1) / 2 = 127
   (8 * 8 + (127 - 1) / 2 = 127).
2. **Up-sampled pixel -> response cell.** The map is up-sampled r -> U = r * factor with the
   TF1 legacy `resize_bicubic(align_corners=True)`, so up-sampled pixel u lies at response
   coordinate u * (r - 1) / (U - 1). Pixel (U - 1) / 2 = 135.5 is the centre cell. One
   up-sampled pixel is (r - 1) / (U - 1) cells = 16 / 271 here, not 1 / factor.
3. **Search-crop pixel -> frame pixel.** The exact crop (`crop_and_resize(...,
   official_quirks=False)`) samples crop pixel j at frame x = cx - (s - 1) / 2 +
   j * (s - 1) / (n - 1). One crop pixel is therefore (s - 1) / (n - 1) frame pixels, and the
   crop centre is the target centre.

Chained, with `official_quirks=False`:
    d = (u - (U - 1) / 2) * (r - 1) / (U - 1) * stride * (s - 1) / (n - 1).
The official tracker (`official_quirks=True`, spec 8 and pitfall 14) instead uses
    d = (u - U / 2) * stride / factor * s / n,
i.e. centre 136 instead of 135.5 (a bias of 0.25 crop pixels toward the top-left),
8 / 16 = 0.5 crop pixels per up-sampled pixel instead of 8 * 16 / 271 = 0.472, and s / n
instead of (s - 1) / (n - 1) frame pixels per crop pixel. (Its crops are also shrunk toward the
padded origin; see `geometry/crops.py`.)

Everything here is numpy and pure: arrays in, arrays out.
"""

from __future__ import annotations

import functools
import math

import numpy as np

# TF1 legacy bicubic: Keys cubic convolution with a = -0.75, weights taken from a table of
# 1024 + 1 sub-pixel offsets (`kTableSize` in tensorflow/core/kernels/image/resize_bicubic_op.cc).
KEYS_A_LEGACY = -0.75
BICUBIC_TABLE_SIZE = 1024


def _legacy_bicubic_table() -> np.ndarray:
    """`[1025, 2]` float32 Keys weights for offsets t = i / 1024, built the same way as TF.

    Column 0 holds K(t) for the near taps (|x| <= 1) and column 1 holds K(t + 1) for the far
    taps (1 <= |x| <= 2), in TF's float32 rounding.
    """
    a = KEYS_A_LEGACY
    t = (np.arange(BICUBIC_TABLE_SIZE + 1) / BICUBIC_TABLE_SIZE).astype(np.float32)
    t64 = t.astype(np.float64)
    near = ((a + 2) * t64 - (a + 3)) * t64 * t64 + 1
    far_x = (t + np.float32(1.0)).astype(np.float64)
    far = ((a * far_x - 5 * a) * far_x + 8 * a) * far_x - 4 * a
    return np.stack([near, far], axis=1).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _bicubic_matrix_cached(in_size: int, out_size: int) -> np.ndarray:
    table = _legacy_bicubic_table()
    # align_corners: out_loc * (in - 1) / (out - 1), in float32 like TF's LegacyScaler.
    if out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    matrix = np.zeros((out_size, in_size), np.float64)
    for out_loc in range(out_size):
        in_loc_f = np.float32(out_loc) * scale
        in_loc = math.floor(in_loc_f)
        delta = np.float32(in_loc_f - np.float32(in_loc))
        # lrintf: round half to even, which np.rint also does.
        offset = int(np.rint(delta * np.float32(BICUBIC_TABLE_SIZE)))
        weights = (table[offset, 1], table[offset, 0],
                   table[BICUBIC_TABLE_SIZE - offset, 0], table[BICUBIC_TABLE_SIZE - offset, 1])
        for tap, weight in zip(range(in_loc - 1, in_loc + 3), weights):
            # Legacy border handling: out-of-range taps are clamped onto the edge pixel and
            # keep their weight (no renormalisation, unlike the half-pixel Keys a = -0.5 path).
            matrix[out_loc, min(max(tap, 0), in_size - 1)] += weight
    matrix.setflags(write=False)
    return matrix


def bicubic_upsample_matrix(in_size: int, out_size: int) -> np.ndarray:
    """The TF1 legacy `resize_bicubic(align_corners=True)` along one axis, as a matrix.

    For a map `r` of shape `[in, in]`, `M @ r @ M.T` equals
    `tf.compat.v1.image.resize_bicubic(r[None, ..., None], [out, out], align_corners=True)`
    up to float32 rounding. The matrix reproduces the TF kernel's details:
    * output pixel u samples input location u * (in - 1) / (out - 1), computed in float32;
    * Keys weights with a = -0.75, with the sub-pixel offset quantised to 1/1024;
    * taps beyond the border are clamped onto the edge pixel with their weights kept.
    Rows sum to 1, so constant maps are kept. Linear maps are *not* reproduced: Keys' kernel is
    exact for ramps only when a = -1/2. With a = -0.75, a ramp sampled at sub-pixel offset
    delta comes out at delta + 2 (a + 1/2) delta (1 - delta) (2 delta - 1), up to 0.048 cells
    off, and the clamped border taps bend it further in the first and last intervals. This
    is faithful to the official tracker, which used this kernel.

    Args:
        in_size: length of the input axis (the response size, 17).
        out_size: length of the output axis (272).

    Returns:
        Read-only float64 `[out_size, in_size]` matrix (its entries are TF's float32 weights).

    Raises:
        ValueError: a size below 1.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"bicubic_upsample_matrix: sizes must be >= 1, got in_size={in_size}, "
                         f"out_size={out_size}")
    return _bicubic_matrix_cached(int(in_size), int(out_size))


def upsample_responses(responses, factor: int = 16) -> np.ndarray:
    """Up-samples response maps by `factor` with the TF1 legacy align-corners bicubic kernel.

    Args:
        responses: `[num_scales, height, width]` response maps.
        factor: up-sampling factor (16).

    Returns:
        `[num_scales, height * factor, width * factor]` maps, float32 for float32 input and
        float64 otherwise.

    Raises:
        ValueError: a non-3-D input, NaN/Inf, or a factor below 1.
    """
    maps = np.asarray(responses)
    if maps.ndim != 3:
        raise ValueError(f"upsample_responses: responses must be [num_scales, height, width], "
                         f"got shape {maps.shape}")
    if not np.all(np.isfinite(maps)):
        raise ValueError("upsample_responses: responses have NaN or Inf")
    if factor < 1:
        raise ValueError(f"upsample_responses: factor={factor} must be >= 1")
    rows = bicubic_upsample_matrix(maps.shape[1], maps.shape[1] * factor)
    cols = bicubic_upsample_matrix(maps.shape[2], maps.shape[2] * factor)
    # Two matrix products: a three-operand einsum without an optimised path costs ~80 ms here.
    upsampled = rows @ maps.astype(np.float64) @ cols.T
    return upsampled.astype(np.float32 if maps.dtype == np.float32 else np.float64)


def hann_window(size: int) -> np.ndarray:
    """The cosine window: outer product of `np.hanning(size)` with itself, summing to 1.

    Args:
        size: side of the up-sampled response (272).

    Returns:
        float64 `[size, size]` window.
    """
    if size < 2:
        raise ValueError(f"hann_window: size={size} must be >= 2 (np.hanning(1) is [1.0] and "
                         "smaller windows are zero)")
    window = np.outer(np.hanning(size), np.hanning(size))
    return window / window.sum()


def select_scale(upsampled, scale_penalty: float) -> int:
    """Picks the scale whose penalised peak is highest (official `estimate_bbox` loop).

    Every non-centre scale map is multiplied by `scale_penalty` before its peak is taken. This
    is faithful even for negative peaks (spec pitfall 15): after the response BatchNorm a peak
    can be negative, and then the multiplication *raises* a non-centre peak. Ties go to the
    lowest index, as with the official strict `>` comparison.

    Args:
        upsampled: `[num_scales, size, size]` up-sampled responses, centre scale at
            num_scales // 2.
        scale_penalty: factor applied to non-centre scales (0.97), positive.

    Returns:
        Index of the chosen scale.

    Raises:
        ValueError: a non-3-D input, NaN, or a non-positive penalty.
    """
    maps = np.asarray(upsampled)
    if maps.ndim != 3:
        raise ValueError(f"select_scale: upsampled must be [num_scales, size, size], got shape "
                         f"{maps.shape}")
    if np.any(np.isnan(maps)):
        raise ValueError("select_scale: upsampled responses have NaN")
    if not scale_penalty > 0:
        raise ValueError(f"select_scale: scale_penalty={scale_penalty} must be positive")
    peaks = maps.reshape(maps.shape[0], -1).max(axis=1)
    # max(p * map) == p * max(map) for p > 0, including float rounding (rounding is monotone).
    penalties = np.full(maps.shape[0], scale_penalty, dtype=peaks.dtype)
    penalties[maps.shape[0] // 2] = 1
    return int(np.argmax(peaks * penalties))


def locate_peak(upsampled_map, window_influence: float, window) -> tuple[int, int]:
    """Finds the peak of one up-sampled map after normalisation and the cosine-window blend.

    The map minus its minimum is divided by its sum, blended as
    (1 - w) * map + w * window, and its first maximum (row-major) is taken. A constant map
    (sum 0 after subtracting the minimum) is treated as all zeros, so the window alone decides.
    The official code would produce NaN there.

    Args:
        upsampled_map: `[size, size]` up-sampled response of the chosen scale.
        window_influence: w in [0, 1] (0.15).
        window: `[size, size]` window from `hann_window`.

    Returns:
        (px, py): column and row of the peak.

    Raises:
        ValueError: mismatched shapes, NaN, or `window_influence` outside [0, 1].
    """
    response = np.asarray(upsampled_map, dtype=np.float64)
    window = np.asarray(window, dtype=np.float64)
    if response.ndim != 2 or response.shape != window.shape:
        raise ValueError(f"locate_peak: map {response.shape} and window {window.shape} must be "
                         "the same 2-D shape")
    if np.any(np.isnan(response)):
        raise ValueError("locate_peak: upsampled_map has NaN")
    if not 0.0 <= window_influence <= 1.0:
        raise ValueError(f"locate_peak: window_influence={window_influence} must be in [0, 1]")
    response = response - response.min()
    total = response.sum()
    response = response / total if total > 0 else np.zeros_like(response)
    blended = (1.0 - window_influence) * response + window_influence * window
    py, px = np.unravel_index(np.argmax(blended), blended.shape)
    return int(px), int(py)


def peak_to_displacement(px, py, upsampled_size: int, upsample_factor: int, total_stride: int,
                         search_side_frame: float, search_size: int,
                         official_quirks: bool) -> tuple[float, float]:
    """Converts a peak in the up-sampled map to the target displacement in frame pixels.

    See the module docstring for the derivation.
    * official: d = (p - U / 2) * stride / factor * s / n.
    * exact: d = (p - (U - 1) / 2) * (r - 1) / (U - 1) * stride * (s - 1) / (n - 1),
      with r = U / factor.

    Args:
        px: peak column in the up-sampled map (may be fractional).
        py: peak row.
        upsampled_size: U, side of the up-sampled map (272).
        upsample_factor: factor (16).
        total_stride: backbone stride, search-crop pixels per response cell (8).
        search_side_frame: s, side of the chosen scale's search crop in frame pixels (the
            rounded round(s_x * scale)).
        search_size: n, side of the search crop in pixels (255).
        official_quirks: use the official formula (True) or the exact one (False).

    Returns:
        (dx, dy) to add to the target centre, in frame pixels.

    Raises:
        ValueError: inconsistent sizes (U not a multiple of factor, r < 2 for the exact
            formula) or a non-positive search side.
    """
    if upsampled_size % upsample_factor != 0:
        raise ValueError(f"peak_to_displacement: upsampled_size={upsampled_size} is not a "
                         f"multiple of upsample_factor={upsample_factor}")
    if not search_side_frame > 0 or search_size < 2:
        raise ValueError(f"peak_to_displacement: search_side_frame={search_side_frame} and "
                         f"search_size={search_size} must be positive (search_size >= 2)")
    peak = np.array([px, py], dtype=np.float64)
    if official_quirks:
        crop_px = (peak - upsampled_size / 2) * total_stride / upsample_factor
        frame = crop_px * search_side_frame / search_size
    else:
        response_size = upsampled_size // upsample_factor
        if response_size < 2:
            raise ValueError(f"peak_to_displacement: response size {response_size} must be >= 2 "
                             "for the align-corners mapping")
        cells = (peak - (upsampled_size - 1) / 2) * (response_size - 1) / (upsampled_size - 1)
        frame = cells * total_stride * (search_side_frame - 1) / (search_size - 1)
    return float(frame[0]), float(frame[1])


def update_size(size_wh, scale: float, damping: float) -> np.ndarray:
    """Damped size update: (1 - d) * size + d * size * scale (`scale_damp` 0.6).

    Args:
        size_wh: `[2]` target (w, h) in frame pixels.
        scale: the chosen scale factor.
        damping: d in [0, 1].

    Returns:
        float64 `[2]` new (w, h).
    """
    if not 0.0 <= damping <= 1.0:
        raise ValueError(f"update_size: damping={damping} must be in [0, 1]")
    if not scale > 0:
        raise ValueError(f"update_size: scale={scale} must be positive")
    size = np.asarray(size_wh, dtype=np.float64)
    return (1.0 - damping) * size + damping * size * scale


def clamp_size(size_wh, initial_size_wh, min_scale: float, max_scale: float) -> np.ndarray:
    """Clamps each side of the target size to [min_scale, max_scale] times its first-frame size.

    This is bilylee's [0.2, 5] clamp. The official MemTrack does not clamp; the tracker decides.

    Args:
        size_wh: `[2]` current (w, h).
        initial_size_wh: `[2]` first-frame (w, h).
        min_scale: lower bound relative to the initial size (0.2).
        max_scale: upper bound (5.0).

    Returns:
        float64 `[2]` clamped (w, h).
    """
    if not 0 < min_scale <= max_scale:
        raise ValueError(f"clamp_size: need 0 < min_scale <= max_scale, got {min_scale}, "
                         f"{max_scale}")
    initial = np.asarray(initial_size_wh, dtype=np.float64)
    return np.clip(np.asarray(size_wh, dtype=np.float64), min_scale * initial, max_scale * initial)


def clamp_center_to_frame(center_xy, frame_wh) -> np.ndarray:
    """Clamps the target centre into the frame [0, W] x [0, H] (see `geometry/boxes.py`).

    Args:
        center_xy: `[2]` centre (cx, cy).
        frame_wh: (W, H) of the frame, PIL order.

    Returns:
        float64 `[2]` clamped centre.
    """
    frame = np.asarray(frame_wh, dtype=np.float64)
    return np.clip(np.asarray(center_xy, dtype=np.float64), 0.0, frame)


# ------------------------------------------------------------------------------ in-graph twins
# The tracker runs the scale choice and the peak search inside its per-frame tf.function, so
# only a few scalars leave the graph. These are `select_scale` and `locate_peak` in TF, with the
# same dtypes (float32 peaks and penalties, float64 normalisation and window blend) and the
# same tie rule (first index, row-major), so they pick the same scale and peak.


def locate_peak_tf(upsampled, scale_penalty: float, window_influence: float, window):
    """`select_scale` then `locate_peak` on `[num_scales, U, U]` maps, in TF.

    Args:
        upsampled: float32 `[num_scales, U, U]` up-sampled responses, scales increasing.
        scale_penalty: factor of the non-centre scales' peaks (positive).
        window_influence: w in [0, 1].
        window: float64 `[U, U]` cosine window (`hann_window`).

    Returns:
        `(best_scale int32 [], peak_xy int32 [2] as (px, py), score float32 [])`, where score is
        the winning scale's (unpenalised) peak response.
    """
    import tensorflow as tf  # this module is numpy-only apart from this function

    num_scales = upsampled.shape[0]
    size = tf.shape(upsampled)[2]
    peaks = tf.reduce_max(upsampled, axis=[1, 2])
    penalties = np.full(num_scales, scale_penalty, np.float32)
    penalties[num_scales // 2] = 1
    best = tf.argmax(peaks * tf.constant(penalties), output_type=tf.int32)
    response = tf.cast(tf.gather(upsampled, best), tf.float64)
    response = response - tf.reduce_min(response)
    total = tf.reduce_sum(response)
    response = tf.where(total > 0, response / tf.where(total > 0, total, 1.0),
                        tf.zeros_like(response))
    blended = (1.0 - window_influence) * response + window_influence * window
    flat = tf.argmax(tf.reshape(blended, [-1]), output_type=tf.int32)
    peak_xy = tf.stack([flat % size, flat // size])
    return best, peak_xy, tf.gather(peaks, best)
