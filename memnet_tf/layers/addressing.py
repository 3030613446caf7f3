"""Memory addressing of MemTrack as small pure functions (spec section 5).

Tensors in, tensors out: no variables, no Python state. Each function is checked against an explicit
numpy loop in `tests/test_addressing.py`. Shapes use B = batch, N = memory slots, K = key size,
h, w, C = slot (template) shape.
"""

from __future__ import annotations

import tensorflow as tf

# The official code's `_EPSILON` (memnet/addressing.py).
EPSILON = 1e-6


def slot_keys(memory: tf.Tensor) -> tf.Tensor:
    """Key of every slot: the average of the slot over its h x w positions.

    The official code average-pools each 6x6 slot with a 6x6 window; for a slot of the template's
    size that is the spatial mean.

    Args:
      memory: `[B, N, h, w, C]` slot contents.

    Returns:
      `[B, N, C]` slot keys kappa_j.
    """
    return tf.reduce_mean(memory, axis=[2, 3])


def cosine_similarity(keys: tf.Tensor, read_key: tf.Tensor, epsilon: float = EPSILON) -> tf.Tensor:
    """Cosine similarity of a read key with every slot key, safe on all-zero slots.

    C_j = (k . kappa_j) / (||k||_eps ||kappa_j||_eps + eps), with ||x||_eps = sqrt(sum x^2 + eps):
    the epsilon inside the root keeps the gradient finite at x = 0, so an empty slot has C_j = 0.

    Args:
      keys: `[B, N, K]` slot keys kappa_j.
      read_key: `[B, K]` read key k_t.
      epsilon: stabiliser.

    Returns:
      `[B, N]` similarities in [-1, 1].
    """
    dot = tf.einsum("bnk,bk->bn", keys, read_key)
    keys_norm = tf.sqrt(tf.reduce_sum(tf.square(keys), axis=-1) + epsilon)
    key_norm = tf.sqrt(tf.reduce_sum(tf.square(read_key), axis=-1, keepdims=True) + epsilon)
    return dot / (keys_norm * key_norm + epsilon)


def read_weights(similarity: tf.Tensor, read_strength: tf.Tensor) -> tf.Tensor:
    """Read weights w^r_t = softmax_j(beta_t * C_j).

    Args:
      similarity: `[B, N]` cosine similarities C_j.
      read_strength: `[B, 1]` read strength beta_t > 0 (already through softplus).

    Returns:
      `[B, N]` read weights, each row summing to 1.
    """
    return tf.nn.softmax(read_strength * similarity, axis=-1)


def erase_factor(previous_gates: tf.Tensor, previous_decay: tf.Tensor) -> tf.Tensor:
    """Erase factor e = d_{t-1} * g^w_{t-1} + g^a_{t-1} of the pending write.

    Overwriting the slot just read (g^w) erases it only by the decay rate d; writing to a freshly
    allocated slot (g^a) replaces it entirely. The skip gate (index 0) takes no part.

    Args:
      previous_gates: `[B, 3]` control gates (skip, overwrite-read-slot, allocate) of step t-1.
      previous_decay: `[B, 1]` decay rate d of step t-1.

    Returns:
      `[B, 1]` erase factor.
    """
    return previous_decay * previous_gates[:, 1:2] + previous_gates[:, 2:3]


def write_memory(memory: tf.Tensor, write_weights: tf.Tensor, erase: tf.Tensor,
                 template: tf.Tensor) -> tf.Tensor:
    """Writes a template into memory as a convex blend per slot.

    M(j) <- M(j) * (1 - w^w(j) e) + w^w(j) e W_t. The add term is scaled by e as in the official
    code, so a slot moves toward W_t by exactly w^w(j) e.

    Args:
      memory: `[B, N, h, w, C]` slot contents before the write.
      write_weights: `[B, N]` pending write weights w^w_{t-1}.
      erase: `[B, 1]` erase factor e.
      template: `[B, h, w, C]` template W_t to write.

    Returns:
      `[B, N, h, w, C]` memory after the write.
    """
    blend = (write_weights * erase)[:, :, None, None, None]
    return memory * (1.0 - blend) + blend * template[:, None]


