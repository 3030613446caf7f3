"""What the memory adds on real video: trained variants tracked on the same unseen sequences.

    python benchmarks/memory_on_real_video.py --experiment_dir=runs/real_video
    python benchmarks/memory_on_real_video.py --runs=memtrack_seed0:DIR,no_memory_seed0:DIR
        [--siamfc_checkpoint=runs/fdsiamfc30] [--sequences=Crossing,vot_bag] [--max_frames=N]
        [--sequence_set=test|aerial_val] [--results_dir=DIR]
        [--memory_write_interval=N] [--memory_write_min_psr=PSR]

Runs are named `<variant>_seed<k>` (what tools/real_video_experiment.py writes); with
`--experiment_dir` every such sub-folder holding a checkpoint is taken. Each run, SiamFC mode
(FDSiamFC-30 as published, imported afresh unless `--siamfc_checkpoint`) and the static box are
tracked one-pass over every sequence of `<shared>/data/otb_mini` (6 targets) and
`<shared>/data/vot_bag` (`--sequence_set=test`, the default), or over the aerial validation
sequences (`aerial_val`; training-side data, used to choose between recipes), and scored with the
OTB protocol.

Printed: per run and sequence, success AUC and precision at 20 px and, for memory runs, the
memory's behaviour at the winning scale averaged over frames:
- gates: mean control gates (skip, overwrite the slot read, write to a new slot);
- r: mean channel-wise residual gate;
- |rT|/|T0|: norm of the residual r (.) T_retr relative to the first-frame template T_0;
- max w_r: mean of the largest read weight (1 = reads one slot, 1/N = reads all equally);
- writes: the fraction of frames that wrote the memory (1 unless `--memory_write_interval` or
  `--memory_write_min_psr` space or refuse writes).
Then per variant the mean over sequences, and over seeds its mean and spread (sample standard
deviation; for one seed none). The last line is the headline: MemTrack minus its no-memory twin,
paired by seed, mean and spread over the seeds both have.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import re
import sys
import tempfile
import textwrap

from _machine import cpu_model, import_tensorflow
from siamfc_otb_mini import _num_cpus, _shared_dir, import_fdsiamfc30, load_sequences

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_NAME = re.compile(r"^(?P<variant>[A-Za-z0-9_]+?)_seed(?P<seed>\d+)$")
FULL, TWIN = "memtrack", "no_memory"
AERIAL_VAL = ("boat1", "person11", "wakeboard10")
SIAMFC, STATIC = "siamfc_mode", "static_box"


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

        from memnet_tf.layers import addressing  # pylint: disable=import-outside-toplevel

        box = self.tracker.update(image)
        diagnostics = self.tracker.debug.get("diagnostics") or {}
        if "read_weights" in diagnostics:
            state = self.tracker.state  # the winner's state, tiled over the scales
            read = np.asarray(diagnostics["read_weights"])
            gate = np.asarray(diagnostics["residual_gate"])
            retrieved = np.einsum("n,nhwc->hwc", read, np.asarray(state.memory[0]))
            anchor = np.asarray(state.initial_template[0])
            # cos(T_retr, T_0), as the agreement gate sees it: does the memory still hold the
            # target as first seen, or what the tracker wrote after losing it?
            agreement = float(addressing.template_agreement(retrieved[None], anchor[None])[0, 0])
            self.records.append({
                "gates": np.asarray(diagnostics["control_gates"]),
                "r": float(gate.mean()),
                "residual_ratio": float(np.linalg.norm(gate * retrieved)
                                        / max(np.linalg.norm(anchor), 1e-12)),
                "max_read": float(read.max()),
                "agreement": agreement,
                "wrote": bool(self.tracker.debug.get("wrote_memory", True)),
            })
        return box


def summarise(records) -> dict:
    import numpy as np  # pylint: disable=import-outside-toplevel

    if not records:
        return {"gates": "-", "r": "-", "|rT|/|T0|": "-", "cos(Tr,T0)": "-", "max w_r": "-",
                "writes": "-"}
    gates = np.mean([r["gates"] for r in records], axis=0)
    return {
        "gates": "/".join(f"{g:.2f}" for g in gates),
        "r": f"{np.mean([r['r'] for r in records]):.3f}",
        "|rT|/|T0|": f"{np.mean([r['residual_ratio'] for r in records]):.3f}",
        "cos(Tr,T0)": (f"{np.mean([r['agreement'] for r in records]):.2f}"
                       if all("agreement" in r for r in records) else "-"),
        "max w_r": f"{np.mean([r['max_read'] for r in records]):.2f}",
        "writes": f"{np.mean([r.get('wrote', True) for r in records]):.2f}",
    }


def memory_columns(results_dir: str, name: str, sequence: str, records) -> dict:
    """The memory columns of one tracked sequence, kept beside its results file: a sequence
    whose results are reused (an interrupted run resumed) shows the diagnostics it was
    tracked with, not "-". The per-frame r (mean over channels), cos(T_retr, T_0) and writes go
    to `<sequence>_memory_frames.json` beside it (frame 1 first: frame 0 is the initial box)."""
    import json  # pylint: disable=import-outside-toplevel

    path = os.path.join(results_dir, name, f"{sequence}_memory.json")
    if records is None:  # not tracked now: results reused
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        return summarise([])
    columns = summarise(records)
    if records:
        frames = {"r": [r["r"] for r in records],
                  "agreement": [r.get("agreement") for r in records],
                  "wrote": [r.get("wrote", True) for r in records]}
        for target, content in ((path.replace("_memory.json", "_memory_frames.json"), frames),
                                (path, columns)):
            with open(target + ".tmp", "w", encoding="utf-8") as f:
                json.dump(content, f)
            os.replace(target + ".tmp", target)
    return columns


def discover_runs(experiment_dir: str) -> dict[str, str]:
    """`<variant>_seed<k>` sub-folders of `experiment_dir` that hold a checkpoint."""
    if not os.path.isdir(experiment_dir):
        raise FileNotFoundError(f"--experiment_dir={experiment_dir!r}: folder not found")
    runs = {}
    for name in sorted(os.listdir(experiment_dir)):
        path = os.path.join(experiment_dir, name)
        if RUN_NAME.match(name) and os.path.isfile(os.path.join(path, "checkpoint")):
            runs[name] = path
    if not runs:
        raise FileNotFoundError(f"--experiment_dir={experiment_dir!r}: no <variant>_seed<k> run "
                                "folder with a checkpoint")
    return runs


def parse_runs(text: str) -> dict[str, str]:
    """`name:DIR,name:DIR` -> {name: DIR}; names must look like `<variant>_seed<k>`."""
    runs = {}
    for item in filter(None, text.split(",")):
        name, sep, path = item.partition(":")
        if not sep or not RUN_NAME.match(name):
            raise ValueError(f"--runs: {item!r} is not <variant>_seed<k>:DIR")
        if not os.path.isdir(path):
            raise FileNotFoundError(f"--runs: {path!r}: run folder not found")
        runs[name] = path
    return runs


def aerial_val_sequences(shared: str, names=AERIAL_VAL):
    """The aerial validation sequences (OTB layout) as `(dataset, Sequence)` pairs."""
    from memnet_tf.eval.datasets import read_otb  # pylint: disable=import-outside-toplevel

    root = os.path.join(shared, "data", "aerial_half")
    wanted = {n.lower() for n in names}
    sequences = [s for s in read_otb(root) if s.name.split(".")[0].lower() in wanted]
    if len(sequences) != len(wanted):
        raise FileNotFoundError(f"{root}: expected the sequences {sorted(wanted)}")
    return [("aerial_val", s) for s in sorted(sequences, key=lambda s: s.name)]


def track_all(trackers: dict, pairs, results_dir: str, log=None) -> list[dict]:
    """Tracks every (name -> factory) over every sequence; one row per (tracker, sequence)."""
    from memnet_tf.eval import ope, report  # pylint: disable=import-outside-toplevel

    rows = []
    for name, factory in trackers.items():
        for dataset, sequence in pairs:
            recorders = []

            def recording_factory(factory=factory, recorders=recorders):
                tracker = factory()
                if hasattr(tracker, "debug"):
                    tracker = RecordingTracker(tracker)
                    recorders.append(tracker)
                return tracker

            outcome = ope.run_ope(recording_factory, [sequence], results_dir, name,
                                  progress=False)
            if outcome["failed"]:
                raise RuntimeError(f"{name} failed on {sequence.name}: {outcome['failed']}")
            score = report.score_tracker([sequence], results_dir, name)["overall"]
            times = report.read_times(results_dir, name, sequence.name)
            memory = memory_columns(results_dir, name, sequence.name,
                                    recorders[-1].records if recorders else None)
            rows.append({"run": name, "dataset": dataset, "sequence": sequence.name,
                         "frames": sequence.num_frames, "AUC": score["success_auc"],
                         "prec": score["precision"],
                         # The static box does no work: its "speed" means nothing.
                         "fps": ope.steady_fps(times) if len(times) > 1 and name != STATIC
                         else "-",
                         **memory})
            if log:
                log(f"{name} {sequence.name}: AUC {score['success_auc']:.3f} "
                    f"prec {score['precision']:.3f}")
    return rows


def variant_of(run: str) -> tuple[str, int | None]:
    match = RUN_NAME.match(run)
    return (match["variant"], int(match["seed"])) if match else (run, None)


def summarise_variants(rows: list[dict]) -> dict:
    """{variant: {seed: (mean AUC, mean precision)}} over the sequences of each run."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    per_run: dict[str, list] = {}
    for row in rows:
        per_run.setdefault(row["run"], []).append(row)
    variants: dict[str, dict] = {}
    for run, run_rows in per_run.items():
        variant, seed = variant_of(run)
        variants.setdefault(variant, {})[seed] = (
            float(np.mean([r["AUC"] for r in run_rows])),
            float(np.mean([r["prec"] for r in run_rows])))
    return variants


