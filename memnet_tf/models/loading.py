"""Getting a trained model to track with: from a run folder or checkpoint (`--checkpoint=`), or
from an export (`--saved_model=`, written by `memnet_tf/export.py`)."""

from __future__ import annotations

import os

import tensorflow as tf

from memnet_tf import config as config_lib
from memnet_tf import export  # the export's metadata and signature names live with the writer
from memnet_tf import flags as memnet_flags
from memnet_tf.layers import states
from memnet_tf.models.memtrack import MemTrack, build_model


def is_loading_error(error: Exception) -> bool:
    """True for errors caused by a bad checkpoint or export rather than by a bug.

    Missing files and folders (FileNotFoundError, OSError), unreadable metadata (ValueError),
    variables that do not match the run's flags.txt (AssertionError from the restore check),
    and unreadable checkpoint or SavedModel files (TensorFlow's OpError).
    """
    return isinstance(error, (FileNotFoundError, OSError, ValueError, AssertionError,
                              tf.errors.OpError))


def resolve_checkpoint(path: str) -> str:
    """A checkpoint prefix from a run folder (its latest checkpoint) or a checkpoint prefix."""
    if not path:
        raise ValueError("no checkpoint given (--checkpoint=RUN_DIR or a checkpoint path)")
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"{path}: run folder without a checkpoint")
        return latest
    if not tf.io.gfile.exists(path + ".index"):
        raise FileNotFoundError(f"{path}: neither a run folder nor a checkpoint "
                                f"(no {path}.index)")
    return path


def run_flags(checkpoint: str):
    """The flags.txt of the run a checkpoint belongs to, parsed into FlagValues."""
    folder = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint)
    return memnet_flags.read_flagfile(os.path.join(folder, "flags.txt"))


def run_track_config(checkpoint: str | None = None,
                     saved_model: str | None = None) -> config_lib.TrackConfig:
    """The tracking configuration a run was trained with, without building its model.

    Args:
        checkpoint: a run folder or checkpoint prefix (read from its flags.txt), or
        saved_model: an export (read from its metadata).
    """
    return _run_config(config_lib.TrackConfig, "track_config", checkpoint, saved_model)


def run_model_config(checkpoint: str | None = None,
                     saved_model: str | None = None) -> config_lib.ModelConfig:
    """The model configuration of a run (its flags.txt) or an export (its metadata), without
    building the model."""
    return _run_config(config_lib.ModelConfig, "model_config", checkpoint, saved_model)


def _run_config(cls, metadata_key: str, checkpoint: str | None, saved_model: str | None):
    """A config dataclass of a run's flags.txt, or of an export's metadata under `metadata_key`."""
    if saved_model:
        return config_lib.config_from_dict(
            cls, export.read_metadata(saved_model).get(metadata_key, {}))
    resolve_checkpoint(checkpoint)  # a missing run is reported as such, not as a missing flags.txt
    return config_lib.config_from_flags(cls, run_flags(checkpoint))


def load_model(checkpoint: str, model_config: config_lib.ModelConfig | None = None):
    """Builds the model of a run and restores its weights.

    Args:
      checkpoint: run folder or checkpoint prefix.
      model_config: overrides the configuration read from the run's flags.txt.

    Returns:
      `(model, flag_values)`: the restored MemTrack and the run's flags (for the track config).
    """
    path = resolve_checkpoint(checkpoint)
    flag_values = run_flags(checkpoint)
    cfg = model_config or config_lib.model_config_from_flags(flag_values)
    model = build_model(cfg)
    status = tf.train.Checkpoint(model=model).restore(path)
    # The optimiser and step in the file are not needed here; every model variable is.
    status.expect_partial()
    status.assert_existing_objects_matched()
    return model, flag_values


def restore_backbone(model: MemTrack, checkpoint: str) -> str:
    """Warm-starts `model.backbone` from the model of another checkpoint (or run folder)."""
    path = resolve_checkpoint(checkpoint)
    holder = tf.train.Checkpoint(model=tf.train.Checkpoint(backbone=model.backbone))
    status = holder.restore(path)
    status.expect_partial()
    status.assert_existing_objects_matched()
    return path


class ExportedMemTrack:
    """A SavedModel export behind `MemTrack`'s tracking interface.

    It offers what `tracking.MemTracker` uses of a `MemTrack` -- `model_config`,
    `initialize(exemplar) -> state` and `step(exemplar, search, state) -> (response, state,
    diagnostics)` -- by calling the export's signatures, so the tracker runs unchanged on a
    checkpoint or on an export. Build it with `load_saved_model`.

    Attributes:
        model_config: the exported model's `ModelConfig`.
        metadata: the export's `assets.extra/memnet_tf.json`.
    """

    def __init__(self, loaded, metadata: dict):
        self._loaded = loaded  # keeps the restored variables alive
        self._initialize = loaded.signatures["initialize"]
        self._step = loaded.signatures["step"]
        self._search_step = loaded.signatures.get("search_step")
        self.metadata = metadata
        self.model_config = config_lib.model_config_from_dict(metadata["model_config"])

    def initialize(self, exemplar) -> states.MemTrackState:
        return states.from_dict(self._initialize(exemplar=exemplar))

    def step(self, exemplar, search, state):
        if exemplar is None:  # the SiamFC mode (MemTrack.step accepts None there too)
            if self.model_config.use_memory:
                raise ValueError("exemplar: None is only allowed without memory")
            if self._search_step is None:  # an export from before the search_step signature
                size = self.model_config.exemplar_size
                exemplar = tf.zeros([1, size, size, 3], tf.float32)
            else:
                outputs = self._search_step(search=search, **states.to_dict(state))
                return outputs["response"], states.from_dict(outputs), {}
        outputs = self._step(exemplar=exemplar, search=search, **states.to_dict(state))
        new_state = states.from_dict(outputs)
        diagnostics = {}
        if self.model_config.use_memory:
            # The same diagnostics as MemTrack.step: the export does not repeat the ones
            # that are also state fields.
            diagnostics = {name: outputs[name] for name in export.STEP_DIAGNOSTICS}
            diagnostics.update(read_weights=new_state.read_weights,
                               write_weights=new_state.write_weights,
                               control_gates=new_state.control_gates,
                               write_decay=new_state.write_decay)
        return outputs["response"], new_state, diagnostics


def load_saved_model(export_dir: str):
    """Loads an export of `python -m memnet_tf.export`.

    Args:
        export_dir: the SavedModel folder.

    Returns:
        `(ExportedMemTrack, TrackConfig)`: the network and the tracking configuration of the
        run it was exported from.

    Raises:
        FileNotFoundError: not a SavedModel, or one without memnet_tf's metadata.
        ValueError: unreadable metadata.
    """
    metadata = export.read_metadata(export_dir)
    loaded = tf.saved_model.load(export_dir)
    missing = {"initialize", "step"} - set(loaded.signatures)
    if missing:
        raise ValueError(f"{export_dir}: SavedModel without the signature(s) {sorted(missing)}")
    return ExportedMemTrack(loaded, metadata), run_track_config(saved_model=export_dir)
