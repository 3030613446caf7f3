r"""Does a memory filled by wrong writes look less like T_0 than one written right?

    python tools/memory_agreement.py --runs=runs/real_video_agree/memtrack_agree_seed0,... \
        --feature_cache=runs/aerial_data/features [--wrong_writes=shifted] [--burst=8] \
        [--max_frame_gap=0] [--batches=6]

Training clips of the cached train split are run through each MemTrack run twice: written right
(the ground truth's exemplar at every step), and with one run of `--burst` consecutive wrong
writes per clip (`--wrong_writes=shifted`: the same frame cut >= 32 px off the target, as
`--shifted_write_burst` trains with; `other_clip`: the exemplars of the next clip of the batch at
the same steps, another video's target). For every step the retrieved template
T_retr = sum_j w_r(j) M(j) is compared with T_0 by cosine over all its values, as
`--residual_agreement`'s gate sees it. Printed per run: the mean cosine at steps >= burst of the
right clips, at the last step of each wrong run and at the first right step after it, with the
mean residual gate r at each. The last line is the mean over runs of (end of a wrong run - right):
negative when the agreement can tell a memory gone wrong from a target that changed.
"""

from __future__ import annotations

import numpy as np
from absl import flags

from _memory_runs import memory_runs
from memnet_tf import cli
from memnet_tf.eval.memory_probe import agreement_after_runs

_RUNS = flags.DEFINE_list("runs", None, "MemTrack run folders (memory on).")
_CACHE = flags.DEFINE_string("feature_cache", None, "The runs' feature cache folder (train "
                             "split).")
_WRONG_WRITES = flags.DEFINE_enum("wrong_writes", "shifted", ["shifted", "other_clip"],
                                  "What a wrong write holds: the same frame cut at a wrong box, "
                                  "or another clip's exemplar.")
_BURST = flags.DEFINE_integer("burst", 8, "Length of the run of wrong writes of every clip.",
                              lower_bound=1)
_GAP = flags.DEFINE_integer("max_frame_gap", 0, "Clip frame gaps, as training's flag (0 = "
                            "frames drawn over the whole track).", lower_bound=0)
_BATCHES = flags.DEFINE_integer("batches", 6, "Batches of training clips.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 99, "Clip and wrong-write seed.")


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments: {argv[1:]}")
    cache, runs = memory_runs(_RUNS.value, _CACHE.value)
    import tensorflow as tf

    from memnet_tf.data import augment, feature_cache
    from memnet_tf.layers import addressing
    from memnet_tf.models.memtrack import cached_feature_key

    differences = []
    for run, model, run_flag_values in runs:
        cfg = model.model_config
        steps = run_flag_values.time_steps
        if _BURST.value > steps - 1:
            raise cli.UsageError(f"--burst={_BURST.value}: the run's clips have {steps} steps, "
                                 f"room for at most {steps - 1} wrong writes after step 0")
        exemplar_key = cached_feature_key("exemplar", cache.layer)
        search_key = cached_feature_key("search", cache.layer)
        clips = feature_cache.make_dataset(cache, steps, "train", _SEED.value, 8,
                                           max_frame_gap=_GAP.value)
        right = {"agreement": [], "r": []}
        groups = {"run_end": {"agreement": [], "r": []}, "after_run": {"agreement": [], "r": []}}
        for index, (features, targets) in enumerate(clips.take(_BATCHES.value)):
            exemplars = features[exemplar_key]
            if _WRONG_WRITES.value == "shifted":
                written = augment.shifted_writes(
                    exemplars, features[search_key], targets["search_box"], 1.0,
                    tf.constant([_SEED.value, index], tf.int64), cell=1,
                    exemplar_pixels=cfg.exemplar_size, burst=_BURST.value).numpy()
            else:
                written = exemplars.numpy().copy()
                others = np.roll(written, 1, axis=0)
                starts = np.random.default_rng([_SEED.value, index]).integers(
                    1, steps - _BURST.value + 1, size=written.shape[0])
                for b, start in enumerate(starts):
                    written[b, start:start + _BURST.value] = others[b, start:start + _BURST.value]
            wrong = np.any(written != exemplars.numpy(), axis=(2, 3, 4))
            per_clip = {}
            for name, clip in (("right", exemplars), ("wrong", tf.constant(written))):
                state = model.initial_state(clip[:, 0])
                agreement, gate = [], []
                for t in range(steps):
                    _, state, aux = model.recurrent_step(features[search_key][:, t], clip[:, t],
                                                         state)
                    retrieved = addressing.retrieve(state.memory, state.read_weights)
                    agreement.append(addressing.template_agreement(
                        retrieved, state.initial_template).numpy()[:, 0])
                    gate.append(aux["residual_gate"].numpy().mean(axis=-1))
                per_clip[name] = (np.stack(agreement, 1), np.stack(gate, 1))
            right["agreement"].append(per_clip["right"][0][:, _BURST.value:].ravel())
            right["r"].append(per_clip["right"][1][:, _BURST.value:].ravel())
            for quantity, values in zip(("agreement", "r"), per_clip["wrong"]):
                for group, picked in agreement_after_runs(values, wrong).items():
                    groups[group][quantity].append(picked)
        means = {"right": {q: float(np.mean(np.concatenate(v))) for q, v in right.items()}}
        counts = {"right": len(np.concatenate(right["agreement"]))}
        for group, quantities in groups.items():
            means[group] = {q: float(np.mean(np.concatenate(v))) for q, v in quantities.items()}
            counts[group] = len(np.concatenate(quantities["agreement"]))
        differences.append(means["run_end"]["agreement"] - means["right"]["agreement"])
        print(f"{run}: cos(T_retr, T_0) / mean r: right writes (steps >= {_BURST.value}, "
              f"{counts['right']}) {means['right']['agreement']:.3f} / {means['right']['r']:.3f};"
              f" end of {_BURST.value} {_WRONG_WRITES.value} wrong writes ({counts['run_end']}) "
              f"{means['run_end']['agreement']:.3f} / {means['run_end']['r']:.3f}; first right "
              f"write after ({counts['after_run']}) {means['after_run']['agreement']:.3f} / "
              f"{means['after_run']['r']:.3f}")
    how = f"mean of {len(differences)} runs" if len(differences) > 1 else "1 run"
    print(f"headline: cos(T_retr, T_0) at the end of {_BURST.value} {_WRONG_WRITES.value} wrong "
          f"writes - with right writes = {np.mean(differences):+.3f} ({how}; < 0: the agreement "
          "tells a memory gone wrong from a target that changed)")


if __name__ == "__main__":
    cli.run(main, "memory_agreement", tool=True)
