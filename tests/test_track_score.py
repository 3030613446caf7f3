"""Tracking confidence (peak, PSR, lost frames) and the track command's handling of real video.

In process: sources (start frame, targets, frames without ground truth, truncated videos),
first-frame warnings, progress output, box files that `evaluate` scores like `track` does,
`MemTracker.last_score` and one traced graph per process. Slow: on a real otb_mini sequence
the pretrained FDSiamFC-30's PSR falls when the target leaves the search region.
"""

from __future__ import annotations

import io
import os
import shutil

import cv2
import numpy as np
import pytest

from memnet_tf import track
from memnet_tf.tracking import confidence
from test_track_cli import (FRAME_H, FRAME_W, blob_frame, write_otb_blob_sequence,
                            write_tiny_run)


# ---------------------------------------------------------------- confidence (numpy references)


def _psr_loop(values, radius):
    """Peak-to-sidelobe ratio by explicit loops (float64)."""
    rows, cols = values.shape
    best = max((values[r, c], r, c) for r in range(rows) for c in range(cols))
    _, pr, pc = best
    side = [values[r, c] for r in range(rows) for c in range(cols)
            if abs(r - pr) > radius or abs(c - pc) > radius]
    mean = sum(side) / len(side)
    std = (sum((v - mean) ** 2 for v in side) / len(side)) ** 0.5
    return (values[pr, pc] - mean) / std


@pytest.mark.parametrize("seed", range(4))
def test_peak_to_sidelobe_matches_a_loop(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(9, 20))
    values = rng.normal(size=(size, size))
    values[rng.integers(size), rng.integers(size)] += 6.0  # one peak (maybe near an edge)
    radius = int(rng.integers(1, 4))
    assert confidence.peak_to_sidelobe(values, radius) == pytest.approx(
        _psr_loop(values, radius), rel=1e-10)
    score = confidence.frame_score(values)
    assert score.peak == values.max()
    assert score.psr == pytest.approx(_psr_loop(values, confidence.SIDELOBE_EXCLUSION_RADIUS))


