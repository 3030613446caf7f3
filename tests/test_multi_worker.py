"""MultiWorkerMirroredStrategy on real processes: two workers on 127.0.0.1 train the tiny
configuration through `python -m memnet_tf.train`; only the chief writes; the result equals a
2-replica single-process run; a killed worker and a restart resume from the last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO_ROOT

# Tiny, deterministic, cheap: no dropout; a large Adam epsilon keeps the update linear in the
# gradient so float32 round-off is not turned into lr-sized sign flips.
_FLAGS = ["--flagfile=experiments/tiny.flags", "--controller_dropout=0", "--adam_epsilon=1e-2",
          "--learning_rate=1e-2", "--batch_size=2", "--time_steps=2", "--log_every=1",
          "--summary_every=1", "--image_summary_every=1000", "--validate_every=1000",
          "--validation_steps=1", "--final_eval_sequences=0", "--strategy=multi_worker"]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(model_dir, scratch_dirs, extra_flags):
    """Two `memnet_tf.train` processes, worker 0 (the chief) and worker 1, with TF_CONFIG each."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_ROOT),
                   TMPDIR=str(scratch_dirs[index]),
                   TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}}))
        log = open(os.path.join(scratch_dirs[index], "..", f"worker{index}.log"), "a")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "memnet_tf.train", f"--model_dir={model_dir}", *_FLAGS,
             *extra_flags], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    return processes


def _wait(processes, timeout):
    deadline = time.time() + timeout
    for p in processes:
        p.wait(timeout=max(deadline - time.time(), 1))
    return [p.returncode for p in processes]


def _logs(tmp_path):
    return "\n".join(f"--- worker{i}\n" + (tmp_path / f"worker{i}.log").read_text()[-3000:]
                     for i in range(2) if (tmp_path / f"worker{i}.log").exists())


def _scratch(tmp_path):
    dirs = [tmp_path / f"tmp{i}" for i in range(2)]
    for d in dirs:
        d.mkdir(exist_ok=True)
    return dirs


def _scalars(event_dir, tag):
    values = {}
    for name in sorted(os.listdir(event_dir)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(event_dir, name)):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


# The same training in one process: MirroredStrategy over 2 logical CPUs, global batch 2 made of
# worker 0's clip then worker 1's clip (what experimental_distribute_dataset hands replica 0
# and 1), same seeds and flags. Prints the per-step losses and saves the final weights.
_REFERENCE_SCRIPT = textwrap.dedent("""
    import sys, json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    from absl import flags
    from memnet_tf import config as config_lib, flags as memnet_flags
    from memnet_tf.data import pipeline
    from memnet_tf.training.trainer import Trainer

    out, steps = sys.argv[1], int(sys.argv[2])
    fv = flags.FlagValues()
    memnet_flags.define_flags(fv)
    fv(["ref", *json.loads(sys.argv[3]), "--strategy=default"])
    model_cfg = config_lib.model_config_from_flags(fv)
    data_cfg = config_lib.data_config_from_flags(fv)
    train_cfg = config_lib.train_config_from_flags(fv)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    keras.utils.set_random_seed(train_cfg.seed)

    def global_batches(start):
        shards = [pipeline.make_dataset(data_cfg, model_cfg, "train", seed=train_cfg.seed + start,
                                        batch_size=1, shard=(i, 2)) for i in range(2)]
        return tf.data.Dataset.zip(tuple(shards)).map(
            lambda a, b: tf.nest.map_structure(lambda x, y: tf.concat([x, y], 0), a, b))

    trainer = Trainer(model_cfg, data_cfg, train_cfg, global_batches, strategy=strategy)
    iterator = iter(strategy.experimental_distribute_dataset(global_batches(0)))
    losses = [float(trainer.train_step(iterator)["loss/total"]) for _ in range(steps)]
    np.savez(out, losses=np.array(losses), **{v.path.split("/", 1)[1]: v.numpy() for v in trainer.model.weights})
    print("REFERENCE_OK")
""")


