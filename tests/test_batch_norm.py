"""GlobalBatchNormalization against a float64 numpy BatchNorm: outputs, input gradients and the
Bessel-corrected moving variance, on one replica and on two (MirroredStrategy, 2 logical CPUs)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from memnet_tf.layers.batch_norm import GlobalBatchNormalization
from memnet_tf.layers.xcorr import ResponseHead
from memnet_tf.models.backbone import AlexNetBackbone

from conftest import REPO_ROOT

EPS, MOMENTUM = 1e-3, 0.9


def _numpy_bn(x, gamma, beta, upstream, eps=EPS):
    """float64 BatchNorm over all axes but the last: output, d(sum(upstream * y))/dx, moments."""
    x = x.astype(np.float64)
    axes = tuple(range(x.ndim - 1))
    n = np.prod([x.shape[a] for a in axes])
    mean = x.mean(axis=axes)
    var = ((x - mean) ** 2).mean(axis=axes)
    xhat = (x - mean) / np.sqrt(var + eps)
    y = gamma * xhat + beta
    g = upstream.astype(np.float64) * gamma
    dx = (g - g.mean(axis=axes) - xhat * (g * xhat).mean(axis=axes)) / np.sqrt(var + eps)
    return y, dx, mean, var, n


def _train_forward_backward(layer, x, upstream):
    """The layer's training output on `x` and d(sum(upstream * y))/dx."""
    x_tf = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_tf)
        y = layer(x_tf, training=True)
        objective = tf.reduce_sum(y * upstream)
    return y, tape.gradient(objective, x_tf)


def _features_far_from_zero(shape, seed=0, ratio=300.0):
    """Channels with mean/std between ratio/3 and ratio (std ~0.05-0.2, like trained features)."""
    rng = np.random.default_rng(seed)
    channels = shape[-1]
    std = rng.uniform(0.05, 0.2, size=channels)
    mean = std * rng.uniform(ratio / 3, ratio, size=channels) * rng.choice([-1, 1], channels)
    return (mean + std * rng.normal(size=shape)).astype(np.float32)


def _model_batch_norms():
    """The BatchNorm layers the model really uses (backbone conv1_bn, response head)."""
    backbone = AlexNetBackbone(channels=(8, 8, 8, 8, 8), bn_epsilon=EPS, bn_momentum=MOMENTUM)
    head = ResponseHead("batchnorm", momentum=MOMENTUM, epsilon=EPS)
    return {"backbone": backbone.conv1_bn, "response": head.batch_norm}


@pytest.mark.parametrize("which", ["backbone", "response"])
def test_training_output_and_gradient_match_float64_when_mean_is_far_from_zero(which):
    layer = _model_batch_norms()[which]
    channels = 8 if which == "backbone" else 1
    shape = (16, 12, 12, channels)
    x = _features_far_from_zero(shape)
    rng = np.random.default_rng(1)
    layer.build(shape)
    gamma = rng.uniform(0.5, 2.0, channels).astype(np.float32)
    beta = rng.normal(size=channels).astype(np.float32)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    upstream = rng.normal(size=shape).astype(np.float32)
    y, dx = _train_forward_backward(layer, x, upstream)
    y64, dx64, _, _, _ = _numpy_bn(x, gamma, beta, upstream)
    # Keras 3's synchronized=True (one-pass E[x^2] - E[x]^2) is off by ~1e-1 here.
    np.testing.assert_allclose(y.numpy(), y64, atol=2e-4 * np.abs(y64).max())
    np.testing.assert_allclose(dx.numpy(), dx64, atol=2e-3 * np.abs(dx64).max())


def test_moving_variance_uses_the_unbiased_batch_variance_on_a_known_batch():
    layer = GlobalBatchNormalization(momentum=MOMENTUM, epsilon=EPS)
    # One channel holding 1, 2, 3, 4: mean 2.5, biased variance 1.25, unbiased 5/3.
    x = tf.reshape(tf.constant([1.0, 2.0, 3.0, 4.0]), [2, 2, 1, 1])
    y = layer(x, training=True)
    np.testing.assert_allclose(layer.moving_mean.numpy(), [0.1 * 2.5], rtol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), [0.9 + 0.1 * 5 / 3], rtol=1e-6)
    # The output is normalised with the biased variance, as in the official fused BatchNorm.
    np.testing.assert_allclose(y.numpy().ravel(), (np.arange(1, 5) - 2.5) / np.sqrt(1.25 + EPS),
                               rtol=1e-5)


