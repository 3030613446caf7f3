"""SiamFC mode on real video: FDSiamFC-30 weights tracked over otb_mini and vot_bag, per sequence.

    python benchmarks/siamfc_otb_mini.py [--checkpoint=RUN_DIR] [--results_dir=DIR]
        [--sequences=Crossing,vot_bag] [--max_frames=N]

Without `--checkpoint` the FDSiamFC-30 weights (`<shared>/weights/fdsiamfc30/FDSiamfc_30.npz`)
are imported with `experiments/siamfc_fdsiamfc30.flags` into a temporary run folder, exactly as
`tools/import_weights.py` does. The tracking hyper-parameters are those in the run's flags.txt.
Every sequence of `<shared>/data/otb_mini` (Jogging's two targets are two sequences) and
`<shared>/data/vot_bag` is tracked one-pass (OPE) with `MemTracker` and with the static-box
baseline, and scored with the OTB protocol (`eval.report`; VOT polygons as area-preserving
axis-aligned boxes).

Printed: the machine (`nproc`, CPU model) and date, then one row per sequence: frames, success
AUC, precision at 20 px, the static box's AUC, fps (frames after the first divided by their
tracking time; the first frame also traces the tf.function), and whether the tracker beats the
static box by at least `TRACKS_MARGIN` AUC. The last line is the headline: mean success AUC.
`<shared>` is $MEMNET_SHARED_DIR or `../shared` beside the repository.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from _machine import cpu_model, import_tensorflow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGFILE = "experiments/siamfc_fdsiamfc30.flags"
WEIGHTS = os.path.join("weights", "fdsiamfc30", "FDSiamfc_30.npz")
TRACKER_NAME = "SiamFC-FDSiamFC30"
# "It tracks" = its success AUC beats the box that never moves by at least this much.
TRACKS_MARGIN = 0.1


def _shared_dir() -> str:
    return os.environ.get("MEMNET_SHARED_DIR", os.path.join(os.path.dirname(REPO), "shared"))




def _num_cpus() -> int:
    """What `nproc` prints: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 0


def import_fdsiamfc30(weights: str, output_dir: str) -> str:
    """Imports the weights with the experiment flagfile into `output_dir`; returns the folder."""
    from absl import flags  # pylint: disable=import-outside-toplevel

    from memnet_tf import config as config_lib  # pylint: disable=import-outside-toplevel
    from memnet_tf import flags as memnet_flags  # pylint: disable=import-outside-toplevel
    from memnet_tf.models import weights as weights_lib  # pylint: disable=import-outside-toplevel
    from memnet_tf.models.memtrack import build_model  # pylint: disable=import-outside-toplevel

    flag_values = flags.FlagValues()
    memnet_flags.define_flags(flag_values)
    # The flagfile includes experiments/paper.flags by a path relative to the repository.
    flag_values(["siamfc_otb_mini", f"--flagfile={os.path.join(REPO, FLAGFILE)}"])
    model = build_model(config_lib.model_config_from_flags(flag_values))
    weights_lib.import_siamfc_weights(model, weights_lib.load_state_dict(weights),
                                      source=weights)
    weights_lib.write_run_folder(model, output_dir, flag_values,
                                 metadata={"weights": os.path.abspath(weights),
                                           "sha256": weights_lib.file_sha256(weights)})
    return output_dir


def load_sequences(shared: str, names: list[str] | None, max_frames: int | None):
    """otb_mini and vot_bag as `(dataset, Sequence)` pairs, optionally filtered and truncated."""
    import dataclasses  # pylint: disable=import-outside-toplevel

    from memnet_tf.eval.datasets import load_dataset  # pylint: disable=import-outside-toplevel

    data = os.path.join(shared, "data")
    pairs = [("otb_mini", s) for s in load_dataset("otb100", os.path.join(data, "otb_mini"))]
    pairs += [("vot_bag", s) for s in load_dataset("vot", os.path.join(data, "vot_bag"))]
    if names:
        unknown = set(names) - {s.name for _, s in pairs}
        if unknown:
            raise ValueError(f"--sequences: unknown {sorted(unknown)}; known "
                             f"{[s.name for _, s in pairs]}")
        pairs = [(d, s) for d, s in pairs if s.name in names]
    if max_frames:
        pairs = [(d, dataclasses.replace(
            s, image_files=s.image_files[:max_frames], ground_truth=s.ground_truth[:max_frames],
            valid=s.valid[:max_frames],
            annotation_lines=None if s.annotation_lines is None else
            s.annotation_lines[:max_frames],
            polygons=None if s.polygons is None else s.polygons[:max_frames]))
            for d, s in pairs]
    return pairs


