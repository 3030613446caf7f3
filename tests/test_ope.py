"""Tests of the one-pass evaluation runner: files, resume, failures, parallel processes."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from fixtures_eval import iou_loop, read_raw_boxes, write_otb_sequence
from memnet_tf.eval import baselines, datasets, ope, report


class NanTracker(baselines.StaticBoxTracker):
    """Loses the target on the third frame (module level so that it pickles)."""

    def __init__(self):
        super().__init__()
        self._frame = 0

    def init(self, image, box):
        super().init(image, box)
        self._frame = 0

    def update(self, image):
        self._frame += 1
        return np.full(4, np.nan) if self._frame == 2 else super().update(image)


class ShapeCheckingTracker(baselines.StaticBoxTracker):
    """Fails unless frames follow the contract: RGB uint8 [H, W, 3]."""

    def init(self, image, box):
        assert image.dtype == np.uint8 and image.shape == (24, 32, 3), image.shape
        super().init(image, box)

    def update(self, image):
        assert image.dtype == np.uint8 and image.shape == (24, 32, 3), image.shape
        return super().update(image) + [1.0, 0.0, 0.0, 0.0]


@pytest.fixture
def otb_tree(tmp_path):
    root = tmp_path / "otb"
    write_otb_sequence(root, "Alpha", 4, seed=0)
    write_otb_sequence(root, "Beta", 3, seed=10, targets=2)
    return root


def _load(root):
    return datasets.load_dataset("otb100", root=str(root))


def test_static_box_results_are_first_box_in_file_convention(otb_tree, tmp_path):
    sequences = _load(otb_tree)
    results = tmp_path / "results"
    summary = ope.run_ope(baselines.StaticBoxTracker, sequences, str(results), "Static",
                          progress=False)
    assert sorted(summary["completed"]) == ["Alpha", "Beta.1", "Beta.2"]
    assert summary["failed"] == {} and summary["skipped"] == []
    for sequence in sequences:
        written = read_raw_boxes(results / "Static" / f"{sequence.name}.txt")
        raw_first = read_raw_boxes(sequence.annotation_file)[0]  # 1-based, as in the file
        np.testing.assert_allclose(written, np.tile(raw_first, (sequence.num_frames, 1)),
                                   atol=1e-4)
        times = np.loadtxt(results / "Static" / f"{sequence.name}_time.txt")
        assert times.shape == (sequence.num_frames,) and np.all(times >= 0)




def _otb_auc_by_hand(overlaps):
    """OTB success AUC: 21 thresholds 0, 0.05, ..., 1, success = IoU > t, AUC = their mean."""
    rates = [sum(1 for o in overlaps if o > k / 20) / len(overlaps) for k in range(21)]
    return sum(rates) / 21


def test_scores_of_static_results_equal_direct_metrics(otb_tree, tmp_path):
    sequences = _load(otb_tree)
    results = tmp_path / "results"
    ope.run_ope(baselines.StaticBoxTracker, sequences, str(results), "Static", progress=False)
    scores = report.score_results(sequences, str(results), ["Static"])["trackers"]["Static"]
    aucs = []
    for sequence in sequences:
        # Both files in the 1-based file convention: IoU does not depend on a common shift.
        truth = read_raw_boxes(sequence.annotation_file)
        written = read_raw_boxes(results / "Static" / f"{sequence.name}.txt")
        aucs.append(_otb_auc_by_hand(iou_loop(written, truth)))
        assert scores["sequences"][sequence.name]["success_auc"] == pytest.approx(aucs[-1])
    assert scores["overall"]["success_auc"] == pytest.approx(sum(aucs) / len(aucs))
    assert len(set(aucs)) > 1  # the sequences differ, so the overall mean is a real check


def test_frames_follow_the_tracker_contract(otb_tree, tmp_path):
    summary = ope.run_ope(ShapeCheckingTracker, _load(otb_tree), str(tmp_path / "r"), "T",
                          progress=False)
    assert summary["failed"] == {}


def test_resume_skips_complete_and_redoes_partial(otb_tree, tmp_path, capsys):
    sequences = _load(otb_tree)
    results = tmp_path / "results"
    ope.run_ope(baselines.StaticBoxTracker, sequences, str(results), "Static", progress=False)
    partial = results / "Static" / "Beta.1.txt"
    partial.write_text(partial.read_text().splitlines()[0] + "\n")  # an interrupted run
    capsys.readouterr()
    summary = ope.run_ope(baselines.StaticBoxTracker, sequences, str(results), "Static")
    # Progress on stderr whatever the log level: what was reused, then each tracked sequence.
    reused, tracked = capsys.readouterr().err.splitlines()
    assert reused == "Static: 2 sequences already complete (results reused), 1 to run"
    beta = next(s for s in sequences if s.name == "Beta.1")
    assert re.fullmatch(rf"Static \[1/1\] Beta\.1: {beta.num_frames} frames, [0-9.]+ fps", tracked)
    assert sorted(summary["skipped"]) == ["Alpha", "Beta.2"]
    assert summary["completed"] == ["Beta.1"]
    assert len(read_raw_boxes(partial)) == 3


def test_corrupt_frame_is_reported_and_others_run(otb_tree, tmp_path):
    bad_frame = otb_tree / "Alpha" / "img" / "0003.jpg"
    bad_frame.write_bytes(b"garbage")
    summary = ope.run_ope(baselines.StaticBoxTracker, _load(otb_tree), str(tmp_path / "r"),
                          "Static", progress=False)
    assert sorted(summary["completed"]) == ["Beta.1", "Beta.2"]
    message = summary["failed"]["Alpha"]
    assert "Alpha: frame 3" in message and str(bad_frame) in message
    assert not os.path.exists(tmp_path / "r" / "Static" / "Alpha.txt")


def test_missing_frame_file_is_reported(otb_tree, tmp_path):
    sequences = _load(otb_tree)
    os.remove(sequences[0].image_files[1])  # removed after loading, before tracking
    summary = ope.run_ope(baselines.StaticBoxTracker, sequences, str(tmp_path / "r"), "S",
                          progress=False)
    assert "frame 2" in summary["failed"]["Alpha"]
    assert f"{sequences[0].image_files[1]}: frame file not found" in summary["failed"]["Alpha"]


@pytest.mark.parametrize("first_box, problem", [
    ([5, 5, 0, 10], "has zero size"),
    ([40, 5, 10, 10], "lies outside the 32x24 frame"),
    ([-20, 5, 10, 10], "lies outside the 32x24 frame"),
])
def test_bad_initial_box_names_file_and_line(tmp_path, first_box, problem):
    root = tmp_path / "otb"
    one_based = np.array([first_box, [5, 5, 8, 8], [5, 5, 8, 8]], np.float64) + [1, 1, 0, 0]
    write_otb_sequence(root, "Bad", 3, boxes=one_based)
    write_otb_sequence(root, "Good", 3, seed=3)
    summary = ope.run_ope(baselines.StaticBoxTracker, _load(root), str(tmp_path / "r"), "S",
                          progress=False)
    assert summary["completed"] == ["Good"]
    message = summary["failed"]["Bad"]
    assert f"{root / 'Bad' / 'groundtruth_rect.txt'}:1: initial box" in message
    assert problem in message


def test_tracker_returning_nan_is_reported(otb_tree, tmp_path):
    summary = ope.run_ope(NanTracker, _load(otb_tree), str(tmp_path / "r"), "Nan",
                          progress=False)
    assert set(summary["failed"]) == {"Alpha", "Beta.1", "Beta.2"}
    assert "Alpha: frame 3" in summary["failed"]["Alpha"]
    assert "expected 4 finite numbers" in summary["failed"]["Alpha"]


def test_parallel_processes_match_serial(otb_tree, tmp_path):
    sequences = _load(otb_tree)
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    ope.run_ope(ShapeCheckingTracker, sequences, str(serial), "T", progress=False)
    summary = ope.run_ope(ShapeCheckingTracker, sequences, str(parallel), "T", num_workers=2,
                          progress=False)
    assert sorted(summary["completed"]) == ["Alpha", "Beta.1", "Beta.2"]
    for sequence in sequences:
        name = f"{sequence.name}.txt"
        assert (serial / "T" / name).read_text() == (parallel / "T" / name).read_text()


def test_parallel_failure_is_reported(otb_tree, tmp_path):
    (otb_tree / "Beta" / "img" / "0002.jpg").write_bytes(b"garbage")
    summary = ope.run_ope(baselines.StaticBoxTracker, _load(otb_tree), str(tmp_path / "r"),
                          "S", num_workers=2, progress=False)
    assert summary["completed"] == ["Alpha"]
    assert "frame 2" in summary["failed"]["Beta.1"] and "frame 2" in summary["failed"]["Beta.2"]


def test_invalid_worker_count():
    with pytest.raises(ValueError, match="num_workers=0"):
        ope.run_ope(baselines.StaticBoxTracker, [], "unused", "S", num_workers=0)


def test_steady_fps_leaves_out_init_and_the_tracing_update():
    # init 0.5 s, a first update that traces (9 s), then 10 frames of 0.04 s: 25 fps.
    assert ope.steady_fps([0.5, 9.0] + [0.04] * 10) == pytest.approx(25.0)
    assert ope.steady_fps([0.1, 0.1]) == pytest.approx(10.0)  # too short: every frame
