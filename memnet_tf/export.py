"""Exports a trained MemTrack as a SavedModel with `initialize` and `step` signatures.

    python -m memnet_tf.export --checkpoint=runs/quickstart --export_dir=exports/quickstart
    python -m memnet_tf.export --checkpoint=runs/quickstart --export_dir=exports/q_litert \
        --format=litert           (LiteRT .tflite models; see models/litert.py)

The export is the network only: crops in, responses and the recurrent state out. Cropping, the
scale search and the box update stay in the tracker (`tracking/tracker.py`), which runs the same
way on a checkpoint or on an export (`--saved_model=` of `track` and `evaluate`).

Signatures (every batch dimension free; images float32 in [0, 1]):

    initialize(exemplar [B, E, E, 3]) -> {cell, hidden, initial_template, memory, read_weights,
                                          write_weights, control_gates, write_decay, usage}
    step(exemplar [1 or B, E, E, 3], search [B, S, S, 3], <the nine state fields>)
        -> {response [B, R, R], <the nine new state fields>,
            attention [B, L, L], residual_gate [B, C], read_strength [B, 1]}
    search_step(search [B, S, S, 3], <the nine state fields>)     (only without memory)
        -> {response [B, R, R], <the nine state fields, unchanged>}

A step's state outputs are fed back under the same names at the next frame. The three
diagnostics exist only with memory (`--use_memory`); the SiamFC mode's state passes through.
`assets.extra/memnet_tf.json` holds the model and tracking configuration and the source
checkpoint, so an export is self-contained.

The export is written into a hidden staging folder beside `--export_dir`, reloaded and checked
against the in-process model on random inputs, and only then renamed into place: `--export_dir`
never holds a half-written export, a previous export there stays until the new one is complete,
a failed export removes its staging folder, and the staging folder of a killed one is removed
by the next export to the same place.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys

from absl import app
from absl import flags

from memnet_tf import config as config_lib
from memnet_tf import output_folders

FLAGS = flags.FLAGS

METADATA_PATH = os.path.join("assets.extra", "memnet_tf.json")
FORMAT = "memnet_tf.saved_model/1"
# Step diagnostics that are not also state fields (read/write weights, gates and decay are).
STEP_DIAGNOSTICS = ("attention", "residual_gate", "read_strength")
EXIT_BAD_INPUT = 2


def step_outputs(response, new_state, diagnostics) -> dict:
    """What the `step` signature returns, from `MemTrack.step`'s three results."""
    from memnet_tf.layers import states

    outputs = {"response": response, **states.to_dict(new_state)}
    outputs.update({name: diagnostics[name] for name in STEP_DIAGNOSTICS if name in diagnostics})
    return outputs


def make_export_module(model):
    """A `tf.Module` holding `model` with the `initialize` and `step` tf.functions.

    Args:
        model: a built `MemTrack`.

    Returns:
        `(module, signatures)`: the module to save and its signature concrete functions.
    """
    import tensorflow as tf

    from memnet_tf.layers import states

    cfg = model.model_config
    state_specs = states.state_specs(cfg.hidden_size, cfg.memory_size, cfg.template_size,
                                     cfg.feature_channels)
    exemplar_spec = tf.TensorSpec([None, cfg.exemplar_size, cfg.exemplar_size, 3], tf.float32,
                                  name="exemplar")
    search_spec = tf.TensorSpec([None, cfg.search_size, cfg.search_size, 3], tf.float32,
                                name="search")

    def initialize(exemplar):
        return states.to_dict(model.initialize(exemplar))

    def step(exemplar, search, **state):
        return step_outputs(*model.step(exemplar, search, states.from_dict(state)))

    def search_step(search, **state):
        return step_outputs(*model.step(None, search, states.from_dict(state)))

    module = tf.Module()
    module.model = model  # tracks every variable of the model
    module.initialize = tf.function(initialize)
    module.step = tf.function(step)
    signatures = {
        "initialize": module.initialize.get_concrete_function(exemplar_spec),
        "step": module.step.get_concrete_function(exemplar_spec, search_spec,
                                                  **states.to_dict(state_specs)),
    }
    if not cfg.use_memory:
        # The SiamFC mode never writes: its tracker crops and encodes no exemplar.
        module.search_step = tf.function(search_step)
        signatures["search_step"] = module.search_step.get_concrete_function(
            search_spec, **states.to_dict(state_specs))
    return module, signatures


