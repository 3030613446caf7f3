"""Memory addressing functions against explicit numpy loops, plus invariants and degenerate cases."""

import numpy as np
import tensorflow as tf

from memnet_tf.layers import addressing
from memnet_tf.layers.memory import MemoryControls, memory_step

B, N, H, W, C = 2, 4, 3, 3, 5
EPS = addressing.EPSILON
rng = np.random.default_rng(0)


def _rand(*shape):
    return rng.normal(size=shape).astype(np.float32)


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def _cosine_np(keys, key):
    out = np.zeros(keys.shape[:2], np.float64)
    for b in range(keys.shape[0]):
        key_norm = np.sqrt(sum(v * v for v in key[b]) + EPS)
        for j in range(keys.shape[1]):
            dot = sum(keys[b, j, k] * key[b, k] for k in range(keys.shape[2]))
            slot_norm = np.sqrt(sum(v * v for v in keys[b, j]) + EPS)
            out[b, j] = dot / (slot_norm * key_norm + EPS)
    return out


def _agreement_np(retrieved, t0):
    """cos(T_retr, T_0) over all values of one example, in float64."""
    a, b = retrieved.astype(np.float64).ravel(), t0.astype(np.float64).ravel()
    return float(a @ b / (np.sqrt(a @ a) * np.sqrt(b @ b) + EPS))


def _memory_step_np(gates_prev, decay_prev, write_prev, usage_prev, memory, template, t0,
                    gates, read_key, strength, residual, decay_lambda, residual_logits=None,
                    agreement_weight=None):
    """The official step, one slot and one example at a time (with `agreement_weight`, the
    residual gate is sigmoid(residual_logits + a (1 - cos(T_retr, T_0))) instead of `residual`)."""
    memory = memory.astype(np.float64).copy()
    read = np.zeros((B, N))
    final = np.zeros_like(t0, dtype=np.float64)
    write_next = np.zeros((B, N))
    usage = np.zeros((B, N))
    for b in range(B):
        erase = decay_prev[b, 0] * gates_prev[b, 1] + gates_prev[b, 2]
        for j in range(N):
            w = write_prev[b, j] * erase
            memory[b, j] = memory[b, j] * (1 - w) + w * template[b]
        keys = memory[b].mean(axis=(1, 2))
        cos = _cosine_np(keys[None], read_key[b][None])[0]
        read[b] = _softmax(strength[b, 0] * cos)
        retrieved = sum(read[b, j] * memory[b, j] for j in range(N))
        if agreement_weight is not None:
            disagreement = 1.0 - _agreement_np(retrieved, t0[b])
            gate = 1.0 / (1.0 + np.exp(-(residual_logits[b] + agreement_weight * disagreement)))
            residual = residual.astype(np.float64).copy()
            residual[b] = gate
        final[b] = t0[b] + residual[b][None, None, :] * retrieved
        least_used = min(range(N), key=lambda j: (1 - usage_prev[b, j]) * -1)  # argmin, first
        allocation = np.eye(N)[least_used]
        write_next[b] = gates[b, 1] * read[b] + gates[b, 2] * allocation
        usage[b] = decay_lambda * usage_prev[b] + write_next[b] + read[b]
    return final, memory, read, write_next, usage, residual


