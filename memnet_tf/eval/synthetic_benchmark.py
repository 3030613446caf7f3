"""Held-out synthetic benchmark run at the end of training: our tracker vs "the box never moves".

`evaluate_after_training` writes held-out synthetic videos in OTB layout to `<model_dir>/heldout`,
tracks them with `MemTracker` and with `StaticBoxTracker` (one-pass evaluation), scores both
with the OTB protocol, prints a table and the line

    held-out synthetic: success_auc=0.xxx (static box baseline 0.yyy, margin +0.zzz)

and writes the numbers to `<model_dir>/heldout_eval.json`. Results files go to
`<model_dir>/heldout_results/<tracker>/` and are replaced on every call, since the model changes
between calls.
"""

from __future__ import annotations

import json
import os
import shutil

from memnet_tf import config as config_lib
from memnet_tf.eval import baselines, datasets, ope, report

HELDOUT_FOLDER = "heldout"
RESULTS_FOLDER = "heldout_results"
JSON_NAME = "heldout_eval.json"
# The synthetic "test" index range: disjoint from every training and validation video whatever
# the seed (`data.synthetic.SPLIT_INDEX_BASE`).
HELDOUT_SPLIT = "test"


class _MemTrackerFactory:
    """Zero-argument factory for `ope.run_ope` around an in-memory model (single process)."""

    def __init__(self, model, track_config: config_lib.TrackConfig):
        self.model = model
        self.track_config = track_config

    def __call__(self):
        from memnet_tf.tracking.tracker import MemTracker

        return MemTracker(self.model, self.track_config)  # named by what the model is


def summary_line(success_auc: float, baseline_auc: float) -> str:
    """`held-out synthetic: success_auc=0.xxx (static box baseline 0.yyy, margin +0.zzz)`."""
    return (f"held-out synthetic: success_auc={success_auc:.3f} (static box baseline "
            f"{baseline_auc:.3f}, margin {success_auc - baseline_auc:+.3f})")


def evaluate_after_training(model, model_cfg: config_lib.ModelConfig,
                            data_cfg: config_lib.DataConfig,
                            track_cfg: config_lib.TrackConfig, model_dir: str,
                            num_sequences: int, printer=print) -> dict:
    """Tracks held-out synthetic sequences with the trained model and the static-box baseline.

    The sequences are `data.synthetic.write_otb_sequences(<model_dir>/heldout, num_sequences,
    seed=data_cfg.seed, frame_size=data_cfg.synthetic_frame_size,
    length=data_cfg.synthetic_sequence_length, split="test")`: the "test" index range never
    overlaps the training or validation videos, whatever the seed.

    Args:
        model: the trained `MemTrack`.
        model_cfg: its configuration (recorded in the JSON).
        data_cfg: gives the seed, frame size and sequence length of the synthetic videos.
        track_cfg: tracking hyper-parameters.
        model_dir: the run folder; outputs go under it.
        num_sequences: how many held-out sequences (>= 1).
        printer: where the table and the summary line go.

    Returns:
        `{"success_auc", "precision", "baseline_success_auc", "baseline_precision", "margin",
        "num_sequences", "fps", "failed"}` (`failed`: sequence -> message).

    Raises:
        ValueError: `num_sequences` < 1, or no sequence could be scored.
        ImportError: `memnet_tf.data.synthetic` is missing.
    """
    if num_sequences < 1:
        raise ValueError(f"num_sequences={num_sequences}: expected >= 1")
    from memnet_tf.data import synthetic

    heldout_dir = os.path.join(model_dir, HELDOUT_FOLDER)
    results_dir = os.path.join(model_dir, RESULTS_FOLDER)
    # Sequences of an earlier call (more of them, other sizes) would otherwise be scored too;
    # the folder is this function's own and is regenerated deterministically.
    shutil.rmtree(heldout_dir, ignore_errors=True)
    synthetic.write_otb_sequences(
        heldout_dir, num_sequences, seed=data_cfg.seed,
        frame_size=data_cfg.synthetic_frame_size, length=data_cfg.synthetic_sequence_length,
        split=HELDOUT_SPLIT)
    sequences = datasets.load_dataset("synthetic", root=heldout_dir)
    # Stale results of an earlier model would otherwise be "resumed" by run_ope; the folder
    # is this function's own.
    shutil.rmtree(results_dir, ignore_errors=True)
    from memnet_tf.tracking.tracker import default_tracker_name

    ours_name = default_tracker_name(model_cfg)  # "MemTrack", or "SiamFC-mode" without memory
    failed = {}
    for factory, name in ((_MemTrackerFactory(model, track_cfg), ours_name),
                          (baselines.StaticBoxTracker, baselines.StaticBoxTracker.name)):
        run = ope.run_ope(factory, sequences, results_dir, name, progress=False)
        failed.update({f"{name}/{seq}": message for seq, message in run["failed"].items()})

    # Both trackers are scored on the same sequences: a sequence one of them failed would
    # otherwise leave one average and not the other, and bias the margin.
    failed_names = {key.split("/", 1)[1] for key in failed}
    scored = [sequence for sequence in sequences if sequence.name not in failed_names]
    scores = report.score_results(scored, results_dir,
                                  [ours_name, baselines.StaticBoxTracker.name],
                                  protocol=report.DATASET_PROTOCOLS["synthetic"])
    ours = scores["trackers"][ours_name]["overall"]
    baseline = scores["trackers"][baselines.StaticBoxTracker.name]["overall"]
    if not scored or ours is None or baseline is None:
        raise ValueError(f"{heldout_dir}: no held-out sequence could be scored: {failed}")
    # The static box computes nothing: its "speed" (~300k fps) says nothing; the table shows n/a.
    baseline["fps"] = None
    result = {
        "success_auc": ours["success_auc"],
        "precision": ours["precision"],
        "baseline_success_auc": baseline["success_auc"],
        "baseline_precision": baseline["precision"],
        "margin": ours["success_auc"] - baseline["success_auc"],
        "num_sequences": scores["trackers"][ours_name]["num_sequences"],
        "fps": ours["fps"],
        "failed": failed,
    }
    printer(report.format_table(scores))
    for message in failed.values():
        printer(f"  failed: {message}")
    printer(summary_line(result["success_auc"], result["baseline_success_auc"]))
    record = dict(result, heldout_dir=heldout_dir, seed=data_cfg.seed, split=HELDOUT_SPLIT,
                  frame_size=data_cfg.synthetic_frame_size,
                  sequence_length=data_cfg.synthetic_sequence_length,
                  configs=json.loads(config_lib.to_json({"model": model_cfg, "track": track_cfg})))
    config_lib.write_atomically(os.path.join(model_dir, JSON_NAME),
                                json.dumps(record, indent=2) + "\n")
    return result
