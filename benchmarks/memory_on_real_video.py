"""What the memory adds on real video: MemTrack vs SiamFC mode on the same pretrained backbone.

    python benchmarks/memory_on_real_video.py [--memtrack_checkpoint=runs/memtrack_fdsiamfc30]
        [--siamfc_checkpoint=runs/fdsiamfc30] [--sequences=Crossing,vot_bag] [--max_frames=N]

Both run folders must share the backbone (experiments/memtrack_fdsiamfc30.flags warm-starts
from, and freezes, the one imported by experiments/siamfc_fdsiamfc30.flags), the response head
and the tracking hyper-parameters, so the only difference is the template: T_0 alone, or
T_0 + r (.) T_retr from the memory. Every sequence of `<shared>/data/otb_mini` and
`<shared>/data/vot_bag` is tracked one-pass by both and scored with the OTB protocol.

Besides success AUC and precision, the MemTrack rows summarise the memory's behaviour at the
winning scale, averaged over the frames of the sequence:
- gates: mean control gates (skip, overwrite the slot read, write to a new slot);
- r: mean channel-wise residual gate;
- |rT|/|T0|: the norm of the residual r (.) T_retr relative to the first-frame template T_0 —
  how far the final template moves from the anchor;
- max w_r: mean of the largest read weight (1 = reads one slot, 1/N = reads all equally).
The last line is the headline: the mean AUC difference, MemTrack - SiamFC mode.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile

from _machine import cpu_model
from siamfc_otb_mini import _num_cpus, _shared_dir, load_sequences, steady_fps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RecordingTracker:
    """A MemTracker that keeps per-frame summaries of its memory diagnostics."""

    def __init__(self, tracker):
        self.tracker = tracker
        self.name = tracker.name
        self.records = []

    def init(self, image, box):
        self.tracker.init(image, box)

    def update(self, image):
        import numpy as np  # pylint: disable=import-outside-toplevel

        box = self.tracker.update(image)
        diagnostics = self.tracker.debug.get("diagnostics") or {}
        if "read_weights" in diagnostics:
            state = self.tracker.state  # the winner's state, tiled over the scales
            read = diagnostics["read_weights"]
            gate = diagnostics["residual_gate"]
            retrieved = np.einsum("n,nhwc->hwc", read, state.memory[0].numpy())
            anchor = state.initial_template[0].numpy()
            self.records.append({
                "gates": diagnostics["control_gates"],
                "r": float(gate.mean()),
                "residual_ratio": float(np.linalg.norm(gate * retrieved)
                                        / max(np.linalg.norm(anchor), 1e-12)),
                "max_read": float(read.max()),
            })
        return box


def summarise(records):
    import numpy as np  # pylint: disable=import-outside-toplevel

    if not records:
        return {"gates": "-", "r": "-", "|rT|/|T0|": "-", "max w_r": "-"}
    gates = np.mean([r["gates"] for r in records], axis=0)
    return {
        "gates": "/".join(f"{g:.2f}" for g in gates),
        "r": f"{np.mean([r['r'] for r in records]):.3f}",
        "|rT|/|T0|": f"{np.mean([r['residual_ratio'] for r in records]):.3f}",
        "max w_r": f"{np.mean([r['max_read'] for r in records]):.2f}",
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--memtrack_checkpoint", default="runs/memtrack_fdsiamfc30")
    parser.add_argument("--siamfc_checkpoint", default="runs/fdsiamfc30")
    parser.add_argument("--sequences", default="", help="comma-separated names (default: all)")
    parser.add_argument("--max_frames", type=int, default=0,
                        help="track only the first N frames of every sequence (0 = all)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, REPO)
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from memnet_tf.eval import ope, report  # pylint: disable=import-outside-toplevel
    from memnet_tf.tracking.tracker import TrackerFactory  # pylint: disable=import-outside-toplevel

    for path in (args.memtrack_checkpoint, args.siamfc_checkpoint):
        if not os.path.isdir(path):
            parser.error(f"{path}: run folder not found (see this script's docstring)")
    names = [n for n in args.sequences.split(",") if n] or None
    try:
        pairs = load_sequences(_shared_dir(), names, args.max_frames or None)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    siamfc = TrackerFactory(checkpoint=args.siamfc_checkpoint, name="SiamFC")
    memtrack = TrackerFactory(checkpoint=args.memtrack_checkpoint, name="MemTrack")
    rows = []
    with tempfile.TemporaryDirectory(prefix="memory_on_real_video-") as results_dir:
        for dataset, sequence in pairs:
            recorders = []

            def recording_factory():
                recorders.append(RecordingTracker(memtrack()))
                return recorders[-1]

            scores = {}
            for factory, name in ((siamfc, "SiamFC"), (recording_factory, "MemTrack")):
                outcome = ope.run_ope(factory, [sequence], results_dir, name, progress=False)
                if outcome["failed"]:
                    raise RuntimeError(f"{name} failed: {outcome['failed']}")
                scores[name] = report.score_tracker([sequence], results_dir, name)["overall"]
            fps = steady_fps(report.read_times(results_dir, "MemTrack", sequence.name))
            rows.append({"sequence": sequence.name, "frames": sequence.num_frames,
                         "SiamFC AUC": scores["SiamFC"]["success_auc"],
                         "MemTrack AUC": scores["MemTrack"]["success_auc"],
                         "SiamFC prec": scores["SiamFC"]["precision"],
                         "MemTrack prec": scores["MemTrack"]["precision"],
                         "fps": fps, **summarise(recorders[-1].records)})
            print(f"{sequence.name}: SiamFC {scores['SiamFC']['success_auc']:.3f}, MemTrack "
                  f"{scores['MemTrack']['success_auc']:.3f}", file=sys.stderr, flush=True)

    print("# MemTrack vs SiamFC mode on the same FDSiamFC-30 backbone, otb_mini + vot_bag")
    print(f"# date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; "
          f"nproc {_num_cpus()}; CPU {cpu_model()}; TensorFlow {tf.__version__}; "
          f"memtrack {args.memtrack_checkpoint}; siamfc {args.siamfc_checkpoint}"
          + (f"; first {args.max_frames} frames" if args.max_frames else ""))
    columns = ["sequence", "frames", "SiamFC AUC", "MemTrack AUC", "SiamFC prec",
               "MemTrack prec", "fps", "gates", "r", "|rT|/|T0|", "max w_r"]

    def cell(value):
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        print("| " + " | ".join(cell(row[c]) for c in columns) + " |")
    delta = np.mean([r["MemTrack AUC"] - r["SiamFC AUC"] for r in rows])
    print(f"mean AUC: SiamFC {np.mean([r['SiamFC AUC'] for r in rows]):.3f}, MemTrack "
          f"{np.mean([r['MemTrack AUC'] for r in rows]):.3f}")
    print(f"headline: mean AUC difference MemTrack - SiamFC = {delta:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