def export_saved_model(model, export_dir: str, metadata: dict | None = None,
                       verify: bool = True, seed: int = 0) -> dict:
    """Writes `model` as a SavedModel at `export_dir`, atomically.

    Args:
        model: a built `MemTrack`.
        export_dir: the SavedModel folder to create (or replace, if it holds an earlier export).
        metadata: extra JSON-serialisable entries for `assets.extra/memnet_tf.json` (e.g. the
            track config and the source checkpoint).
        verify: reload the export and compare both signatures with the in-process model.
        seed: seed of the verification inputs.

    Returns:
        The metadata written, with `max_abs_difference` when verified.

    Raises:
        FileExistsError: `export_dir` exists and is not an earlier SavedModel.
        AssertionError: the reloaded export differs from the model (nothing is left behind).
    """
    import tensorflow as tf

    from memnet_tf.layers.states import MemTrackState

    export_dir = os.path.abspath(export_dir)
    if os.path.exists(export_dir) and not _is_saved_model(export_dir):
        if not os.path.isdir(export_dir) or os.listdir(export_dir):
            raise FileExistsError(f"{export_dir}: exists and is not a SavedModel; choose another "
                                  "--export_dir (an earlier export there would be replaced)")
    with output_folders.staged_folder(export_dir) as staging:
        module, signatures = make_export_module(model)
        tf.saved_model.save(module, staging, signatures=signatures)
        entries = {
            "format": FORMAT,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "model_config": dataclasses.asdict(model.model_config),
            "state_fields": list(MemTrackState._fields),
            **(metadata or {}),
        }
        if verify:
            entries["max_abs_difference"] = verify_export(model, staging, seed=seed)
        os.makedirs(os.path.join(staging, "assets.extra"), exist_ok=True)
        config_lib.write_atomically(os.path.join(staging, METADATA_PATH),
                                    json.dumps(entries, indent=2, sort_keys=True) + "\n")
    return entries


def verify_export(model, export_dir: str, seed: int = 0, batch_size: int = 3,
                  tolerance: float = 1e-4) -> float:
    """Reloads an export and compares two frames of tracking with the in-process model.

    Random crops (not zeros) go through `initialize` then two `step`s (the second one from the
    state the first returned), once through the reloaded signatures and once through `model`.

    Returns:
        The largest absolute difference over every output.

    Raises:
        AssertionError: a difference above `tolerance`, or outputs with other names or shapes.
    """
    import numpy as np
    import tensorflow as tf

    from memnet_tf.layers import states

    cfg = model.model_config
    rng = np.random.default_rng(seed)

    def crops(batch, size):
        return tf.constant(rng.uniform(0.0, 1.0, (batch, size, size, 3)), tf.float32)

    loaded = tf.saved_model.load(export_dir)
    initialize, step = loaded.signatures["initialize"], loaded.signatures["step"]
    # Graph functions, as in the export (eager Keras would retrace its convolutions per shape).
    model_initialize, model_step = tf.function(model.initialize), tf.function(model.step)
    first = crops(1, cfg.exemplar_size)
    expected = states.tile(model_initialize(first), batch_size)
    exported = {name: tf.repeat(value, batch_size, axis=0)
                for name, value in initialize(exemplar=first).items()}
    worst = _compare(states.to_dict(expected), exported, "initialize")
    for frame in range(2):
        exemplar, search = crops(1, cfg.exemplar_size), crops(batch_size, cfg.search_size)
        response, expected, diagnostics = model_step(exemplar, search, expected)
        reference = step_outputs(response, expected, diagnostics)
        outputs = step(exemplar=exemplar, search=search,
                       **{name: exported[name] for name in states.MemTrackState._fields})
        worst = max(worst, _compare(reference, outputs, f"step {frame + 1}"))
        exported = {name: outputs[name] for name in states.MemTrackState._fields}
    if "search_step" in loaded.signatures:
        search = crops(batch_size, cfg.search_size)
        reference = step_outputs(*tf.function(model.step)(None, search, expected))
        outputs = loaded.signatures["search_step"](search=search, **exported)
        worst = max(worst, _compare(reference, outputs, "search_step"))
    if worst > tolerance:
        raise AssertionError(f"{export_dir}: the reloaded export differs from the model by "
                             f"{worst:g} (tolerance {tolerance:g})")
    return worst


