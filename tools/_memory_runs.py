"""What the memory probes (read_selectivity.py, memory_agreement.py) share: their runs and cache."""

from __future__ import annotations

from collections.abc import Iterator

from memnet_tf import cli


def memory_runs(runs: list[str] | None, cache_dir: str | None) -> tuple[object, Iterator]:
    """(the train split's feature cache, an iterator of (run, model, the run's flag values)).

    Raises cli.UsageError when either flag is missing, there is no train-split cache, or a run
    has no memory (its model is loaded when the iterator reaches it).
    """
    if not runs or not cache_dir:
        raise cli.UsageError("--runs and --feature_cache are required")
    from memnet_tf.data import feature_cache
    from memnet_tf.models import loading

    cache = feature_cache.read_cache(cache_dir, "train")
    if cache is None:
        raise cli.UsageError(f"--feature_cache={cache_dir}: no train-split cache there")

    def models():
        for run in runs:
            model, run_flag_values = loading.load_model(run)
            if not model.model_config.use_memory:
                raise cli.UsageError(f"--runs: {run} has no memory (--nouse_memory)")
            yield run, model, run_flag_values

    return cache, models()
