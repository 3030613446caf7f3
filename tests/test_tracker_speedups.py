"""The fast tracker keeps the boxes of the former one (`tests/reference_tracker.py`).

The reference is the pre-issue-13 path run in this test (Keras grouped convolutions, the
exemplar always encoded, numpy post-processing, a separate state-keeping call), never boxes
written down. Boxes must agree within IoU 0.999 on every frame (an op whose float rounding
changed may move a box by a hair; the peak search is the same).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO_ROOT, require_shared
from memnet_tf import config as config_lib
from memnet_tf.models.memtrack import build_model
from memnet_tf.tracking.tracker import MemTracker
from reference_tracker import ReferenceTracker
from test_track_cli import blob_frame

MIN_IOU = 0.999
TINY = dict(width_multiplier=0.125, hidden_size=16, memory_size=4)


def iou(a, b) -> np.ndarray:
    """Row-wise IoU of `[n, 4]` xywh boxes."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    x0 = np.maximum(a[:, 0], b[:, 0])
    y0 = np.maximum(a[:, 1], b[:, 1])
    x1 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y1 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)


def run_both(model, track_config, frames, box):
    trackers = (MemTracker(model, track_config), ReferenceTracker(model, track_config))
    boxes = [[], []]
    for tracker, out in zip(trackers, boxes):
        tracker.init(frames[0], box)
        out.extend(tracker.update(frame) for frame in frames[1:])
    return np.array(boxes[0]), np.array(boxes[1])


def moving_blob_frames(count=12):
    centres = np.array([60.0, 50.0]) + np.arange(count)[:, None] * np.array([3.0, 2.0])
    # Some frames reach the border, so the mean padding is sampled.
    return [blob_frame(c, 120, 150) for c in centres], [52.0, 42.0, 16.0, 16.0]


def test_iou_helper():
    assert iou([0, 0, 2, 2], [1, 0, 2, 2])[0] == pytest.approx(1 / 3)
    assert iou([0, 0, 2, 2], [5, 5, 1, 1])[0] == 0.0


@pytest.mark.parametrize("quirks", [True, False])
def test_memory_model_boxes_equal_the_former_tracker(quirks):
    import keras

    keras.utils.set_random_seed(4)
    model = build_model(config_lib.ModelConfig(**TINY))
    frames, box = moving_blob_frames()
    ours, reference = run_both(model, config_lib.TrackConfig(official_quirks=quirks), frames,
                               box)
    assert np.all(np.isfinite(ours))
    assert iou(ours, reference).min() >= MIN_IOU, (ours, reference)


def test_siamfc_mode_grouped_backbone_boxes_equal_the_former_tracker():
    """Grouped convolutions split per group and no exemplar: same boxes as before."""
    import keras

    keras.utils.set_random_seed(5)
    model = build_model(config_lib.ModelConfig(
        **TINY, backbone="siamfc_alexnet", use_memory=False, response_head="scale"))
    frames, box = moving_blob_frames()
    cfg = config_lib.TrackConfig(official_quirks=False)
    ours, reference = run_both(model, cfg, frames, box)
    assert iou(ours, reference).min() >= MIN_IOU, (ours, reference)


@pytest.mark.slow
def test_fdsiamfc30_on_otb_mini_boxes_equal_the_former_tracker(tmp_path, monkeypatch):
    """FDSiamFC-30 weights in SiamFC mode, the first 60 frames of every otb_mini sequence."""
    weights = require_shared("weights", "fdsiamfc30", "FDSiamfc_30.npz")
    root = require_shared("data", "otb_mini")
    from memnet_tf.eval import datasets
    from memnet_tf.models import loading

    monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
    from siamfc_otb_mini import import_fdsiamfc30  # the importer the benchmark uses

    run = import_fdsiamfc30(str(weights), str(tmp_path / "fdsiamfc30"))
    model, flag_values = loading.load_model(run)
    track_config = config_lib.track_config_from_flags(flag_values)
    worst, frames_compared, identical = 1.0, 0, 0
    for sequence in datasets.read_otb(str(root)):
        frames = [datasets.load_frame(p) for p in sequence.image_files[:60]]
        ours, reference = run_both(model, track_config, frames, sequence.ground_truth[0])
        overlaps = iou(ours, reference)
        worst = min(worst, float(overlaps.min()))
        frames_compared += len(overlaps)
        identical += int(np.sum(np.all(ours == reference, axis=1)))
    print(f"{identical} of {frames_compared} boxes bit-identical, lowest IoU {worst}")
    assert frames_compared > 200
    assert worst >= MIN_IOU, f"lowest IoU {worst} over {frames_compared} frames"
