"""--precision (mixed bfloat16/float16 backbone, float32 everything else, loss scaling) and
--jit_compile (XLA train step) against the float32 step on the same batch."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from memnet_tf.config import DataConfig, TrainConfig
from memnet_tf.training.trainer import Trainer

from train_fixtures import random_batch, repeating_dataset

B, T = 2, 2


def _trainer(model_cfg, **overrides):
    keras.utils.set_random_seed(3)
    train_cfg = TrainConfig(train_steps=1, learning_rate=1e-3, adam_epsilon=1e-2, **overrides)
    return Trainer(model_cfg, DataConfig(batch_size=B, time_steps=T), train_cfg,
                   lambda start: repeating_dataset(model_cfg, B, T))


@pytest.fixture
def deterministic_config(tiny_model_config):
    return dataclasses.replace(tiny_model_config, controller_dropout=0.0)


def _step(trainer):
    logs = trainer.train_step(iter(trainer.train_dataset_fn(0)))
    return {k: float(v) for k, v in logs.items()}


def test_mixed_bfloat16_computes_the_backbone_in_bfloat16_and_the_rest_in_float32(
        deterministic_config):
    reference = _trainer(deterministic_config)
    mixed = _trainer(deterministic_config, precision="mixed_bfloat16")
    assert keras.mixed_precision.dtype_policy().name == "float32"  # no global side effect
    backbone = mixed.model.backbone
    assert backbone.conv1.compute_dtype == "bfloat16" and backbone.conv1_bn.compute_dtype == \
        "bfloat16"
    assert all(v.dtype == "float32" for v in mixed.model.weights)
    features, _ = random_batch(deterministic_config, B, T)
    outputs = mixed.model(features, training=False)  # (training=True would move BN statistics)
    assert outputs["response"].dtype == tf.float32
    assert outputs["read_weights"].dtype == tf.float32  # the memory maths stay float32
    assert mixed.model.cell.compute_dtype == "float32"

    expected, got = _step(reference), _step(mixed)
    # bfloat16 has 8 mantissa bits: the loss agrees to ~1 %, statistics stay close and float32.
    np.testing.assert_allclose(got["loss/total"], expected["loss/total"], rtol=2e-2)
    np.testing.assert_allclose(got["gradient_norm"], expected["gradient_norm"], rtol=5e-2)
    for a, b in zip(reference.model.backbone.norms, backbone.norms):
        assert b.moving_variance.dtype == "float32"
        np.testing.assert_allclose(b.moving_mean.numpy(), a.moving_mean.numpy(),
                                   atol=2e-2 * np.abs(a.moving_mean.numpy()).max())


def test_mixed_float16_scales_the_loss_and_skips_steps_with_overflowing_gradients(
        deterministic_config):
    reference = _trainer(deterministic_config)
    mixed = _trainer(deterministic_config, precision="mixed_float16")
    assert isinstance(mixed.optimizer, keras.optimizers.LossScaleOptimizer)
    assert mixed.model.backbone.conv3.compute_dtype == "float16"
    expected, got = _step(reference), _step(mixed)
    # The reported gradient norm is the true one (unscaled), and the update is made.
    np.testing.assert_allclose(got["loss/total"], expected["loss/total"], rtol=1e-2)
    np.testing.assert_allclose(got["gradient_norm"], expected["gradient_norm"], rtol=2e-2)
    for a, b in zip(reference.model.trainable_variables, mixed.model.trainable_variables):
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=2e-4)

    # A scale large enough to overflow float16 gradients: the step is skipped, the scale halved.
    mixed.optimizer.dynamic_scale.assign(2.0 ** 40)
    before = [v.numpy() for v in mixed.model.trainable_variables]
    iterations = int(mixed.optimizer.iterations.numpy())
    _step(mixed)
    assert float(mixed.optimizer.dynamic_scale.numpy()) == 2.0 ** 39
    assert int(mixed.optimizer.iterations.numpy()) == iterations
    for b, v in zip(before, mixed.model.trainable_variables):
        np.testing.assert_array_equal(v.numpy(), b)


def test_checkpoints_are_the_same_in_every_precision(deterministic_config, tmp_path):
    mixed = _trainer(deterministic_config, precision="mixed_float16")
    _step(mixed)
    path = tf.train.Checkpoint(model=mixed.model, optimizer=mixed.checkpoint.optimizer,
                               step=mixed.step).save(str(tmp_path / "ckpt"))
    plain = _trainer(deterministic_config)
    plain.checkpoint.restore(path).assert_existing_objects_matched()
    for a, b in zip(mixed.model.weights, plain.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.slow
def test_xla_compiled_step_equals_the_plain_step(deterministic_config):
    reference = _trainer(deterministic_config)
    compiled = _trainer(deterministic_config, jit_compile=True)
    for _ in range(2):
        expected, got = _step(reference), _step(compiled)
        np.testing.assert_allclose(got["loss/total"], expected["loss/total"], rtol=1e-5)
    # Relative as well as absolute: the response BatchNorm's moving variance is ~18, and with
    # oneDNN (TF's default on AVX-512 CPUs) XLA's and TF's kernels round it 3e-6 apart.
    for a, b in zip(reference.model.weights, compiled.model.weights):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-5, err_msg=a.path)