def format_rows(rows: list[dict]) -> str:
    """A fixed-width table of per-sequence results."""
    columns = (("dataset", "{}"), ("sequence", "{}"), ("frames", "{}"), ("AUC", "{:.3f}"),
               ("prec@20", "{:.3f}"), ("static AUC", "{:.3f}"), ("fps", "{:.1f}"),
               ("tracks", "{}"))
    cells = [[fmt.format(row[name]) for name, fmt in columns] for row in rows]
    widths = [max(len(name), *(len(c[i]) for c in cells)) for i, (name, _) in enumerate(columns)]

    def line(values):
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line([name for name, _ in columns]), rule] + [line(c) for c in cells])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--checkpoint", default="",
                        help="run folder to track with (default: import FDSiamFC-30 afresh)")
    parser.add_argument("--weights", default="", help=f"default <shared>/{WEIGHTS}")
    parser.add_argument("--results_dir", default="",
                        help="keep results here (complete sequences are reused; default: a "
                             "temporary folder)")
    parser.add_argument("--sequences", default="", help="comma-separated names (default: all)")
    parser.add_argument("--max_frames", type=int, default=0,
                        help="track only the first N frames of every sequence (0 = all)")
    parser.add_argument("--verbose", action="store_true",
                        help="keep TensorFlow's own log lines")
    args = parser.parse_args(argv)

    sys.path.insert(0, REPO)
    tf = import_tensorflow(args.verbose)
    import numpy as np  # pylint: disable=import-outside-toplevel

    from memnet_tf.eval import ope, report  # pylint: disable=import-outside-toplevel
    from memnet_tf.eval.baselines import StaticBoxTracker  # pylint: disable=import-outside-toplevel
    from memnet_tf.tracking.tracker import TrackerFactory  # pylint: disable=import-outside-toplevel

    shared = _shared_dir()
    names = [n for n in args.sequences.split(",") if n] or None
    try:
        pairs = load_sequences(shared, names, args.max_frames or None)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    with tempfile.TemporaryDirectory(prefix="siamfc_otb_mini-") as scratch:
        checkpoint = args.checkpoint
        if not checkpoint:
            weights = args.weights or os.path.join(shared, WEIGHTS)
            checkpoint = import_fdsiamfc30(weights, os.path.join(scratch, "fdsiamfc30"))
        results_dir = args.results_dir or os.path.join(scratch, "results")
        factory = TrackerFactory(checkpoint=checkpoint, name=TRACKER_NAME)
        rows = []
        for dataset, sequence in pairs:
            for tracker_factory, name in ((factory, TRACKER_NAME),
                                          (StaticBoxTracker, StaticBoxTracker.name)):
                outcome = ope.run_ope(tracker_factory, [sequence], results_dir, name,
                                      progress=False)
                if outcome["failed"]:
                    raise RuntimeError(f"{name} failed: {outcome['failed']}")
            ours = report.score_tracker([sequence], results_dir, TRACKER_NAME)["overall"]
            static = report.score_tracker([sequence], results_dir,
                                          StaticBoxTracker.name)["overall"]
            fps = ope.steady_fps(report.read_times(results_dir, TRACKER_NAME, sequence.name))
            rows.append({"dataset": dataset, "sequence": sequence.name,
                         "frames": sequence.num_frames, "AUC": ours["success_auc"],
                         "prec@20": ours["precision"], "static AUC": static["success_auc"],
                         "fps": fps,
                         "tracks": "yes" if ours["success_auc"] - static["success_auc"]
                         >= TRACKS_MARGIN else "NO"})
            print(f"{sequence.name}: AUC {ours['success_auc']:.3f}, {fps:.1f} fps",
                  file=sys.stderr, flush=True)

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    subset = (f" ({len(rows)} of their sequences: {', '.join(r['sequence'] for r in rows)})"
              if names else "")
    print(f"# SiamFC mode (FDSiamFC-30, {FLAGFILE}) on otb_mini (6 of OTB-100's targets) + "
          f"vot_bag{subset}")
    print(f"# date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; "
          f"nproc {_num_cpus()}; CPU {cpu_model()}; load average {load} (shared machine); "
          f"TensorFlow {tf.__version__}; "
          f"checkpoint {args.checkpoint or 'imported afresh'}"
          + (f"; first {args.max_frames} frames" if args.max_frames else ""))
    print(format_rows(rows))
    frames = sum(r["frames"] for r in rows)
    mean_fps = frames / sum(r["frames"] / r["fps"] for r in rows)
    print(f"mean over {len(rows)} sequences: AUC {np.mean([r['AUC'] for r in rows]):.3f}, "
          f"prec@20 {np.mean([r['prec@20'] for r in rows]):.3f}, static-box AUC "
          f"{np.mean([r['static AUC'] for r in rows]):.3f}; {frames} frames at "
          f"{mean_fps:.1f} fps")
    print(f"headline: mean success AUC {np.mean([r['AUC'] for r in rows]):.3f}")
    return 0 if all(r["tracks"] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
