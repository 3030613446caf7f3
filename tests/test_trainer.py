"""Trainer: loss decreases, weight decay and clipping as specified, checkpoints resume, NaN stops,
MirroredStrategy on 2 logical CPUs equals one device."""

import dataclasses
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from memnet_tf.config import DataConfig, TrainConfig
from memnet_tf.training import losses
from memnet_tf.training.trainer import NonFiniteLossError, Trainer

from conftest import REPO_ROOT
from train_fixtures import random_batch, repeating_dataset

B, T = 2, 2


def _trainer(model_cfg, tmp_path=None, **train_overrides):
    settings = dict(model_dir=str(tmp_path) if tmp_path else "", train_steps=4,
                    log_every=1000, checkpoint_every=2, summary_every=1,
                    image_summary_every=1000, validate_every=1000)
    train_cfg = TrainConfig(**{**settings, **train_overrides})
    data_cfg = DataConfig(batch_size=B, time_steps=T)
    return Trainer(model_cfg, data_cfg, train_cfg,
                   lambda start: repeating_dataset(model_cfg, B, T))


def test_loss_decreases_on_a_fixed_batch(tiny_model_config):
    trainer = _trainer(dataclasses.replace(tiny_model_config, controller_dropout=0.0),
                       learning_rate=1e-3)
    iterator = iter(trainer.train_dataset_fn(0))
    first = float(trainer.train_step(iterator)["loss/logistic"])
    for _ in range(15):
        last = float(trainer.train_step(iterator)["loss/logistic"])
    assert last < 0.8 * first, (first, last)


def test_regularization_is_half_l2_over_all_variables(tiny_model_config):
    trainer = _trainer(tiny_model_config, weight_decay=1e-2)
    expected = 1e-2 * 0.5 * sum(float(np.sum(v.numpy() ** 2))
                                for v in trainer.model.trainable_variables)
    logs = trainer.train_step(iter(trainer.train_dataset_fn(0)))
    np.testing.assert_allclose(float(logs["loss/regularization"]), expected, rtol=1e-4)


def test_balanced_loss_matches_numpy():
    rng = np.random.default_rng(0)
    response = rng.normal(size=(2, 3, 5, 5)).astype(np.float32)
    label = (rng.uniform(size=response.shape) > 0.8).astype(np.float32)
    weight = rng.uniform(size=response.shape).astype(np.float32)
    xent = np.maximum(response, 0) - response * label + np.log1p(np.exp(-np.abs(response)))
    np.testing.assert_allclose(losses.balanced_logistic_loss(response, label, weight),
                               np.sum(weight * xent) / 6, rtol=1e-5)


def test_gradients_are_clipped_to_the_global_norm(tiny_model_config):
    cfg = dataclasses.replace(tiny_model_config, controller_dropout=0.0)
    trainer = _trainer(cfg, clip_norm=1e9)
    features, targets = random_batch(cfg, B, T)
    raw, logs = trainer.compute_gradients(features, targets)
    raw_norm = float(tf.linalg.global_norm(raw))
    np.testing.assert_allclose(float(logs["gradient_norm"]), raw_norm, rtol=1e-5)
    trainer.train_cfg = dataclasses.replace(trainer.train_cfg, clip_norm=raw_norm / 10)
    clipped, _ = trainer.compute_gradients(features, targets)
    np.testing.assert_allclose(float(tf.linalg.global_norm(clipped)), raw_norm / 10, rtol=1e-4)
    for r, c in zip(raw, clipped):  # same direction, a tenth of the length
        np.testing.assert_allclose(c, r / 10, atol=1e-6 * raw_norm)


