"""LiteRT export and runtime: `.tflite` entry points, tracking through the same MemTracker."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert.interpreter",
                    reason="ai-edge-litert is not installed (pip install -e '.[litert]')")

from memnet_tf import config as config_lib  # noqa: E402
from memnet_tf.models import litert  # noqa: E402
from memnet_tf.models.memtrack import build_model  # noqa: E402
from memnet_tf.tracking.tracker import MemTracker, TrackerFactory  # noqa: E402
from test_export import _run  # noqa: E402
from test_track_cli import blob_centres, blob_frame, read_boxes, run_track, write_tiny_run  # noqa: E402
from test_tracker_speedups import MIN_IOU, iou, moving_blob_frames  # noqa: E402

TINY = dict(width_multiplier=0.125, hidden_size=16, memory_size=4)
SIAMFC = dict(**TINY, use_memory=False, backbone="siamfc_alexnet", response_head="scale")


def _model(**kwargs):
    import keras

    keras.utils.set_random_seed(2)
    return build_model(config_lib.ModelConfig(**kwargs))


@pytest.mark.parametrize("kwargs,files", [(TINY, ["initialize", "step"]),
                                          (SIAMFC, ["initialize", "search_step"])],
                         ids=["memory", "siamfc_mode"])
def test_litert_tracker_boxes_match_the_tf_tracker(tmp_path, kwargs, files):
    model = _model(**kwargs)
    metadata = litert.export_litert(model, str(tmp_path / "lite"), num_scales=3)
    assert sorted(metadata["files"]) == sorted(files)
    assert metadata["max_abs_difference"] < 1e-3
    lite_model, _ = litert.load_litert(str(tmp_path / "lite"))
    cfg = config_lib.TrackConfig()
    frames, box = moving_blob_frames()
    tf_tracker, lite_tracker = MemTracker(model, cfg), MemTracker(lite_model, cfg)
    tf_tracker.init(frames[0], box)
    lite_tracker.init(frames[0], box)
    for frame in frames[1:]:
        ours, theirs = tf_tracker.update(frame), lite_tracker.update(frame)
        assert iou(ours, theirs)[0] >= MIN_IOU, (ours, theirs)
        assert lite_tracker.debug["best_scale"] == tf_tracker.debug["best_scale"]
        np.testing.assert_allclose(lite_tracker.debug["responses"],
                                   tf_tracker.debug["responses"], atol=1e-3)
    assert lite_tracker.frame_step_tracing_count == 1


def test_litert_export_refuses_a_foreign_folder_and_bad_metadata(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a LiteRT export"):
        litert.export_litert(_model(**SIAMFC), str(tmp_path / "taken"), num_scales=3)
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]  # no staging folder left behind
    with pytest.raises(FileNotFoundError, match="not written by"):
        litert.read_metadata(str(tmp_path / "taken"))
    (tmp_path / "taken" / litert.METADATA_NAME).write_text(json.dumps({"format": "x/1"}))
    with pytest.raises(ValueError, match="unknown format"):
        litert.read_metadata(str(tmp_path / "taken"))


def test_scale_count_must_match_the_export(tmp_path):
    litert.export_litert(_model(**SIAMFC), str(tmp_path / "lite"), num_scales=3)
    lite_model, _ = litert.load_litert(str(tmp_path / "lite"))
    with pytest.raises(ValueError, match="exported for 3 scales"):
        MemTracker(lite_model, config_lib.TrackConfig(num_scales=5))


@pytest.mark.slow
def test_export_and_track_command_lines(tmp_path):
    run = write_tiny_run(tmp_path / "run", extra_flags=("--noofficial_quirks",))
    result = _run("memnet_tf.export", f"--checkpoint={run}",
                  f"--export_dir={tmp_path / 'lite'}", "--format=litert")
    assert result.returncode == 0, result.stderr
    assert "verified: LiteRT models match the model (max difference" in result.stdout
    assert "step.tflite" in result.stdout
    factory = TrackerFactory(litert=str(tmp_path / "lite"))
    assert factory().track_config == config_lib.TrackConfig(official_quirks=False)
    assert factory.provenance()["litert"] == str(tmp_path / "lite")
    images = tmp_path / "frames"
    images.mkdir()
    import cv2

    centres = blob_centres(5)
    for k, centre in enumerate(centres):
        cv2.imwrite(str(images / f"{k:04d}.png"), cv2.cvtColor(blob_frame(centre),
                                                               cv2.COLOR_RGB2BGR))
    box = f"{centres[0][0] - 8:g},{centres[0][1] - 8:g},16,16"
    outputs = {}
    for source in (f"--litert={tmp_path / 'lite'}", f"--checkpoint={run}"):
        out = tmp_path / f"{source.split('=')[0][2:]}.txt"
        result = run_track(source, f"--images={images}", f"--init_box={box}",
                           f"--output_boxes={out}")
        assert result.returncode == 0, result.stderr
        outputs[source] = read_boxes(out)
    lite_boxes, tf_boxes = outputs.values()
    assert len(lite_boxes) == 5
    assert iou(lite_boxes, tf_boxes).min() >= MIN_IOU
