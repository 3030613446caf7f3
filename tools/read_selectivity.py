r"""Does a trained memory read avoid slots that hold the wrong object?

    python tools/read_selectivity.py --runs=runs/real_video/memtrack_seed0,... \
        --feature_cache=runs/aerial_data/features [--probability=0.3] [--batches=6]

Training clips of the cached train split are run through each MemTrack run with their written
exemplars corrupted, with probability q and the same corruption for every run, as
`--corrupt_write_prob` does (`--wrong_writes=other_clip`, `augment.corrupt_writes`: another clip's
exemplar) or as `--shifted_write_prob` does (`--wrong_writes=shifted`, `augment.shifted_writes`:
the same frame cut >= 32 px off the target). The slot each step writes is the
argmax of the previous step's write weights (the controller allocates or overwrites one slot at a
time in practice), so after step t every filled slot is known to hold a right or a wrong exemplar.
For every step with both kinds in the memory the read's mass on the wrong slots is compared with
their share of the filled slots: a ratio of 1 means the read does not look at what a slot holds
(a soft average of the queue), 0 that it never reads a wrong slot. The last line is the mean ratio
over the runs (with their spread and every run's ratio).
"""

from __future__ import annotations

import numpy as np
from absl import flags

from _memory_runs import memory_runs
from memnet_tf import cli
from memnet_tf.eval.memory_probe import selectivity_headline, wrong_read_share

_RUNS = flags.DEFINE_list("runs", None, "MemTrack run folders (memory on).")
_CACHE = flags.DEFINE_string("feature_cache", None, "The runs' feature cache folder (train "
                             "split).")
_PROBABILITY = flags.DEFINE_float("probability", 0.3, "Probability q of a wrong write.",
                                  lower_bound=0.0, upper_bound=1.0)
_WRONG_WRITES = flags.DEFINE_enum("wrong_writes", "other_clip", ["other_clip", "shifted"],
                                  "What a wrong write holds: another clip's exemplar, or the "
                                  "same frame cut at a wrong box.")
_BATCHES = flags.DEFINE_integer("batches", 6, "Batches of training clips.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 99, "Clip and corruption seed.")


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments: {argv[1:]}")
    cache, runs = memory_runs(_RUNS.value, _CACHE.value)
    import tensorflow as tf

    from memnet_tf.data import augment, feature_cache
    from memnet_tf.models.memtrack import cached_feature_key

    ratios, skipped = [], 0
    for run, model, run_flag_values in runs:
        cfg = model.model_config
        key = cached_feature_key("exemplar", cache.layer)
        clips = feature_cache.make_dataset(cache, run_flag_values.time_steps, "train",
                                           _SEED.value, 8)
        masses, shares = [], []
        for index, (features, targets) in enumerate(clips.take(_BATCHES.value)):
            seed = tf.constant([_SEED.value, index], tf.int64)
            if _WRONG_WRITES.value == "shifted":
                written = augment.shifted_writes(
                    features[key], features[cached_feature_key("search", cache.layer)],
                    targets["search_box"], _PROBABILITY.value, seed, cell=1,
                    exemplar_pixels=cfg.exemplar_size)
            else:
                written = augment.corrupt_writes(features[key], _PROBABILITY.value, seed)
            wrong = np.any(written.numpy() != features[key].numpy(), axis=(2, 3, 4))
            outputs = model({**features, key: written}, training=False)
            mass, share = wrong_read_share(outputs["read_weights"].numpy(),
                                           outputs["write_weights"].numpy(), wrong)
            masses.append(mass)
            shares.append(share)
        mass, share = np.concatenate(masses), np.concatenate(shares)
        if not len(mass):
            print(f"{run}: no step held right and wrong slots together; raise --probability")
            skipped += 1
            continue
        ratios.append(mass.mean() / share.mean())
        print(f"{run}: {len(mass)} steps with right and wrong slots; read mass on wrong slots "
              f"{mass.mean():.3f} vs their share of the filled slots {share.mean():.3f}: "
              f"ratio {ratios[-1]:.2f}")
    if ratios:
        print(selectivity_headline(ratios, _WRONG_WRITES.value, skipped))
    else:
        print(f"headline: no run had a step with right and wrong slots ({skipped} run(s)); "
              "raise --probability")


if __name__ == "__main__":
    cli.run(main, "read_selectivity", tool=True)