def test_gate_means_are_in_the_scalar_logs(tiny_model_config):
    """The gates follow the scalar schedule: they are part of every step's logs."""
    cfg = dataclasses.replace(tiny_model_config, controller_dropout=0.0)
    trainer = _trainer(cfg)
    features, targets = random_batch(cfg, B, T)
    _, logs = trainer.compute_gradients(features, targets)
    gates = trainer.model(features, training=True)["control_gates"].numpy().reshape(-1, 3)
    means = [float(logs[f"gates/mean_{name}"]) for name in ("skip", "overwrite", "allocate")]
    np.testing.assert_allclose(means, gates.mean(axis=0), rtol=1e-5)
    assert sum(means) == pytest.approx(1.0, abs=1e-5)


def test_checkpoints_resume_where_they_stopped(tiny_model_config, tmp_path):
    trainer = _trainer(tiny_model_config, tmp_path)
    trainer.run(progress=lambda line: None)
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-4")
    weights = [v.numpy() for v in trainer.model.weights]
    resumed = _trainer(tiny_model_config, tmp_path, )
    lines = []
    resumed.train_cfg = dataclasses.replace(resumed.train_cfg, train_steps=6)
    resumed.run(progress=lines.append)
    assert any("resumed from" in line and "ckpt-4" in line for line in lines)
    assert int(resumed.step.numpy()) == 6
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-6")
    # Restored weights were those saved: a fresh trainer restoring ckpt-4 sees them.
    check = _trainer(tiny_model_config)
    tf.train.Checkpoint(model=check.model).restore(
        os.path.join(tmp_path, "ckpt-4")).expect_partial()
    for saved, restored in zip(weights, check.model.weights):
        np.testing.assert_array_equal(saved, restored.numpy())
    assert os.path.isdir(tmp_path / "train")  # TensorBoard scalars


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_model_config, tmp_path):
    trainer = _trainer(tiny_model_config, tmp_path)
    features, targets = random_batch(tiny_model_config, B, T)
    targets["weight"][0, 0, 0, 0] = np.nan
    good = tf.data.Dataset.from_tensors(random_batch(tiny_model_config, B, T)).repeat(2)
    bad = tf.data.Dataset.from_tensors((features, targets)).repeat()
    trainer.train_dataset_fn = lambda start: good.concatenate(bad)
    with pytest.raises(NonFiniteLossError, match="step 3: loss is nan"):
        trainer.run(progress=lambda line: None)
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-2")


_MIRRORED_SCRIPT = textwrap.dedent("""
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np, dataclasses, sys
    sys.path.insert(0, "tests")
    from memnet_tf.config import ModelConfig, DataConfig, TrainConfig
    from memnet_tf.training.trainer import Trainer
    from train_fixtures import repeating_dataset
    cfg = ModelConfig(width_multiplier=0.125, hidden_size=16, memory_size=4,
                      controller_dropout=0.0)
    results = []
    before = None
    for strategy in (tf.distribute.OneDeviceStrategy("/cpu:0"),
                     tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])):
        tf.keras.utils.set_random_seed(5)
        # A large Adam epsilon keeps the first update linear in the gradient; with the default,
        # Adam's first step is ~lr * sign(g), which turns round-off in near-zero gradients into
        # lr-sized differences.
        trainer = Trainer(cfg, DataConfig(batch_size=4, time_steps=2),
                          TrainConfig(train_steps=1, learning_rate=1e-2, adam_epsilon=1e-2),
                          lambda s: repeating_dataset(cfg, 4, 2), strategy=strategy)
        if before is None:
            before = [v.numpy() for v in trainer.model.weights]
        dist = strategy.experimental_distribute_dataset(trainer.train_dataset_fn(0))
        logs = trainer.train_step(iter(dist))
        results.append((float(logs["loss/total"]), float(logs["gradient_norm"]),
                        [v.numpy() for v in trainer.model.weights]))
    (loss1, norm1, w1), (loss2, norm2, w2) = results
    print("replicas", strategy.num_replicas_in_sync, "losses", loss1, loss2, "norms", norm1, norm2)
    np.testing.assert_allclose(loss2, loss1, rtol=1e-4)
    np.testing.assert_allclose(norm2, norm1, rtol=1e-3)
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(w1, w2))
    print("max weight difference", worst)
    update = max(float(np.max(np.abs(a - b))) for a, b in zip(w1, before))
    print("max update", update)
    # float32 sums over the 2 replicas are ordered differently (BatchNorm moments, all-reduce):
    # equal up to round-off amplified through BN, well below 1 % of the step itself.
    assert update > 1e-3 and worst < 1e-2 * update, (worst, update)
    print("MIRRORED_OK")
""")


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpus_equals_one_device():
    result = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600)
    assert "MIRRORED_OK" in result.stdout, result.stdout + result.stderr[-3000:]


