"""The LSTM memory controller: a layer-normalised LSTM with a normalised cell state (spec 4)."""

from __future__ import annotations

import keras
import tensorflow as tf

# tf.contrib.layers.layer_norm hard-codes this epsilon; Keras' LayerNormalization uses 1e-3.
LAYER_NORM_EPSILON = 1e-12
# The four gate blocks of the kernel, in the order of TF1's LayerNormBasicLSTMCell.
GATES = ("input", "transform", "forget", "output")


def layer_norm(x: tf.Tensor, gain: tf.Tensor, shift: tf.Tensor,
               epsilon: float = LAYER_NORM_EPSILON) -> tf.Tensor:
    """Normalises the last axis of `x` to zero mean and unit variance, then scales and shifts."""
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + epsilon) * gain + shift


@keras.saving.register_keras_serializable(package="memnet_tf")
class LayerNormLSTMCell(keras.layers.Layer):
    """TF1's `LayerNormBasicLSTMCell(layer_norm=True)`, which Keras 3 does not have.

    z = [x, h_{t-1}] K (no bias: the layer-norm shifts play that role), split into i, j, f, o and
    normalised block by block; g = dropout(tanh(LN(j))) ("recurrent dropout without memory loss");
    c = LN_c(c_{t-1} sigma(LN(f) + forget_bias) + sigma(LN(i)) g); h = tanh(c) sigma(LN(o)).

    Args:
      units: hidden size.
      dropout: rate on the candidate g in training (official keep probability 0.8).
      forget_bias: added to the forget pre-activation.
      epsilon: layer-norm epsilon.
      seed: seed of the dropout masks.
    """

    def __init__(self, units: int, dropout: float = 0.0, forget_bias: float = 1.0,
                 epsilon: float = LAYER_NORM_EPSILON, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dropout = dropout
        self.forget_bias = forget_bias
        self.epsilon = epsilon
        self.seed = seed
        self.state_size = (units, units)
        self.output_size = units
        self.candidate_dropout = keras.layers.Dropout(dropout, seed=seed)

    def build(self, inputs_shape):
        input_size = inputs_shape[-1]
        self.kernel = self.add_weight(
            name="kernel", shape=(input_size + self.units, 4 * self.units),
            initializer="glorot_uniform")
        # One gain/shift pair per gate block and one for the cell state, as plain attributes
        # (`input_gamma`, ...): tf.train.Checkpoint does not see inside Keras 3 dict wrappers.
        for name in GATES + ("state",):
            setattr(self, f"{name}_gamma", self.add_weight(
                name=f"{name}_gamma", shape=(self.units,), initializer="ones"))
            setattr(self, f"{name}_beta", self.add_weight(
                name=f"{name}_beta", shape=(self.units,), initializer="zeros"))

    @property
    def gains(self):
        return {name: getattr(self, f"{name}_gamma") for name in GATES + ("state",)}

    @property
    def shifts(self):
        return {name: getattr(self, f"{name}_beta") for name in GATES + ("state",)}

    def call(self, inputs, states, training=False):
        """One step.

        Args:
          inputs: `[B, input_size]` a_t.
          states: `(c, h)`, each `[B, units]`.
          training: enables the candidate dropout.

        Returns:
          `(h_t, (c_t, h_t))`.
        """
        cell, hidden = states
        z = tf.matmul(tf.concat([inputs, hidden], axis=-1), self.kernel)
        blocks = dict(zip(GATES, tf.split(z, 4, axis=-1)))
        gains, shifts = self.gains, self.shifts
        normed = {name: layer_norm(blocks[name], gains[name], shifts[name], self.epsilon)
                  for name in GATES}
        candidate = self.candidate_dropout(tf.tanh(normed["transform"]), training=training)
        new_cell = (cell * tf.sigmoid(normed["forget"] + self.forget_bias)
                    + tf.sigmoid(normed["input"]) * candidate)
        # The official cell carries the normalised cell state.
        new_cell = layer_norm(new_cell, self.state_gamma, self.state_beta, self.epsilon)
        new_hidden = tf.tanh(new_cell) * tf.sigmoid(normed["output"])
        return new_hidden, (new_cell, new_hidden)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, dropout=self.dropout, forget_bias=self.forget_bias,
                      epsilon=self.epsilon, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="memnet_tf")
class ControllerInitialState(keras.layers.Layer):
    """Initial controller state from the first-frame template (spec 4).

    k_0 = spatial mean of T_0; c_0 = tanh(Dense_c(k_0)), h_0 = tanh(Dense_h(k_0)).
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.cell_projection = keras.layers.Dense(units, name="c_state")
        self.hidden_projection = keras.layers.Dense(units, name="h_state")

    def build(self, template_shape):
        self.cell_projection.build((None, template_shape[-1]))
        self.hidden_projection.build((None, template_shape[-1]))

    def call(self, initial_template):
        """`[B, h, w, C]` T_0 -> `(c_0, h_0)`, each `[B, units]`."""
        key = tf.reduce_mean(initial_template, axis=[1, 2])
        return tf.tanh(self.cell_projection(key)), tf.tanh(self.hidden_projection(key))

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units)
        return config
