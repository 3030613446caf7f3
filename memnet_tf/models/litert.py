"""LiteRT (TFLite) models of the tracking entry points, and the runtime that tracks with them.

    python -m memnet_tf.export --checkpoint=RUN --export_dir=DIR --format=litert
    python -m memnet_tf.track --litert=DIR ...        (and evaluate --litert=DIR)

A LiteRT export is the network only, like the SavedModel (crops in, responses and state out);
`tracking.MemTracker` crops and post-processes in TF around it. TFLite wants static shapes, so
the batch is fixed at export time to the run's `num_scales`:

    initialize.tflite   exemplar [1, E, E, 3] -> the nine MemTrackState fields, batch 1
    step.tflite         (with memory) exemplar [1, E, E, 3], search [K, S, S, 3],
                        the state fields except initial_template [K, ...]
                        -> response [K, R, R], those state fields, attention, residual_gate,
                        read_strength
    search_step.tflite  (SiamFC mode) search [K, S, S, 3], initial_template [K, t, t, C]
                        -> response [K, R, R]

`memnet_tf_litert.json` beside them holds the model and track configuration and the source.
Variables are frozen into constants before conversion (converting the variable-holding graph
gave NaN responses). The checks on the images (`MemTrack.step`'s `CheckNumerics`) are not in
the converted graphs: TFLite has no such op, and the tracker's crops are finite by construction.
`ai-edge-litert` (the `litert` extra) runs the models, XNNPACK on CPU; the export is verified
with it against the TF model before it is moved into place.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os

import numpy as np

from memnet_tf import config as config_lib
from memnet_tf import output_folders

METADATA_NAME = "memnet_tf_litert.json"
FORMAT = "memnet_tf.litert/1"
STEP_DIAGNOSTICS = ("attention", "residual_gate", "read_strength")
# The state field a memory step passes through unchanged (not an output of step.tflite).
CONSTANT_FIELD = "initial_template"


def import_interpreter():
    """`ai_edge_litert.interpreter.Interpreter`, or an ImportError saying how to get it."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as error:
        raise ImportError("LiteRT models need the ai-edge-litert package: "
                          "pip install -e '.[litert]'") from error
    return Interpreter


def _entry_functions(model, num_scales: int) -> dict:
    """`{name: frozen concrete function}` of the LiteRT entry points of `model`."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)

    from memnet_tf.layers import states

    cfg = model.model_config
    e, s = cfg.exemplar_size, cfg.search_size
    specs = states.to_dict(states.state_specs(cfg.hidden_size, cfg.memory_size,
                                              cfg.template_size, cfg.feature_channels,
                                              batch_size=num_scales))
    exemplar_spec = tf.TensorSpec([1, e, e, 3], tf.float32, name="exemplar")
    search_spec = tf.TensorSpec([num_scales, s, s, 3], tf.float32, name="search")

    def initialize(exemplar):
        return states.to_dict(model.initial_state(model.encode(exemplar)))

    entries = {"initialize": (initialize, {"exemplar": exemplar_spec})}
    if cfg.use_memory:
        moving = {name: spec for name, spec in specs.items() if name != CONSTANT_FIELD}

        def step(exemplar, search, initial_template, **state):
            state = states.from_dict({**state, CONSTANT_FIELD: initial_template})
            response, new_state, diagnostics = model.step_features(
                model.encode(exemplar), model.encode(search), state)
            outputs = {"response": response, **states.to_dict(new_state)}
            del outputs[CONSTANT_FIELD]
            outputs.update({name: diagnostics[name] for name in STEP_DIAGNOSTICS})
            return outputs

        entries["step"] = (step, {"exemplar": exemplar_spec, "search": search_spec,
                                  CONSTANT_FIELD: specs[CONSTANT_FIELD], **moving})
    else:

        def search_step(search, initial_template):
            template_state = model.initial_state(initial_template)
            response, _, _ = model.step_features(None, model.encode(search), template_state)
            return {"response": response}

        entries["search_step"] = (search_step, {"search": search_spec,
                                                CONSTANT_FIELD: specs[CONSTANT_FIELD]})
    return {name: _frozen_with_signature(function, input_specs)
            for name, (function, input_specs) in entries.items()}


def _frozen_with_signature(function, input_specs: dict):
    """`function(**inputs) -> dict` as a concrete function with its variables frozen.

    Freezing (`convert_variables_to_constants_v2`) drops the named signature, so the frozen
    graph is called from a thin tf.function that restores the input and output names; that
    is what LiteRT's signature runner sees.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)

    concrete = tf.function(function).get_concrete_function(**input_specs)
    output_names = sorted(concrete.structured_outputs)  # tf.nest's flat order of a dict
    frozen = convert_variables_to_constants_v2(concrete)
    # The frozen graph takes its placeholders positionally; they are named after the inputs.
    names = [tensor.name.split(":")[0] for tensor in frozen.inputs]
    if sorted(names) != sorted(input_specs):
        raise AssertionError(f"frozen inputs {names} are not {sorted(input_specs)}")

    def named(*flat_inputs):
        outputs = frozen(*flat_inputs)
        if isinstance(outputs, dict):
            return outputs
        return dict(zip(output_names, tf.nest.flatten(outputs)))

    signature = [tf.TensorSpec(input_specs[name].shape, input_specs[name].dtype, name=name)
                 for name in names]
    return tf.function(named, input_signature=signature).get_concrete_function()


