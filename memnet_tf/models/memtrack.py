"""MemTrack: a Siamese AlexNet whose template comes from an LSTM-controlled memory.

Two kinds of entry point, kept apart on purpose:
- `call(inputs)` is for training only: it runs the backbone on all exemplars and searches of a clip
  and unrolls the recurrent cell over the T steps (full BPTT), then applies the response head once
  to all B*T maps (spec section 6).
- `initialize(exemplar)` and `step(exemplar, search, state)` are for tracking: pure functions of
  their inputs and the explicit `MemTrackState`, so they trace into fixed-signature `tf.function`s
  and export as SavedModel signatures.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from memnet_tf import config as config_lib
from memnet_tf.layers import states
from memnet_tf.layers.attention import SpatialAttention
from memnet_tf.layers.controller import ControllerInitialState, LayerNormLSTMCell
from memnet_tf.layers.memory import MemoryHeads, memory_step
from memnet_tf.layers.states import MemTrackState
from memnet_tf.layers.xcorr import ResponseHead, xcorr
from memnet_tf.models.backbone import NUM_LAYERS, build_backbone

# Diagnostics of a step, returned beside the response (never logged from inside a layer).
DIAGNOSTICS = ("attention", "read_weights", "write_weights", "control_gates", "write_decay",
               "residual_gate", "read_strength")
# The agreement weight a of the residual gate is stored divided by this. Adam moves a variable by
# about the learning rate per step, ~0.9 in all over the real-video recipe's 1,500 decayed steps:
# too little to close a sigmoid gate; x10 lets a cross several logits within such a run.
AGREEMENT_WEIGHT_SCALE = 10.0


@keras.saving.register_keras_serializable(package="memnet_tf")
class MemTrackCell(keras.layers.Layer):
    """Attention, LSTM controller and memory for one frame, with the Keras RNN-cell contract.

    `call((search_features, write_template), state) -> (outputs, new_state)`, where `outputs`
    holds the final template and the step's diagnostics and `state` is a `MemTrackState`.

    Args:
      memory_size: N slots.
      hidden_size: LSTM units.
      template_size: side h = w of a template (and of the attention's pooling window).
      channels: C, feature channels (also the key size and the attention width).
      usage_decay: lambda.
      dropout: LSTM candidate dropout in training.
      use_attention: off = uniform attention (an ablation).
      use_residual: off = the retrieved template alone, without T_0 (an ablation).
      seed: dropout seed.
      residual_agreement: the residual gate also sees cos(T_retr, T_0), through a learned
        channel-wise weight that starts at 0, i.e. at the paper's gate (not in the paper; see
        `addressing.agreement_residual_gate`).
    """

    def __init__(self, memory_size: int, hidden_size: int, template_size: int, channels: int,
                 usage_decay: float = 0.99, dropout: float = 0.2, use_attention: bool = True,
                 seed: int | None = None, use_residual: bool = True,
                 residual_agreement: bool = False, **kwargs):
        super().__init__(**kwargs)
        if residual_agreement and not use_residual:
            raise ValueError("residual_agreement=True needs use_residual=True: without the "
                             "residual path there is no residual gate")
        self.memory_size = memory_size
        self.hidden_size = hidden_size
        self.template_size = template_size
        self.channels = channels
        self.usage_decay = usage_decay
        self.dropout = dropout
        self.use_attention = use_attention
        self.use_residual = use_residual
        self.residual_agreement = residual_agreement
        self.seed = seed
        self.attention = SpatialAttention(template_size, channels, name="attention")
        self.controller = LayerNormLSTMCell(hidden_size, dropout=dropout, seed=seed,
                                            name="controller")
        self.controller_initial_state = ControllerInitialState(hidden_size,
                                                               name="controller_initial_state")
        self.heads = MemoryHeads(channels, channels, name="memory_heads")
        t = template_size
        self.state_size = MemTrackState(
            cell=hidden_size, hidden=hidden_size, initial_template=(t, t, channels),
            memory=(memory_size, t, t, channels), read_weights=memory_size,
            write_weights=memory_size, control_gates=3, write_decay=1, usage=memory_size)

    def build(self, inputs_shape=None):
        t, c = self.template_size, self.channels
        if self.use_attention:
            self.attention.build((None, None, None, c), (None, self.hidden_size))
        self.controller.build((None, c))
        self.controller_initial_state.build((None, t, t, c))
        self.heads.build((None, self.hidden_size))
        if self.residual_agreement:
            self.agreement_weight = self.add_weight(name="agreement_weight", shape=(c,),
                                                    initializer="zeros")

    def get_initial_state(self, initial_template: tf.Tensor) -> MemTrackState:
        """The state before the first step, from the first-frame template T_0 `[B, h, w, C]`.

        Memory empty; the pending write goes to slot 0 with the allocate gate at 1, so the first
        step writes T_0 into slot 0 with erase factor 1 and allocates slot 1 next.
        """
        batch = tf.shape(initial_template)[0]
        cell, hidden = self.controller_initial_state(initial_template)
        return initial_state_fields(initial_template, cell, hidden, self.memory_size, batch)

    def call(self, inputs, states_in, training=False):
        """One frame.

        Args:
          inputs: `(search_features [B, H, W, C], write_template [B, h, w, C])`.
          states_in: `MemTrackState` (or a sequence of its fields) of step t-1.
          training: enables the controller dropout.

        Returns:
          outputs: dict with `template` `[B, h, w, C]` (T^final_t) and the diagnostics
            `attention [B, L, L]`, `read_weights [B, N]`, `write_weights [B, N]`,
            `control_gates [B, 3]`, `write_decay [B, 1]`, `residual_gate [B, C]`,
            `read_strength [B, 1]`.
          new_state: `MemTrackState` of step t.
        """
        search_features, write_template = inputs
        state = MemTrackState(*states_in)
        if self.use_attention:
            attended, attention = self.attention(search_features, state.hidden)
        else:
            patches = self.attention.pool(search_features)
            attended = tf.reduce_mean(patches, axis=[1, 2])
            attention = tf.ones_like(patches[..., 0]) / tf.cast(
                tf.shape(patches)[1] * tf.shape(patches)[2], patches.dtype)
        hidden, (cell, hidden) = self.controller(attended, (state.cell, state.hidden),
                                                 training=training)
        controls = self.heads(hidden)
        agreement_weight = (AGREEMENT_WEIGHT_SCALE * self.agreement_weight
                            if self.residual_agreement else None)
        result = memory_step(controls, write_template, state.initial_template, state.memory,
                             state.write_weights, state.control_gates, state.write_decay,
                             state.usage, self.usage_decay, self.use_residual, agreement_weight)
        new_state = MemTrackState(
            cell=cell, hidden=hidden, initial_template=state.initial_template,
            memory=result.memory, read_weights=result.read_weights,
            write_weights=result.write_weights, control_gates=controls.control_gates,
            write_decay=controls.write_decay, usage=result.usage)
        outputs = {
            "template": result.template,
            "attention": attention,
            "read_weights": result.read_weights,
            "write_weights": result.write_weights,
            "control_gates": controls.control_gates,
            "write_decay": controls.write_decay,
            "residual_gate": result.residual_gate,
            "read_strength": controls.read_strength,
        }
        return outputs, new_state

    def get_config(self):
        config = super().get_config()
        config.update(memory_size=self.memory_size, hidden_size=self.hidden_size,
                      template_size=self.template_size, channels=self.channels,
                      usage_decay=self.usage_decay, dropout=self.dropout,
                      use_attention=self.use_attention, seed=self.seed,
                      use_residual=self.use_residual,
                      residual_agreement=self.residual_agreement)
        return config


def initial_state_fields(initial_template, cell, hidden, memory_size, batch) -> MemTrackState:
    """The memory part of the initial state (spec 5), around given controller states."""
    dtype = initial_template.dtype
    first_slot = tf.one_hot(tf.zeros([batch], tf.int32), memory_size, dtype=dtype)
    return MemTrackState(
        cell=cell,
        hidden=hidden,
        initial_template=initial_template,
        memory=tf.zeros_like(tf.repeat(initial_template[:, None], memory_size, axis=1)),
        read_weights=tf.zeros([batch, memory_size], dtype),
        write_weights=first_slot,
        control_gates=tf.one_hot(tf.fill([batch], 2), 3, dtype=dtype),  # g^a = 1
        write_decay=tf.zeros([batch, 1], dtype),
        usage=first_slot,
    )


def cached_feature_key(kind: str, layer: int) -> str:
    """The input name of cached `kind` ("exemplar" / "search") features of conv`layer`'s block:
    `search_features` for the backbone's output (layer 5), `search_conv4` for conv4's."""
    return f"{kind}_features" if layer == NUM_LAYERS else f"{kind}_conv{layer}"


def cached_layer(inputs) -> int | None:
    """The backbone layer whose cached features `inputs` holds, or None for images."""
    layers = [layer for layer in range(1, NUM_LAYERS + 1)
              if cached_feature_key("search", layer) in inputs]
    if len(layers) > 1:
        raise ValueError(f"inputs hold cached features of several layers {layers}")
    return layers[0] if layers else None


def check_images(images, name: str, size: int, batch_rank: int = 1) -> tf.Tensor:
    """Validates an image batch up front, so bad input fails with a clear `ValueError`.

    Args:
      images: `[*batch, size, size, 3]` float images in [0, 1].
      name: the tensor's name in the message.
      size: expected side.
      batch_rank: number of leading batch dimensions (2 for `[B, T, ...]` clips).

    Returns:
      `images` as a float32 tensor.
    """
    images = tf.convert_to_tensor(images, dtype=tf.float32)
    expected = "[" + ", ".join(["batch", "time"][:batch_rank] + [str(size), str(size), "3"]) + "]"
    shape = images.shape
    if (shape.rank != batch_rank + 3
            or any(d is not None and d != want
                   for d, want in zip(shape[batch_rank:], (size, size, 3)))):
        got = shape.as_list() if shape.rank is not None else "unknown rank"
        raise ValueError(f"{name}: expected shape {expected}, got {got}")
    if tf.executing_eagerly():
        if not bool(tf.reduce_all(tf.math.is_finite(images))):
            raise ValueError(f"{name}: contains NaN or Inf (expected finite values in [0, 1], "
                             f"shape {expected})")
    else:
        images = tf.debugging.assert_all_finite(images, f"{name} contains NaN or Inf")
    return images


def check_state(state) -> MemTrackState:
    """Accepts a MemTrackState, a dict or a sequence of its fields; checks every field exists."""
    if isinstance(state, dict):
        state = states.from_dict(state)
    if not isinstance(state, MemTrackState):
        state = tuple(state)
        if len(state) != len(MemTrackState._fields):
            raise ValueError(f"state: expected the {len(MemTrackState._fields)} fields "
                             f"{MemTrackState._fields}, got {len(state)}")
        state = MemTrackState(*state)
    return state


@keras.saving.register_keras_serializable(package="memnet_tf")
class MemTrack(keras.Model):
    """The MemTrack network.

    Args:
      model_config: a `ModelConfig` or its dict.
      seed: seed of the controller dropout.
      backbone_dtype: Keras dtype policy of the backbone (training precision, e.g.
        "mixed_bfloat16"); its features are cast to float32, so attention, controller, memory,
        correlation and response head always compute in float32. Not part of the config:
        variables are float32 whatever the policy, checkpoints are the same.
    """

    def __init__(self, model_config=None, seed: int | None = None, backbone_dtype=None,
                 **kwargs):
        super().__init__(**kwargs)
        if model_config is None:
            model_config = config_lib.ModelConfig()
        if isinstance(model_config, dict):
            model_config = config_lib.model_config_from_dict(model_config)
        self.model_config = model_config
        self.seed = seed
        cfg = model_config
        self.backbone = build_backbone(cfg, dtype=backbone_dtype)
        self.cell = None
        if cfg.use_memory:
            self.cell = MemTrackCell(
                cfg.memory_size, cfg.hidden_size, cfg.template_size, cfg.feature_channels,
                usage_decay=cfg.usage_decay, dropout=cfg.controller_dropout,
                use_attention=cfg.use_attention, seed=seed, use_residual=cfg.use_residual,
                residual_agreement=cfg.residual_agreement, name="memory_cell")
        self.response_head = ResponseHead(cfg.response_head, cfg.response_scale,
                                          cfg.bn_momentum, name="response_head")
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        self.backbone.build((None, None, None, 3))
        if self.cell is not None:
            self.cell.build()
        self.response_head.build((None, None, None))
        self.built = True

    # ---------------------------------------------------------------- shared pieces

    def encode(self, images, training=False):
        """Backbone features of `[B, H, W, 3]` images in [0, 1], as float32."""
        return tf.cast(self.backbone(images, training=training), tf.float32)

    def initial_state(self, initial_template) -> MemTrackState:
        """The recurrent state for a sequence from its first-frame template `[B, h, w, C]`."""
        if self.cell is not None:
            return self.cell.get_initial_state(initial_template)
        # Without memory the template never changes: carry T_0 and inert fields, so every
        # configuration has the same state structure (and export signature).
        batch = tf.shape(initial_template)[0]
        zeros = tf.zeros([batch, self.model_config.hidden_size], initial_template.dtype)
        return initial_state_fields(initial_template, zeros, zeros,
                                    self.model_config.memory_size, batch)

    def recurrent_step(self, search_features, write_template, state, training=False):
        """Attention, controller and memory for one frame -> (template, state, diagnostics)."""
        if self.cell is None:
            return state.initial_template, state, {}
        outputs, new_state = self.cell((search_features, write_template), state,
                                       training=training)
        template = outputs.pop("template")
        return template, new_state, outputs

    # ---------------------------------------------------------------- training

    def call(self, inputs, training=False):
        """Training/validation forward pass over whole clips (not for tracking).

        Args:
          inputs: dict with `exemplar` `[B, T, E, E, 3]` (z_0..z_{T-1}; z_t is written at step t
            and z_0 also gives T_0) and `search` `[B, T, S, S, 3]` (x_1..x_T), images in [0, 1];
            or, for a frozen backbone, their precomputed features `exemplar_features`
            `[B, T, h, w, C]` and `search_features` `[B, T, H, W, C]` (data/feature_cache.py);
            or, for a backbone frozen up to conv k < 5, conv k's features `exemplar_convk` and
            `search_convk`, which the remaining layers finish.
          training: batch statistics in the BatchNorms and controller dropout.

        Returns:
          dict with `response` `[B, T, R, R]` logits and the stacked per-step diagnostics
          (`attention [B, T, L, L]`, `read_weights [B, T, N]`, ...; absent without memory),
          and with memory and the residual path `residual_share [B, T]` = |r * T_retr| / |T_0|.
        """
        layer = cached_layer(inputs)
        if layer is None:
            templates_in, search_features = self.encode_clips(inputs, training)
        else:
            templates_in, search_features = self.finish_cached_clips(inputs, layer, training)
        return self.unroll(templates_in, search_features, training)

    def finish_cached_clips(self, inputs, layer: int, training=False):
        """Clip features cached at the output of conv`layer` -> backbone features `[B, T, ...]`.

        Layer 5 features are the backbone's output and are used as they are; earlier ones go
        through the (trainable) rest of the backbone, exemplars and searches as two batches.
        """
        channels = self.model_config.channels[layer - 1]
        clips = []
        for kind in ("exemplar", "search"):
            name = cached_feature_key(kind, layer)
            value = tf.convert_to_tensor(inputs[name], tf.float32)
            if value.shape.rank != 5 or value.shape[-1] != channels:
                raise ValueError(f"{name}: expected shape [batch, time, h, w, {channels}], "
                                 f"got {value.shape.as_list()}")
            if layer < NUM_LAYERS:
                shape = tf.shape(value)
                features = self.backbone.continue_from(
                    tf.reshape(value, tf.concat([[-1], shape[2:]], 0)), layer,
                    training=training)
                value = tf.reshape(tf.cast(features, tf.float32),
                                   tf.concat([shape[:2], tf.shape(features)[1:]], 0))
            clips.append(value)
        return tuple(clips)

    def encode_clips(self, inputs, training=False):
        """Backbone features of a clip's exemplars and searches, `[B, T, ...]` each."""
        cfg = self.model_config
        exemplar = check_images(inputs["exemplar"], "exemplar", cfg.exemplar_size, batch_rank=2)
        search = check_images(inputs["search"], "search", cfg.search_size, batch_rank=2)
        time_steps = exemplar.shape[1]
        if time_steps is None or search.shape[1] != time_steps:
            raise ValueError(f"exemplar and search need the same static number of time steps, "
                             f"got {exemplar.shape[1]} and {search.shape[1]}")
        batch = tf.shape(exemplar)[0]

        def encode_clip(images, size):
            features = self.encode(tf.reshape(images, [-1, size, size, 3]), training=training)
            return tf.reshape(features, tf.concat([[batch, time_steps], tf.shape(features)[1:]],
                                                  axis=0))

        # Exemplars and searches go through the backbone as two batches, as in the official
        # code: their BatchNorm statistics are computed separately.
        return encode_clip(exemplar, cfg.exemplar_size), encode_clip(search, cfg.search_size)

    def unroll(self, templates_in, search_features, training=False):
        """The recurrent part of `call`: `[B, T, h, w, C]` and `[B, T, H, W, C]` -> outputs."""
        time_steps = templates_in.shape[1]
        if time_steps is None or search_features.shape[1] != time_steps:
            raise ValueError(f"exemplars and searches need the same static number of time "
                             f"steps, got {templates_in.shape[1]} and {search_features.shape[1]}")
        batch = tf.shape(templates_in)[0]
        state = self.initial_state(templates_in[:, 0])
        templates, diagnostics = [], {name: [] for name in DIAGNOSTICS}
        for t in range(time_steps):  # static unroll: full BPTT over T steps
            template, state, aux = self.recurrent_step(search_features[:, t], templates_in[:, t],
                                                       state, training=training)
            templates.append(template)
            for name, value in aux.items():
                diagnostics[name].append(value)
        templates = tf.stack(templates, axis=1)
        raw = xcorr(_merge_batch_time(search_features), _merge_batch_time(templates))
        # One response BatchNorm over all B*T maps.
        response = self.response_head(raw, training=training)
        size = self.model_config.response_size
        outputs = {"response": tf.reshape(response, [batch, time_steps, size, size])}
        outputs.update({name: tf.stack(values, axis=1)
                        for name, values in diagnostics.items() if values})
        cfg = self.model_config
        if cfg.use_memory and getattr(cfg, "use_residual", True):
            # |r * T_retr| / |T_0| per step: how far the memory moves the template away from
            # the first frame's (TensorBoard's memory panel; not used by the loss).
            initial = state.initial_template[:, None]
            moved = tf.sqrt(tf.reduce_sum(tf.square(templates - initial), axis=[2, 3, 4]))
            anchor = tf.sqrt(tf.reduce_sum(tf.square(initial), axis=[2, 3, 4]))
            outputs["residual_share"] = tf.stop_gradient(moved / tf.maximum(anchor, 1e-12))
        return outputs

    # ---------------------------------------------------------------- tracking

    def initialize(self, exemplar) -> MemTrackState:
        """Tracking: the state for new sequences from their first exemplar crops.

        Args:
          exemplar: `[B, E, E, 3]` first-frame exemplar crops in [0, 1].

        Returns:
          `MemTrackState` with batch B.
        """
        exemplar = check_images(exemplar, "exemplar", self.model_config.exemplar_size)
        return self.initial_state(self.encode(exemplar))

    def step(self, exemplar, search, state):
        """Tracking: one frame.

        Args:
          exemplar: `[1 or B, E, E, 3]` exemplar cut at the previous box (to be written); one crop
            is encoded once and shared by all B state copies (e.g. the scales).
            None without memory (`use_memory=False`, the SiamFC mode), which never writes:
            nothing is cropped or encoded for it.
          search: `[B, S, S, 3]` search crops.
          state: `MemTrackState` (or its dict) with batch B.

        Returns:
          response: `[B, R, R]` logits (inference statistics).
          new_state: `MemTrackState`.
          diagnostics: dict of `[B, ...]` tensors (attention, read_weights, gates, ...).
        """
        cfg = self.model_config
        search = check_images(search, "search", cfg.search_size)
        state = check_state(state)
        if exemplar is None:
            if self.cell is not None:
                raise ValueError("exemplar: None is only allowed without memory "
                                 "(use_memory=False); a memory step writes the exemplar")
            return self.step_features(None, self.encode(search), state)
        exemplar = check_images(exemplar, "exemplar", cfg.exemplar_size)
        return self.step_features(self.encode(exemplar), self.encode(search), state)

    def step_features(self, write_template, search_features, state):
        """`step` after the backbone: `[1 or B, h, w, C]` (or None without memory),
        `[B, H, W, C]`, state."""
        if write_template is not None:
            batch = tf.shape(search_features)[0]
            write_template = tf.broadcast_to(
                write_template, tf.concat([[batch], tf.shape(write_template)[1:]], axis=0))
        template, new_state, diagnostics = self.recurrent_step(search_features, write_template,
                                                               state, training=False)
        response = self.response_head(xcorr(search_features, template), training=False)
        return response, new_state, diagnostics

    def get_config(self):
        config = super().get_config()
        config.update(model_config=dataclasses.asdict(self.model_config), seed=self.seed)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _merge_batch_time(x):
    """`[B, T, ...]` -> `[B*T, ...]`."""
    return tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0))


def build_model(model_config: config_lib.ModelConfig, seed: int | None = None,
                backbone_dtype=None) -> MemTrack:
    """A built MemTrack for `model_config` (backbone_dtype: see `MemTrack`)."""
    return MemTrack(model_config, seed=seed, backbone_dtype=backbone_dtype)
