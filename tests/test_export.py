"""Tests of the SavedModel export: signatures against the model, atomic writes, tracking on it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from memnet_tf import config as config_lib
from memnet_tf import export
from memnet_tf.layers.states import MemTrackState
from memnet_tf.models import loading
from memnet_tf.models.memtrack import build_model
from memnet_tf.tracking.tracker import TrackerFactory
from test_track_cli import (REPO_ROOT, blob_centres, blob_frame, run_track,
                            write_otb_blob_sequence, write_tiny_run)

TINY = dict(width_multiplier=0.125, hidden_size=16, memory_size=4)


def _tiny_model(seed=0, **overrides):
    import keras

    keras.utils.set_random_seed(seed)
    return build_model(config_lib.ModelConfig(**{**TINY, **overrides}))


def _crops(rng, batch, size):
    return tf.constant(rng.uniform(0.0, 1.0, (batch, size, size, 3)), tf.float32)


def _listing(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("use_memory", [True, False], ids=["memtrack", "siamfc_mode"])
def test_signatures_reproduce_the_model_over_frames(tmp_path, use_memory):
    model = _tiny_model(use_memory=use_memory)
    cfg = model.model_config
    export.export_saved_model(model, str(tmp_path / "export"), verify=False)
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    initialize, step = loaded.signatures["initialize"], loaded.signatures["step"]

    fields = set(MemTrackState._fields)
    assert set(initialize.structured_input_signature[1]) == {"exemplar"}
    assert set(step.structured_input_signature[1]) == fields | {"exemplar", "search"}
    diagnostics = {"attention", "residual_gate", "read_strength"} if use_memory else set()
    assert set(step.structured_outputs) == fields | {"response"} | diagnostics

    rng = np.random.default_rng(7)
    num_scales = 3
    first = _crops(rng, 1, cfg.exemplar_size)
    state = model.initialize(first)
    exported = initialize(exemplar=first)
    for name in MemTrackState._fields:
        np.testing.assert_allclose(exported[name], getattr(state, name), atol=1e-5)
    state = tf.nest.map_structure(lambda x: tf.repeat(x, num_scales, axis=0), state)
    exported = {name: tf.repeat(exported[name], num_scales, axis=0) for name in fields}
    for _ in range(3):  # the state the export returns is fed back, as a tracker does
        exemplar = _crops(rng, 1, cfg.exemplar_size)
        search = _crops(rng, num_scales, cfg.search_size)
        response, state, aux = model.step(exemplar, search, state)
        outputs = step(exemplar=exemplar, search=search, **exported)
        assert outputs["response"].shape == (num_scales, cfg.response_size, cfg.response_size)
        np.testing.assert_allclose(outputs["response"], response, atol=1e-4)
        for name in MemTrackState._fields:
            np.testing.assert_allclose(outputs[name], getattr(state, name), atol=1e-4,
                                       err_msg=name)
        for name in diagnostics:
            np.testing.assert_allclose(outputs[name], aux[name], atol=1e-5, err_msg=name)
        exported = {name: outputs[name] for name in fields}
    if use_memory:  # the memory did change, so the comparison above was not of constants
        assert np.abs(np.asarray(state.memory)).max() > 0.0


def test_exported_model_offers_the_tracking_interface(tmp_path):
    model = _tiny_model()
    track_config = config_lib.TrackConfig(scale_step=1.1, official_quirks=False)
    export.export_saved_model(model, str(tmp_path / "export"),
                              metadata={"track_config": {"scale_step": 1.1,
                                                         "official_quirks": False,
                                                         "option_of_a_later_version": 1}})
    exported, loaded_track_config = loading.load_saved_model(str(tmp_path / "export"))
    assert exported.model_config == model.model_config
    assert loaded_track_config == track_config
    rng = np.random.default_rng(3)
    cfg = model.model_config
    first = _crops(rng, 2, cfg.exemplar_size)
    exemplar, search = _crops(rng, 1, cfg.exemplar_size), _crops(rng, 2, cfg.search_size)
    response, state, diagnostics = model.step(exemplar, search, model.initialize(first))
    got_response, got_state, got_diagnostics = exported.step(exemplar, search,
                                                              exported.initialize(first))
    np.testing.assert_allclose(got_response, response, atol=1e-4)
    assert isinstance(got_state, MemTrackState)
    assert set(got_diagnostics) == set(diagnostics)
    for name, value in diagnostics.items():
        np.testing.assert_allclose(got_diagnostics[name], value, atol=1e-4, err_msg=name)


def test_export_replaces_an_earlier_export_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "export"
    export.export_saved_model(_tiny_model(seed=0), str(target), metadata={"run": "first"})
    export.export_saved_model(_tiny_model(seed=1), str(target), metadata={"run": "second"})
    assert export.read_metadata(str(target))["run"] == "second"
    assert _listing(tmp_path) == ["export"]  # no staging or retired folders left
    assert os.stat(target).st_mode & 0o777 == 0o755  # readable by a server of another user

    def broken_verify(*args, **kwargs):
        raise AssertionError("the reloaded export differs")

    monkeypatch.setattr(export, "verify_export", broken_verify)
    with pytest.raises(AssertionError, match="differs"):
        export.export_saved_model(_tiny_model(seed=2), str(target), metadata={"run": "third"})
    assert export.read_metadata(str(target))["run"] == "second"  # untouched
    with pytest.raises(AssertionError):
        export.export_saved_model(_tiny_model(seed=2), str(tmp_path / "new"))
    assert _listing(tmp_path) == ["export"]


def test_the_staging_folder_of_a_killed_export_is_removed_by_the_next_one(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is no longer alive
    stale = tmp_path / f".export.tmp-{dead.pid}-abc"
    stale.mkdir()
    (stale / "saved_model.pb").write_bytes(b"half")
    running = tmp_path / f".export.tmp-{os.getpid()}-xyz"  # a live process: left alone
    running.mkdir()
    export.export_saved_model(_tiny_model(), str(tmp_path / "export"), verify=False)
    assert _listing(tmp_path) == [running.name, "export"]


def test_refuses_to_replace_a_folder_that_is_not_an_export(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match=re.escape(str(folder))):
        export.export_saved_model(_tiny_model(), str(folder))
    assert _listing(folder) == ["keep.txt"]


def test_verify_catches_an_export_of_other_weights(tmp_path):
    export.export_saved_model(_tiny_model(seed=0), str(tmp_path / "export"), verify=False)
    with pytest.raises(AssertionError, match="differs from the model"):
        export.verify_export(_tiny_model(seed=1), str(tmp_path / "export"))


def test_read_metadata_names_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="SavedModel folder not found"):
        export.read_metadata(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="no saved_model.pb"):
        export.read_metadata(str(tmp_path))
    (tmp_path / "saved_model.pb").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="not written by"):
        export.read_metadata(str(tmp_path))
    (tmp_path / "assets.extra").mkdir()
    (tmp_path / export.METADATA_PATH).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        export.read_metadata(str(tmp_path))
    (tmp_path / export.METADATA_PATH).write_text(json.dumps({"format": "other/9"}))
    with pytest.raises(ValueError, match="unknown format"):
        export.read_metadata(str(tmp_path))
    (tmp_path / export.METADATA_PATH).write_text("[1, 2]")
    with pytest.raises(ValueError, match="unknown format 'list'"):
        export.read_metadata(str(tmp_path))


# ---------------------------------------------------------------- command lines (subprocess)


def _run(module, *args, timeout=240):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory):
    """A tiny run with non-default tracking flags, and its export made by the command line."""
    folder = tmp_path_factory.mktemp("exported")
    run = write_tiny_run(folder / "run", extra_flags=("--noofficial_quirks", "--scale_step=1.1"))
    result = _run("memnet_tf.export", f"--checkpoint={run}",
                  f"--export_dir={folder / 'export'}")
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stdout and "signatures: initialize, step" in result.stdout
    return run, str(folder / "export")


def test_export_where_nothing_can_be_written_fails_with_status_1(exported_run, tmp_path):
    run, _ = exported_run
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = _run("memnet_tf.export", f"--checkpoint={run}", f"--export_dir={blocker / 'e'}")
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot create the export's folder" in errors[0]
    # A folder that is there and is not an export is the user's input: status 2.
    result = _run("memnet_tf.export", f"--checkpoint={run}", f"--export_dir={tmp_path}")
    assert result.returncode == 2 and "is not a SavedModel" in result.stderr


@pytest.mark.slow
def test_tracking_on_the_export_equals_tracking_on_the_checkpoint(exported_run):
    run, saved_model = exported_run
    from_checkpoint = TrackerFactory(checkpoint=run)()
    from_export = TrackerFactory(saved_model=saved_model)()
    assert from_export.track_config == from_checkpoint.track_config == config_lib.TrackConfig(
        official_quirks=False, scale_step=1.1)
    centres = blob_centres(6)
    first = blob_frame(centres[0])
    box = [centres[0][0] - 8, centres[0][1] - 8, 16, 16]
    from_checkpoint.init(first, box)
    from_export.init(first, box)
    for centre in centres[1:]:
        frame = blob_frame(centre)
        np.testing.assert_allclose(from_export.update(frame), from_checkpoint.update(frame),
                                   atol=1e-3)
        np.testing.assert_allclose(from_export.debug["read_weights"],
                                   from_checkpoint.debug["read_weights"], atol=1e-4)
    assert from_export.frame_step_tracing_count == 1


@pytest.mark.slow
def test_track_and_evaluate_run_on_the_export(exported_run, tmp_path):
    _, saved_model = exported_run
    sequence = tmp_path / "otb" / "Blob"
    write_otb_blob_sequence(str(sequence), 5)
    result = run_track(f"--saved_model={saved_model}", f"--sequence={sequence}",
                       f"--output_boxes={tmp_path / 'boxes.txt'}")
    assert result.returncode == 0, result.stderr
    assert "success_auc=" in result.stdout
    # One box per frame below the file's `#` convention header.
    lines = (tmp_path / "boxes.txt").read_text().splitlines()
    assert len([line for line in lines if not line.startswith("#")]) == 5

    result = _run("memnet_tf.evaluate", "--dataset=otb", f"--dataset_root={tmp_path / 'otb'}",
                  f"--results_dir={tmp_path / 'results'}", f"--saved_model={saved_model}")
    assert result.returncode == 0, result.stderr
    assert re.search(r"MemTrack: success_auc=[01]\.\d{3} precision=[01]\.\d{3}", result.stdout)
    assert (tmp_path / "results" / "MemTrack" / "Blob.txt").is_file()

    # The same export resumes its own results; the checkpoint is another tracker and is refused.
    run, _ = exported_run
    common = ("--dataset=otb", f"--dataset_root={tmp_path / 'otb'}",
              f"--results_dir={tmp_path / 'results'}")
    result = _run("memnet_tf.evaluate", *common, f"--saved_model={saved_model}")
    assert result.returncode == 0 and "already complete" in result.stderr, result.stderr
    result = _run("memnet_tf.evaluate", *common, f"--checkpoint={run}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{tmp_path / 'results' / 'MemTrack'}: holds results of another tracker" in (
        result.stderr)


def test_export_command_reports_bad_input(tmp_path):
    result = _run("memnet_tf.export", f"--export_dir={tmp_path / 'x'}")
    assert result.returncode == 2 and "give --checkpoint" in result.stderr
    result = _run("memnet_tf.export", f"--checkpoint={tmp_path / 'no_run'}",
                  f"--export_dir={tmp_path / 'x'}")
    assert result.returncode == 2 and str(tmp_path / "no_run") in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x").exists()
    frames = tmp_path / "frames"
    write_otb_blob_sequence(str(frames), 2)
    result = run_track(f"--saved_model={tmp_path / 'no_export'}", f"--images={frames / 'img'}",
                       "--init_box=30,30,16,16")
    assert result.returncode == 2 and str(tmp_path / "no_export") in result.stderr
    for flag in ("--saved_model", "--checkpoint"):
        result = _run("memnet_tf.evaluate", "--dataset=otb100", f"--dataset_root={tmp_path}",
                      f"--results_dir={tmp_path / 'results'}", f"{flag}={tmp_path / 'nothing'}",
                      "--num_workers=2")
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert f"error: {tmp_path / 'nothing'}" in result.stderr