def convert(function) -> bytes:
    """A frozen concrete function -> TFLite flatbuffer bytes (float32, builtin ops only)."""
    import tensorflow as tf

    # With the function's owner given, the converter writes its named signature (without it,
    # the deprecated path writes none and LiteRT's signature runner cannot be used).
    holder = tf.Module()
    holder.function = function
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], holder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def export_litert(model, litert_dir: str, num_scales: int, metadata: dict | None = None,
                  verify: bool = True, seed: int = 0) -> dict:
    """Writes the LiteRT models of `model` to `litert_dir`, atomically.

    Args:
        model: a built `MemTrack`.
        litert_dir: the folder to create (or replace, if it holds an earlier LiteRT export).
        num_scales: the tracker's scales, the fixed batch of the step models.
        metadata: extra JSON entries (track config, source checkpoint).
        verify: run the models with ai-edge-litert and compare them with `model`.
        seed: seed of the verification inputs.

    Returns:
        The metadata written (with `max_abs_difference` when verified).

    Raises:
        FileExistsError: `litert_dir` exists and is neither empty nor an earlier LiteRT export.
        AssertionError: the LiteRT models differ from the model (nothing is left behind).
    """
    litert_dir = os.path.abspath(litert_dir)
    if os.path.exists(litert_dir) and not is_litert_export(litert_dir):
        if not os.path.isdir(litert_dir) or os.listdir(litert_dir):
            raise FileExistsError(f"{litert_dir}: exists and is not a LiteRT export; choose "
                                  "another --export_dir")
    if num_scales < 1:
        raise ValueError(f"num_scales={num_scales} must be >= 1")
    with output_folders.staged_folder(litert_dir) as staging:
        files = {}
        for name, function in _entry_functions(model, num_scales).items():
            files[name] = f"{name}.tflite"
            with open(os.path.join(staging, files[name]), "wb") as f:
                f.write(convert(function))
        entries = {
            "format": FORMAT,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "model_config": dataclasses.asdict(model.model_config),
            "num_scales": num_scales,
            "files": files,
            **(metadata or {}),
        }
        config_lib.write_atomically(os.path.join(staging, METADATA_NAME),
                                    json.dumps(entries, indent=2, sort_keys=True) + "\n")
        if verify:
            entries["max_abs_difference"] = verify_litert(model, staging, seed=seed)
            config_lib.write_atomically(os.path.join(staging, METADATA_NAME),
                                        json.dumps(entries, indent=2, sort_keys=True) + "\n")
    return entries


def verify_litert(model, litert_dir: str, seed: int = 0, tolerance: float = 1e-3) -> float:
    """Tracks two frames of random crops with the LiteRT models and with `model`.

    Returns:
        The largest absolute difference of the responses and states.

    Raises:
        AssertionError: a difference above `tolerance` (relative to the largest response).
    """
    import tensorflow as tf

    from memnet_tf.layers import states

    lite = load_litert(litert_dir)[0]
    cfg, num_scales = model.model_config, lite.num_scales
    rng = np.random.default_rng(seed)

    def crops(batch, size):
        return rng.uniform(0.0, 1.0, (batch, size, size, 3)).astype(np.float32)

    first = crops(1, cfg.exemplar_size)
    expected = states.tile(tf.function(model.initialize)(first), num_scales)
    actual = states.tile(lite.initialize(first), num_scales)
    worst = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)), initial=0.0))
                for a, b in zip(expected, actual))
    step = tf.function(model.step)
    for _ in range(2):
        exemplar = crops(1, cfg.exemplar_size) if cfg.use_memory else None
        search = crops(num_scales, cfg.search_size)
        response, expected, _ = step(exemplar, search, expected)
        lite_response, actual, _ = lite.step(exemplar, search, actual)
        scale = max(1.0, float(np.max(np.abs(response))))
        worst = max(worst, float(np.max(np.abs(response.numpy() - lite_response))) / scale)
        for a, b in zip(expected, actual):
            worst = max(worst, float(np.max(np.abs(a.numpy() - np.asarray(b)), initial=0.0)))
    if not worst <= tolerance:
        raise AssertionError(f"{litert_dir}: the LiteRT models differ from the model by "
                             f"{worst:g} (tolerance {tolerance:g})")
    return worst