def test_moving_statistics_match_numpy_on_a_random_batch():
    layer = _model_batch_norms()["backbone"]
    x = _features_far_from_zero((4, 7, 5, 8), seed=3, ratio=20.0)
    layer(x, training=True)
    axes = (0, 1, 2)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * x64.mean(axis=axes), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(),
                               0.9 + 0.1 * x64.var(axis=axes, ddof=1), rtol=1e-5)


def test_inference_uses_the_moving_statistics_and_leaves_them_alone():
    layer = GlobalBatchNormalization(momentum=MOMENTUM, epsilon=EPS)
    rng = np.random.default_rng(4)
    x = rng.normal(3.0, 2.0, size=(3, 4, 4, 5)).astype(np.float32)
    layer.build(x.shape)
    mean, var = rng.normal(size=5).astype(np.float32), rng.uniform(0.5, 2, 5).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 2, 5).astype(np.float32), rng.normal(size=5).astype(np.float32)
    for variable, value in ((layer.moving_mean, mean), (layer.moving_variance, var),
                            (layer.gamma, gamma), (layer.beta, beta)):
        variable.assign(value)
    y = layer(x, training=False)
    np.testing.assert_allclose(y.numpy(), gamma * (x - mean) / np.sqrt(var + EPS) + beta,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), mean)
    np.testing.assert_array_equal(layer.moving_variance.numpy(), var)


def test_frozen_layer_normalises_with_moving_statistics_even_in_training():
    layer = GlobalBatchNormalization(momentum=MOMENTUM, epsilon=EPS)
    x = np.random.default_rng(5).normal(3.0, 2.0, size=(3, 4, 4, 2)).astype(np.float32)
    layer.build(x.shape)
    layer.trainable = False
    y = layer(x, training=True)
    np.testing.assert_allclose(y.numpy(), x / np.sqrt(1 + EPS), rtol=1e-5)
    np.testing.assert_array_equal(layer.moving_variance.numpy(), [1.0, 1.0])


def test_config_round_trip_keeps_the_layer_and_its_arguments():
    layer = GlobalBatchNormalization(momentum=0.95, epsilon=1e-4, name="bn")
    clone = GlobalBatchNormalization.from_config(layer.get_config())
    assert isinstance(clone, GlobalBatchNormalization)
    assert (clone.momentum, clone.epsilon, clone.name) == (0.95, 1e-4, "bn")


_TWO_REPLICA_SCRIPT = textwrap.dedent("""
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import sys
    import numpy as np
    sys.path.insert(0, "tests")
    from test_batch_norm import _features_far_from_zero, _numpy_bn, EPS, MOMENTUM
    from memnet_tf.layers.batch_norm import GlobalBatchNormalization

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    x = _features_far_from_zero((8, 6, 6, 4), seed=7)
    # Unequal statistics per replica: the global moments are not the mean of local ones.
    x[4:] = x[4:] * 1.01 + 0.5
    upstream = np.random.default_rng(8).normal(size=x.shape).astype(np.float32)
    with strategy.scope():
        layer = GlobalBatchNormalization(momentum=MOMENTUM, epsilon=EPS)
        layer.build(x.shape)
    halves = lambda a: strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(a[4 * ctx.replica_id_in_sync_group:
                                  4 * (ctx.replica_id_in_sync_group + 1)]))

    @tf.function
    def step(x, upstream):
        def replica(x, upstream):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                objective = tf.reduce_sum(y * upstream)
            return y, tape.gradient(objective, x)
        return strategy.run(replica, args=(x, upstream))

    y, dx = step(halves(x), halves(upstream))
    y = np.concatenate([t.numpy() for t in strategy.experimental_local_results(y)])
    dx = np.concatenate([t.numpy() for t in strategy.experimental_local_results(dx)])
    y64, dx64, mean, var, n = _numpy_bn(x, np.ones(4), np.zeros(4), upstream)
    np.testing.assert_allclose(y, y64, atol=2e-4 * np.abs(y64).max())
    np.testing.assert_allclose(dx, dx64, atol=2e-3 * np.abs(dx64).max())
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 + 0.1 * var * n / (n - 1),
                               rtol=1e-5)
    print("TWO_REPLICAS_OK")
""")


