"""Spatial attention over the search features: the controller's input a_t (spec section 3)."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="memnet_tf")
class SpatialAttention(keras.layers.Layer):
    """Attends over n x n-pooled search patches with the previous controller output.

    f*_t = AvgPool_{n x n}(f(S_t)) gives L patch vectors f*_{t,i}; the score of each is
    r_{t,i} = w_a . tanh(W_f f*_{t,i} + W_h h_{t-1} + b); alpha_t = softmax_i(r_t) and
    a_t = sum_i alpha_{t,i} f*_{t,i} (a weighted sum of the pooled, untransformed features).

    Args:
      pool_size: n, the template's side, so each patch covers what a template would.
      units: width of the score's hidden layer (the feature channels in the official model).
    """

    def __init__(self, pool_size: int, units: int, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pool_size
        self.units = units
        # W_f: 1x1 conv without bias; W_h: dense with the bias b; w_a: 1x1 conv without bias.
        self.patch_projection = keras.layers.Dense(units, use_bias=False, name="input_layer")
        self.query_projection = keras.layers.Dense(units, use_bias=True, name="query_layer")
        self.score = keras.layers.Dense(1, use_bias=False, name="score")

    def build(self, search_features_shape, hidden_shape):
        channels = search_features_shape[-1]
        self.patch_projection.build((None, channels))
        self.query_projection.build((None, hidden_shape[-1]))
        self.score.build((None, self.units))

    def pool(self, search_features: tf.Tensor) -> tf.Tensor:
        """f*_t: `[B, H, W, C]` -> `[B, H-n+1, W-n+1, C]` patch vectors (valid, stride 1)."""
        return tf.nn.avg_pool2d(search_features, self.pool_size, strides=1, padding="VALID")

    def call(self, search_features, hidden):
        """Attends over the search features.

        Args:
          search_features: `[B, H, W, C]` backbone features f(S_t) of the search crop.
          hidden: `[B, hidden]` controller output h_{t-1}.

        Returns:
          attended: `[B, C]` a_t.
          weights: `[B, L_h, L_w]` attention alpha_t over the patch grid.
        """
        patches = self.pool(search_features)
        grid_h, grid_w = tf.shape(patches)[1], tf.shape(patches)[2]
        query = self.query_projection(hidden)[:, None, None, :]
        scores = self.score(tf.tanh(self.patch_projection(patches) + query))  # r_{t,i}
        batch = tf.shape(patches)[0]
        weights = tf.nn.softmax(tf.reshape(scores, [batch, -1]), axis=-1)  # alpha_t, Eq. (2)
        weights = tf.reshape(weights, [batch, grid_h, grid_w])
        # a_t, Eq. (1): sum_i alpha_i patch_i as one batched matmul. This is the einsum
        # "bhwc,bhw->bc" (same BatchMatMul, bit-identical in TF) written out, because the
        # TFLite converter mis-infers the einsum's shapes (LiteRT export, models/litert.py).
        attended = tf.matmul(tf.reshape(weights, [batch, 1, -1]),
                             tf.reshape(patches, [batch, -1, tf.shape(patches)[3]]))[:, 0]
        return attended, weights

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size, units=self.units)
        return config
