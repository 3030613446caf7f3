"""Tests of the IoU labels and balanced weights (spec 7.4) against a loop of the official maths."""

from __future__ import annotations

import numpy as np
import pytest

from memnet_tf.data import labels

R, STRIDE, CROP = 17, 8, 255


def _labels_loop(search_box, response_size=R, stride=STRIDE, threshold=0.7):
    """The official `_generate_labels_overlap_py` for one box, written as explicit loops.

    Same dtypes as the official code: the boxes arrive as float32 (a `tf.py_func` input), so the
    size and its half are float32; the cell centres, corners and IoU are float64.
    """
    x1, y1, x2, y2 = np.asarray(search_box, np.float32)
    w, h = x2 - x1 + np.float32(1), y2 - y1 + np.float32(1)
    half_w, half_h = float((w - np.float32(1)) / np.float32(2)), float((h - np.float32(1)) / 2)
    w, h = float(w), float(h)
    origin = (response_size - 1) / 2 * stride + stride / 2
    gt = (origin - half_w, origin - half_h, origin + half_w, origin + half_h)
    label = np.zeros((response_size, response_size))
    state = np.zeros((response_size, response_size))  # 1 pos, -1 neg, 0 ignored
    for i in range(response_size):
        for j in range(response_size):
            cx, cy = j * stride + stride / 2, i * stride + stride / 2
            sample = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
            iw = max(min(sample[2], gt[2]) - max(sample[0], gt[0]) + 1, 0)
            ih = max(min(sample[3], gt[3]) - max(sample[1], gt[1]) + 1, 0)
            inter = iw * ih
            union = ((sample[2] - sample[0] + 1) * (sample[3] - sample[1] + 1)
                     + (gt[2] - gt[0] + 1) * (gt[3] - gt[1] + 1) - inter)
            iou = inter / union
            if iou > threshold:
                label[i, j], state[i, j] = 1, 1
            elif iou < threshold:
                state[i, j] = -1
    weight = np.zeros_like(label)
    if (state == 1).any():
        weight[state == 1] = 0.5 / (state == 1).sum()
    if (state == -1).any():
        weight[state == -1] = 0.5 / (state == -1).sum()
    return label, weight


def _centred_box(w, h):
    c = (CROP - 1) / 2
    return np.array([c - (w - 1) / 2, c - (h - 1) / 2, c + (w - 1) / 2, c + (h - 1) / 2])


def _positives(w, h):
    label, _ = labels.iou_labels(_centred_box(w, h)[None], R)
    return np.argwhere(label.numpy()[0] > 0)


def test_square_63_gives_a_plus_of_five():
    cells = {tuple(c) for c in _positives(63, 63)}
    assert cells == {(8, 8), (7, 8), (9, 8), (8, 7), (8, 9)}


def test_wide_106x26_gives_a_horizontal_line_of_five():
    cells = {tuple(c) for c in _positives(106, 26)}
    assert cells == {(8, j) for j in range(6, 11)}


def test_tall_42x85_gives_a_vertical_line_of_three():
    cells = {tuple(c) for c in _positives(42, 85)}
    assert cells == {(i, 8) for i in range(7, 10)}


def test_random_boxes_match_the_loop_reference():
    rng = np.random.default_rng(0)
    sizes = rng.uniform(8, 240, size=(40, 2))
    shifts = rng.uniform(-4, 4, size=(40, 2))  # the label ignores where the box is
    boxes = np.concatenate([shifts + 20, shifts + 20 + sizes - 1], axis=1)
    label, weight = labels.iou_labels(boxes.reshape(5, 8, 4), R)
    label, weight = label.numpy().reshape(40, R, R), weight.numpy().reshape(40, R, R)
    for i in range(40):
        ref_label, ref_weight = _labels_loop(boxes[i])
        np.testing.assert_array_equal(label[i], ref_label)
        np.testing.assert_allclose(weight[i], ref_weight, rtol=1e-6)


def test_weights_are_balanced_and_sum_to_one():
    rng = np.random.default_rng(1)
    boxes = np.concatenate([np.zeros((20, 2)), rng.uniform(10, 200, (20, 2))], axis=1)
    label, weight = labels.iou_labels(boxes, R)
    label, weight = label.numpy(), weight.numpy()
    np.testing.assert_allclose((weight * label).sum(axis=(1, 2)), 0.5, rtol=1e-5)
    np.testing.assert_allclose((weight * (1 - label)).sum(axis=(1, 2)), 0.5, rtol=1e-5)
    assert set(np.unique(label)) <= {0.0, 1.0}