def _compare(expected: dict, actual: dict, what: str) -> float:
    import numpy as np

    if set(expected) != set(actual):
        raise AssertionError(f"{what}: the export returns {sorted(actual)}, the model "
                             f"{sorted(expected)}")
    worst = 0.0
    for name, value in expected.items():
        value, other = np.asarray(value), np.asarray(actual[name])
        if value.shape != other.shape:
            raise AssertionError(f"{what}: {name} has shape {other.shape} in the export, "
                                 f"{value.shape} in the model")
        worst = max(worst, float(np.max(np.abs(value - other), initial=0.0)))
    return worst


def _is_saved_model(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def read_metadata(export_dir: str) -> dict:
    """The `assets.extra/memnet_tf.json` of an export.

    Raises:
        FileNotFoundError: `export_dir` is not a SavedModel or was not written by this module.
        ValueError: the metadata file is not valid JSON or of an unknown format.
    """
    if not os.path.isdir(export_dir):
        raise FileNotFoundError(f"{export_dir}: SavedModel folder not found")
    if not _is_saved_model(export_dir):
        raise FileNotFoundError(f"{export_dir}: not a SavedModel (no saved_model.pb)")
    return config_lib.read_format_json(os.path.join(export_dir, METADATA_PATH), FORMAT,
                                       "python -m memnet_tf.export")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")  # exit 2 (cli.run)
    if FLAGS.saved_model or FLAGS.litert:
        raise app.UsageError("export converts a checkpoint: give --checkpoint=RUN_DIR_OR_PREFIX "
                             "(--saved_model / --litert are what it writes, see --format)")
    if not FLAGS.checkpoint or not FLAGS.export_dir:
        print("error: give --checkpoint=RUN_DIR_OR_PREFIX and --export_dir=DIR",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    # TF's SavedModel writer logs every renamed captured resource at INFO: cli.run keeps absl
    # at WARNING unless --verbosity is given.
    from memnet_tf import cli

    cli.import_tensorflow_quietly()
    import tensorflow as tf

    from memnet_tf.models import loading

    try:
        checkpoint = loading.resolve_checkpoint(FLAGS.checkpoint)
        model, run_flag_values = loading.load_model(FLAGS.checkpoint)
    except (FileNotFoundError, ValueError, AssertionError, tf.errors.OpError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    track_config = config_lib.track_config_from_flags(run_flag_values)
    source = {"source_checkpoint": os.path.abspath(checkpoint),
              "track_config": dataclasses.asdict(track_config)}
    if FLAGS.format == "litert":
        from memnet_tf.models import litert

        try:
            litert.import_interpreter()  # the export is verified with LiteRT before it is kept
        except ImportError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        # The batch is fixed to the run's number of scales.
        kind = f"LiteRT, {track_config.num_scales} scales"

        def write():
            return litert.export_litert(model, FLAGS.export_dir, track_config.num_scales,
                                        metadata=source)

        def written(metadata, folder):
            return (f"verified: LiteRT models match the model (max difference "
                    f"{metadata['max_abs_difference']:.2g})\n"
                    f"LiteRT: {folder} ({', '.join(metadata['files'].values())})")
    else:
        kind = "SavedModel"

        def write():
            return export_saved_model(model, FLAGS.export_dir, metadata=source)

        def written(metadata, folder):
            return (f"verified: reloaded signatures match the model (max difference "
                    f"{metadata['max_abs_difference']:.2g})\n"
                    f"SavedModel: {folder} (signatures: initialize, step)")
    print(f"exporting {checkpoint} -> {FLAGS.export_dir} ({kind})")
    try:
        metadata = write()
    except FileExistsError as error:  # an export there already and no --overwrite
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:  # the disk or a permission failed: the run failed, not the input
        print(f"error: {FLAGS.export_dir}: cannot write the export ({error})", file=sys.stderr)
        return 1
    print(written(metadata, os.path.abspath(FLAGS.export_dir)))
    return 0


if __name__ == "__main__":
    from memnet_tf import cli

    cli.run(main, "export")
