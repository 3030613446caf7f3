"""Box formats, conversions, IoU and validation under the one pixel convention of memnet_tf.

Pixel convention of every box that crosses a module boundary (written down only here; other
docstrings refer here):

* Externally every box is `[x, y, w, h]`: 0-based, top-left corner, width and height in frame
  pixels, as in the got10k `Tracker.init(image, box)` / `update(image) -> box` contract.
* Coordinates are continuous. A box covers `[x, x + w] x [y, y + h]`; its centre is
  `(x + w / 2, y + h / 2)`; its corners are `(x, y, x + w, y + h)`; its area is `w * h`. There is
  no +1 or -1 anywhere (no "inclusive" right edge), so conversions are exact inverses.
* A frame of shape `[H, W, ...]` covers `[0, W] x [0, H]`.
* Crops (`geometry/crops.py`) sample the frame at coordinate `i` for pixel column `i`, exactly as
  the official MemTrack tracker and `tf.image.crop_and_resize` do. Because initialisation and
  tracking both use this sampling, the half-pixel offset it implies cancels out and is not
  corrected anywhere.
* The one exception is `polygon_to_xywh(..., method="got10k")`. It reproduces the got10k
  toolkit's VOT conversion, which adds 1 to the width and height of the area-preserving
  rectangle. That +1 is kept so that our VOT initial boxes are the toolkit's own.
* Inside the training-patch builder (`data/patches.py`), and only there, boxes are handled with
  the official builder's integer "inclusive corner" arithmetic, so stored patches and their
  boxes match the official TFRecords bit for bit; what that module returns is in patch pixels
  and never mixed with frame boxes.

Two named types carry boxes inside the code: `CenterBox(cx, cy, w, h)` and
`CornerBox(x1, y1, x2, y2)`. Every field holds an array of shape `[...]` (a scalar for a single
box), and `.as_array()` stacks them back into `[..., 4]`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

POLYGON_METHODS = ("got10k", "min_max")


class CenterBox(NamedTuple):
    """A box as centre and size; each field has shape `[...]`."""

    cx: np.ndarray
    cy: np.ndarray
    w: np.ndarray
    h: np.ndarray

    def as_array(self) -> np.ndarray:
        """Returns the fields stacked as `[..., 4]` in (cx, cy, w, h) order."""
        return np.stack(np.broadcast_arrays(*self), axis=-1).astype(np.float64)


class CornerBox(NamedTuple):
    """A box as top-left and bottom-right corners; each field has shape `[...]`."""

    x1: np.ndarray
    y1: np.ndarray
    x2: np.ndarray
    y2: np.ndarray

    def as_array(self) -> np.ndarray:
        """Returns the fields stacked as `[..., 4]` in (x1, y1, x2, y2) order."""
        return np.stack(np.broadcast_arrays(*self), axis=-1).astype(np.float64)


def _as_box_array(boxes, name: str, width: int = 4) -> np.ndarray:
    """Converts a box (named tuple, list or array) to a float64 array `[..., width]`."""
    if isinstance(boxes, (CenterBox, CornerBox)):
        # A named tuple of arrays would otherwise become [4, ...] instead of [..., 4].
        return boxes.as_array()
    array = np.asarray(boxes, dtype=np.float64)
    if array.ndim == 0 or array.shape[-1] != width:
        raise ValueError(f"{name}: expected an array of shape [..., {width}], got shape "
                         f"{array.shape}")
    return array


def xywh_to_center(boxes) -> CenterBox:
    """Converts `[x, y, w, h]` boxes to centre form.

    Args:
        boxes: `[..., 4]` boxes as (x, y, w, h), see the module docstring.

    Returns:
        A `CenterBox` whose fields have shape `[...]`.
    """
    b = _as_box_array(boxes, "boxes")
    return CenterBox(b[..., 0] + b[..., 2] / 2, b[..., 1] + b[..., 3] / 2, b[..., 2], b[..., 3])


def center_to_xywh(center) -> np.ndarray:
    """Converts centre-form boxes back to `[x, y, w, h]`.

    Args:
        center: a `CenterBox`, or an array `[..., 4]` in (cx, cy, w, h) order.

    Returns:
        `[..., 4]` float64 boxes as (x, y, w, h).
    """
    c = _as_box_array(center, "center")
    return np.stack([c[..., 0] - c[..., 2] / 2, c[..., 1] - c[..., 3] / 2, c[..., 2], c[..., 3]],
                    axis=-1)


def xywh_to_corners(boxes) -> CornerBox:
    """Converts `[x, y, w, h]` boxes to corner form `(x, y, x + w, y + h)` (no -1).

    Args:
        boxes: `[..., 4]` boxes as (x, y, w, h).

    Returns:
        A `CornerBox` whose fields have shape `[...]`.
    """
    b = _as_box_array(boxes, "boxes")
    return CornerBox(b[..., 0], b[..., 1], b[..., 0] + b[..., 2], b[..., 1] + b[..., 3])


def corners_to_xywh(corners) -> np.ndarray:
    """Converts corner-form boxes back to `[x, y, w, h]` (w = x2 - x1, no +1).

    Args:
        corners: a `CornerBox`, or an array `[..., 4]` in (x1, y1, x2, y2) order.

    Returns:
        `[..., 4]` float64 boxes as (x, y, w, h).
    """
    c = _as_box_array(corners, "corners")
    return np.stack([c[..., 0], c[..., 1], c[..., 2] - c[..., 0], c[..., 3] - c[..., 1]], axis=-1)


def polygon_to_xywh(points, method: str = "got10k") -> np.ndarray:
    """Converts VOT 8-value polygons `(x1, y1, ..., x4, y4)` to axis-aligned `[x, y, w, h]`.

    Two definitions are offered. The default matches the got10k toolkit, which is what its
    `ExperimentVOT` uses: `VOT._corner2rect` in `got10k/datasets/vot.py` builds an
    area-preserving rectangle, not the min/max box. Its centre is the mean of the four corners.
    Its size is `s * (x_max - x_min) + 1` by `s * (y_max - y_min) + 1`, where
    `s = sqrt(|p1 - p2| * |p2 - p3| / ((x_max - x_min) * (y_max - y_min)))` is the ratio of the
    (rectangle-assumed) polygon area to its bounding-box area. The +1 is the toolkit's; see the
    module docstring.

    Args:
        points: `[..., 8]` polygon corners in order, as in VOT `groundtruth.txt`.
        method: "got10k" (the toolkit's area-preserving rectangle, default) or "min_max" (the
            bounding box of the four corners, `(x_min, y_min, x_max - x_min, y_max - y_min)`).

    Returns:
        `[..., 4]` float64 boxes as (x, y, w, h).

    Raises:
        ValueError: wrong last dimension, NaN/Inf, a polygon with zero extent on an axis, or an
            unknown method.
    """
    if method not in POLYGON_METHODS:
        raise ValueError(f"method={method!r}: expected one of {POLYGON_METHODS}")
    p = _as_box_array(points, "points", width=8)
    if not np.all(np.isfinite(p)):
        raise ValueError(f"points: polygon has NaN or Inf at index "
                         f"{np.argwhere(~np.isfinite(p))[0][:-1].tolist()}")
    xs, ys = p[..., 0::2], p[..., 1::2]
    x_min, x_max = xs.min(axis=-1), xs.max(axis=-1)
    y_min, y_max = ys.min(axis=-1), ys.max(axis=-1)
    bbox_w, bbox_h = x_max - x_min, y_max - y_min
    degenerate = (bbox_w <= 0) | (bbox_h <= 0)
    if np.any(degenerate):
        raise ValueError(f"points: polygon at index {np.argwhere(degenerate)[0].tolist()} has "
                         "zero width or height")
    if method == "min_max":
        return np.stack([x_min, y_min, bbox_w, bbox_h], axis=-1)
    # Side lengths |p1 - p2| and |p2 - p3| give the polygon area when it is a rectangle.
    side_a = np.hypot(p[..., 0] - p[..., 2], p[..., 1] - p[..., 3])
    side_b = np.hypot(p[..., 2] - p[..., 4], p[..., 3] - p[..., 5])
    shrink = np.sqrt(side_a * side_b / (bbox_w * bbox_h))
    w = shrink * bbox_w + 1
    h = shrink * bbox_h + 1
    cx, cy = xs.mean(axis=-1), ys.mean(axis=-1)
    return np.stack([cx - w / 2, cy - h / 2, w, h], axis=-1)


def iou(boxes_a, boxes_b) -> np.ndarray:
    """Intersection over union of `[x, y, w, h]` boxes (continuous convention, no +1).

    Args:
        boxes_a: `[..., 4]` boxes as (x, y, w, h).
        boxes_b: `[..., 4]` boxes, broadcastable against `boxes_a`.

    Returns:
        `[...]` float64 IoU in [0, 1]. Two boxes with zero union (both empty) give 0.

    Raises:
        ValueError: NaN/Inf or a negative width or height in either input.
    """
    a = _as_box_array(boxes_a, "boxes_a")
    b = _as_box_array(boxes_b, "boxes_b")
    for name, boxes in (("boxes_a", a), ("boxes_b", b)):
        if not np.all(np.isfinite(boxes)):
            raise ValueError(f"{name}: has NaN or Inf")
        if np.any(boxes[..., 2:] < 0):
            raise ValueError(f"{name}: has a negative width or height")
    inter_w = np.clip(np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2])
                      - np.maximum(a[..., 0], b[..., 0]), 0, None)
    inter_h = np.clip(np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3])
                      - np.maximum(a[..., 1], b[..., 1]), 0, None)
    intersection = inter_w * inter_h
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - intersection
    # Dividing by a safe denominator keeps 0/0 (two empty boxes) from becoming NaN.
    return np.where(union > 0, intersection / np.where(union > 0, union, 1.0), 0.0)


def _frame_hw(frame_shape, name: str) -> tuple[int, int]:
    """Reads (H, W) from an image shape `[H, W]` or `[H, W, C]`."""
    if len(frame_shape) not in (2, 3) or min(frame_shape[:2]) < 1:
        raise ValueError(f"{name}: frame_shape={tuple(frame_shape)} is not an image shape "
                         "[H, W] or [H, W, C] with H, W >= 1")
    return int(frame_shape[0]), int(frame_shape[1])


def validate_box(box, frame_shape=None, name: str = "box") -> np.ndarray:
    """Checks one `[x, y, w, h]` box (against a frame, when given) and returns it as float64.

    Args:
        box: `[4]` box as (x, y, w, h).
        frame_shape: the image shape `[H, W]` or `[H, W, C]` (numpy order, not PIL's (W, H)),
            or None to check the box alone.
        name: what the box is, for the error message (e.g. "groundtruth_rect.txt line 3").

    Returns:
        `[4]` float64 box, unchanged.

    Raises:
        ValueError: naming `name` when the box does not have 4 values, has NaN/Inf, has a
            non-positive width or height, or lies completely outside the frame (touching an
            edge counts as outside: zero overlap).
    """
    array = np.asarray(box, dtype=np.float64)
    if array.shape != (4,):
        raise ValueError(f"{name}: expected 4 values [x, y, w, h], got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: box {array.tolist()} has NaN or Inf")
    x, y, w, h = array
    if w <= 0 or h <= 0:
        raise ValueError(f"{name}: box {array.tolist()} has a non-positive width or height")
    if frame_shape is None:
        return array
    height, width = _frame_hw(frame_shape, name)
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ValueError(f"{name}: box {array.tolist()} lies completely outside the "
                         f"{width}x{height} frame")
    return array


def clip_box_to_frame(boxes, frame_shape) -> np.ndarray:
    """Clips `[x, y, w, h]` boxes to the frame `[0, W] x [0, H]`.

    A box entirely outside the frame collapses to zero width or height on the nearest edge.

    Args:
        boxes: `[..., 4]` boxes as (x, y, w, h).
        frame_shape: the image shape `[H, W]` or `[H, W, C]`.

    Returns:
        `[..., 4]` float64 clipped boxes.
    """
    height, width = _frame_hw(frame_shape, "clip_box_to_frame")
    c = xywh_to_corners(boxes)
    clipped = CornerBox(np.clip(c.x1, 0, width), np.clip(c.y1, 0, height),
                        np.clip(c.x2, 0, width), np.clip(c.y2, 0, height))
    return corners_to_xywh(clipped)


def exemplar_side(target_w, target_h, context: float = 0.5):
    """Side s_z of the square exemplar region around a target (SiamFC context rule).

    s_z = sqrt((w + p) * (h + p)), with p = context * (w + h).

    Args:
        target_w: target width in frame pixels, a scalar or an array `[...]`.
        target_h: target height, same shape as `target_w`.
        context: context margin as a fraction of w + h (0.5 in MemTrack).

    Returns:
        s_z with the shape of the inputs (float64).

    Raises:
        ValueError: a non-positive or non-finite width or height.
    """
    w = np.asarray(target_w, dtype=np.float64)
    h = np.asarray(target_h, dtype=np.float64)
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(h))) or np.any(w <= 0) or np.any(h <= 0):
        raise ValueError(f"exemplar_side: target size (w={target_w}, h={target_h}) must be "
                         "finite and positive")
    pad = context * (w + h)
    return np.sqrt((w + pad) * (h + pad))
