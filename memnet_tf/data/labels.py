"""IoU labels and balanced weights of the response map (spec 7.4), as pure TF functions."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from memnet_tf.data.patches import TOTAL_STRIDE


def response_offsets(response_size: int, stride: int = TOTAL_STRIDE) -> np.ndarray:
    """Offset of each response cell from the map centre, in search-crop pixels.

    d_k = stride * (k - (R - 1) / 2): -64 .. 64 in steps of 8 for R = 17.

    Returns:
        float64 `[response_size]`.
    """
    return stride * (np.arange(response_size, dtype=np.float64) - (response_size - 1) / 2)


def shifted_box_iou(box_sizes: tf.Tensor, response_size: int,
                    stride: int = TOTAL_STRIDE) -> tf.Tensor:
    """IoU between a w x h box and itself shifted by each cell offset (d_y, d_x).

    With the +1 pixel convention both boxes span w pixels, so the overlap along x is
    max(w - |d_x|, 0) pixels and IoU = I / (2 w h - I) with I = max(w - |d_x|, 0) max(h - |d_y|, 0).

    Args:
        box_sizes: `[..., 2]` target (w, h) in search-crop pixels.
        response_size: R.
        stride: pixels per response cell.

    Returns:
        float64 `[..., R, R]`; index [..., i, j] is the shift (d_i rows, d_j columns).
    """
    offsets = tf.constant(response_offsets(response_size, stride), dtype=tf.float64)
    sizes = tf.maximum(tf.cast(box_sizes, tf.float64), 1.0)  # a degenerate box cannot divide by 0
    w = sizes[..., 0, None, None]
    h = sizes[..., 1, None, None]
    overlap_x = tf.nn.relu(w - tf.abs(offsets)[None, :])  # [..., 1, R]
    overlap_y = tf.nn.relu(h - tf.abs(offsets)[:, None])  # [..., R, 1]
    intersection = overlap_x * overlap_y
    return intersection / (2.0 * w * h - intersection)


def balanced_weights(positive: tf.Tensor, negative: tf.Tensor) -> tf.Tensor:
    """0.5 / #pos on positives, 0.5 / #neg on negatives, 0 on ignored cells (per map).

    Args:
        positive: bool `[..., R, R]`.
        negative: bool `[..., R, R]`, disjoint from `positive`.

    Returns:
        float32 `[..., R, R]`; each map sums to 1 when it has both classes.
    """
    pos = tf.cast(positive, tf.float32)
    neg = tf.cast(negative, tf.float32)
    num_pos = tf.reduce_sum(pos, axis=[-2, -1], keepdims=True)
    num_neg = tf.reduce_sum(neg, axis=[-2, -1], keepdims=True)
    return 0.5 * pos / tf.maximum(num_pos, 1.0) + 0.5 * neg / tf.maximum(num_neg, 1.0)


def iou_labels(search_boxes: tf.Tensor, response_size: int, threshold: float = 0.7,
               stride: int = TOTAL_STRIDE) -> tuple[tf.Tensor, tf.Tensor]:
    """Labels and weights of the response maps (official `generate_labels_overlap`).

    Only the (augmented) target size matters: the label is always centred. A cell is positive
    when IoU > threshold, negative when IoU < threshold, ignored (weight 0) when equal.

    Args:
        search_boxes: `[..., 4]` target boxes in search-crop pixels, `[x1, y1, x2, y2]`
            inclusive corners (so w = x2 - x1 + 1, computed in float32 as the official code).
        response_size: R.
        threshold: the IoU threshold (0.7).
        stride: pixels per response cell.

    Returns:
        label: float32 `[..., R, R]`, 1 on positives and 0 elsewhere.
        weight: float32 `[..., R, R]`, from `balanced_weights`.
    """
    # Sizes in float32, as the official code computes them from its float32 boxes (the IoU
    # itself is float64 there too): with fractional corners a float64 size can miss an exact
    # integer by 1e-6 and turn an IoU of exactly 0.7 (ignored) into a positive or negative.
    boxes = tf.cast(search_boxes, tf.float32)
    sizes = boxes[..., 2:4] - boxes[..., 0:2] + 1.0
    iou = shifted_box_iou(sizes, response_size, stride)
    positive = iou > threshold
    negative = iou < threshold
    return tf.cast(positive, tf.float32), balanced_weights(positive, negative)
