"""One argument for "a trained tracker": a run folder, a checkpoint prefix or an export folder."""

from __future__ import annotations

import os

from memnet_tf.tracking import tracker as tracker_lib


def is_export(path: str) -> bool:
    """True for a SavedModel folder (our `export`), False for a run folder or checkpoint."""
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def factory_for(path: str, name: str | None = None, track_config=None
                ) -> tracker_lib.TrackerFactory:
    """The `TrackerFactory` of `path`, an export or a run/checkpoint; `name` None = what the
    model is ("MemTrack" or "SiamFC-mode", `tracker.default_tracker_name`)."""
    if not path:
        raise ValueError("give a run folder, checkpoint prefix or export folder")
    return tracker_lib.TrackerFactory(**_source_of(path), track_config=track_config, name=name)


def tracker_name_of(path: str) -> str:
    """"MemTrack" or "SiamFC-mode" for the model at `path` (run, checkpoint or export), read
    from its configuration without loading the weights."""
    from memnet_tf.models import loading

    return tracker_lib.default_tracker_name(loading.run_model_config(**_source_of(path)))


def _source_of(path: str) -> dict:
    """`{"checkpoint": path}` or `{"saved_model": path}`, the keywords of the model loaders."""
    return {"saved_model": path} if is_export(path) else {"checkpoint": path}
