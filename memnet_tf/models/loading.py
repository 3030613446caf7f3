"""Rebuilding a trained model from a run folder or checkpoint (`--checkpoint=`)."""

from __future__ import annotations

import os

import tensorflow as tf

from memnet_tf import config as config_lib
from memnet_tf import flags as memnet_flags
from memnet_tf.models.memtrack import MemTrack, build_model


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