@pytest.mark.slow
def test_two_workers_train_like_two_replicas_and_only_the_chief_writes(tmp_path):
    model_dir, scratch = tmp_path / "run", _scratch(tmp_path)
    steps = 3
    flags_used = [*_FLAGS, f"--train_steps={steps}", "--checkpoint_every=2"]
    processes = _start_workers(model_dir, scratch, flags_used[len(_FLAGS):])
    reference = subprocess.run(
        [sys.executable, "-c", _REFERENCE_SCRIPT, str(tmp_path / "reference.npz"), str(steps),
         json.dumps([f for f in flags_used if f != "--strategy=multi_worker"])],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    codes = _wait(processes, timeout=600)
    assert codes == [0, 0], _logs(tmp_path)
    assert "REFERENCE_OK" in reference.stdout, reference.stderr[-3000:]

    # Only the chief wrote into model_dir; the other worker's scratch folders are gone.
    names = set(os.listdir(model_dir))
    assert {"flags.txt", "config.json", "checkpoint", "train", "validation"} <= names, names
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-3")
    assert [p.name for p in scratch[1].iterdir()] == []
    assert not any(n.startswith("memnet_tf_worker") for n in names)
    log0, log1 = ((tmp_path / f"worker{i}.log").read_text() for i in range(2))
    assert "2 replica(s)" in log0 and "saved " in log0 and "saved " not in log1

    # Same losses and weights as the 2-replica single-process run.
    ref = np.load(tmp_path / "reference.npz")
    losses = _scalars(model_dir / "train", "loss/total")
    np.testing.assert_allclose([losses[s] for s in range(1, steps + 1)], ref["losses"],
                               rtol=1e-4)
    from memnet_tf.config import ModelConfig
    from memnet_tf.models.memtrack import build_model

    model = build_model(ModelConfig(width_multiplier=0.125, hidden_size=16, memory_size=4,
                                    controller_dropout=0.0))
    tf.train.Checkpoint(model=model).restore(str(model_dir / "ckpt-3")).expect_partial()
    # Paths without the model's own name: it is mem_track_<k> after k models in this process.
    def key(v):
        return v.path.split("/", 1)[1]

    worst = max(float(np.max(np.abs(v.numpy() - ref[key(v)]))) for v in model.weights)
    scale = max(float(np.max(np.abs(ref[key(v)]))) for v in model.weights)
    assert worst < 1e-5 * scale, (worst, scale)


def test_workers_read_disjoint_clips():
    from memnet_tf.config import DataConfig, ModelConfig
    from memnet_tf.data import pipeline

    model_cfg = ModelConfig(width_multiplier=0.125, hidden_size=16, memory_size=4)
    data_cfg = DataConfig(batch_size=2, time_steps=2)
    searches = []
    for index in range(2):
        data = pipeline.make_dataset(data_cfg, model_cfg, "train", seed=3, batch_size=1,
                                     shard=(index, 2))
        searches.append([batch[0]["search"].numpy() for batch in data.take(3)])
    whole = pipeline.make_dataset(data_cfg, model_cfg, "train", seed=3, batch_size=1)
    whole = [batch[0]["search"].numpy() for batch in whole.take(6)]
    # Worker i gets clips i, i + 2, i + 4 of the unsharded stream: disjoint, none lost.
    for index in range(2):
        for k in range(3):
            np.testing.assert_array_equal(searches[index][k], whole[2 * k + index])
    with pytest.raises(ValueError, match="shard="):
        pipeline.make_dataset(data_cfg, model_cfg, "train", shard=(2, 2))


@pytest.mark.slow
def test_killed_worker_and_restart_resume_from_the_last_checkpoint(tmp_path):
    model_dir, scratch = tmp_path / "run", _scratch(tmp_path)
    processes = _start_workers(model_dir, scratch, ["--train_steps=1000", "--checkpoint_every=2"])
    deadline = time.time() + 900
    while True:  # until the chief has saved twice
        latest = tf.train.latest_checkpoint(str(model_dir))
        if latest and int(latest.rsplit("-", 1)[1]) >= 4:
            break
        assert all(p.poll() is None for p in processes), _logs(tmp_path)
        if time.time() > deadline:
            for p in processes:
                p.kill()
            pytest.fail("the workers saved no second checkpoint within 900 s\n" + _logs(tmp_path))
        time.sleep(0.5)
    processes[1].send_signal(signal.SIGKILL)  # preempted mid-run
    processes[1].wait()
    time.sleep(2)
    processes[0].send_signal(signal.SIGKILL)  # the chief is stuck in a collective: restart it too
    processes[0].wait()

    # Every checkpoint the index lists is complete and readable.
    state = tf.train.get_checkpoint_state(str(model_dir))
    for path in state.all_model_checkpoint_paths:
        tf.train.load_checkpoint(path).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")
    resumed = int(state.model_checkpoint_path.rsplit("-", 1)[1])
    assert resumed >= 4

    processes = _start_workers(model_dir, scratch,
                               [f"--train_steps={resumed + 2}", "--checkpoint_every=2"])
    assert _wait(processes, timeout=600) == [0, 0], _logs(tmp_path)
    for index in range(2):
        log = (tmp_path / f"worker{index}.log").read_text()
        assert f"resumed from {state.model_checkpoint_path} at step {resumed}" in log, log[-2000:]
    assert tf.train.latest_checkpoint(str(model_dir)).endswith(f"ckpt-{resumed + 2}")
    step = tf.train.load_checkpoint(str(model_dir)).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")
    assert step == resumed + 2
