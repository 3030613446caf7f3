"""Training losses (spec 7.4-7.5): balanced logistic loss on responses, and weight decay."""

from __future__ import annotations

import tensorflow as tf


def balanced_logistic_loss(response: tf.Tensor, label: tf.Tensor, weight: tf.Tensor,
                           num_maps=None) -> tf.Tensor:
    """Sum over all maps and cells of weight * sigmoid cross-entropy, divided by the map count.

    The weights are 0.5/#pos on positives and 0.5/#neg on negatives, so each map contributes at
    most 1 before the division.

    Args:
      response: `[B, T, R, R]` logits.
      label: `[B, T, R, R]` 1 on positives, 0 elsewhere.
      weight: `[B, T, R, R]` balanced weights (0 on ignored cells).
      num_maps: the divisor; defaults to B*T of this batch (pass the global B*T when the batch is
        split across replicas).

    Returns:
      scalar loss.
    """
    xent = tf.nn.sigmoid_cross_entropy_with_logits(labels=label, logits=response)
    if num_maps is None:
        num_maps = tf.cast(tf.reduce_prod(tf.shape(response)[:2]), response.dtype)
    return tf.reduce_sum(weight * xent) / num_maps


def weight_decay_loss(variables, factor: float) -> tf.Tensor:
    """factor * 1/2 * sum of w^2 over every given variable (kernels, biases, BN and LN alike)."""
    if not variables or factor == 0.0:
        return tf.constant(0.0)
    return factor * 0.5 * tf.add_n([tf.reduce_sum(tf.square(v)) for v in variables])


def center_distance_error(response: tf.Tensor, stride: float = 8.0) -> tf.Tensor:
    """Mean distance, in search-crop pixels, between each map's argmax and the map centre.

    The label is always centred, so this is the localisation error of the raw response.

    Args:
      response: `[B, T, R, R]`.
      stride: search-crop pixels per response cell.

    Returns:
      scalar.
    """
    size = tf.shape(response)[-1]
    flat = tf.reshape(response, [-1, size * size])
    peak = tf.argmax(flat, axis=-1, output_type=tf.int32)
    rows = tf.cast(peak // size, tf.float32)
    cols = tf.cast(peak % size, tf.float32)
    centre = (tf.cast(size, tf.float32) - 1.0) / 2.0
    return tf.reduce_mean(tf.sqrt((rows - centre) ** 2 + (cols - centre) ** 2)) * stride