def spread(values) -> float:
    """Sample standard deviation (0 for fewer than two values)."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def twin_pairs(variants: dict) -> list[tuple[str, str]]:
    """(full, twin) variant pairs, plain pair first: `memtrack<suffix>` with `no_memory<suffix>`,
    or with the plain `no_memory` when that recipe has no twin of its own (a recipe that changes
    only the memory's training, which the twin never reads)."""
    pairs = []
    for name in variants:
        if not name.startswith(FULL):
            continue
        own_twin = TWIN + name[len(FULL):]
        if own_twin in variants:
            pairs.append((name, own_twin))
        elif TWIN in variants:
            pairs.append((name, TWIN))
    return sorted(pairs, key=lambda pair: (pair[0] != FULL, pair[0]))


def pair_line(variants: dict, full_name: str, twin_name: str, prefix: str) -> str:
    """`prefix: MemTrack - no-memory twin = ...`, paired by seed."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    full, twin = variants.get(full_name, {}), variants.get(twin_name, {})
    seeds = sorted(set(full) & set(twin))
    if not seeds:
        return (f"{prefix}: no seed has both '{full_name}' and '{twin_name}' runs: nothing to "
                "compare")
    deltas = [full[s][0] - twin[s][0] for s in seeds]
    recipe = full_name[len(FULL):].lstrip("_")
    if recipe and twin_name == TWIN:
        recipe += f"; twin: {TWIN}"
    label = f" ({recipe})" if recipe else ""
    return (f"{prefix}: MemTrack - no-memory twin{label} = {np.mean(deltas):+.3f} mean AUC "
            f"({len(seeds)} seed{'s' if len(seeds) > 1 else ''}, spread +-{spread(deltas):.3f})")


def headline(variants: dict) -> list[str]:
    """One line per (MemTrack, twin) recipe pair; the last, `headline: ...`, is the plain pair
    (`memtrack` vs `no_memory`) when it was run, else the first other pair."""
    pairs = twin_pairs(variants) or [(FULL, TWIN)]
    lines = [pair_line(variants, full, twin, "pair") for full, twin in pairs[1:]]
    return lines + [pair_line(variants, *pairs[0], "headline")]


def format_report(rows: list[dict], title: str, machine: str) -> str:
    """The per-sequence table, the per-variant summary and the headline."""
    from memnet_tf.eval.report import text_table  # pylint: disable=import-outside-toplevel

    def cell(value):
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    for row in rows:
        if isinstance(row.get("fps"), float):
            row["fps"] = f"{row['fps']:.1f}"
    columns = ["run", "sequence", "frames", "AUC", "prec", "fps", "gates", "r", "|rT|/|T0|",
               "cos(Tr,T0)", "max w_r", "writes"]
    lines = [f"# {title}", f"# {machine}",
             text_table(columns, [[cell(r.get(c, "-")) for c in columns] for r in rows])]
    variants = summarise_variants(rows)
    summary = []
    for variant, seeds in variants.items():
        aucs = [a for a, _ in seeds.values()]
        precs = [p for _, p in seeds.values()]
        several = len(seeds) > 1
        summary.append([variant, str(len(seeds)) if seeds != {None: seeds.get(None)} else "-",
                        f"{sum(aucs) / len(aucs):.3f}",
                        f"+-{spread(aucs):.3f}" if several else "-",
                        f"{sum(precs) / len(precs):.3f}",
                        f"+-{spread(precs):.3f}" if several else "-",
                        " ".join(f"{a:.3f}" for a in aucs)])
    lines.append(text_table(["variant", "seeds", "mean AUC", "spread", "mean prec", "spread",
                             "AUC per seed"], summary))
    lines.extend(headline(variants))
    return "\n".join(lines)


def plot_variants(rows: list[dict], path: str, title: str) -> None:
    """Mean success AUC per variant (dots: each seed; bar: their mean) as a PNG."""
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    variants = summarise_variants(rows)
    names = list(variants)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 3.6))
    for i, name in enumerate(names):
        aucs = [auc for auc, _ in variants[name].values()]
        ax.bar(i, sum(aucs) / len(aucs), color="#9ecae1" if name != FULL else "#3182bd")
        ax.plot([i] * len(aucs), aucs, "ko", markersize=4)
    ax.set_xticks(range(len(names)), names, rotation=20)
    low = min(a for v in variants.values() for a, _ in v.values())
    ax.set_ylim(max(0.0, low - 0.05), None)
    ax.set_ylabel("mean success AUC")
    # Wrapped to the figure's width: with two or three variants a one-line title is cut off.
    ax.set_title(textwrap.fill(title, width=int(12 * fig.get_figwidth())), fontsize=9)
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=120)
    plt.close(fig)
    os.replace(path + ".tmp.png", path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--experiment_dir", default="",
                        help="folder of <variant>_seed<k> run folders (tools/real_video_experiment.py)")
    parser.add_argument("--runs", default="", help="name:DIR,... instead of --experiment_dir")
    parser.add_argument("--siamfc_checkpoint", default="",
                        help="SiamFC-mode run folder (default: import FDSiamFC-30 afresh)")
    parser.add_argument("--sequence_set", choices=("test", "aerial_val"), default="test",
                        help="test: otb_mini + vot_bag (unseen); aerial_val: the validation "
                             "sequences of the training data")
    parser.add_argument("--sequences", default="", help="comma-separated names (default: all)")
    parser.add_argument("--max_frames", type=int, default=0,
                        help="track only the first N frames of every sequence (0 = all)")
    parser.add_argument("--results_dir", default="", help="keep the results files here")
    parser.add_argument("--plot", default="", help="also draw the per-variant AUC here (PNG)")
    parser.add_argument("--memory_write_interval", type=int, default=None,
                        help="track the runs writing their memory every N-th frame only "
                             "(default: the run's own, 1 = every frame)")
    parser.add_argument("--memory_write_min_psr", type=float, default=None,
                        help="...and refusing the writes of frames whose peak-to-sidelobe "
                             "ratio is below this (default: the run's own, 0 = never)")
    parser.add_argument("--no_baselines", action="store_true",
                        help="skip SiamFC mode and the static box")
    parser.add_argument("--verbose", action="store_true",
                        help="keep TensorFlow's own log lines")
    args = parser.parse_args(argv)

    sys.path.insert(0, REPO)
    tf = import_tensorflow(args.verbose)

    from memnet_tf.eval.baselines import StaticBoxTracker  # pylint: disable=import-outside-toplevel
    from memnet_tf.models.loading import run_track_config  # pylint: disable=import-outside-toplevel
    from memnet_tf.tracking.tracker import TrackerFactory  # pylint: disable=import-outside-toplevel

    shared = _shared_dir()
    try:
        runs = parse_runs(args.runs) if args.runs else discover_runs(args.experiment_dir)
        names = [n for n in args.sequences.split(",") if n] or None
        if args.sequence_set == "test":
            pairs = load_sequences(shared, names, args.max_frames or None)
        else:
            unknown = sorted(set(names or ()) - set(AERIAL_VAL))
            if unknown:  # any other aerial_half sequence is training data
                raise ValueError(f"--sequences: {unknown} are not aerial validation sequences "
                                 f"({', '.join(AERIAL_VAL)})")
            pairs = aerial_val_sequences(shared, names or AERIAL_VAL)
        writes = {field: value for field, value in (
            ("memory_write_interval", args.memory_write_interval),
            ("memory_write_min_psr", args.memory_write_min_psr)) if value is not None}
        track_configs = {name: dataclasses.replace(run_track_config(path, None), **writes)
                         for name, path in runs.items()}
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    with tempfile.TemporaryDirectory(prefix="memory_on_real_video-") as scratch:
        trackers = {name: TrackerFactory(checkpoint=path, track_config=track_configs[name],
                                         name=name)
                    for name, path in runs.items()}
        if not args.no_baselines:
            siamfc = args.siamfc_checkpoint or import_fdsiamfc30(
                os.path.join(shared, "weights", "fdsiamfc30", "FDSiamfc_30.npz"),
                os.path.join(scratch, "fdsiamfc30"))
            trackers[SIAMFC] = TrackerFactory(checkpoint=siamfc, name=SIAMFC)
            trackers[STATIC] = StaticBoxTracker
        rows = track_all(trackers, pairs, args.results_dir or os.path.join(scratch, "results"),
                         log=lambda line: print(line, file=sys.stderr, flush=True))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    sequences = "otb_mini (6 of OTB-100's targets) + vot_bag" if args.sequence_set == "test" \
        else "aerial validation sequences (" + ", ".join(AERIAL_VAL) + ")"
    machine = (f"date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; "
               f"nproc {_num_cpus()}; CPU {cpu_model()}; load average {load} (shared machine); "
               f"TensorFlow {tf.__version__}"
               + (f"; first {args.max_frames} frames" if args.max_frames else ""))
    if args.sequences:
        sequences += f": only {', '.join(sorted({row['sequence'] for row in rows}))}"
    title = f"Trained variants on {sequences}, one-pass, OTB protocol"
    if writes:
        title += "; memory writes: " + ", ".join(f"{k}={v}" for k, v in writes.items())
    print(format_report(rows, title, machine))
    if args.plot:
        plot_variants(rows, args.plot, title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
