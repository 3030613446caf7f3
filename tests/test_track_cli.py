"""Tests of `python -m memnet_tf.track` (subprocess, tiny checkpoint made here) and helpers."""

from __future__ import annotations

import io
import os
import pathlib
import re
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY_FLAGS = ("--width_multiplier=0.125", "--hidden_size=16", "--memory_size=4")
FRAME_H, FRAME_W = 96, 128


def write_tiny_run(run_dir, extra_flags=(), seed=0) -> str:
    """A run folder with a freshly initialised tiny MemTrack: `ckpt-1.*` and `flags.txt`."""
    import keras
    import tensorflow as tf
    from absl import flags as absl_flags

    from memnet_tf import config as config_lib
    from memnet_tf import flags as memnet_flags
    from memnet_tf.models.memtrack import build_model

    flag_values = absl_flags.FlagValues()
    memnet_flags.define_flags(flag_values)
    flag_values(["write_tiny_run", *TINY_FLAGS, *extra_flags])
    keras.utils.set_random_seed(seed)
    model = build_model(config_lib.model_config_from_flags(flag_values))
    os.makedirs(run_dir, exist_ok=True)
    tf.train.Checkpoint(model=model).save(os.path.join(run_dir, "ckpt"))
    memnet_flags.write_flagfile(os.path.join(run_dir, "flags.txt"), flag_values)
    return str(run_dir)