def test_iou_equal_to_the_threshold_is_ignored():
    # w = 24 shifted by 8 columns: overlap 16 of 24 -> IoU 16 / 32 = 0.5 exactly.
    label, weight = labels.iou_labels(_centred_box(24, 40)[None], R, threshold=0.5)
    label, weight = label.numpy()[0], weight.numpy()[0]
    for cell in [(8, 7), (8, 9)]:
        assert label[cell] == 0 and weight[cell] == 0
    assert label[8, 8] == 1 and weight[8, 8] > 0
    ref_label, ref_weight = _labels_loop(_centred_box(24, 40), threshold=0.5)
    np.testing.assert_array_equal(label, ref_label)
    np.testing.assert_allclose(weight, ref_weight, rtol=1e-6)


def _fractional_corner_boxes():
    """Every integer size 1..255 x 1..255 with fractional float32 corners (65,025 boxes)."""
    w, h = np.meshgrid(np.arange(1, 256, dtype=np.float32), np.arange(1, 256, dtype=np.float32))
    x1, y1 = np.float32(10.1), np.float32(20.7)
    return np.stack([np.full_like(w, x1), np.full_like(h, y1), x1 + (w - 1), y1 + (h - 1)],
                    axis=-1).reshape(-1, 4)


def test_box_size_is_computed_in_float32_as_the_official_code():
    # 1 x 136 px with corners at y 20.7 .. 155.7: in float32 the height is exactly 136, and the
    # cells 3 rows above and below the centre overlap 112 of 136 rows: IoU = 112 / 160 = 0.7
    # exactly, ignored. In float64 the height is 135.99999619 and those cells are negatives.
    box = np.array([10.1, 20.7, 10.1, 20.7 + 135], np.float32)
    label, weight = labels.iou_labels(box[None], R)
    for cell in [(5, 8), (11, 8)]:
        assert label.numpy()[0][cell] == 0 and weight.numpy()[0][cell] == 0, cell
    ref_label, ref_weight = _labels_loop(box)
    np.testing.assert_array_equal(label.numpy()[0], ref_label)
    np.testing.assert_allclose(weight.numpy()[0], ref_weight, rtol=1e-6)


def test_every_integer_size_with_fractional_corners_matches_the_official_ties():
    boxes = _fractional_corner_boxes()
    label, weight = labels.iou_labels(boxes, R)
    ignored = (weight.numpy() == 0)
    # The official state (pos / neg / ignored) for every box, vectorised with its dtypes:
    # float32 sizes and halves, float64 corners and IoU.
    size = boxes[:, 2:4] - boxes[:, 0:2] + np.float32(1)
    half = ((size - np.float32(1)) / np.float32(2)).astype(np.float64)
    offsets = labels.response_offsets(R, STRIDE)
    overlap = np.maximum(2 * half[:, :, None] + 1 - np.abs(offsets), 0)  # [n, (x, y), R]
    inter = overlap[:, 1, :, None] * overlap[:, 0, None, :]
    area = (2 * half[:, 0] + 1) * (2 * half[:, 1] + 1)
    iou = inter / (area[:, None, None] + area[:, None, None] - inter)
    np.testing.assert_array_equal(label.numpy() > 0, iou > 0.7)
    np.testing.assert_array_equal(ignored, iou == 0.7)
    assert (iou == 0.7).any(axis=(1, 2)).sum() > 100  # the grid does exercise ties


@pytest.mark.parametrize("size,stride", [(17, 8), (5, 8), (9, 4)])
def test_response_offsets(size, stride):
    offsets = labels.response_offsets(size, stride)
    np.testing.assert_allclose(offsets, [stride * (k - (size - 1) / 2) for k in range(size)])
    if size == 17 and stride == 8:
        assert offsets[0] == -64 and offsets[-1] == 64


def test_other_response_sizes_follow_the_same_maths():
    box = np.array([3.0, 5.0, 72.0, 40.0])
    label, weight = labels.iou_labels(box[None], 9)
    ref_label, ref_weight = _labels_loop(box, response_size=9)
    np.testing.assert_array_equal(label.numpy()[0], ref_label)
    np.testing.assert_allclose(weight.numpy()[0], ref_weight, rtol=1e-6)
