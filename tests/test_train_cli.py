"""`python -m memnet_tf.train` end to end: flags.txt, SIGKILL + resume, clear flag errors."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from memnet_tf.models.loading import load_model

from conftest import REPO_ROOT


def _train_cmd(model_dir, *extra):
    return [sys.executable, "-m", "memnet_tf.train", "--flagfile=experiments/tiny.flags",
            f"--model_dir={model_dir}", *extra]


def _run(cmd, timeout=600):
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_sigkill_then_restart_resumes_from_a_readable_checkpoint(tmp_path):
    model_dir = tmp_path / "run"
    proc = subprocess.Popen(_train_cmd(model_dir, "--train_steps=400", "--checkpoint_every=3",
                                       "--validate_every=1000"),
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline and tf.train.latest_checkpoint(str(model_dir)) is None:
        time.sleep(0.5)
    assert tf.train.latest_checkpoint(str(model_dir)) is not None, "no checkpoint appeared"
    time.sleep(2.3)  # somewhere in the middle of later steps or saves
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    latest = tf.train.latest_checkpoint(str(model_dir))
    killed_at = int(latest.rsplit("-", 1)[1])
    model, flag_values = load_model(str(model_dir))  # readable, and rebuilt from flags.txt
    assert flag_values.width_multiplier == 0.125
    assert np.all([np.all(np.isfinite(v.numpy())) for v in model.weights])

    result = _run(_train_cmd(model_dir, f"--train_steps={killed_at + 3}",
                             "--checkpoint_every=3", "--validate_every=1000"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resumed from {latest} at step {killed_at}" in result.stdout
    assert tf.train.latest_checkpoint(str(model_dir)).endswith(f"ckpt-{killed_at + 3}")
    # The saved flags are a valid flagfile that reproduces the run's configuration.
    flags_txt = (model_dir / "flags.txt").read_text()
    assert "--width_multiplier=0.125" in flags_txt and "--memory_size=4" in flags_txt


@pytest.mark.slow
def test_short_run_writes_logs_checkpoint_and_flags(tmp_path):
    model_dir = tmp_path / "run"
    result = _run(_train_cmd(model_dir, "--train_steps=4", "--checkpoint_every=2",
                             "--validate_every=2", "--image_summary_every=2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 4/4" in result.stdout and "validation at step 4" in result.stdout
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-4")
    for name in ("flags.txt", "config.json", "train", "validation"):
        assert (model_dir / name).exists(), name
    events = os.listdir(model_dir / "train")
    assert any(e.startswith("events.out.tfevents") for e in events)

    # A restart with another architecture is refused before it touches the run's files.
    flags_txt = (model_dir / "flags.txt").read_text()
    result = _run(_train_cmd(model_dir, "--train_steps=6", "--hidden_size=32"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "holds checkpoints of another model (hidden_size: 16 in the run, 32 now)" in (
        result.stderr)
    assert (model_dir / "flags.txt").read_text() == flags_txt
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-4")


@pytest.mark.parametrize("extra,message", [
    (["--no_such_flag=1"], "no_such_flag"),
    (["--dataset=tfrecord", "--data_dir="], "needs --data_dir"),
    (["--dataset=tfrecord", "--data_dir=/nonexistent/shards"], "/nonexistent/shards"),
    (["--memory_size=0"], "memory_size"),
    (["--dataset=otb100"], "training reads one of"),
    (["--checkpoint_every=0"], "checkpoint_every"),
])
def test_bad_flags_give_one_clear_line(tmp_path, extra, message):
    result = _run(_train_cmd(tmp_path / "run", *extra), timeout=300)
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines()
                   if "error" in line.lower() and message in line]
    assert error_lines, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_missing_validation_shards_stop_training_before_it_starts(tmp_path):
    import io

    from data_fixtures import make_vid_tree
    from memnet_tf.data import building

    snippet = "ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000"
    root = str(tmp_path / "ILSVRC2015")
    make_vid_tree(root, {snippet: [[(0, 10 + k, 8, 45 + k, 40)] for k in range(6)]})
    shards = str(tmp_path / "tfr")
    building.build_tfrecords("vid", root, shards, num_shards=1, min_frames=4,
                             progress_stream=io.StringIO())  # the train split only
    result = _run(_train_cmd(tmp_path / "run", "--dataset=tfrecord", f"--data_dir={shards}"),
                  timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no 'val-*.tfrecord' shards" in result.stderr and "--split=val" in result.stderr
