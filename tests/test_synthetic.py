"""Tests of the synthetic videos: determinism, tight boxes, motion, scale, speed, OTB files."""

from __future__ import annotations

import os
import time

import cv2
import numpy as np
import pytest

from memnet_tf.data import synthetic
from memnet_tf.data.tracks import read_otb_tracks

SIZE, LENGTH = 320, 60


def _video(i, split="test", length=LENGTH, seed=1234):
    return synthetic.SyntheticVideo(seed, synthetic.sequence_index(split, i), SIZE, length)


def _iou_xywh(a, b):
    x1, y1 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)


def test_same_seed_and_index_give_the_same_video():
    a, b = _video(3), _video(3)
    c, d = _video(4), synthetic.SyntheticVideo(99, synthetic.sequence_index("test", 3), SIZE,
                                               LENGTH)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    for k in (0, 17, LENGTH - 1):
        np.testing.assert_array_equal(a.render(k), b.render(k))
    assert not np.array_equal(a.render(0), c.render(0))
    assert not np.array_equal(a.render(0), d.render(0))


def test_render_is_random_access():
    video = _video(5)
    late_first = video.render(40)
    for k in range(LENGTH):
        video.render(k)
    np.testing.assert_array_equal(video.render(40), late_first)


def test_frames_and_boxes_have_the_documented_format():
    video = synthetic.SyntheticVideo(0, 7, (240, 352), 20)
    frame = video.render(0)
    assert frame.shape == (240, 352, 3) and frame.dtype == np.uint8
    boxes = video.boxes
    assert boxes.shape == (20, 4)
    np.testing.assert_array_equal(boxes, np.round(boxes))  # integer boxes
    assert np.all(boxes[:, 2:] >= 4)
    assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 0] + boxes[:, 2] <= 352)
    assert np.all(boxes[:, 1] >= 0) and np.all(boxes[:, 1] + boxes[:, 3] <= 240)
    with pytest.raises(IndexError, match="frame 20 out of range"):
        video.render(20)


def test_ground_truth_is_tight_around_the_rendered_target():
    tight = checked = 0
    for i in range(8):
        video = _video(i)
        for k in range(0, LENGTH, 7):
            x, y, w, h = video.boxes[k].astype(int)
            changed = np.any(video.render(k) != video.render(k, with_target=False), axis=-1)
            ys, xs = np.nonzero(changed)
            assert len(xs) > 0
            # Every target pixel lies inside the box ...
            assert xs.min() >= x and xs.max() <= x + w - 1
            assert ys.min() >= y and ys.max() <= y + h - 1
            # ... and usually touches all four sides (an occluder can hide a side).
            tight += (xs.min(), ys.min(), xs.max(), ys.max()) == (x, y, x + w - 1, y + h - 1)
            checked += 1
    assert tight >= 0.8 * checked


def test_targets_move_smoothly_and_far_enough_that_a_static_box_fails():
    static_auc, displacement = [], []
    thresholds = np.linspace(0, 1, 21)
    for i in range(30):
        boxes = _video(i).boxes
        size = np.sqrt(boxes[:, 2] * boxes[:, 3])
        centres = boxes[:, :2] + boxes[:, 2:] / 2
        steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
        # Smooth: no jump above ~a third of the target size per frame.
        assert steps.max() <= 0.35 * size[0] + 2
        displacement.append(np.linalg.norm(centres[-1] - centres[0]) / size[0])
        overlaps = _iou_xywh(np.repeat(boxes[:1], LENGTH, axis=0), boxes)[1:]
        static_auc.append(np.mean([(overlaps > t).mean() for t in thresholds]))
    assert np.median(displacement) > 1.5
    assert np.mean(static_auc) < 0.2


def test_sizes_and_scale_changes_are_in_the_intended_ranges():
    for i in range(30):
        boxes = _video(i).boxes
        size = np.sqrt(boxes[:, 2] * boxes[:, 3])
        assert 0.08 * SIZE <= size[0] <= 0.2 * SIZE
        # Scale within [0.6, 1.6] of the first frame (plus integer rounding).
        assert size.min() / size[0] >= 0.55 and size.max() / size[0] <= 1.7


def test_splits_use_disjoint_videos():
    train = {synthetic.sequence_index("train", i) for i in range(1000)}
    val = {synthetic.sequence_index("val", i) for i in range(1000)}
    test = {synthetic.sequence_index("test", i) for i in range(1000)}
    assert not train & val and not train & test and not val & test
    with pytest.raises(ValueError, match="split='dev'"):
        synthetic.sequence_index("dev", 0)


def test_rendering_is_fast():
    video = _video(11)
    video.render(0)
    start = time.perf_counter()
    for k in range(LENGTH):
        video.render(k)
    per_frame = (time.perf_counter() - start) / LENGTH
    # ~1-2 ms unloaded; the bound leaves room for a busy shared machine.
    assert per_frame < 0.02, f"{per_frame * 1000:.1f} ms per 320x320 frame"


def test_write_otb_sequences(tmp_path):
    out = str(tmp_path / "heldout")
    paths = synthetic.write_otb_sequences(out, 2, seed=5, frame_size=96, length=12)
    assert [os.path.basename(p) for p in paths] == ["Synthetic0000", "Synthetic0001"]
    assert sorted(os.listdir(out)) == ["Synthetic0000", "Synthetic0001"]  # no temp folders left
    for i, path in enumerate(paths):
        video = synthetic.SyntheticVideo(5, synthetic.sequence_index("test", i), 96, 12)
        images = sorted(os.listdir(os.path.join(path, "img")))
        assert images == [f"{k:04d}.jpg" for k in range(1, 13)]
        with open(os.path.join(path, "groundtruth_rect.txt"), encoding="utf-8") as f:
            lines = f.read().splitlines()
        assert len(lines) == 12
        written = np.array([[float(v) for v in line.split(",")] for line in lines])
        np.testing.assert_array_equal(written, video.boxes + [1, 1, 0, 0])  # 1-based
        frame = cv2.cvtColor(cv2.imread(os.path.join(path, "img", "0005.jpg")),
                             cv2.COLOR_BGR2RGB)
        # The fine noise texture costs JPEG some accuracy, but the frame is the right one.
        mse = np.mean((frame.astype(float) - video.render(4)) ** 2)
        assert 10 * np.log10(255.0 ** 2 / mse) > 25
    # Our OTB reader converts back to the 0-based boxes.
    tracks = read_otb_tracks(out)
    np.testing.assert_array_equal(tracks[0].boxes,
                                  synthetic.SyntheticVideo(5, synthetic.sequence_index(
                                      "test", 0), 96, 12).boxes)
    # Writing again replaces the sequences in place.
    synthetic.write_otb_sequences(out, 1, seed=6, frame_size=96, length=12)
    assert sorted(os.listdir(out)) == ["Synthetic0000", "Synthetic0001"]
    with open(os.path.join(paths[0], "groundtruth_rect.txt"), encoding="utf-8") as f:
        first = [float(v) for v in f.readline().split(",")]
    expected = synthetic.SyntheticVideo(6, synthetic.sequence_index("test", 0), 96, 12).boxes[0]
    np.testing.assert_array_equal(first, expected + [1, 1, 0, 0])


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="at least 64"):
        synthetic.SyntheticVideo(0, 0, 32, 10)
    with pytest.raises(ValueError, match="at least 2 frames"):
        synthetic.SyntheticVideo(0, 0, 320, 1)
    with pytest.raises(ValueError, match="num_sequences"):
        synthetic.write_otb_sequences("/tmp/unused", -1, 0)