def test_peak_to_sidelobe_edge_cases():
    assert confidence.peak_to_sidelobe(np.full((17, 17), 3.0)) == 0.0
    sharp = np.zeros((17, 17))
    sharp[8, 8] = 1.0
    flat_noise = sharp + np.random.default_rng(0).normal(scale=0.01, size=sharp.shape)
    assert confidence.peak_to_sidelobe(flat_noise) > 50  # one sharp peak
    two_peaks = flat_noise.copy()
    two_peaks[1, 1] = 1.0
    assert confidence.peak_to_sidelobe(two_peaks) < 20  # a distractor as high as the target
    with pytest.raises(ValueError, match="2-D"):
        confidence.peak_to_sidelobe(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        confidence.peak_to_sidelobe(np.full((5, 5), np.nan))


def test_lost_ranges_and_format():
    psr = np.array([np.nan, 9, 3, 2, 8, 1, 1, 1, 7, 2])
    assert confidence.lost_ranges(psr, 4.0) == [(3, 4), (6, 8), (10, 10)]
    assert confidence.lost_ranges(psr, 4.0, first_frame=31) == [(33, 34), (36, 38), (40, 40)]
    assert confidence.format_ranges([(33, 210), (250, 250)]) == "33-210, 250"
    assert confidence.lost_ranges(psr, 0.5) == []
    run = track.TrackingRun(np.zeros((10, 4)), np.stack([psr, psr], 1), np.ones(9), 1.0)
    assert track.lost_summary(run, 4.0) == (
        "probably lost (psr < 4) on frames 3-4, 6-8, 10 (6 of 9 tracked frames)")
    assert track.lost_summary(run, 0.5).startswith("never lost")


# ---------------------------------------------------------------- sources and warnings


def test_first_frame_warnings():
    black = np.zeros((60, 80, 3), np.uint8)
    assert "blank" in track.first_frame_warnings(black, [10, 10, 20, 20], "f1")[0]
    assert "--start_frame" in track.first_frame_warnings(black, [10, 10, 20, 20], "f1")[0]
    frame = np.random.default_rng(0).integers(0, 255, (60, 80, 3)).astype(np.uint8)
    assert track.first_frame_warnings(frame, [10, 10, 20, 20], "f1") == []
    frame[10:40, 30:60] = 128  # a flat wall where the box is
    found = track.first_frame_warnings(frame, [32, 12, 20, 20], "f1")
    assert len(found) == 1 and "no texture" in found[0] and "32,12,20,20" in found[0]


def test_sequence_sources_target_start_frame_and_no_ground_truth(tmp_path):
    truth = write_otb_blob_sequence(tmp_path / "Jog", 6)
    os.rename(tmp_path / "Jog" / "groundtruth_rect.txt", tmp_path / "Jog" / "groundtruth_rect.1.txt")
    second = truth + [5, 3, 2, 2]
    with open(tmp_path / "Jog" / "groundtruth_rect.2.txt", "w", encoding="utf-8") as f:
        f.writelines(f"{x + 1:g},{y + 1:g},{w:g},{h:g}\n" for x, y, w, h in second)
    messages = []
    source = track.sequence_source(str(tmp_path / "Jog"), target=2, start_frame=3,
                                   messages=messages)
    np.testing.assert_allclose(source.ground_truth, second[2:])
    assert source.num_frames == 4 and source.first_frame == 3 and source.pixel_offset == 1.0
    assert [name for name, _ in source.frames()][0].endswith("0003.jpg")
    assert "target 2 of 2" in messages[0] and "groundtruth_rect.2.txt" in messages[0]
    assert "--target=1" in messages[0]
    np.testing.assert_allclose(track.sequence_source(str(tmp_path / "Jog")).ground_truth, truth)
    with pytest.raises(track.InputError, match="has 2 target"):
        track.sequence_source(str(tmp_path / "Jog"), target=3)
    with pytest.raises(track.InputError, match="start_frame=9"):
        track.sequence_source(str(tmp_path / "Jog"), start_frame=9)
    # Frames without ground truth: a folder of the user's own frames.
    shutil.copytree(tmp_path / "Jog" / "img", tmp_path / "Mine" / "img")
    source = track.sequence_source(str(tmp_path / "Mine"))
    assert source.ground_truth is None and source.num_frames == 6 and source.pixel_offset == 0
    with pytest.raises(track.InputError, match="give --init_box"):
        track.check_first_frame(source)
    assert track.check_first_frame(source, [30, 30, 16, 16]) == []
    with pytest.raises(track.InputError, match="--target=2 picks"):
        track.select_source("", str(tmp_path / "Mine" / "img"), "", target=2)


class _ShortVideo:
    """cv2.VideoCapture whose header claims more frames than the file decodes."""

    open_capture = cv2.VideoCapture  # the real one, before the test patches it

    def __init__(self, path, claimed):
        self._capture = _ShortVideo.open_capture(path)
        self._claimed = claimed

    def get(self, prop):
        return self._claimed if prop == cv2.CAP_PROP_FRAME_COUNT else self._capture.get(prop)

    def __getattr__(self, name):
        return getattr(self._capture, name)


def test_truncated_video_warns_with_the_decoded_count_and_keeps_fps(tmp_path, monkeypatch,
                                                                    capsys):
    path = str(tmp_path / "clip.mp4")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 12.5, (FRAME_W, FRAME_H))
    for k in range(5):
        writer.write(blob_frame((40 + 3 * k, 40)))
    writer.release()
    real = _ShortVideo.open_capture
    monkeypatch.setattr(track.cv2, "VideoCapture", lambda p: _ShortVideo(p, 9))
    source = track.video_source(path, start_frame=2)
    assert source.num_frames == 8 and source.fps == pytest.approx(12.5)
    frames = list(source.frames())
    assert len(frames) == 4 and frames[0][0].endswith("(frame 2)")
    warning = capsys.readouterr().err
    assert "ended after 5 decoded frames" in warning and "says 9" in warning
    monkeypatch.setattr(track.cv2, "VideoCapture", real)

    # The output video keeps the input's frame rate.
    class Still:
        def init(self, image, box):
            self.box = np.asarray(box, float)

        def update(self, image):
            return self.box

    output = str(tmp_path / "out.mp4")
    track.run_tracking(Still(), track.video_source(path), [30, 30, 16, 16], output,
                       progress=None)
    assert cv2.VideoCapture(output).get(cv2.CAP_PROP_FPS) == pytest.approx(12.5, abs=0.01)


def test_progress_bar_on_a_terminal_and_plain_lines_otherwise():
    tty = io.StringIO()
    bar = track.Progress(tty, total=10, is_tty=True)
    for done in range(1, 11):
        bar.update(done, 5.0)
    bar.close()
    assert tty.getvalue().count("\r") == 10 and "[####################] frame 10/10" in (
        tty.getvalue())
    now = [0.0]
    plain = io.StringIO()
    bar = track.Progress(plain, total=100, is_tty=False, period=5.0, clock=lambda: now[0])
    for done in range(1, 101):
        now[0] = done * 0.5  # 2 frames per second: a line every 10 frames (5 s)
        bar.update(done, 2.0)
    lines = plain.getvalue().splitlines()
    assert "\r" not in plain.getvalue()
    assert lines[0] == "frame 1/100  2.0 fps" and lines[-1] == "frame 100/100  2.0 fps"
    assert 10 <= len(lines) <= 12