class AddressingTest(tf.test.TestCase):

    def test_slot_keys_are_spatial_means(self):
        memory = _rand(B, N, H, W, C)
        expected = np.array([[memory[b, j].reshape(-1, C).mean(0) for j in range(N)]
                             for b in range(B)])
        self.assertAllClose(addressing.slot_keys(memory), expected, atol=1e-6)

    def test_cosine_similarity_matches_numpy(self):
        keys, key = _rand(B, N, C), _rand(B, C)
        self.assertAllClose(addressing.cosine_similarity(keys, key), _cosine_np(keys, key),
                            atol=1e-5)

    def test_cosine_of_parallel_vectors_is_one(self):
        key = _rand(B, C) * 10
        keys = np.stack([key * s for s in (1.0, 2.0, -3.0, 0.5)], axis=1)
        self.assertAllClose(addressing.cosine_similarity(keys, key),
                            np.tile([1.0, 1.0, -1.0, 1.0], (B, 1)), atol=1e-4)

    def test_read_weights_match_numpy_and_sum_to_one(self):
        similarity, strength = _rand(B, N), np.abs(_rand(B, 1)) + 0.1
        weights = addressing.read_weights(similarity, strength).numpy()
        for b in range(B):
            self.assertAllClose(weights[b], _softmax(strength[b, 0] * similarity[b]), atol=1e-6)
        self.assertAllClose(weights.sum(-1), np.ones(B), atol=1e-6)

    def test_erase_factor(self):
        gates, decay = tf.nn.softmax(_rand(B, 3)).numpy(), np.abs(_rand(B, 1))
        expected = decay[:, 0] * gates[:, 1] + gates[:, 2]
        self.assertAllClose(addressing.erase_factor(gates, decay)[:, 0], expected, atol=1e-6)

    def test_write_memory_matches_loop(self):
        memory, template = _rand(B, N, H, W, C), _rand(B, H, W, C)
        weights = tf.nn.softmax(_rand(B, N)).numpy()
        erase = np.abs(_rand(B, 1)) % 1
        out = np.asarray(addressing.write_memory(memory, weights, erase, template))
        for b in range(B):
            for j in range(N):
                w = weights[b, j] * erase[b, 0]
                self.assertAllClose(out[b, j], memory[b, j] * (1 - w) + w * template[b],
                                    atol=1e-5)

    def test_retrieve_and_residual_template(self):
        memory, weights = _rand(B, N, H, W, C), tf.nn.softmax(_rand(B, N)).numpy()
        t0, gate = _rand(B, H, W, C), tf.sigmoid(_rand(B, C)).numpy()
        retrieved = np.asarray(addressing.retrieve(memory, weights))
        for b in range(B):
            expected = sum(weights[b, j] * memory[b, j] for j in range(N))
            self.assertAllClose(retrieved[b], expected, atol=1e-5)
            final = np.asarray(addressing.residual_template(t0, gate, retrieved))
            for c in range(C):  # channel-wise gate
                self.assertAllClose(final[b, ..., c], t0[b, ..., c] + gate[b, c] *
                                    retrieved[b, ..., c], atol=1e-5)

    def test_template_agreement_matches_numpy(self):
        retrieved, t0 = _rand(B, H, W, C), _rand(B, H, W, C)
        got = addressing.template_agreement(retrieved, t0).numpy()
        self.assertEqual(got.shape, (B, 1))
        self.assertAllClose(got[:, 0], [_agreement_np(retrieved[b], t0[b]) for b in range(B)],
                            atol=1e-6)

    def test_template_agreement_of_scaled_and_negated_copies(self):
        t0 = _rand(B, H, W, C)
        self.assertAllClose(addressing.template_agreement(2.5 * t0, t0), np.ones((B, 1)),
                            atol=1e-6)
        self.assertAllClose(addressing.template_agreement(-t0, t0), -np.ones((B, 1)), atol=1e-6)

    def test_agreement_residual_gate_matches_numpy(self):
        logits, weight = _rand(B, C), 4.0 * _rand(C)
        agreement = np.tanh(_rand(B, 1))
        got = addressing.agreement_residual_gate(logits, agreement, weight).numpy()
        want = 1.0 / (1.0 + np.exp(-(logits.astype(np.float64)
                                     + weight[None, :] * (1.0 - agreement))))
        self.assertAllClose(got, want, atol=1e-6)
        # A negative weight closes the gate as the memory disagrees with T_0 more.
        closing = -np.abs(weight)
        agree = addressing.agreement_residual_gate(logits, np.full((B, 1), 0.9, np.float32),
                                                   closing)
        disagree = addressing.agreement_residual_gate(logits, np.full((B, 1), 0.1, np.float32),
                                                      closing)
        self.assertTrue(np.all(disagree.numpy() < agree.numpy()))

    def test_allocation_is_least_used_with_lowest_index_ties(self):
        usage = np.array([[0.5, 0.1, 0.1, 0.9], [0.0, 0.0, 0.0, 0.0]], np.float32)
        self.assertAllEqual(addressing.allocation_weights(usage),
                            [[0, 1, 0, 0], [1, 0, 0, 0]])
        random_usage = np.abs(_rand(B, N))
        self.assertAllEqual(np.argmax(addressing.allocation_weights(random_usage), -1),
                            np.argmin(random_usage, -1))

    def test_allocation_ties_shape_and_dtype_match_first_argmin_loop(self):
        # Few distinct usage levels, so most rows hold ties; the loop keeps the first minimum.
        tie_rng = np.random.default_rng(11)
        for dtype in (np.float32, np.float64):
            usage = (tie_rng.integers(0, 3, size=(16, N)) * 0.75).astype(dtype)
            out = addressing.allocation_weights(usage)
            self.assertEqual(out.shape, (16, N))
            self.assertEqual(out.dtype, tf.as_dtype(dtype))
            expected = np.zeros((16, N))
            for b in range(16):
                first_min = 0
                for j in range(1, N):
                    if usage[b, j] < usage[b, first_min]:
                        first_min = j
                expected[b, first_min] = 1.0
            self.assertAllEqual(out, expected)
            # The minimum itself is shared in some rows, so the tie rule is exercised.
            self.assertTrue(any(np.sum(row == row.min()) > 1 for row in usage))

    def test_write_weights_and_usage(self):
        gates = tf.nn.softmax(_rand(B, 3)).numpy()
        read = tf.nn.softmax(_rand(B, N)).numpy()
        alloc = np.eye(N, dtype=np.float32)[[1, 3]]
        write = np.asarray(addressing.write_weights(gates, read, alloc))
        for b in range(B):
            self.assertAllClose(write[b], gates[b, 1] * read[b] + gates[b, 2] * alloc[b])
        self.assertAllClose(write.sum(-1), 1 - gates[:, 0], atol=1e-6)
        usage = np.abs(_rand(B, N))
        new_usage = np.asarray(addressing.update_usage(usage, write, read, 0.99))
        self.assertAllClose(new_usage, 0.99 * usage + write + read)
        self.assertTrue(np.all(new_usage >= 0))

    def test_usage_stays_finite_and_non_negative_over_long_runs(self):
        usage = np.zeros((B, N), np.float32)
        for _ in range(2000):
            read = tf.nn.softmax(_rand(B, N) * 3)
            write = addressing.write_weights(tf.nn.softmax(_rand(B, 3)), read,
                                             addressing.allocation_weights(usage))
            usage = addressing.update_usage(usage, write, read, 0.99)
        self.assertTrue(np.all(np.isfinite(usage)) and np.all(usage.numpy() >= 0))
        # Geometric bound: each step adds at most 2, so u <= 2 / (1 - 0.99).
        self.assertLessEqual(float(tf.reduce_max(usage)), 200.0 + 1e-3)

    def test_zero_memory_gives_no_nan_in_values_or_gradients(self):
        memory = tf.zeros([B, N, H, W, C])
        key, strength = tf.constant(_rand(B, C)), tf.constant([[1.3], [0.7]])
        with tf.GradientTape() as tape:
            tape.watch([memory, key, strength])
            weights = addressing.read_weights(
                addressing.cosine_similarity(addressing.slot_keys(memory), key), strength)
            out = tf.reduce_sum(addressing.retrieve(memory, weights)) + tf.reduce_sum(weights ** 2)
        grads = tape.gradient(out, [memory, key, strength])
        self.assertAllClose(weights, np.full((B, N), 1 / N), atol=1e-6)  # all cosines are 0
        for g in grads:
            self.assertTrue(np.all(np.isfinite(g.numpy())))
        # Zero key too.
        with tf.GradientTape() as tape:
            zero_key = tf.zeros([B, C])
            tape.watch(zero_key)
            sim = addressing.cosine_similarity(addressing.slot_keys(memory), zero_key)
        self.assertTrue(np.all(np.isfinite(tape.gradient(sim, zero_key).numpy())))

    def test_cosine_gradient_matches_finite_differences(self):
        keys = tf.constant(rng.normal(size=(1, 3, 4)), tf.float64)
        key = tf.constant(rng.normal(size=(1, 4)), tf.float64)
        theoretical, numerical = tf.test.compute_gradient(
            lambda k: addressing.cosine_similarity(keys, k), [key])
        self.assertLess(np.max(np.abs(theoretical[0] - numerical[0])), 1e-3)


