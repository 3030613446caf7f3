"""Memory heads on the controller output, and one write-then-read memory step (spec section 5)."""

from __future__ import annotations

import collections

import keras
import tensorflow as tf

from memnet_tf.layers import addressing

MemoryControls = collections.namedtuple(
    "MemoryControls",
    (
        "control_gates",  # [B, 3] softmax (skip, overwrite-read-slot, allocate)
        "write_decay",    # [B, 1] sigmoid decay rate d_t
        "residual_gate",  # [B, C] sigmoid channel-wise residual gate r_t
        "read_key",       # [B, K] linear read key k_t
        "read_strength",  # [B, 1] softplus read strength beta_t
        "residual_logits",  # [B, C] pre-activation of residual_gate
    ),
)


@keras.saving.register_keras_serializable(package="memnet_tf")
class MemoryHeads(keras.layers.Layer):
    """The five dense heads on h_t that drive the memory (`memnet/access.py: _transform_input`).

    Args:
      key_size: size of the read key (the feature channels C: keys are pooled templates).
      channels: size of the residual gate (C).
    """

    def __init__(self, key_size: int, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.key_size = key_size
        self.channels = channels
        self.control_factors = keras.layers.Dense(3, name="control_factors")
        self.write_decay = keras.layers.Dense(1, name="write_decay")
        self.residual_gate = keras.layers.Dense(channels, name="add_vector")
        self.read_key = keras.layers.Dense(key_size, name="read_key")
        # The official code names this head `write_strengths`, but it is the read strength; its
        # bias starts at 1 so that beta = softplus(1) ~ 1.31 before training.
        self.read_strength = keras.layers.Dense(
            1, bias_initializer=keras.initializers.Constant(1.0), name="write_strengths")

    def build(self, hidden_shape):
        for head in (self.control_factors, self.write_decay, self.residual_gate, self.read_key,
                     self.read_strength):
            head.build((None, hidden_shape[-1]))

    def call(self, hidden) -> MemoryControls:
        """`[B, hidden]` h_t -> MemoryControls."""
        residual_logits = self.residual_gate(hidden)
        return MemoryControls(
            control_gates=tf.nn.softmax(self.control_factors(hidden), axis=-1),
            write_decay=tf.sigmoid(self.write_decay(hidden)),
            residual_gate=tf.sigmoid(residual_logits),
            read_key=self.read_key(hidden),
            read_strength=tf.nn.softplus(self.read_strength(hidden)),
            residual_logits=residual_logits,
        )

    def get_config(self):
        config = super().get_config()
        config.update(key_size=self.key_size, channels=self.channels)
        return config


MemoryStepResult = collections.namedtuple(
    "MemoryStepResult",
    ("template", "memory", "read_weights", "write_weights", "usage", "residual_gate"),
)


def memory_step(controls: MemoryControls, write_template: tf.Tensor, initial_template: tf.Tensor,
                memory: tf.Tensor, previous_write_weights: tf.Tensor,
                previous_gates: tf.Tensor, previous_decay: tf.Tensor, previous_usage: tf.Tensor,
                usage_decay: float, use_residual: bool = True,
                agreement_weight: tf.Tensor | None = None) -> MemoryStepResult:
    """One memory step in the official order: write, read, residual template, next write address.

    The template written now (cut at the previous frame's box) goes to the address chosen at the
    previous step, and is readable at once.

    Args:
      controls: this step's head outputs.
      write_template: `[B, h, w, C]` W_t.
      initial_template: `[B, h, w, C]` T_0.
      memory: `[B, N, h, w, C]` M before the write.
      previous_write_weights: `[B, N]` w^w_{t-1}.
      previous_gates: `[B, 3]` gates of step t-1.
      previous_decay: `[B, 1]` d_{t-1}.
      previous_usage: `[B, N]` u_{t-1}.
      usage_decay: lambda.
      use_residual: T_0 + r (.) T_retr; False = T_retr alone (ablation).
      agreement_weight: `[C]`, or None for the paper's gate r = controls.residual_gate; given, the
        gate also sees cos(T_retr, T_0) (`addressing.agreement_residual_gate`).

    Returns:
      MemoryStepResult with the final template `[B, h, w, C]`, the new memory fields and the
      residual gate that made the template.
    """
    # 1. Write, with the address and erase factor decided at step t-1.
    erase = addressing.erase_factor(previous_gates, previous_decay)
    memory = addressing.write_memory(memory, previous_write_weights, erase, write_template)
    # 2. Read from the just-updated memory by cosine similarity of keys.
    similarity = addressing.cosine_similarity(addressing.slot_keys(memory), controls.read_key)
    read_weights = addressing.read_weights(similarity, controls.read_strength)
    retrieved = addressing.retrieve(memory, read_weights)
    # 3. Gated residual template: T_0 stays the conservative anchor.
    residual_gate = controls.residual_gate
    if agreement_weight is not None:
        agreement = addressing.template_agreement(retrieved, initial_template)
        residual_gate = addressing.agreement_residual_gate(controls.residual_logits, agreement,
                                                           agreement_weight)
    if use_residual:
        template = addressing.residual_template(initial_template, residual_gate, retrieved)
    else:
        template = retrieved
    # 4. Address of the next write, from the previous usage; then the new usage.
    allocation = addressing.allocation_weights(previous_usage)
    write_weights = addressing.write_weights(controls.control_gates, read_weights, allocation)
    usage = addressing.update_usage(previous_usage, write_weights, read_weights, usage_decay)
    return MemoryStepResult(template, memory, read_weights, write_weights, usage, residual_gate)
