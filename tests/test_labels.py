"""Tests of the IoU labels and balanced weights (spec 7.4) against a loop of the official maths."""

from __future__ import annotations

import numpy as np
import pytest

from memnet_tf.data import labels

R, STRIDE, CROP = 17, 8, 255


def _labels_loop(search_box, response_size=R, stride=STRIDE, threshold=0.7):
    """The official `_generate_labels_overlap_py` for one box, written as explicit loops."""
    x1, y1, x2, y2 = (float(v) for v in search_box)
    w, h = x2 - x1 + 1, y2 - y1 + 1
    origin = (response_size - 1) / 2 * stride + stride / 2
    gt = (origin - (w - 1) / 2, origin - (h - 1) / 2, origin + (w - 1) / 2, origin + (h - 1) / 2)
    label = np.zeros((response_size, response_size))
    state = np.zeros((response_size, response_size))  # 1 pos, -1 neg, 0 ignored
    for i in range(response_size):
        for j in range(response_size):
            cx, cy = j * stride + stride / 2, i * stride + stride / 2
            sample = (cx - (w - 1) / 2, cy - (h - 1) / 2, cx + (w - 1) / 2, cy + (h - 1) / 2)
            iw = max(min(sample[2], gt[2]) - max(sample[0], gt[0]) + 1, 0)
            ih = max(min(sample[3], gt[3]) - max(sample[1], gt[1]) + 1, 0)
            inter = iw * ih
            union = w * h * 2 - inter
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
