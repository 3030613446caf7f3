"""Layers against numpy references; config round trips; build-before-call."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from memnet_tf.config import ModelConfig
from memnet_tf.layers.attention import SpatialAttention
from memnet_tf.layers.controller import ControllerInitialState, LayerNormLSTMCell
from memnet_tf.layers.memory import MemoryHeads
from memnet_tf.layers.xcorr import ResponseHead, xcorr, xcorr_reference
from memnet_tf.models.backbone import AlexNetBackbone, build_backbone
from memnet_tf.models.memtrack import MemTrackCell

rng = np.random.default_rng(1)


def _rand(*shape):
    return rng.normal(size=shape).astype(np.float32)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _layer_norm_np(x, gain, shift, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gain + shift


def _lstm_np(cell, x, c, h):
    """TF1 LayerNormBasicLSTMCell(layer_norm=True), written out."""
    kernel = cell.kernel.numpy()
    z = np.concatenate([x, h], -1) @ kernel
    i, j, f, o = np.split(z, 4, axis=-1)
    ln = {name: _layer_norm_np(v, cell.gains[name].numpy(), cell.shifts[name].numpy(), 1e-12)
          for name, v in zip(("input", "transform", "forget", "output"), (i, j, f, o))}
    new_c = c * _sigmoid(ln["forget"] + 1.0) + _sigmoid(ln["input"]) * np.tanh(ln["transform"])
    new_c = _layer_norm_np(new_c, cell.gains["state"].numpy(), cell.shifts["state"].numpy(),
                           1e-12)
    return np.tanh(new_c) * _sigmoid(ln["output"]), new_c


def _randomise(layer):
    for v in layer.weights:
        if v.trainable:
            v.assign(_rand(*v.shape) * 0.5)


def _roundtrip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(restored) is type(layer)
    assert restored.get_config() == config


class LSTMTest(tf.test.TestCase):

    def test_matches_numpy_reference(self):
        cell = LayerNormLSTMCell(6, dropout=0.2)
        cell.build((None, 5))
        _randomise(cell)
        x, c, h = _rand(3, 5), _rand(3, 6), _rand(3, 6)
        out, (new_c, new_h) = cell(x, (c, h), training=False)
        want_h, want_c = _lstm_np(cell, x, c, h)
        self.assertAllClose(out, want_h, atol=1e-5)
        self.assertAllClose(new_c, want_c, atol=1e-5)
        self.assertAllClose(new_h, out)

    def test_dropout_only_in_training_and_fresh_masks(self):
        cell = LayerNormLSTMCell(64, dropout=0.5, seed=3)
        cell.build((None, 8))
        x, c, h = _rand(2, 8), _rand(2, 64), _rand(2, 64)
        eval_a, _ = cell(x, (c, h), training=False)
        eval_b, _ = cell(x, (c, h), training=False)
        self.assertAllEqual(eval_a, eval_b)
        train_a, _ = cell(x, (c, h), training=True)
        train_b, _ = cell(x, (c, h), training=True)
        self.assertNotAllClose(train_a, train_b)
        self.assertNotAllClose(train_a, eval_a)

    def test_builds_before_call_and_roundtrips(self):
        cell = LayerNormLSTMCell(7, dropout=0.1)
        cell.build((None, 4))
        # Kernel + 5 gain/shift pairs.
        self.assertEqual(len(cell.trainable_weights), 11)
        self.assertEqual(cell.kernel.shape, (11, 28))
        _roundtrip(cell)

    def test_initial_state_matches_numpy(self):
        layer = ControllerInitialState(6)
        layer.build((None, 3, 3, 5))
        _randomise(layer)
        template = _rand(2, 3, 3, 5)
        c0, h0 = layer(template)
        key = template.mean(axis=(1, 2))
        cp, hp = layer.cell_projection, layer.hidden_projection
        self.assertAllClose(c0, np.tanh(key @ cp.kernel.numpy() + cp.bias.numpy()), atol=1e-5)
        self.assertAllClose(h0, np.tanh(key @ hp.kernel.numpy() + hp.bias.numpy()), atol=1e-5)
        _roundtrip(layer)


class AttentionTest(tf.test.TestCase):

    def test_matches_numpy_reference(self):
        layer = SpatialAttention(pool_size=3, units=4)
        layer.build((None, 7, 7, 5), (None, 6))
        _randomise(layer)
        features, hidden = _rand(2, 7, 7, 5), _rand(2, 6)
        attended, weights = layer(features, hidden)
        wf = layer.patch_projection.kernel.numpy()
        wh, bh = layer.query_projection.kernel.numpy(), layer.query_projection.bias.numpy()
        wa = layer.score.kernel.numpy()
        for b in range(2):
            patches = np.array([[features[b, y:y + 3, x:x + 3].mean((0, 1)) for x in range(5)]
                                for y in range(5)])  # 5x5 grid of pooled vectors
            scores = np.tanh(patches @ wf + hidden[b] @ wh + bh) @ wa
            alpha = np.exp(scores - scores.max())
            alpha = (alpha / alpha.sum())[..., 0]
            self.assertAllClose(weights[b], alpha, atol=1e-5)
            self.assertAllClose(attended[b], (patches * alpha[..., None]).sum((0, 1)), atol=1e-5)
        self.assertAllClose(tf.reduce_sum(weights, [1, 2]), [1.0, 1.0], atol=1e-5)
        _roundtrip(layer)

    def test_builds_before_call(self):
        layer = SpatialAttention(pool_size=6, units=8)
        layer.build((None, 22, 22, 8), (None, 16))
        self.assertEqual(len(layer.trainable_weights), 4)  # W_f, W_h, b, w_a


class HeadsTest(tf.test.TestCase):

    def test_ranges_and_read_strength_bias(self):
        heads = MemoryHeads(key_size=5, channels=5)
        heads.build((None, 8))
        controls = heads(_rand(4, 8))
        self.assertAllClose(tf.reduce_sum(controls.control_gates, -1), np.ones(4), atol=1e-6)
        self.assertTrue(np.all(controls.residual_gate.numpy() > 0))
        self.assertTrue(np.all(controls.residual_gate.numpy() < 1))
        self.assertTrue(np.all(controls.read_strength.numpy() > 0))
        # softplus(1) when the kernel term vanishes.
        zero = heads(np.zeros((1, 8), np.float32))
        self.assertAllClose(zero.read_strength, [[np.log1p(np.e)]], atol=1e-6)
        _roundtrip(heads)


class XcorrTest(tf.test.TestCase):

    def test_fast_equals_reference_equals_numpy(self):
        search, templates = _rand(3, 9, 8, 4), _rand(3, 3, 2, 4)
        fast = xcorr(search, templates).numpy()
        slow = xcorr_reference(search, templates).numpy()
        manual = np.zeros((3, 7, 7))
        for b in range(3):
            for y in range(7):
                for x in range(7):
                    manual[b, y, x] = np.sum(search[b, y:y + 3, x:x + 2] * templates[b])
        self.assertAllClose(fast, manual, atol=1e-4)
        self.assertAllClose(slow, manual, atol=1e-4)

    def test_paper_shapes(self):
        search, templates = _rand(2, 22, 22, 16), _rand(2, 6, 6, 16)
        self.assertEqual(xcorr(search, templates).shape, (2, 17, 17))
        self.assertAllClose(xcorr(search, templates), xcorr_reference(search, templates),
                            atol=5e-4)


class ResponseHeadTest(tf.test.TestCase):

    def test_batchnorm_pools_statistics_over_all_maps(self):
        head = ResponseHead("batchnorm")
        head.build((None, 5, 5))
        responses = _rand(2, 3, 5, 5) * 4 + 1
        out = head(responses, training=True).numpy()
        # gamma 1, beta 0: normalised with one mean/variance over every value of every map.
        want = (responses - responses.mean()) / np.sqrt(responses.var() + 1e-3)
        self.assertAllClose(out, want, atol=1e-4)
        inference = head(responses, training=False).numpy()  # moving stats moved a little
        self.assertEqual(inference.shape, responses.shape)
        _roundtrip(head)

    def test_scale_head(self):
        head = ResponseHead("scale", scale=1e-3)
        head.build((None, 5, 5))
        responses = _rand(4, 5, 5)
        self.assertAllClose(head(responses), responses * 1e-3)
        with pytest.raises(ValueError, match="kind"):
            ResponseHead("nope")


class BackboneTest(tf.test.TestCase):

    def test_shapes_and_parameter_count(self):
        backbone = build_backbone(ModelConfig())
        backbone.build((None, None, None, 3))
        self.assertEqual(sum(int(np.prod(v.shape)) for v in backbone.trainable_weights),
                         3_749_440)
        tiny = build_backbone(ModelConfig(width_multiplier=0.125))
        self.assertEqual(tiny(np.zeros((1, 127, 127, 3), np.float32)).shape, (1, 6, 6, 32))
        self.assertEqual(tiny(np.zeros((2, 255, 255, 3), np.float32)).shape, (2, 22, 22, 32))

    def test_siamfc_groups_and_input_scale(self):
        cfg = ModelConfig(backbone="siamfc_alexnet", width_multiplier=0.3, bn_epsilon=1e-6)
        self.assertEqual(cfg.channels, (28, 76, 114, 114, 76))  # FDSiamFC-30 widths
        backbone = build_backbone(cfg)
        backbone.build((None, None, None, 3))
        self.assertEqual(backbone.convs[1].kernel.shape, (5, 5, 14, 76))  # groups 2
        self.assertEqual(backbone.convs[2].kernel.shape, (3, 3, 76, 114))
        self.assertEqual(backbone.input_scale, 255.0)
        _roundtrip(backbone)

    def test_first_layer_matches_numpy_convolution(self):
        backbone = AlexNetBackbone(channels=(4, 4, 4, 4, 4))
        backbone.build((None, None, None, 3))
        images = rng.uniform(size=(1, 127, 127, 3)).astype(np.float32)
        conv1 = backbone.convs[0]
        got = conv1(images).numpy()
        kernel, bias = conv1.kernel.numpy(), conv1.bias.numpy()
        for (y, x) in ((0, 0), (10, 31), (58, 58)):
            patch = images[0, 2 * y:2 * y + 11, 2 * x:2 * x + 11]
            want = np.tensordot(patch, kernel, axes=([0, 1, 2], [0, 1, 2])) + bias
            self.assertAllClose(got[0, y, x], want, atol=1e-4)


class CellConfigTest(tf.test.TestCase):

    def test_cell_roundtrip_and_weights_exist_before_call(self):
        cell = MemTrackCell(4, 16, 6, 8, usage_decay=0.9, dropout=0.1)
        cell.build()
        self.assertGreater(len(cell.trainable_weights), 10)
        _roundtrip(cell)