def blob_frame(center_xy, height=FRAME_H, width=FRAME_W, sigma=5.0) -> np.ndarray:
    """uint8 RGB frame: a bright Gaussian blob centred on `center_xy` (pixel i sits at x = i)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    value = np.exp(-((x - center_xy[0]) ** 2 + (y - center_xy[1]) ** 2) / (2 * sigma ** 2))
    grey = (30 + 200 * value).round().astype(np.uint8)
    return np.stack([grey, (grey * 0.8).astype(np.uint8), grey // 2], axis=2)


def blob_centres(num_frames, start=(40.0, 36.0), step=(3.0, 2.0)) -> np.ndarray:
    return np.asarray(start) + np.arange(num_frames)[:, None] * np.asarray(step)


def write_otb_blob_sequence(folder, num_frames, box_side=16.0):
    """`<folder>/img/0001.jpg ...` and a 1-based `groundtruth_rect.txt`; returns 0-based boxes."""
    os.makedirs(os.path.join(folder, "img"), exist_ok=True)
    centres = blob_centres(num_frames)
    boxes = np.concatenate([centres - box_side / 2, np.full((num_frames, 2), box_side)], axis=1)
    for k, centre in enumerate(centres):
        rgb = blob_frame(centre)
        assert cv2.imwrite(os.path.join(folder, "img", f"{k + 1:04d}.jpg"),
                           cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    with open(os.path.join(folder, "groundtruth_rect.txt"), "w", encoding="utf-8") as f:
        for x, y, w, h in boxes:
            f.write(f"{x + 1:g},{y + 1:g},{w:g},{h:g}\n")
    return boxes


def run_track(*args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", "memnet_tf.track", *args], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def read_boxes(path) -> np.ndarray:
    """The rows of a box file, `#` header lines skipped."""
    with open(path, encoding="utf-8") as f:
        return np.asarray([[float(v) for v in line.split(",")] for line in f
                           if line.strip() and not line.startswith("#")])


def iou_reference(a, b) -> np.ndarray:
    """Plain per-row IoU of [x, y, w, h] boxes."""
    out = []
    for (ax, ay, aw, ah), (bx, by, bw, bh) in zip(a, b):
        iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
        ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
        inter = iw * ih
        out.append(inter / (aw * ah + bw * bh - inter))
    return np.asarray(out)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return write_tiny_run(tmp_path_factory.mktemp("run") / "tiny")


# ---------------------------------------------------------------- end to end (subprocess)


def test_sequence_writes_boxes_video_and_scores(tiny_run, tmp_path):
    from memnet_tf import track

    num_frames = 6
    sequence = tmp_path / "otb" / "Blob"
    truth = write_otb_blob_sequence(sequence, num_frames)
    boxes_file, video_file = tmp_path / "out" / "boxes.txt", tmp_path / "out" / "video.mp4"
    result = run_track(f"--checkpoint={tiny_run}", f"--sequence={sequence}",
                       f"--output_boxes={boxes_file}", f"--output_video={video_file}",
                       "--show_response")
    assert result.returncode == 0, result.stderr
    rows = read_boxes(boxes_file)
    assert rows.shape == (num_frames, 6)  # x,y,w,h,peak,psr
    assert "1-based" in boxes_file.read_text().splitlines()[1]
    # The first line is the OTB ground truth as the file has it (1-based): evaluate's convention.
    np.testing.assert_allclose(rows[0, :4], truth[0] + [1, 1, 0, 0], atol=1e-4)
    assert np.all(np.isnan(rows[0, 4:])) and np.all(np.isfinite(rows[1:, 4:]))
    boxes = rows[:, :4] - [1, 1, 0, 0]
    # Boxes stay inside the frame.
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2:] > 0)
    assert np.all(boxes[:, 0] + boxes[:, 2] <= FRAME_W + 1e-6)
    assert np.all(boxes[:, 1] + boxes[:, 3] <= FRAME_H + 1e-6)
    # The printed scores are those of the written boxes (recomputed here from scratch).
    match = re.search(r"success_auc=([0-9.]+) precision=([0-9.]+)", result.stdout)
    assert match, result.stdout
    overlaps = iou_reference(boxes, truth)
    expected_auc = np.mean([np.mean(overlaps > t) for t in np.linspace(0, 1, 21)])
    centres_ours = boxes[:, :2] + (boxes[:, 2:] - 1) / 2
    centres_truth = truth[:, :2] + (truth[:, 2:] - 1) / 2
    expected_precision = np.mean(np.linalg.norm(centres_ours - centres_truth, axis=1) <= 20)
    assert float(match.group(1)) == pytest.approx(expected_auc, abs=1e-3)
    assert float(match.group(2)) == pytest.approx(expected_precision, abs=1e-3)
    assert "fps" in result.stderr
    capture = cv2.VideoCapture(str(video_file))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    # The frame is kept whole on the left; the side panel is beside it.
    panel = track.video_lib.panel_width(FRAME_H)
    assert len(frames) == num_frames and frames[0].shape[1] == FRAME_W + panel
    assert frames[0].shape[0] >= FRAME_H
    # ... in every frame, unscaled: the blob (brightest blue, above both outlines' blue) sits
    # where it was drawn (a frame fitted into another size would move it).
    for frame, centre in zip(frames, blob_centres(num_frames)):
        row, col = np.unravel_index(np.argmax(frame[:FRAME_H, :FRAME_W, 0]), (FRAME_H, FRAME_W))
        assert abs(col - centre[0]) <= 2 and abs(row - centre[1]) <= 2, (row, col, centre)
    assert not [p for p in os.listdir(video_file.parent) if ".tmp-" in p]


def test_video_with_init_box_and_bad_inputs(tiny_run, tmp_path):
    video_file = tmp_path / "in.mp4"
    writer = cv2.VideoWriter(str(video_file), cv2.VideoWriter_fourcc(*"mp4v"), 10,
                             (FRAME_W, FRAME_H))
    for centre in blob_centres(4):
        writer.write(cv2.cvtColor(blob_frame(centre), cv2.COLOR_RGB2BGR))
    writer.release()
    boxes_file = tmp_path / "boxes.txt"
    result = run_track(f"--checkpoint={tiny_run}", f"--video={video_file}",
                       "--init_box=32,28,16,16", f"--output_boxes={boxes_file}")
    assert result.returncode == 0, result.stderr
    boxes = read_boxes(boxes_file)
    assert boxes.shape == (4, 6)
    np.testing.assert_allclose(boxes[0, :4], [32, 28, 16, 16])  # a video: 0-based
    assert "0-based" in boxes_file.read_text().splitlines()[1]
    assert "success_auc" not in result.stdout  # no ground truth, no score

    # A zero-size box: one line naming the box and the first frame; nothing written.
    bad_boxes_file = tmp_path / "bad.txt"
    result = run_track(f"--checkpoint={tiny_run}", f"--video={video_file}",
                       "--init_box=32,28,0,16", f"--output_boxes={bad_boxes_file}")
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    assert "--init_box" in error_lines[0] and str(video_file) in error_lines[0]
    assert "non-positive width or height" in error_lines[0]
    assert "Traceback" not in result.stderr
    assert not bad_boxes_file.exists()


def test_bad_inputs_exit_2_naming_the_file(tiny_run, tmp_path):
    """Frame and box problems are found before the model is loaded (these runs are quick)."""
    images = tmp_path / "frames"
    images.mkdir()
    for k in (1, 2, 4):  # frame 3 is missing
        assert cv2.imwrite(str(images / f"{k:04d}.jpg"), blob_frame((40, 40)))
    result = run_track(f"--checkpoint={tiny_run}", f"--images={images}", "--init_box=30,30,16,16")
    assert result.returncode == 2
    assert "0003.jpg" in result.stderr and "Traceback" not in result.stderr

    (images / "0004.jpg").unlink()
    result = run_track(f"--checkpoint={tiny_run}", f"--images={images}",
                       "--init_box=500,30,16,16")
    assert result.returncode == 2
    assert "outside" in result.stderr and str(images / "0001.jpg") in result.stderr
    assert "Traceback" not in result.stderr

    result = run_track(f"--images={images}", "--init_box=30,30,16,16")
    assert result.returncode == 2 and "give --checkpoint" in result.stderr


def test_unreadable_frame_and_missing_checkpoint_name_the_file(tmp_path):
    """The later failures, in process: a corrupt frame mid-sequence, a missing run folder."""
    from absl import flags as absl_flags

    from memnet_tf import flags as memnet_flags
    from memnet_tf import track
    from memnet_tf.tracking import tracker as tracker_lib

    images = tmp_path / "frames"
    images.mkdir()
    assert cv2.imwrite(str(images / "0001.jpg"), blob_frame((40, 40)))
    (images / "0002.jpg").write_bytes(b"not a jpeg")
    source = track.images_source(str(images))
    track.check_first_frame(source, [30, 30, 16, 16])  # the first frame is fine
    with pytest.raises(ValueError, match=re.escape(str(images / "0002.jpg"))) as caught:
        track.run_tracking(_StillTracker(), source, [30, 30, 16, 16], progress=None)
    assert track.is_input_error(caught.value)

    flag_values = absl_flags.FlagValues()
    memnet_flags.define_flags(flag_values)
    flag_values(["track", f"--checkpoint={tmp_path / 'no_run'}"])
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "no_run"))) as caught:
        tracker_lib.factory_from_flags(flag_values)()
    assert track.is_input_error(caught.value)


class _StillTracker:
    """A got10k-style tracker whose box never moves."""

    def init(self, image, box):
        self.box = np.asarray(box, np.float64)

    def update(self, image):
        return self.box


# ---------------------------------------------------------------- helpers (in process)


def test_parse_box():
    from memnet_tf import track

    np.testing.assert_array_equal(track.parse_box("1,2.5,3,4"), [1, 2.5, 3, 4])
    for text in ("1,2,3", "1,2,3,x", ""):
        with pytest.raises(track.InputError, match="--init_box"):
            track.parse_box(text)


def test_select_source_needs_exactly_one(tmp_path):
    from memnet_tf import track

    with pytest.raises(track.InputError, match="exactly one"):
        track.select_source("", "", "")
    with pytest.raises(track.InputError, match="--video, --images"):
        track.select_source("a.mp4", str(tmp_path), "")
    with pytest.raises(FileNotFoundError, match="no_such.mp4"):
        track.select_source(str(tmp_path / "no_such.mp4"), "", "")
    with pytest.raises(track.InputError, match="neither an OTB"):
        track.select_source("", "", str(tmp_path))


def test_sequence_source_reads_otb_and_first_box(tmp_path):
    from memnet_tf import track

    truth = write_otb_blob_sequence(tmp_path / "Blob", 3)
    source = track.sequence_source(str(tmp_path / "Blob"))
    assert source.num_frames == 3
    np.testing.assert_allclose(source.ground_truth, truth)
    names = [name for name, _ in source.frames()]
    assert names == [str(tmp_path / "Blob" / "img" / f"{k:04d}.jpg") for k in (1, 2, 3)]
    assert "groundtruth_rect.txt:1" in source.ground_truth_where


def test_run_tracking_with_a_fake_tracker(tmp_path):
    """The loop: init box first, one update per frame, progress on the stream, boxes returned."""
    from memnet_tf import track

    class Drifting:
        def __init__(self):
            self.calls = []

        def init(self, image, box):
            self.calls.append(("init", image.shape))
            self.box = np.asarray(box, np.float64)

        def update(self, image):
            self.calls.append(("update", image.shape))
            self.box = self.box + [1, 0, 0, 0]
            return self.box

    frames = [blob_frame((40, 40)) for _ in range(3)]
    source = track.FrameSource("mem", lambda: iter((f"f{k}", f) for k, f in enumerate(frames)),
                               num_frames=3)
    stream = io.StringIO()
    tracker = Drifting()
    run = track.run_tracking(tracker, source, [10, 10, 8, 8], progress=stream)
    np.testing.assert_array_equal(run.boxes, [[10, 10, 8, 8], [11, 10, 8, 8], [12, 10, 8, 8]])
    assert np.all(np.isnan(run.scores))  # no last_score: no confidence
    assert [c[0] for c in tracker.calls] == ["init", "update", "update"]
    assert "frame 3/3" in stream.getvalue() and "fps" in stream.getvalue()
    assert "\r" not in stream.getvalue()  # not a terminal: plain lines
    with pytest.raises(track.InputError, match="f0"):
        track.run_tracking(Drifting(), source, [10, 10, -1, 8], progress=None)

    class TracesOnItsFirstUpdate(Drifting):
        def update(self, image):
            if len(self.calls) == 1:
                time.sleep(0.5)  # the graph tracing of a real tracker's first frame
            return super().update(image)

    frames = [blob_frame((40, 40)) for _ in range(6)]
    source = track.FrameSource("mem", lambda: iter((f"f{k}", f) for k, f in enumerate(frames)),
                               num_frames=6)
    run = track.run_tracking(TracesOnItsFirstUpdate(), source, [10, 10, 8, 8], progress=None)
    assert run.first_seconds >= 0.5 and run.fps > 20  # the tracing is not in the speed


def test_write_boxes_is_atomic_and_exact(tmp_path):
    from memnet_tf import track

    boxes = np.random.default_rng(0).uniform(0, 100, (5, 4))
    scores = np.random.default_rng(1).uniform(0, 10, (5, 2))
    path = tmp_path / "sub" / "b.txt"
    track.write_boxes(str(path), boxes, scores, pixel_offset=1.0, header="# test header\n")
    np.testing.assert_allclose(read_boxes(path), np.concatenate(
        [boxes + [1, 1, 0, 0], scores], axis=1), atol=5e-5)
    assert path.read_text().startswith("# test header\n")
    assert os.listdir(path.parent) == ["b.txt"]


def test_tracking_flags_given_here_override_the_run(tmp_path):
    from absl import flags as absl_flags

    from memnet_tf import config as config_lib
    from memnet_tf import flags as memnet_flags
    from memnet_tf.tracking import tracker as tracker_lib

    run = write_tiny_run(tmp_path / "run", extra_flags=("--noofficial_quirks",
                                                         "--window_influence=0.3"))
    flag_values = absl_flags.FlagValues()
    memnet_flags.define_flags(flag_values)
    flag_values(["track", f"--checkpoint={run}", "--scale_step=1.2"])
    tracker = tracker_lib.factory_from_flags(flag_values)()
    assert tracker.track_config == config_lib.TrackConfig(
        official_quirks=False, window_influence=0.3, scale_step=1.2)
    assert tracker.model.model_config.hidden_size == 16


@pytest.mark.parametrize("height, width", [(96, 128), (240, 320), (720, 1280)])
def test_annotated_frames_of_one_video_have_one_size(height, width):
    """First frame (no response yet), annotated and unannotated frames, lost or not: the panel
    layout never changes, so the video writer never rescales a frame."""
    from memnet_tf.tracking import video as video_lib
    from memnet_tf.tracking.confidence import FrameScore

    frame = blob_frame((width / 2, height / 2), height, width)
    rng = np.random.default_rng(0)
    debug = {"upsampled": rng.normal(size=(272, 272)), "best_scale": 1, "peak": (130, 140),
             "responses": np.zeros((3, 17, 17)), "read_weights": rng.dirichlet(np.ones(8), 3)}
    box, truth = [10, 10, 20, 20], [11, 9, 20, 22]
    shapes = set()
    for show_response in (False, True):
        kinds = [video_lib.annotate(frame, box, truth, None, show_response, "frame 1/9", None,
                                    False, "MemTrack", True, 8)]
        for lost, frame_truth in ((False, truth), (True, None), (False, [np.nan] * 4)):
            kinds.append(video_lib.annotate(frame, box, frame_truth, debug, show_response,
                                            "frame 2/9", FrameScore(3.2, 7.5), lost,
                                            "MemTrack", True, 8))
        shapes = {k.shape for k in kinds}
        assert len(shapes) == 1, (show_response, shapes)
        (shape,) = shapes
        assert shape[1] == width + video_lib.panel_width(height) and shape[0] >= height
        for annotated in kinds:  # the frame itself is never scaled: pixels outside the boxes
            np.testing.assert_array_equal(annotated[height - 5:height, :width],
                                          frame[height - 5:height])


@pytest.mark.parametrize("output", ["--output_boxes", "--output_video"])
def test_an_output_that_cannot_be_written_fails_with_status_1(tiny_run, tmp_path, output):
    """The inputs were fine (status 2 is for them): a failed write is a runtime failure, 1."""
    sequence = tmp_path / "otb" / "Blob"
    write_otb_blob_sequence(sequence, 3)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    target = blocker / ("boxes.txt" if output == "--output_boxes" else "video.mp4")
    result = run_track(f"--checkpoint={tiny_run}", f"--sequence={sequence}", f"{output}={target}")
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(target) in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_without_outputs_it_says_nothing_will_be_saved(tiny_run, tmp_path):
    sequence = tmp_path / "otb" / "Blob"
    write_otb_blob_sequence(sequence, 3)
    result = run_track(f"--checkpoint={tiny_run}", f"--sequence={sequence}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "nothing will be saved" in result.stdout and "success_auc=" in result.stdout
    assert not [p for p in tmp_path.rglob("*") if p.suffix in (".txt", ".mp4")
                and p.name != "groundtruth_rect.txt"]