def is_litert_export(path: str) -> bool:
    return os.path.isfile(os.path.join(path, METADATA_NAME))


def read_metadata(litert_dir: str) -> dict:
    """The `memnet_tf_litert.json` of a LiteRT export.

    Raises:
        FileNotFoundError: not a folder written by `export --format=litert`.
        ValueError: unreadable JSON or an unknown format.
    """
    if not os.path.isdir(litert_dir):
        raise FileNotFoundError(f"{litert_dir}: LiteRT export folder not found")
    return config_lib.read_format_json(os.path.join(litert_dir, METADATA_NAME), FORMAT,
                                       "python -m memnet_tf.export --format=litert")


class LiteRTMemTrack:
    """LiteRT models behind `MemTrack`'s tracking interface (numpy in, numpy out).

    `runs_in_graph` is False: `MemTracker` calls it between its crop and post-processing
    tf.functions. Build it with `load_litert`.

    Attributes:
        model_config: the exported model's `ModelConfig`.
        num_scales: the fixed batch of the step model.
        metadata: the export's metadata.
    """

    runs_in_graph = False

    def __init__(self, litert_dir: str, metadata: dict, num_threads: int | None = None):
        interpreter_class = import_interpreter()
        self.metadata = metadata
        self.model_config = config_lib.model_config_from_dict(metadata["model_config"])
        self.num_scales = int(metadata["num_scales"])
        threads = num_threads or len(os.sched_getaffinity(0))
        self._runners = {}
        self._interpreters = []  # the runners need their interpreters alive
        for name, file_name in metadata["files"].items():
            path = os.path.join(litert_dir, file_name)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path}: missing from the LiteRT export")
            interpreter = interpreter_class(model_path=path, num_threads=threads)
            self._interpreters.append(interpreter)
            self._runners[name] = interpreter.get_signature_runner()

    def initialize(self, exemplar):
        from memnet_tf.layers import states

        outputs = self._runners["initialize"](exemplar=np.asarray(exemplar, np.float32))
        return states.from_dict(outputs)

    def step(self, exemplar, search, state):
        from memnet_tf.layers import states

        fields = {name: np.asarray(value, np.float32)
                  for name, value in states.to_dict(state).items()}
        search = np.asarray(search, np.float32)
        if search.shape[0] != self.num_scales:
            raise ValueError(f"search: the LiteRT step was exported for {self.num_scales} "
                             f"scales, got a batch of {search.shape[0]}")
        if not self.model_config.use_memory:
            outputs = self._runners["search_step"](
                search=search, initial_template=fields[CONSTANT_FIELD])
            return outputs["response"], state, {}
        if exemplar is None:
            raise ValueError("exemplar: None is only allowed without memory")
        outputs = self._runners["step"](exemplar=np.asarray(exemplar, np.float32),
                                        search=search, **fields)
        new_state = states.from_dict({**{name: outputs[name] for name in fields
                                         if name != CONSTANT_FIELD},
                                      CONSTANT_FIELD: fields[CONSTANT_FIELD]})
        diagnostics = {name: outputs[name] for name in STEP_DIAGNOSTICS}
        diagnostics.update(read_weights=new_state.read_weights,
                           write_weights=new_state.write_weights,
                           control_gates=new_state.control_gates,
                           write_decay=new_state.write_decay)
        return outputs["response"], new_state, diagnostics


def load_litert(litert_dir: str, num_threads: int | None = None):
    """`(LiteRTMemTrack, TrackConfig)` of a LiteRT export (the run's tracking configuration)."""
    metadata = read_metadata(litert_dir)
    model = LiteRTMemTrack(litert_dir, metadata, num_threads)
    track_config = config_lib.config_from_dict(config_lib.TrackConfig,
                                               metadata.get("track_config", {}))
    return model, track_config