def retrieve(memory: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Retrieved template T^retr_t = sum_j w^r_t(j) M(j).

    Args:
      memory: `[B, N, h, w, C]`.
      weights: `[B, N]` read weights.

    Returns:
      `[B, h, w, C]`.
    """
    return tf.einsum("bnhwc,bn->bhwc", memory, weights)


def residual_template(initial_template: tf.Tensor, residual_gate: tf.Tensor,
                      retrieved: tf.Tensor) -> tf.Tensor:
    """Final template T^final_t = T_0 + r_t (.) T^retr_t with a channel-wise gate.

    Args:
      initial_template: `[B, h, w, C]` first-frame template T_0.
      residual_gate: `[B, C]` residual gate r_t in (0, 1).
      retrieved: `[B, h, w, C]` retrieved template.

    Returns:
      `[B, h, w, C]`.
    """
    return initial_template + residual_gate[:, None, None, :] * retrieved


def template_agreement(retrieved: tf.Tensor, initial_template: tf.Tensor) -> tf.Tensor:
    """Cosine similarity of the retrieved template and T_0 over all their h x w x C values.

    Near 1 while the memory holds the target as first seen; it falls when the memory's slots hold
    something else (a tracker that lost the target writes the occluder or the background).

    Args:
      retrieved: `[B, h, w, C]` T^retr_t.
      initial_template: `[B, h, w, C]` T_0.

    Returns:
      `[B, 1]` in [-1, 1].
    """
    dot = tf.reduce_sum(retrieved * initial_template, axis=[1, 2, 3])
    norms = (tf.norm(tf.reshape(retrieved, [tf.shape(retrieved)[0], -1]), axis=-1)
             * tf.norm(tf.reshape(initial_template, [tf.shape(initial_template)[0], -1]), axis=-1))
    return (dot / (norms + EPSILON))[:, None]


def agreement_residual_gate(residual_logits: tf.Tensor, agreement: tf.Tensor,
                            agreement_weight: tf.Tensor) -> tf.Tensor:
    """Residual gate that also sees how far the retrieved template is from T_0.

    r_t = sigmoid(z_t + a (.) (1 - cos(T^retr_t, T_0))): with a = 0 it is the paper's
    r_t = sigmoid(z_t); a learned a < 0 closes channels of the gate when the memory disagrees with
    the first frame, as it does after a run of writes at a wrong box.

    Args:
      residual_logits: `[B, C]` z_t, the residual head's pre-activation (a function of h_t).
      agreement: `[B, 1]` cos(T^retr_t, T_0) (`template_agreement`).
      agreement_weight: `[C]` a.

    Returns:
      `[B, C]` r_t in (0, 1).
    """
    return tf.sigmoid(residual_logits + agreement_weight[None, :] * (1.0 - agreement))


def allocation_weights(usage: tf.Tensor) -> tf.Tensor:
    """Hard allocation: one-hot of the least-used slot, without gradient.

    Implemented as the top-1 of (1 - u), as the official code does: `tf.math.top_k` returns the
    lowest index among equal values, so ties go to the lowest slot.

    Args:
      usage: `[B, N]` usage u_{t-1} of the previous step.

    Returns:
      `[B, N]` one-hot allocation weights w^a.
    """
    usage = tf.stop_gradient(usage)
    _, least_used = tf.math.top_k(1.0 - usage, k=1)
    return tf.one_hot(least_used[:, 0], tf.shape(usage)[-1], dtype=usage.dtype)


def write_weights(gates: tf.Tensor, read_weights_t: tf.Tensor,
                  allocation: tf.Tensor) -> tf.Tensor:
    """Pending write weights w^w_t = g^w_t w^r_t + g^a_t w^a for the next step.

    Args:
      gates: `[B, 3]` control gates (skip, overwrite-read-slot, allocate).
      read_weights_t: `[B, N]` read weights of this step.
      allocation: `[B, N]` allocation weights.

    Returns:
      `[B, N]` write weights; each row sums to 1 - g^skip.
    """
    return gates[:, 1:2] * read_weights_t + gates[:, 2:3] * allocation


def update_usage(usage: tf.Tensor, write_weights_t: tf.Tensor, read_weights_t: tf.Tensor,
                 decay: float) -> tf.Tensor:
    """Usage u_t = lambda u_{t-1} + w^w_t + w^r_t.

    Args:
      usage: `[B, N]` previous usage.
      write_weights_t: `[B, N]` new pending write weights.
      read_weights_t: `[B, N]` read weights of this step.
      decay: usage decay lambda.

    Returns:
      `[B, N]` non-negative usage.
    """
    return decay * usage + write_weights_t + read_weights_t