def test_two_replicas_normalise_with_the_statistics_of_the_global_batch():
    result = subprocess.run([sys.executable, "-c", _TWO_REPLICA_SCRIPT], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert "TWO_REPLICAS_OK" in result.stdout, result.stdout + result.stderr[-3000:]


@pytest.mark.parametrize("epsilon, fused", [(1e-3, True), (1e-6, False)])
def test_one_replica_paths_match_float64_with_their_own_epsilon(epsilon, fused):
    """1e-3 (MemTrack) trains through the fused kernel, 1e-6 (FDSiamFC) through the composed ops
    (cuDNN would raise it to 1e-5); both normalise with their own epsilon, which matters here:
    the channels' variance is ~1e-6."""
    from memnet_tf.layers.batch_norm import FUSED_MIN_EPSILON

    assert (epsilon >= FUSED_MIN_EPSILON) == fused
    shape = (6, 5, 5, 4)
    rng = np.random.default_rng(7)
    x = (rng.uniform(-50, 50, 4) * 1e-3 + 1e-3 * rng.normal(size=shape)).astype(np.float32)
    layer = GlobalBatchNormalization(momentum=MOMENTUM, epsilon=epsilon)
    layer.build(shape)
    gamma = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    layer.gamma.assign(gamma)
    upstream = rng.normal(size=shape).astype(np.float32)
    y, dx = _train_forward_backward(layer, x, upstream)
    y64, dx64, _, var64, n = _numpy_bn(x, gamma, np.zeros(4), upstream, eps=epsilon)
    np.testing.assert_allclose(y.numpy(), y64, atol=2e-4 * np.abs(y64).max())
    np.testing.assert_allclose(dx.numpy(), dx64, atol=2e-3 * np.abs(dx64).max())
    np.testing.assert_allclose(layer.moving_variance.numpy(),
                               MOMENTUM + (1 - MOMENTUM) * var64 * n / (n - 1), rtol=1e-4)
    graph = tf.function(lambda v: layer(v, training=True)).get_concrete_function(
        tf.TensorSpec(shape, tf.float32)).graph
    ops = {op.type for op in graph.get_operations()}
    assert any("FusedBatchNorm" in op for op in ops) == fused, sorted(ops)


def test_compiled_steps_use_the_composed_ops_because_xla_fuses_a_one_pass_variance():
    from memnet_tf.layers.batch_norm import compose_batch_norms

    shape = (64, 9, 9, 4)
    x = tf.constant(_features_far_from_zero(shape, seed=8, ratio=300.0))
    _, _, _, var64, n = _numpy_bn(x.numpy(), np.ones(4), np.zeros(4), np.zeros(shape))
    unbiased64 = var64 * n / (n - 1)

    def moving_variance_after_one_step(fused_kernel):
        layer = GlobalBatchNormalization(momentum=0.0, epsilon=EPS)
        layer.build(shape)
        layer.fused_kernel = fused_kernel
        tf.function(lambda v: layer(v, training=True), jit_compile=True)(x)
        return layer.moving_variance.numpy()

    # What the switch is for: XLA's lowering of the fused op loses the variance at this mean/std.
    assert np.abs(moving_variance_after_one_step(True) / unbiased64 - 1).max() > 1e-3
    np.testing.assert_allclose(moving_variance_after_one_step(False), unbiased64, rtol=1e-4)
    # The trainer's switch reaches every BatchNorm of the model (4 backbone + the response head).
    from memnet_tf.config import ModelConfig
    from memnet_tf.models.memtrack import build_model

    model = build_model(ModelConfig(width_multiplier=0.125, hidden_size=8, memory_size=2))
    assert compose_batch_norms(model) == 5
    assert not model.backbone.conv1_bn.fused_kernel
    assert not model.response_head.batch_norm.fused_kernel
