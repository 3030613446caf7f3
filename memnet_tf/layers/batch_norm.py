"""BatchNorm with global-batch statistics across replicas, computed stably, as the official code.

Keras 3's `BatchNormalization(synchronized=True)` computes the variance in one pass,
E[x^2] - E[x]^2, even with a single replica; in float32 that loses (mean/std)^2 * 2^-24 relative
precision, ~1e-2 on trained AlexNet features. The official TF1 code uses the fused BatchNorm
(two-pass variance) and updates the moving variance with the unbiased batch variance.

`batch_moments` is the maths: the mean from the all-reduced sum and count, then the variance from
the all-reduced *centred* sum of squares (two passes over the data, two all-reduces).
`GlobalBatchNormalization` uses it, applies Bessel's correction n/(n-1) (n = the global count) to
the moving-variance update, and keeps the statistics in float32 under any mixed-precision policy.
With one replica there is nothing to reduce: a 4-D NHWC input (epsilon >= 1.001e-5) then goes
through TensorFlow's fused BatchNorm kernel, the official code's own op (two-pass variance,
unbiased batch variance for the moving average, one kernel each way): the same numbers in ~1/4
of the composed ops' time (paper step's BatchNorms 3.2-3.8 s -> 0.9-1.0 s,
benchmarks/train_throughput.py --profile).
XLA lowers that op with a one-pass variance (6.7 % off at mean/std = 300), so a step compiled with
`--jit_compile` uses the composed ops (`compose_batch_norms`, called by the trainer).
"""

from __future__ import annotations

import keras
import tensorflow as tf


# The smallest epsilon cuDNN's BatchNorm accepts (CUDNN_BN_MIN_EPSILON is 1e-5; 1.001e-5 as Keras).
FUSED_MIN_EPSILON = 1.001e-5


def _num_replicas() -> int:
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def batch_moments(x: tf.Tensor, axes) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Mean, biased variance and element count over `axes` of the global batch (all replicas).

    Args:
      x: float32 tensor, this replica's part of the batch.
      axes: reduction axes (all but the channel axis).

    Returns:
      mean, variance: `[C]` float32, statistics of the union of every replica's `x`;
      count: float32 scalar, the number of elements per channel over all replicas.
    """
    local_count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), x.dtype)
    if _num_replicas() == 1:
        mean = tf.reduce_mean(x, axis=axes)
        # The centred second pass: exact to float32 round-off whatever mean/std is.
        variance = tf.reduce_mean(tf.math.squared_difference(x, tf.stop_gradient(mean)), axis=axes)
        return mean, variance, local_count
    context = tf.distribute.get_replica_context()
    total, count = context.all_reduce(
        tf.distribute.ReduceOp.SUM, [tf.reduce_sum(x, axis=axes), local_count])
    mean = total / count
    # d(variance)/d(mean) is sum(x - mean) = 0 over the global batch, so stopping the gradient
    # through the mean here changes nothing mathematically (as tf.nn.moments does).
    centred = tf.reduce_sum(tf.math.squared_difference(x, tf.stop_gradient(mean)), axis=axes)
    variance = context.all_reduce(tf.distribute.ReduceOp.SUM, centred) / count
    return mean, variance, count


@keras.saving.register_keras_serializable(package="memnet_tf")
class GlobalBatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization over the global batch with a two-pass variance and Bessel's correction.

    Same variables (gamma, beta, moving_mean, moving_variance) and arguments as Keras's layer, so
    checkpoints and imported weights are unchanged. In training (and when trainable):
    y = gamma (x - mean) / sqrt(var + eps) + beta with the biased variance of the global batch,
    moving_mean <- m moving_mean + (1 - m) mean,
    moving_variance <- m moving_variance + (1 - m) var n/(n-1), as TF1's fused BatchNorm does.
    Inference uses the moving statistics. Computation is float32; the output has the layer's
    compute dtype (bfloat16/float16 under a mixed policy).
    """

    def __init__(self, **kwargs):
        # Statistics are always those of the global batch; Keras's own flag would select its
        # one-pass path, so it is dropped (get_config round trips pass synchronized=False).
        kwargs.pop("synchronized", None)
        if kwargs.get("renorm"):
            raise ValueError("GlobalBatchNormalization: renorm is not supported")
        super().__init__(synchronized=False, **kwargs)
        # Off: always the composed two-pass ops (`compose_batch_norms`); not part of the config.
        self.fused_kernel = True

    def call(self, inputs, training=None, mask=None):
        if mask is not None:
            raise ValueError(f"{self.name}: masks are not supported")
        x = tf.cast(inputs, tf.float32)
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else None
        beta = tf.cast(self.beta, tf.float32) if self.center else None
        training = bool(training) and self.trainable
        # cuDNN's fused kernel raises epsilon to 1e-5 on GPUs: a smaller one (FDSiamFC's 1e-6)
        # keeps the composed ops, so that no device silently normalises with another epsilon.
        if (training and self.fused_kernel and _num_replicas() == 1 and x.shape.rank == 4
                and self.axis in (3, -1) and self.epsilon >= FUSED_MIN_EPSILON):
            channels = x.shape[-1]
            outputs, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(
                x, tf.ones([channels]) if gamma is None else gamma,
                tf.zeros([channels]) if beta is None else beta, epsilon=self.epsilon,
                data_format="NHWC", is_training=True)
            self._update_moving_statistics(mean, unbiased)
            return tf.cast(outputs, self.compute_dtype)
        if training:
            mean, variance, count = batch_moments(x, self._reduction_axes)
            self._update_moving_statistics(mean,
                                           variance * count / tf.maximum(count - 1.0, 1.0))
        else:
            mean = tf.cast(self.moving_mean, tf.float32)
            variance = tf.cast(self.moving_variance, tf.float32)
        shape = [1] * len(x.shape)
        shape[self.axis] = -1
        scale = tf.math.rsqrt(variance + self.epsilon)
        if gamma is not None:
            scale = scale * gamma
        # (x - mean) * scale, not x * scale - mean * scale: no cancellation when mean >> std.
        outputs = (x - tf.reshape(mean, shape)) * tf.reshape(scale, shape)
        if beta is not None:
            outputs = outputs + tf.reshape(beta, shape)
        return tf.cast(outputs, self.compute_dtype)

    def _update_moving_statistics(self, mean, unbiased_variance):
        m = tf.constant(self.momentum, tf.float32)
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + unbiased_variance * (1.0 - m))


def compose_batch_norms(model: keras.layers.Layer) -> int:
    """Makes every GlobalBatchNormalization inside `model` use the composed two-pass ops.

    For steps compiled by XLA, whose lowering of the fused BatchNorm computes E[x^2] - E[x]^2.
    Returns how many layers were switched.
    """
    norms = [layer for layer in model._flatten_layers(include_self=True, recursive=True)
             if isinstance(layer, GlobalBatchNormalization)]
    for layer in norms:
        layer.fused_kernel = False
    return len(norms)
