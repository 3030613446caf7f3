"""Tests of the held-out synthetic benchmark run after training."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from memnet_tf import config as config_lib
from test_track_cli import iou_reference, read_boxes

NUM_SEQUENCES, LENGTH, FRAME = 2, 6, 96


def _success_auc(boxes, truth) -> float:
    overlaps = iou_reference(boxes, truth)
    return float(np.mean([np.mean(overlaps > t) for t in np.linspace(0, 1, 21)]))


def _read_otb_truth(folder) -> np.ndarray:
    with open(os.path.join(folder, "groundtruth_rect.txt"), encoding="utf-8") as f:
        return np.asarray([[float(v) for v in line.split(",")] for line in f if line.strip()])


def test_evaluate_after_training_scores_tracker_and_static_baseline(tmp_path):
    pytest.importorskip("memnet_tf.data.synthetic",
                        reason="memnet_tf.data.synthetic (the held-out videos) is not importable")
    import keras

    from memnet_tf.eval import synthetic_benchmark
    from memnet_tf.models.memtrack import build_model

    keras.utils.set_random_seed(0)
    model_cfg = config_lib.ModelConfig(width_multiplier=0.125, hidden_size=16, memory_size=4)
    data_cfg = config_lib.DataConfig(synthetic_frame_size=FRAME,
                                     synthetic_sequence_length=LENGTH, seed=7)
    track_cfg = config_lib.TrackConfig()
    model = build_model(model_cfg)
    # A stale, complete results file from "an earlier model" must not be resumed.
    stale = tmp_path / "heldout_results" / "MemTrack" / "Synthetic0000.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("1,1,1,1\n" * LENGTH)
    # A held-out sequence left by an earlier call with more sequences must not be scored.
    leftover = tmp_path / "heldout" / "Synthetic0007"
    leftover.mkdir(parents=True)
    (leftover / "groundtruth_rect.txt").write_text("1,1,4,4\n")

    lines = []
    result = synthetic_benchmark.evaluate_after_training(
        model, model_cfg, data_cfg, track_cfg, str(tmp_path), NUM_SEQUENCES, printer=lines.append)

    heldout = tmp_path / "heldout"
    names = sorted(os.listdir(heldout))
    assert names == ["Synthetic0000", "Synthetic0001"]
    ours, static = [], []
    for name in names:
        truth = _read_otb_truth(heldout / name)
        assert truth.shape == (LENGTH, 4)
        boxes = read_boxes(tmp_path / "heldout_results" / "MemTrack" / f"{name}.txt")
        assert boxes.shape == (LENGTH, 4)
        assert not np.allclose(boxes[1], [1, 1, 1, 1])  # recomputed, not resumed
        boxes[0] = truth[0]  # the OTB protocol scores the given first box as the truth
        ours.append(_success_auc(boxes, truth))
        static.append(_success_auc(np.tile(truth[0], (LENGTH, 1)), truth))
    assert result["success_auc"] == pytest.approx(np.mean(ours), abs=1e-9)
    assert result["baseline_success_auc"] == pytest.approx(np.mean(static), abs=1e-9)
    assert result["margin"] == pytest.approx(np.mean(ours) - np.mean(static), abs=1e-9)
    assert result["num_sequences"] == NUM_SEQUENCES and result["failed"] == {}

    match = re.fullmatch(r"held-out synthetic: success_auc=(\d\.\d{3}) \(static box baseline "
                         r"(\d\.\d{3}), margin ([+-]\d\.\d{3})\)", lines[-1])
    assert match, lines[-1]
    assert float(match.group(1)) == pytest.approx(result["success_auc"], abs=5e-4)
    assert float(match.group(2)) == pytest.approx(result["baseline_success_auc"], abs=5e-4)
    assert float(match.group(3)) == pytest.approx(result["margin"], abs=1e-3)
    assert "StaticBox" in lines[0]
    # The static box computes nothing: its "speed" is not reported as one.
    static_row = next(line for line in lines[0].splitlines() if "StaticBox" in line)
    assert "n/a" in static_row, lines[0]

    saved = json.loads((tmp_path / "heldout_eval.json").read_text())
    assert saved["success_auc"] == pytest.approx(result["success_auc"])
    assert saved["baseline_success_auc"] == pytest.approx(result["baseline_success_auc"])
    assert saved["split"] == "test" and saved["seed"] == 7
    assert saved["configs"]["model"]["hidden_size"] == 16


def test_rejects_zero_sequences(tmp_path):
    from memnet_tf.eval import synthetic_benchmark

    with pytest.raises(ValueError, match="num_sequences=0"):
        synthetic_benchmark.evaluate_after_training(
            None, config_lib.ModelConfig(), config_lib.DataConfig(), config_lib.TrackConfig(),
            str(tmp_path), 0)


def test_summary_line_format():
    from memnet_tf.eval import synthetic_benchmark

    assert synthetic_benchmark.summary_line(0.61234, 0.4) == (
        "held-out synthetic: success_auc=0.612 (static box baseline 0.400, margin +0.212)")
    assert synthetic_benchmark.summary_line(0.3, 0.4).endswith("margin -0.100)")


@pytest.mark.parametrize("use_memory, name", [(True, "MemTrack"), (False, "SiamFC-mode")])
def test_a_sequence_our_tracker_fails_is_left_out_of_both_averages(tmp_path, monkeypatch,
                                                                   use_memory, name):
    from memnet_tf.eval import synthetic_benchmark

    class FailsOnSecondSequence:
        """Follows the truth exactly, except that it breaks on Synthetic0001."""

        name = "MemTrack"

        def __init__(self):
            self.sequence = 0

        def init(self, image, box):
            self.sequence += 1
            self.box = np.asarray(box, np.float64)

        def update(self, image):
            if self.sequence == 2:
                raise RuntimeError("broken on purpose")
            return self.box

    monkeypatch.setattr(synthetic_benchmark._MemTrackerFactory, "__call__",
                        lambda self: FailsOnSecondSequence())
    data_cfg = config_lib.DataConfig(synthetic_frame_size=FRAME,
                                     synthetic_sequence_length=LENGTH, seed=7)
    result = synthetic_benchmark.evaluate_after_training(
        None, config_lib.ModelConfig(use_memory=use_memory), data_cfg, config_lib.TrackConfig(),
        str(tmp_path), 2, printer=lambda line: None)
    # Results and report name the tracker by what the model is.
    assert list(result["failed"]) == [f"{name}/Synthetic0001"]
    assert sorted(os.listdir(tmp_path / "heldout_results")) == sorted([name, "StaticBox"])
    assert result["num_sequences"] == 1
    # On the one sequence left, our "tracker" is the static box: the margin is exactly zero.
    truth = _read_otb_truth(tmp_path / "heldout" / "Synthetic0000")
    static = _success_auc(np.tile(truth[0], (LENGTH, 1)), truth)
    assert result["baseline_success_auc"] == pytest.approx(static, abs=1e-9)
    assert result["margin"] == pytest.approx(0.0, abs=1e-12)
