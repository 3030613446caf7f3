"""The MemTrack model: unroll == stepping, gradients reach every part, tf.function == eager,
bad input fails clearly, config round trip."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from memnet_tf.config import ModelConfig
from memnet_tf.layers import states
from memnet_tf.layers.xcorr import xcorr
from memnet_tf.models.memtrack import MemTrack, build_model

from conftest import B, T

rng = np.random.default_rng(2)


def _clip(cfg, batch=B, steps=T):
    return {
        "exemplar": rng.uniform(size=(batch, steps, cfg.exemplar_size, cfg.exemplar_size, 3))
        .astype(np.float32),
        "search": rng.uniform(size=(batch, steps, cfg.search_size, cfg.search_size, 3))
        .astype(np.float32),
    }


def _perturb_batchnorms(model):
    """Non-trivial moving statistics, so inference-mode BN is not the identity."""
    for v in model.non_trainable_weights:
        if "moving_mean" in v.path:
            v.assign(rng.normal(size=v.shape).astype(np.float32) * 0.1)
        elif "moving_variance" in v.path:
            v.assign(rng.uniform(0.5, 2.0, size=v.shape).astype(np.float32))


@pytest.fixture
def model(tiny_model_config):
    m = build_model(tiny_model_config, seed=0)
    _perturb_batchnorms(m)
    return m


def test_unrolled_outputs_equal_frame_by_frame_stepping(model, tiny_model_config):
    clip = _clip(tiny_model_config)
    unrolled = model(clip, training=False)
    state = model.initialize(clip["exemplar"][:, 0])
    for t in range(T):
        response, state, diagnostics = model.step(clip["exemplar"][:, t], clip["search"][:, t],
                                                  state)
        np.testing.assert_allclose(response, unrolled["response"][:, t], atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(diagnostics["read_weights"], unrolled["read_weights"][:, t],
                                   atol=1e-5)
        np.testing.assert_allclose(diagnostics["attention"], unrolled["attention"][:, t],
                                   atol=1e-5)


def test_output_shapes_and_state_structure(model, tiny_model_config):
    cfg = tiny_model_config
    out = model(_clip(cfg), training=True)
    r = cfg.response_size
    assert out["response"].shape == (B, T, r, r)
    assert out["read_weights"].shape == (B, T, cfg.memory_size)
    assert out["control_gates"].shape == (B, T, 3)
    assert out["residual_gate"].shape == (B, T, cfg.feature_channels)
    np.testing.assert_allclose(tf.reduce_sum(out["read_weights"], -1), np.ones((B, T)),
                               atol=1e-5)
    state = model.initialize(_clip(cfg, steps=1)["exemplar"][:, 0])
    specs = states.state_specs(cfg.hidden_size, cfg.memory_size, cfg.template_size,
                               cfg.feature_channels)
    for value, spec in zip(state, specs):
        assert spec.is_compatible_with(value), (spec, value.shape)


def test_first_step_puts_t0_in_slot_0(model, tiny_model_config):
    clip = _clip(tiny_model_config, steps=1)
    state = model.initialize(clip["exemplar"][:, 0])
    # At frame 1 the written exemplar is the first frame again.
    _, new_state, _ = model.step(clip["exemplar"][:, 0], clip["search"][:, 0], state)
    np.testing.assert_allclose(new_state.memory[:, 0], state.initial_template, atol=1e-5)
    np.testing.assert_allclose(new_state.memory[:, 1:], 0.0)


def test_gradient_reaches_every_trainable_variable(model, tiny_model_config):
    clip = _clip(tiny_model_config)
    weights = tf.constant(rng.normal(size=(B, T, 17, 17)).astype(np.float32))
    with tf.GradientTape() as tape:
        out = model(clip, training=True)
        loss = tf.reduce_sum(out["response"] * weights)
    grads = tape.gradient(loss, model.trainable_variables)
    missing = [v.path for v, g in zip(model.trainable_variables, grads)
               if g is None or not np.any(g.numpy() != 0) or not np.all(np.isfinite(g.numpy()))]
    assert not missing, f"no (finite, non-zero) gradient for {missing}"
    paths = " ".join(v.path for v in model.trainable_variables)
    for part in ("conv1", "attention", "controller", "controller_initial_state", "control_factors",
                 "write_decay", "add_vector", "read_key", "write_strengths", "bn_response"):
        assert part in paths


def test_tf_function_matches_eager(model, tiny_model_config):
    clip = _clip(tiny_model_config)
    eager = model(clip, training=False)["response"]
    graph = tf.function(lambda c: model(c, training=False))(clip)["response"]
    np.testing.assert_allclose(graph, eager, atol=1e-5)
    state = model.initialize(clip["exemplar"][:, 0])
    step = tf.function(model.step)
    r_graph, s_graph, _ = step(clip["exemplar"][:1, 1], clip["search"][:, 1], state)
    r_eager, s_eager, _ = model.step(clip["exemplar"][:1, 1], clip["search"][:, 1], state)
    np.testing.assert_allclose(r_graph, r_eager, atol=1e-5)
    np.testing.assert_allclose(s_graph.memory, s_eager.memory, atol=1e-5)


def test_one_exemplar_is_shared_by_all_state_copies(model, tiny_model_config):
    clip = _clip(tiny_model_config, batch=1, steps=2)
    state = states.tile(model.initialize(clip["exemplar"][:, 0]), 3)
    search = np.repeat(clip["search"][:, 1], 3, axis=0)
    shared, _, _ = model.step(clip["exemplar"][:, 1], search, state)
    tiled, _, _ = model.step(np.repeat(clip["exemplar"][:, 1], 3, axis=0), search, state)
    np.testing.assert_allclose(shared, tiled, atol=1e-6)


@pytest.mark.parametrize("name,bad,pattern", [
    ("exemplar", np.zeros((2, 100, 100, 3), np.float32), r"exemplar: expected shape \[batch, 127, 127, 3\]"),
    ("exemplar", np.zeros((127, 127, 3), np.float32), r"exemplar: expected shape \[batch, 127, 127, 3\]"),
    ("search", np.zeros((2, 255, 255, 1), np.float32), r"search: expected shape \[batch, 255, 255, 3\]"),
    ("search", np.full((1, 255, 255, 3), np.nan, np.float32), r"search: contains NaN"),
])
def test_bad_input_raises_clear_value_error(model, tiny_model_config, name, bad, pattern):
    clip = _clip(tiny_model_config, batch=1, steps=1)
    state = model.initialize(clip["exemplar"][:, 0])
    args = {"exemplar": clip["exemplar"][:, 0], "search": clip["search"][:, 0]}
    args[name] = bad
    with pytest.raises(ValueError, match=pattern):
        model.step(args["exemplar"], args["search"], state)


def test_bad_clip_raises_clear_value_error(model, tiny_model_config):
    clip = _clip(tiny_model_config)
    clip["search"] = clip["search"][:, :, :200, :200]
    with pytest.raises(ValueError, match=r"search: expected shape \[batch, time, 255, 255, 3\]"):
        model(clip)
    clip = _clip(tiny_model_config)
    clip["exemplar"][0, 1, 5, 5, 0] = np.nan
    with pytest.raises(ValueError, match="exemplar: contains NaN"):
        model(clip)


def test_state_with_missing_fields_is_rejected(model, tiny_model_config):
    clip = _clip(tiny_model_config, batch=1, steps=1)
    state = states.to_dict(model.initialize(clip["exemplar"][:, 0]))
    del state["usage"]
    with pytest.raises(ValueError, match="usage"):
        model.step(clip["exemplar"][:, 0], clip["search"][:, 0], state)


def test_model_config_roundtrip(model, tiny_model_config):
    config = model.get_config()
    clone = MemTrack.from_config(json.loads(json.dumps(config)))
    assert clone.model_config == tiny_model_config
    assert len(clone.weights) == len(model.weights)
    restored = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(keras.saving.serialize_keras_object(model))))
    assert isinstance(restored, MemTrack) and restored.model_config == tiny_model_config


def test_without_memory_the_template_is_t0(tiny_model_config):
    import dataclasses

    cfg = dataclasses.replace(tiny_model_config, use_memory=False)
    model = build_model(cfg)
    clip = _clip(cfg)
    out = model(clip, training=False)
    t0 = model.encode(clip["exemplar"][:, 0])
    for t in range(T):
        raw = xcorr(model.encode(clip["search"][:, t]), t0)
        np.testing.assert_allclose(out["response"][:, t],
                                   model.response_head(raw, training=False), atol=1e-4)
    assert not any("memory_cell" in v.path for v in model.weights)


def test_paper_configuration_parameter_count():
    model = build_model(ModelConfig())
    count = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert count == 3_749_440 + 2_303_495


def test_checkpoint_holds_every_variable(model, tmp_path):
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    stored = sum(1 for name, _ in tf.train.list_variables(path) if name.startswith("model/"))
    assert stored == len(model.weights)
    clone = build_model(model.model_config)
    tf.train.Checkpoint(model=clone).restore(path).assert_existing_objects_matched()
    for a, b in zip(model.weights, clone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_residual_agreement_starts_as_the_papers_gate_and_learns(model, tiny_model_config,
                                                                   tmp_path):
    import dataclasses

    cfg = dataclasses.replace(tiny_model_config, residual_agreement=True)
    agreeing = build_model(cfg, seed=0)
    def inside(v):  # the path below the model's own (numbered) name
        return v.path.split("/", 1)[1]

    paper_weights = {inside(v): v for v in model.weights}
    for v in agreeing.weights:
        if "agreement_weight" not in v.path:
            v.assign(paper_weights[inside(v)])
    [weight] = [v for v in agreeing.trainable_variables if "agreement_weight" in v.path]
    np.testing.assert_array_equal(weight.numpy(), np.zeros(cfg.feature_channels))
    clip = _clip(cfg)
    paper_out, start_out = model(clip, training=False), agreeing(clip, training=False)
    for name in ("response", "residual_gate", "read_weights"):
        np.testing.assert_allclose(start_out[name], paper_out[name], atol=1e-5, err_msg=name)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(agreeing(clip, training=True)["response"]
                             * rng.normal(size=(B, T, 17, 17)).astype(np.float32))
    gradient = tape.gradient(loss, weight)
    assert gradient is not None and np.any(gradient.numpy() != 0)
    # A negative weight closes the gate wherever the memory is not a copy of T_0 (the training
    # call above moved the BatchNorm statistics, so the reference is taken again).
    opened = agreeing(clip, training=False)["residual_gate"].numpy()
    weight.assign(-np.ones(cfg.feature_channels, np.float32))
    closed = agreeing(clip, training=False)["residual_gate"].numpy()
    assert np.all(closed[:, 1:] < opened[:, 1:])
    path = tf.train.Checkpoint(model=agreeing).save(str(tmp_path / "ckpt"))
    clone = build_model(cfg)
    tf.train.Checkpoint(model=clone).restore(path).assert_existing_objects_matched()
    [restored] = [v for v in clone.weights if "agreement_weight" in v.path]
    np.testing.assert_array_equal(restored.numpy(), weight.numpy())


def test_residual_agreement_needs_the_residual_path():
    with pytest.raises(ValueError, match="residual_agreement"):
        ModelConfig(residual_agreement=True, use_residual=False)
    with pytest.raises(ValueError, match="residual_agreement"):
        ModelConfig(residual_agreement=True, use_memory=False)
