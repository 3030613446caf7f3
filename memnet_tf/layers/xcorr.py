"""Per-example cross-correlation of search features with templates, and the response head.

`xcorr_reference` (one convolution per example, the official `tf.map_fn` form) and `xcorr`
(the batch folded into channels for one depthwise convolution) are tested equal.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from memnet_tf.layers.batch_norm import GlobalBatchNormalization


def xcorr_reference(search_features: tf.Tensor, templates: tf.Tensor) -> tf.Tensor:
    """Slow reference: correlates every example with its own template.

    Args:
      search_features: `[B, H, W, C]`.
      templates: `[B, h, w, C]`.

    Returns:
      `[B, H-h+1, W-w+1]` responses.
    """

    def correlate(pair):
        search, template = pair
        response = tf.nn.conv2d(search[None], template[..., None], strides=1, padding="VALID")
        return response[0, :, :, 0]

    return tf.map_fn(correlate, (search_features, templates),
                     fn_output_signature=search_features.dtype)


def xcorr(search_features: tf.Tensor, templates: tf.Tensor) -> tf.Tensor:
    """Fast per-example correlation: one depthwise convolution over batch-folded channels.

    The B examples become B*C channels of a single image, each template channel filters its own
    channel, and summing the C channels of every example gives its response.

    Args:
      search_features: `[B, H, W, C]`.
      templates: `[B, h, w, C]`.

    Returns:
      `[B, H-h+1, W-w+1]` responses.
    """
    batch = tf.shape(search_features)[0]
    height, width, channels = (tf.shape(search_features)[1], tf.shape(search_features)[2],
                               tf.shape(search_features)[3])
    t_height, t_width = tf.shape(templates)[1], tf.shape(templates)[2]
    # [1, H, W, B*C]: example-major channel order.
    folded = tf.reshape(tf.transpose(search_features, [1, 2, 0, 3]),
                        [1, height, width, batch * channels])
    filters = tf.reshape(tf.transpose(templates, [1, 2, 0, 3]),
                         [t_height, t_width, batch * channels, 1])
    responses = tf.nn.depthwise_conv2d(folded, filters, strides=[1, 1, 1, 1], padding="VALID")
    out_h, out_w = height - t_height + 1, width - t_width + 1
    responses = tf.reshape(responses, [out_h, out_w, batch, channels])
    return tf.transpose(tf.reduce_sum(responses, axis=-1), [2, 0, 1])


@keras.saving.register_keras_serializable(package="memnet_tf")
class ResponseHead(keras.layers.Layer):
    """Turns raw correlations into logits.

    'batchnorm' (official MemTrack): a BatchNorm over the stacked single-channel maps — batch
    statistics over all B*T maps in training, moving averages when tracking; apply it once to all
    maps of a clip, not per step. 'scale' (SiamFC): a fixed x0.001 plus a learned bias.

    Args:
      kind: 'batchnorm' or 'scale'.
      scale: the fixed factor of 'scale'.
      momentum, epsilon: of the BatchNorm.
    """

    def __init__(self, kind: str = "batchnorm", scale: float = 1e-3, momentum: float = 0.99,
                 epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        if kind not in ("batchnorm", "scale"):
            raise ValueError(f"response head kind={kind!r}: expected 'batchnorm' or 'scale'")
        self.kind = kind
        self.scale = scale
        self.momentum = momentum
        self.epsilon = epsilon
        if kind == "batchnorm":
            self.batch_norm = GlobalBatchNormalization(
                momentum=momentum, epsilon=epsilon, name="bn_response")

    def build(self, responses_shape):
        if self.kind == "batchnorm":
            self.batch_norm.build((None, None, None, 1))
        else:
            self.bias = self.add_weight(name="bias", shape=(), initializer="zeros")

    def call(self, responses, training=False):
        """`[..., R, R]` raw responses -> `[..., R, R]` logits."""
        if self.kind == "scale":
            return responses * self.scale + self.bias
        shape = tf.shape(responses)
        flat = tf.reshape(responses, tf.concat([[-1], shape[-2:], [1]], axis=0))
        return tf.reshape(self.batch_norm(flat, training=training), shape)

    def get_config(self):
        config = super().get_config()
        config.update(kind=self.kind, scale=self.scale, momentum=self.momentum,
                      epsilon=self.epsilon)
        return config