def test_box_file_of_track_is_scored_by_evaluate_like_track_scores_it(tmp_path):
    from memnet_tf.eval import datasets, report

    truth = write_otb_blob_sequence(tmp_path / "otb" / "Blob", 8)
    source = track.sequence_source(str(tmp_path / "otb" / "Blob"))
    rng = np.random.default_rng(0)
    boxes = truth + rng.normal(scale=3.0, size=truth.shape) * [1, 1, 0.3, 0.3]
    boxes[0] = truth[0]  # track's first line is the given box
    scores = np.concatenate([[[np.nan, np.nan]], rng.uniform(1, 9, (7, 2))])
    track.write_boxes(str(tmp_path / "results" / "Ours" / "Blob.txt"), boxes, scores,
                      source.pixel_offset, track.boxes_header(source, "Ours"))
    sequences = datasets.load_dataset("otb100", root=str(tmp_path / "otb"))
    scored = report.score_results(sequences, str(tmp_path / "results"), ["Ours"])
    ours = scored["trackers"]["Ours"]["overall"]
    expected = track.score(boxes, truth)
    assert ours["success_auc"] == pytest.approx(expected["success_auc"], abs=1e-9)
    assert ours["precision"] == pytest.approx(expected["precision"], abs=1e-9)


# ---------------------------------------------------------------- the tracker


def test_last_score_and_one_trace_per_process(tmp_path):
    from memnet_tf.tracking import tracker as tracker_lib

    run = write_tiny_run(tmp_path / "run")
    factory = tracker_lib.TrackerFactory(checkpoint=run)
    tracker = factory()
    assert tracker.name == "MemTrack" and factory() is tracker
    for sequence in range(2):  # two sequences, one traced graph
        tracker.init(blob_frame((40, 36)), [32, 28, 16, 16])
        assert tracker.last_score is None
        for k in range(1, 4):
            tracker.update(blob_frame((40 + 2 * k + sequence, 36 + k)))
            best = tracker.debug["best_scale"]
            expected = confidence.frame_score(tracker.debug["responses"][best])
            assert tracker.last_score == expected
    assert tracker.frame_step_tracing_count == 1
    siamfc = write_tiny_run(tmp_path / "siamfc", extra_flags=("--nouse_memory",))
    assert tracker_lib.TrackerFactory(checkpoint=siamfc)().name == "SiamFC-mode"
    assert tracker_lib.TrackerFactory(checkpoint=siamfc, name="Mine")().name == "Mine"
    # The output video's memory panel: one row per slot, none without memory.
    assert tracker.memory_slots == tracker.model.model_config.memory_size > 0
    assert tracker_lib.TrackerFactory(checkpoint=siamfc)().memory_slots == 0


@pytest.mark.slow
def test_psr_falls_when_the_target_leaves_on_a_real_sequence():
    """Couple (otb_mini), FDSiamFC-30: frames 2-20 as recorded, then 21-40 with the target
    painted over in the frame's mean colour (the box now holds background)."""
    from absl import flags as absl_flags

    from conftest import REPO_ROOT, require_shared
    from memnet_tf import cli, config as config_lib
    from memnet_tf import flags as memnet_flags
    from memnet_tf.eval import datasets, metrics
    from memnet_tf.models import weights as weights_lib
    from memnet_tf.models.memtrack import build_model
    from memnet_tf.tracking.tracker import MemTracker

    weights = require_shared("weights", "fdsiamfc30", "FDSiamfc_30.npz")
    root = require_shared("data", "otb_mini")
    flag_values = absl_flags.FlagValues()
    memnet_flags.define_flags(flag_values)
    flag_values(["test", *cli.expand_flagfiles(
        [f"--flagfile={REPO_ROOT / 'experiments' / 'siamfc_fdsiamfc30.flags'}"])])
    model = build_model(config_lib.model_config_from_flags(flag_values))
    weights_lib.import_siamfc_weights(model, weights_lib.load_state_dict(str(weights)))
    tracker = MemTracker(model, config_lib.track_config_from_flags(flag_values))
    sequence = datasets.read_otb(str(root), subset=lambda n: n == "Couple")[0]
    frames = [datasets.load_frame(path) for path in sequence.image_files[:40]]
    truth = sequence.ground_truth[:40]
    tracker.init(frames[0], truth[0])
    boxes, psr = [], []
    for k in range(1, 40):
        frame = frames[k]
        if k >= 20:
            frame = frame.copy()
            x, y, w, h = truth[k]
            grow = 0.5
            x0, y0 = int(max(x - grow * w, 0)), int(max(y - grow * h, 0))
            x1, y1 = int(x + (1 + grow) * w), int(y + (1 + grow) * h)
            frame[y0:y1, x0:x1] = frame.reshape(-1, 3).mean(0).astype(np.uint8)
        boxes.append(tracker.update(frame))
        psr.append(tracker.last_score.psr)
    psr = np.asarray(psr)
    overlaps = metrics.iou(np.asarray(boxes[:19]), truth[1:20])
    assert np.mean(overlaps > 0.5) > 0.8  # on target while it is there
    present, gone = np.median(psr[:19]), np.median(psr[19:])
    print(f"median psr: target present {present:.2f}, target gone {gone:.2f}")
    assert gone < 0.7 * present
    assert confidence.lost_ranges(psr, 0.5 * (present + gone), first_frame=2)[-1][1] == 40