class MemoryStepTest(tf.test.TestCase):

    def _random_controls(self):
        logits = tf.constant(_rand(B, C))
        return MemoryControls(
            control_gates=tf.nn.softmax(_rand(B, 3)), write_decay=tf.sigmoid(_rand(B, 1)),
            residual_gate=tf.sigmoid(logits), read_key=tf.constant(_rand(B, C)),
            read_strength=tf.nn.softplus(_rand(B, 1)), residual_logits=logits)

    def _step_and_numpy(self, agreement_weight=None):
        """memory_step and the numpy step on the same random controls, state and templates."""
        controls = self._random_controls()
        gates_prev = tf.nn.softmax(_rand(B, 3)).numpy()
        decay_prev = tf.sigmoid(_rand(B, 1)).numpy()
        write_prev = tf.nn.softmax(_rand(B, N)).numpy()
        usage_prev = np.abs(_rand(B, N))
        memory, template, t0 = _rand(B, N, H, W, C), _rand(B, H, W, C), _rand(B, H, W, C)
        result = memory_step(
            controls, template, t0, memory, write_prev, gates_prev, decay_prev, usage_prev, 0.99,
            agreement_weight=None if agreement_weight is None else tf.constant(agreement_weight))
        expected = _memory_step_np(gates_prev, decay_prev, write_prev, usage_prev, memory,
                                   template, t0, controls.control_gates.numpy(),
                                   controls.read_key.numpy(), controls.read_strength.numpy(),
                                   controls.residual_gate.numpy(), 0.99,
                                   controls.residual_logits.numpy(), agreement_weight)
        self.assertEqual(len(result), len(expected))
        for got, want in zip(result, expected):
            self.assertAllClose(got, want, atol=1e-4)
        return controls, result

    def test_matches_numpy_step(self):
        self._step_and_numpy()

    def test_agreement_gate_matches_numpy_step(self):
        controls, result = self._step_and_numpy(agreement_weight=3.0 * _rand(C))
        # The gate did change: random memories disagree with T_0 and the weight is not 0.
        self.assertGreater(np.max(np.abs(result.residual_gate - controls.residual_gate)), 1e-2)

    def test_a_zero_agreement_weight_is_the_papers_gate(self):
        controls = self._random_controls()
        args = (controls, _rand(B, H, W, C), _rand(B, H, W, C), _rand(B, N, H, W, C),
                tf.nn.softmax(_rand(B, N)), tf.nn.softmax(_rand(B, 3)), tf.sigmoid(_rand(B, 1)),
                np.abs(_rand(B, N)), 0.99)
        paper = memory_step(*args)
        zero = memory_step(*args, agreement_weight=tf.zeros([C]))
        self.assertAllClose(paper.residual_gate, controls.residual_gate, atol=0)
        for got, want in zip(zero, paper):
            self.assertAllClose(got, want, atol=1e-6)

    def test_first_step_writes_t0_to_slot_0_and_allocates_slot_1(self):
        # The initial state of spec 5: empty memory, pending write to slot 0 with g^a = 1.
        t0 = _rand(B, H, W, C)
        first = np.eye(N, dtype=np.float32)[[0, 0]]
        gates0 = np.eye(3, dtype=np.float32)[[2, 2]]
        controls = self._random_controls()
        result = memory_step(controls, t0, t0, np.zeros((B, N, H, W, C), np.float32), first,
                             gates0, np.zeros((B, 1), np.float32), first, 0.99)
        self.assertAllClose(result.memory[:, 0], t0, atol=1e-6)
        self.assertAllClose(result.memory[:, 1:], np.zeros((B, N - 1, H, W, C)))
        g = controls.control_gates.numpy()
        alloc = g[:, 2] * np.ones(B)
        # Next write address: g^w * read + g^a * one_hot(slot 1).
        self.assertAllClose(result.write_weights[:, 1] - g[:, 1] * result.read_weights[:, 1],
                            alloc, atol=1e-6)
        self.assertAllClose(result.write_weights[:, 2:],
                            g[:, 1:2] * result.read_weights[:, 2:], atol=1e-6)

    def test_skip_gate_leaves_memory_unchanged(self):
        memory, template = _rand(B, N, H, W, C), _rand(B, H, W, C)
        skip = np.eye(3, dtype=np.float32)[[0, 0]]
        result = memory_step(self._random_controls(), template, _rand(B, H, W, C), memory,
                             tf.nn.softmax(_rand(B, N)), skip, np.ones((B, 1), np.float32),
                             np.abs(_rand(B, N)), 0.99)
        self.assertAllClose(result.memory, memory, atol=0)

    def test_cancelled_write_reads_the_unchanged_memory_like_numpy(self):
        """`states.without_write`: the step with the pending write cancelled is the numpy step
        with zero write weights: M unchanged, read and next address computed as usual."""
        from memnet_tf.layers import states

        controls = self._random_controls()
        memory, template, t0 = _rand(B, N, H, W, C), _rand(B, H, W, C), _rand(B, H, W, C)
        state = states.MemTrackState(
            cell=_rand(B, 4), hidden=_rand(B, 4), initial_template=t0, memory=memory,
            read_weights=tf.nn.softmax(_rand(B, N)).numpy(),
            write_weights=tf.nn.softmax(_rand(B, N)).numpy(),
            control_gates=tf.nn.softmax(_rand(B, 3)).numpy(),
            write_decay=tf.sigmoid(_rand(B, 1)).numpy(), usage=np.abs(_rand(B, N)))
        cancelled = states.without_write(state)
        self.assertAllEqual(cancelled.write_weights, np.zeros((B, N)))
        for name in ("memory", "usage", "control_gates", "hidden"):
            self.assertAllEqual(getattr(cancelled, name), getattr(state, name))
        result = memory_step(controls, template, t0, cancelled.memory, cancelled.write_weights,
                             cancelled.control_gates, cancelled.write_decay, cancelled.usage,
                             0.99)
        self.assertAllEqual(result.memory, memory)
        expected = _memory_step_np(state.control_gates, state.write_decay, np.zeros((B, N)),
                                   state.usage, memory, template, t0,
                                   controls.control_gates.numpy(), controls.read_key.numpy(),
                                   controls.read_strength.numpy(),
                                   controls.residual_gate.numpy(), 0.99)
        for got, want in zip(result, expected):
            self.assertAllClose(got, want, atol=1e-4)