def test_warm_started_frozen_backbone_stays_fixed_while_memory_trains(tiny_model_config,
                                                                     tmp_path):
    from memnet_tf.models.memtrack import build_model

    source = build_model(tiny_model_config, seed=7)
    rng = np.random.default_rng(1)
    for v in source.backbone.weights:  # distinctive but sane values, BN statistics included
        if "moving_variance" in v.path:
            v.assign(rng.uniform(0.5, 1.5, size=v.shape).astype(np.float32))
        else:
            v.assign(v.numpy() * 1.3 + rng.normal(0, 0.01, size=v.shape).astype(np.float32))
    tf.train.Checkpoint(model=source).save(str(tmp_path / "source" / "ckpt"))

    trainer = _trainer(tiny_model_config, tmp_path / "run",
                       init_backbone=str(tmp_path / "source"), freeze_backbone=True,
                       learning_rate=1e-2)
    lines = []
    trainer.run(progress=lines.append)
    assert any("backbone warm-started from" in line and "(frozen)" in line for line in lines)
    for a, b in zip(source.backbone.weights, trainer.model.backbone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert not any("feature_extraction" in v.path for v in trainer.model.trainable_variables)
    fresh = build_model(tiny_model_config, seed=7)
    moved = [v.path for v, f in zip(trainer.model.weights, fresh.weights)
             if "memory_cell" in v.path and not np.allclose(v.numpy(), f.numpy())]
    assert moved  # the memory side did train


def test_partly_frozen_backbone_trains_conv5_at_its_own_learning_rate(tiny_model_config,
                                                                     tmp_path):
    """conv1-4 and their BatchNorm statistics stay fixed; conv5 takes Adam steps of
    learning_rate x backbone_learning_rate_scale: Adam's first step moves every weight with a
    non-zero gradient by ~lr (m / sqrt(v) = sign(g)), so the largest change is the rate itself."""
    lr, scale = 1e-3, 0.1
    trainer = _trainer(tiny_model_config, tmp_path / "run", frozen_backbone_layers=4,
                       backbone_learning_rate_scale=scale, learning_rate=lr, train_steps=1,
                       weight_decay=0.0, seed=3)
    before = {v.path: v.numpy().copy() for v in trainer.model.weights}
    assert [v.path for v in trainer.model.backbone.trainable_variables] == [
        v.path for v in trainer.model.backbone.conv5.weights]
    trainer.run(progress=lambda _: None)
    changes = {v.path: np.abs(v.numpy() - before[v.path]).max() for v in trainer.model.weights}
    for path, change in changes.items():
        if "feature_extraction" in path and "conv5" not in path:
            assert change == 0.0, path  # conv1-4 weights and BatchNorm statistics
    conv5 = [c for p, c in changes.items() if "feature_extraction" in p and "conv5" in p]
    head = [c for p, c in changes.items() if "memory_cell" in p]
    np.testing.assert_allclose(max(conv5), lr * scale, rtol=0.02)
    np.testing.assert_allclose(max(head), lr, rtol=0.02)
    # Both Adams are in the checkpoint: a resumed run finds the backbone one where it stopped.
    again = _trainer(tiny_model_config, tmp_path / "run", frozen_backbone_layers=4,
                     backbone_learning_rate_scale=scale, learning_rate=lr, train_steps=1)
    assert again.restore_or_initialize()
    assert int(again.checkpoint.backbone_optimizer.iterations.numpy()) == 1
