"""Exemplar/search crop sizes, the scale pyramid, and mean-padded crops (TF and numpy reference).

Coordinates follow `geometry/boxes.py`: frame pixel column `i` is sampled at x = i. A square
crop of side `s` centred on `(cx, cy)` samples `out_size` points per axis, from
`cx - (s - 1) / 2` to `cx + (s - 1) / 2`. Beyond the frame border the image is extended with
its per-channel mean colour (spec section 8).

`crop_and_resize` is the fast TF path used by the tracker. `get_subwindow_np` is an
independent pysot-style reference (integer window, mean padding, `cv2.resize`). The two
resample differently, so they agree on box placement and padding exactly but on pixels only
approximately (see `tests/test_crops.py` for the derived tolerance).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import tensorflow as tf


def search_side(exemplar_side_px, exemplar_size: int = 127, search_size: int = 255):
    """Side s_x of the search region: the exemplar side scaled by search_size / exemplar_size.

    The official `calc_x_size` writes this as `(255 - 127) / (127 / s_z) + s_z`, which is the
    same number.

    Args:
        exemplar_side_px: s_z in frame pixels, a scalar or an array `[...]`.
        exemplar_size: exemplar crop size in pixels (127).
        search_size: search crop size in pixels (255).

    Returns:
        s_x = s_z * search_size / exemplar_size, with the shape of `exemplar_side_px`.
    """
    return np.asarray(exemplar_side_px, dtype=np.float64) * search_size / exemplar_size


def scale_factors(num_scales: int, scale_step: float) -> np.ndarray:
    """The search scale pyramid: scale_step ** (-(n // 2), ..., 0, ..., n // 2).

    Args:
        num_scales: n, an odd positive number so that the middle scale is exactly 1.
        scale_step: ratio between neighbouring scales (1.05 in MemTrack).

    Returns:
        `[num_scales]` float64 scale factors in increasing order.

    Raises:
        ValueError: an even or non-positive `num_scales`, or a non-positive `scale_step`.
    """
    if num_scales < 1 or num_scales % 2 == 0:
        raise ValueError(f"num_scales={num_scales}: expected an odd positive number")
    if not scale_step > 0:
        raise ValueError(f"scale_step={scale_step}: expected a positive number")
    half = num_scales // 2
    return scale_step ** np.linspace(-half, half, num_scales)


def search_sides(search_side_px: float, scales) -> np.ndarray:
    """Search crop sides of the pyramid, rounded to whole pixels as the official tracker does.

    Args:
        search_side_px: s_x in frame pixels.
        scales: `[num_scales]` scale factors from `scale_factors`.

    Returns:
        `[num_scales]` float64 sides round(s_x * scale).
    """
    return np.round(search_side_px * np.asarray(scales, dtype=np.float64))


def _official_npad(center_xy: tf.Tensor, sides: tf.Tensor, height: tf.Tensor,
                   width: tf.Tensor) -> tf.Tensor:
    """The official MemTrack padding: the largest rounded overshoot of the largest crop.

    This is `Model._pad_frame` in the official `tracking/tracker.py`, in float32 with TF's
    round-half-to-even. It is reproduced exactly rather than replaced by a tight bound,
    because with `official_quirks=True` the padded size H' = H + 2 * npad moves the samples.
    """
    half = tf.reduce_max(sides) / 2.0
    cx, cy = center_xy[0], center_xy[1]
    overshoots = tf.stack([
        -tf.round(cx - half),
        -tf.round(cy - half),
        tf.round(cx + half) - tf.cast(width, tf.float32),
        tf.round(cy + half) - tf.cast(height, tf.float32),
    ])
    return tf.maximum(tf.reduce_max(overshoots), 0.0)


def _check_crop_inputs(image: tf.Tensor, center_xy: tf.Tensor, sides: tf.Tensor) -> None:
    """Raises ValueError (eager) or adds assertions (inside tf.function) on bad crop inputs."""
    if image.dtype != tf.float32:
        raise ValueError(f"crop_and_resize: image must be float32 in [0, 1], got {image.dtype}")
    if image.shape.rank is not None and (image.shape.rank != 3 or image.shape[-1] not in (3, None)):
        raise ValueError(f"crop_and_resize: image must be [H, W, 3] (expand greyscale to 3 "
                         f"channels first), got shape {image.shape}")
    if center_xy.shape.rank is not None and center_xy.shape != (2,):
        raise ValueError(f"crop_and_resize: center_xy must have shape [2], got {center_xy.shape}")
    if sides.shape.rank is not None and sides.shape.rank != 1:
        raise ValueError(f"crop_and_resize: sides must have shape [n], got {sides.shape}")
    if tf.executing_eagerly():
        if min(image.shape[:2]) < 1:
            raise ValueError(f"crop_and_resize: image is empty, shape {image.shape}")
        if not np.all(np.isfinite(center_xy.numpy())):
            raise ValueError(f"crop_and_resize: center_xy={center_xy.numpy().tolist()} has "
                             "NaN or Inf")
        side_values = sides.numpy()
        if (side_values.size == 0 or not np.all(np.isfinite(side_values))
                or np.any(side_values <= 0)):
            raise ValueError(f"crop_and_resize: sides={side_values.tolist()} must be a non-empty "
                             "list of finite positive lengths")
    else:
        tf.debugging.assert_positive(tf.shape(image)[:2], message="crop_and_resize: empty image")
        tf.debugging.assert_all_finite(center_xy, "crop_and_resize: center_xy has NaN or Inf")
        tf.debugging.assert_all_finite(sides, "crop_and_resize: sides have NaN or Inf")
        tf.debugging.assert_positive(tf.size(sides), message="crop_and_resize: no sides given")
        tf.debugging.assert_positive(sides, message="crop_and_resize: sides must be positive")


def frame_mean(image) -> tf.Tensor:
    """`[3]` per-channel mean colour of a `[H, W, 3]` frame: the padding value of its crops.

    A frame is cropped twice in MemTrack (searches now, the write exemplar at the next frame),
    so the tracker computes its mean once here and passes it to both `crop_and_resize` calls.
    """
    return tf.reduce_mean(image, axis=(0, 1))


def crop_and_resize(image, center_xy, sides, out_size: int,
                    official_quirks: bool = True, mean_colour=None) -> tf.Tensor:
    """Square crops centred on one point at several sides, mean-padded, resized bilinearly.

    This reproduces spec section 8 (the official `_pad_frame` + `_crop_image`):
    1. Pad every side of the frame by the same npad, the largest rounded overshoot of the
       largest crop past any border (see `_official_npad`), with the per-channel frame mean.
    2. Crop the box `pos + npad -/+ (side - 1) / 2` with bilinear `tf.image.crop_and_resize`.
       With `official_quirks=True` the box is normalised by the padded size H' (W' for x).
       TF maps a normalised y back to y * (H' - 1), so the samples shrink toward the padded
       origin by (H' - 1) / H': the official sub-pixel quirk. With `official_quirks=False` the
       box is normalised by H' - 1, and the samples lie exactly on the grid from
       `cx - (side - 1) / 2` to `cx + (side - 1) / 2`.

    The padded frame is never built. The grid of step 2 is mapped back to frame coordinates and
    sampled from `image - mean`, padded by one pixel of zeros. That single pixel reproduces the
    bilinear blend across the border, and `crop_and_resize` extrapolates zeros beyond it. Adding
    the mean back then gives the padded result. Memory and time are therefore
    O(H * W + n * out_size^2), however far outside the frame a crop lies.

    Only Python-level arguments (`out_size`, `official_quirks`) are static. Under `tf.function`
    with `input_signature=[tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([2],
    tf.float32), tf.TensorSpec([None], tf.float32)]` it traces once for all frame sizes.

    Args:
        image: float32 `[height, width, 3]` frame with values in [0, 1]. Greyscale frames must
            already be expanded to 3 channels.
        center_xy: `[2]` crop centre (cx, cy) in frame pixels.
        sides: `[num_crops]` square crop sides in frame pixels (e.g. the rounded search sides).
        out_size: side of each output crop in pixels (127 or 255).
        official_quirks: normalise by H' (True, official parity) or H' - 1 (False, exact).
        mean_colour: `[3]` the frame's `frame_mean`, when the caller has it already; computed
            here when None.

    Returns:
        float32 `[num_crops, out_size, out_size, 3]` crops.

    Raises:
        ValueError: a non-float32 or non-[H, W, 3] image, a bad `out_size`, or (eagerly) NaN
            centres or non-positive sides. Inside a `tf.function` the value checks become
            `tf.debugging` assertions.
    """
    if isinstance(out_size, bool) or not isinstance(out_size, (int, np.integer)) or out_size < 1:
        raise ValueError(f"crop_and_resize: out_size={out_size!r} must be a positive int")
    image = tf.convert_to_tensor(image)
    center_xy = tf.cast(tf.convert_to_tensor(center_xy), tf.float32)
    sides = tf.cast(tf.convert_to_tensor(sides), tf.float32)
    _check_crop_inputs(image, center_xy, sides)

    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    # [3]: the padding value, spec section 8.
    mean_colour = frame_mean(image) if mean_colour is None else tf.convert_to_tensor(mean_colour)

    # Box arithmetic in float64 so that large frames and far-away crops keep sub-pixel accuracy.
    centre = tf.cast(center_xy, tf.float64)
    radius = (tf.cast(sides, tf.float64) - 1.0) / 2.0  # [n]
    if official_quirks:
        npad = tf.cast(_official_npad(center_xy, sides, height, width), tf.float64)
        padded_hw = tf.cast(tf.stack([height, width]), tf.float64) + 2.0 * npad  # [2] (H', W')
        shrink = (padded_hw - 1.0) / padded_hw  # [2], (H' - 1) / H' per axis
    else:
        npad = tf.constant(0.0, tf.float64)
        shrink = tf.ones([2], tf.float64)
    centre_yx = tf.stack([centre[1], centre[0]])  # [2]
    # First/last sample of each crop in frame coordinates, [n, 2] as (y, x):
    # padded coordinate (npad + c -/+ r) * shrink, minus npad.
    start_yx = (npad + centre_yx[None, :] - radius[:, None]) * shrink[None, :] - npad
    end_yx = (npad + centre_yx[None, :] + radius[:, None]) * shrink[None, :] - npad

    # One pixel of zero border on (image - mean) carries the bilinear blend with the padding.
    centred = tf.pad(image - mean_colour, [[1, 1], [1, 1], [0, 0]])
    border_hw = tf.cast(tf.stack([height, width]), tf.float64) + 1.0  # (H + 2) - 1 per axis
    boxes = tf.concat([(start_yx + 1.0) / border_hw, (end_yx + 1.0) / border_hw], axis=1)
    crops = tf.image.crop_and_resize(
        centred[None], tf.cast(boxes, tf.float32), tf.zeros([tf.shape(sides)[0]], tf.int32),
        [out_size, out_size], method="bilinear", extrapolation_value=0.0)
    return crops + mean_colour


def get_subwindow_np(image: np.ndarray, center_xy, side: float, out_size: int) -> np.ndarray:
    """Numpy/OpenCV reference crop (pysot `get_subwindow` style), for tests and debugging.

    An integer window of round(side) pixels is centred on `center_xy` in the pixel-index
    convention of `crop_and_resize`: it starts at round(c - (side - 1) / 2), rounding halves up.
    (pysot's window starts one pixel further left/up for integer centres.) Pixels outside the
    frame take the per-channel frame mean. The window is resized with
    `cv2.resize(INTER_LINEAR)` (half-pixel centres) unless it already has `out_size` pixels.
    Only the part of the window inside the frame is copied, so far-away crops stay cheap.

    Args:
        image: `[height, width, 3]` frame (any real dtype; computed in float32).
        center_xy: `[2]` window centre (cx, cy) in frame pixels.
        side: window side in frame pixels (rounded to a whole number of pixels, at least 1).
        out_size: output side in pixels.

    Returns:
        float32 `[out_size, out_size, 3]` crop.

    Raises:
        ValueError: a non-[H, W, 3] or empty image, NaN centre, non-positive side or out_size.
    """
    frame = np.asarray(image, dtype=np.float32)
    if frame.ndim != 3 or frame.shape[2] != 3 or min(frame.shape[:2]) < 1:
        raise ValueError(f"get_subwindow_np: image must be a non-empty [H, W, 3], got "
                         f"{frame.shape}")
    cx, cy = (float(v) for v in center_xy)
    if not (math.isfinite(cx) and math.isfinite(cy)):
        raise ValueError(f"get_subwindow_np: center_xy=({cx}, {cy}) has NaN or Inf")
    if not (math.isfinite(side) and side > 0) or out_size < 1:
        raise ValueError(f"get_subwindow_np: side={side} and out_size={out_size} must be positive")
    size = max(int(round(side)), 1)
    x0 = math.floor(cx - (size - 1) / 2 + 0.5)
    y0 = math.floor(cy - (size - 1) / 2 + 0.5)
    height, width = frame.shape[:2]
    window = np.empty((size, size, 3), np.float32)
    window[:] = frame.mean(axis=(0, 1))
    # The overlap of [x0, x0 + size) with [0, width), in frame and in window coordinates.
    fx0, fx1 = max(x0, 0), min(x0 + size, width)
    fy0, fy1 = max(y0, 0), min(y0 + size, height)
    if fx0 < fx1 and fy0 < fy1:
        window[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0] = frame[fy0:fy1, fx0:fx1]
    if size == out_size:
        return window
    return cv2.resize(window, (out_size, out_size), interpolation=cv2.INTER_LINEAR)
