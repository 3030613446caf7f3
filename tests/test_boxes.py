"""Tests for memnet_tf.geometry.boxes: conversions, polygons, IoU, validation and clipping."""

import math
import os
import re

import numpy as np
import pytest

from memnet_tf.geometry import boxes

RNG_SEED = 7


def _shared_data_dir() -> str:
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    shared = os.environ.get("MEMNET_SHARED_DIR", os.path.join(repo_root, "..", "shared"))
    return os.path.join(shared, "data")


def _random_xywh(rng, shape):
    xy = rng.uniform(-50, 300, size=shape + (2,))
    wh = rng.uniform(1, 120, size=shape + (2,))
    return np.concatenate([xy, wh], axis=-1)


def _iou_loop(a, b):
    """Plain-python IoU of two [x, y, w, h] boxes over the continuous extents."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - iw * ih
    return iw * ih / union if union > 0 else 0.0


def _got10k_rect_loop(poly):
    """The got10k area-preserving rectangle of one polygon, written with python math."""
    xs, ys = poly[0::2], poly[1::2]
    bw, bh = max(xs) - min(xs), max(ys) - min(ys)
    area = math.dist(poly[0:2], poly[2:4]) * math.dist(poly[2:4], poly[4:6])
    s = math.sqrt(area / (bw * bh))
    w, h = s * bw + 1, s * bh + 1
    return [sum(xs) / 4 - w / 2, sum(ys) / 4 - h / 2, w, h]


class TestConversions:
    def test_center_matches_definition_and_round_trips(self):
        b = _random_xywh(np.random.default_rng(RNG_SEED), (2, 3))
        c = boxes.xywh_to_center(b)
        for i in range(2):
            for j in range(3):
                x, y, w, h = b[i, j]
                assert c.cx[i, j] == pytest.approx(x + w / 2)
                assert c.cy[i, j] == pytest.approx(y + h / 2)
                assert (c.w[i, j], c.h[i, j]) == (w, h)
        np.testing.assert_allclose(boxes.center_to_xywh(c), b, atol=1e-12)
        np.testing.assert_allclose(boxes.center_to_xywh(c.as_array()), b, atol=1e-12)

    def test_corners_have_no_minus_one_and_round_trip(self):
        b = _random_xywh(np.random.default_rng(RNG_SEED + 1), (5,))
        c = boxes.xywh_to_corners(b)
        np.testing.assert_allclose(c.x2, b[:, 0] + b[:, 2])
        np.testing.assert_allclose(c.y2, b[:, 1] + b[:, 3])
        np.testing.assert_allclose(boxes.corners_to_xywh(c), b, atol=1e-12)

    def test_single_box(self):
        c = boxes.xywh_to_center([10, 20, 4, 6])
        assert c == (12.0, 23.0, 4.0, 6.0)
        assert boxes.center_to_xywh(boxes.CenterBox(12, 23, 4, 6)).tolist() == [10, 20, 4, 6]
        assert boxes.xywh_to_corners([10, 20, 4, 6]) == (10, 20, 14, 26)

    def test_wrong_last_dimension_raises(self):
        with pytest.raises(ValueError, match="boxes"):
            boxes.xywh_to_center(np.zeros((3, 5)))


class TestPolygon:
    def test_axis_aligned_rectangle(self):
        poly = [10, 20, 50, 20, 50, 80, 10, 80]
        np.testing.assert_allclose(boxes.polygon_to_xywh(poly, "min_max"), [10, 20, 40, 60])
        # got10k's +1 convention: same centre, one pixel larger on each axis.
        np.testing.assert_allclose(boxes.polygon_to_xywh(poly), [9.5, 19.5, 41, 61])

    def test_rotated_rectangles(self):
        rng = np.random.default_rng(RNG_SEED)
        for _ in range(20):
            cx, cy = rng.uniform(50, 300, 2)
            half_w, half_h = rng.uniform(5, 60, 2)
            angle = rng.uniform(0, np.pi)
            rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            local = np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h],
                              [-half_w, half_h]])
            poly = (local @ rot.T + [cx, cy]).reshape(-1)
            mm = boxes.polygon_to_xywh(poly, "min_max")
            xs, ys = poly[0::2], poly[1::2]
            np.testing.assert_allclose(mm, [xs.min(), ys.min(), np.ptp(xs), np.ptp(ys)])
            g = boxes.polygon_to_xywh(poly)
            np.testing.assert_allclose(g, _got10k_rect_loop(list(poly)), rtol=1e-12)
            # Area preserved (before the +1) and centred on the rectangle centre.
            assert (g[2] - 1) * (g[3] - 1) == pytest.approx(4 * half_w * half_h, rel=1e-9)
            np.testing.assert_allclose(g[:2] + g[2:] / 2, [cx, cy], atol=1e-9)

    def test_real_vot_bag_matches_reference_loop(self):
        path = os.path.join(_shared_data_dir(), "vot_bag", "groundtruth.txt")
        if not os.path.exists(path):
            pytest.skip(f"shared data not found at {path} (set MEMNET_SHARED_DIR)")
        polys = np.loadtxt(path, delimiter=",")
        assert polys.shape[1] == 8
        ours = boxes.polygon_to_xywh(polys)
        expected = np.array([_got10k_rect_loop(list(p)) for p in polys])
        np.testing.assert_allclose(ours, expected, rtol=1e-10)
        # Both definitions agree on properties that hold for any quadrilateral.
        np.testing.assert_allclose(ours[:, :2] + ours[:, 2:] / 2,
                                   np.stack([polys[:, 0::2].mean(1), polys[:, 1::2].mean(1)], 1))
        mm = boxes.polygon_to_xywh(polys, "min_max")
        np.testing.assert_allclose(mm[:, 0], polys[:, 0::2].min(1))
        np.testing.assert_allclose(mm[:, 1] + mm[:, 3], polys[:, 1::2].max(1))

    @pytest.mark.parametrize("poly, message", [
        ([1, 2, 3, 4, 5, 6, 7], r"\[\.\.\., 8\]"),
        ([1, 2, 3, 4, 5, 6, 7, np.nan], "NaN"),
        ([1, 2, 1, 5, 1, 9, 1, 4], "zero width"),
    ])
    def test_bad_polygons_raise(self, poly, message):
        with pytest.raises(ValueError, match=message):
            boxes.polygon_to_xywh(poly)

    def test_unknown_method_raises(self):
        with pytest.raises(ValueError, match="method"):
            boxes.polygon_to_xywh([0, 0, 1, 0, 1, 1, 0, 1], "mean")


class TestIou:
    def test_matches_loop_on_random_boxes(self):
        rng = np.random.default_rng(RNG_SEED)
        a = _random_xywh(rng, (50,))
        b = a + rng.normal(0, 30, size=a.shape) * [1, 1, 0, 0]  # shifted copies overlap often
        b[25:] = _random_xywh(rng, (25,))
        ours = boxes.iou(a, b)
        expected = [_iou_loop(a[i], b[i]) for i in range(50)]
        np.testing.assert_allclose(ours, expected, atol=1e-12)
        assert np.count_nonzero(ours) > 10  # the case mix really contains overlaps

    def test_analytic_cases(self):
        assert boxes.iou([0, 0, 10, 10], [0, 0, 10, 10]) == pytest.approx(1.0)
        assert boxes.iou([0, 0, 10, 10], [2, 2, 5, 5]) == pytest.approx(0.25)
        assert boxes.iou([0, 0, 10, 10], [10, 0, 10, 10]) == 0.0  # touching: no +1 overlap
        assert boxes.iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(50 / 150)
        assert boxes.iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0

    def test_broadcasts(self):
        a = np.array([[0, 0, 10, 10]])
        b = np.array([[0, 0, 10, 10], [5, 0, 10, 10]])
        np.testing.assert_allclose(boxes.iou(a, b), [1.0, 50 / 150])

    def test_nan_and_negative_sizes_raise(self):
        with pytest.raises(ValueError, match="boxes_b.*NaN"):
            boxes.iou([0, 0, 1, 1], [0, np.nan, 1, 1])
        with pytest.raises(ValueError, match="boxes_a.*negative"):
            boxes.iou([0, 0, -1, 1], [0, 0, 1, 1])


class TestValidateAndClip:
    FRAME = (240, 320, 3)

    def test_valid_box_is_returned(self):
        np.testing.assert_array_equal(boxes.validate_box([310, 230, 30, 30], self.FRAME, "b"),
                                      [310, 230, 30, 30])

    @pytest.mark.parametrize("box, message", [
        ([1, 2, 3], "4 values"),
        ([np.nan, 0, 5, 5], "NaN"),
        ([0, 0, 0, 5], "non-positive"),
        ([0, 0, 5, -1], "non-positive"),
        ([320, 10, 5, 5], "outside"),
        ([-5, 10, 5, 5], "outside"),  # touches the left edge only
        ([10, -100, 5, 50], "outside"),
    ])
    def test_bad_boxes_name_the_input(self, box, message):
        with pytest.raises(ValueError, match=f"groundtruth_rect.txt line 3: .*{message}|"
                                             f"groundtruth_rect.txt line 3: expected {message}"):
            boxes.validate_box(box, self.FRAME, "groundtruth_rect.txt line 3")

    def test_bad_frame_shape_raises(self):
        with pytest.raises(ValueError, match="frame_shape"):
            boxes.validate_box([0, 0, 5, 5], (0, 10), "b")

    def test_clip(self):
        clipped = boxes.clip_box_to_frame([[-10, 5, 30, 10], [300, 230, 50, 50],
                                           [10, 10, 5, 5], [400, 10, 5, 5]], self.FRAME)
        np.testing.assert_allclose(clipped, [[0, 5, 20, 10], [300, 230, 20, 10],
                                             [10, 10, 5, 5], [320, 10, 0, 5]])

    def test_real_otb_boxes_are_valid(self):
        path = os.path.join(_shared_data_dir(), "otb_mini", "Couple", "groundtruth_rect.txt")
        if not os.path.exists(path):
            pytest.skip(f"shared data not found at {path} (set MEMNET_SHARED_DIR)")
        with open(path, encoding="utf-8") as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
        for number, line in enumerate(lines, start=1):
            values = [float(v) for v in re.split(r"[,\s]+", line.strip())]
            boxes.validate_box(values, (240, 320, 3), f"{path} line {number}")
