"""Per-frame tracking time of MemTracker against PyTorch SiamFC peers, interleaved, one run.

    python benchmarks/track_speed.py [--frames=100] [--repeats=3] [--sequence=Couple]
        [--nopaper] [--noexport] [--nolitert] [--stage_repeats=15]

Trackers, all fed the same decoded RGB frames of one otb_mini sequence (synthetic frames when
`../shared` is absent), frame by frame in turn (the order rotates every frame), so a busy CPU
slows them alike and the ratios stay fair:
- ours, SiamFC mode: the FDSiamFC-30 weights imported with experiments/siamfc_fdsiamfc30.flags
  (`MemTracker` on the checkpoint), the same tracker on its SavedModel export and on its
  LiteRT export (`memnet_tf.export --format=litert`, when ai-edge-litert imports), and the
  tracker as it was before issue 13 (`tests/reference_tracker.py`, `--former`);
- PyTorch FDSiamFC-30 (when torch imports): `benchmarks/_torch_siamfc.py`, the same weights
  (`FDSiamfc_30.pth`);
- ours, paper MemTrack (AlexNet x1, 8 slots, 512 hidden units, random weights, which time like
  trained ones), also on its SavedModel export (and LiteRT with --litert_paper);
- PyTorch SiamFC at full width, random weights.
Per tracker: ms per `update` (min, median over every timed frame), fps, the ratio to its peer
and, for exports, to the in-process tracker and the largest box difference from it. Then a stage
breakdown of our two configurations (each stage as its own tf.function on the tracker's current
inputs, interleaved). Every table is printed with the load average before and after it. The
first frame of each repeat (init) is excluded, and so is the first update of the first repeat
(tracing).
Last line: `headline: SiamFC mode / PyTorch FDSiamFC-30 = x.xx; MemTrack paper / SiamFC full =
y.yy` (goals: <= 1.0 and <= 1.6; "n/a" without torch).
"""

from __future__ import annotations

import datetime
import os
import pathlib
import sys
import tempfile
import time

from absl import flags

from _machine import cpu_model, import_tensorflow

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_FRAMES = flags.DEFINE_integer("frames", 100, "Frames tracked per repeat (after the first).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Passes over the frames (re-initialised).")
_SEQUENCE = flags.DEFINE_string("sequence", "Couple", "otb_mini sequence to read frames from.")
_PAPER = flags.DEFINE_boolean("paper", True, "Also time the paper MemTrack and full SiamFC.")
_EXPORT = flags.DEFINE_boolean("export", True, "Also time our trackers on SavedModel exports.")
_LITERT = flags.DEFINE_boolean("litert", True, "Also time the SiamFC mode on a LiteRT export "
                               "(needs ai-edge-litert).")
_LITERT_PAPER = flags.DEFINE_boolean("litert_paper", False, "Also convert and time the paper "
                                     "MemTrack on LiteRT (slow to convert).")
_STAGE_REPEATS = flags.DEFINE_integer("stage_repeats", 15, "Repeats of each stage timing.")
_FORMER = flags.DEFINE_boolean("former", True, "Also time the SiamFC mode on the tracker as it "
                               "was before issue 13 (tests/reference_tracker.py).")

SIAMFC_GOAL, PAPER_GOAL = 1.0, 1.6
WEIGHTS = pathlib.Path("weights") / "fdsiamfc30"


def shared_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("MEMNET_SHARED_DIR", REPO_ROOT.parent / "shared"))


def load_frames(num_frames: int, sequence: str):
    """`(frames, first box, description)`: RGB uint8 frames of an otb_mini sequence or synthetic."""
    import numpy as np

    from memnet_tf.eval import datasets

    root = shared_dir() / "data" / "otb_mini"
    if root.is_dir():
        found = datasets.read_otb(str(root), subset=lambda n: n.split(".")[0] == sequence)
        if found:
            seq = found[0]
            count = min(num_frames, seq.num_frames)
            frames = [datasets.load_frame(p) for p in seq.image_files[:count]]
            return frames, seq.ground_truth[0], f"otb_mini/{seq.name} ({count} frames)"
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    return [frame] * num_frames, np.array([140.0, 100.0, 40.0, 40.0]), "synthetic 320x240 frame"


def load_string() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def torch_available() -> bool:
    try:
        import torch  # noqa: F401  pylint: disable=unused-import
    except ImportError:
        return False
    return True


def litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401  pylint: disable=unused-import
    except ImportError:
        return False
    return True


def ours(scratch: str, want_export: bool, want_litert: bool, want_paper: bool,
         want_litert_paper: bool):
    """`[(name, tracker, peer name, in-process name)]` of our trackers."""
    import keras

    from memnet_tf import config as config_lib
    from memnet_tf import export
    from memnet_tf.models import litert, loading
    from memnet_tf.models.memtrack import build_model
    from memnet_tf.tracking.tracker import MemTracker
    from siamfc_otb_mini import import_fdsiamfc30

    rows = []
    weights = shared_dir() / WEIGHTS / "FDSiamfc_30.npz"
    if weights.is_file():
        run = import_fdsiamfc30(str(weights), os.path.join(scratch, "fdsiamfc30"))
        model, run_flags = loading.load_model(run)
        track_config = config_lib.track_config_from_flags(run_flags)
        name = "ours SiamFC mode (FDSiamFC-30)"
        rows.append((name, MemTracker(model, track_config), "PyTorch FDSiamFC-30", None))
        if _FORMER.value:
            sys.path.insert(0, str(REPO_ROOT / "tests"))
            from reference_tracker import ReferenceTracker

            rows.append((f"{name}, former tracker", ReferenceTracker(model, track_config),
                         None, name))
        rows += exports(model, track_config, os.path.join(scratch, "siamfc"), name,
                        want_export, want_litert, export, litert, loading, MemTracker)
    else:
        print(f"(no {weights}: SiamFC mode skipped)")
    if want_paper:
        keras.utils.set_random_seed(0)
        model = build_model(config_lib.ModelConfig())
        track_config = config_lib.TrackConfig()
        name = "ours MemTrack paper"
        rows.append((name, MemTracker(model, track_config), "PyTorch SiamFC full", None))
        rows += exports(model, track_config, os.path.join(scratch, "paper"), name,
                        want_export, want_litert_paper, export, litert, loading, MemTracker)
    return rows


def exports(model, track_config, folder, name, want_export, want_litert, export, litert,
            loading, tracker_class):
    rows = []
    if want_export:
        export.export_saved_model(model, os.path.join(folder, "saved_model"))
        exported = loading.load_saved_model(os.path.join(folder, "saved_model"))[0]
        rows.append((f"{name}, SavedModel", tracker_class(exported, track_config), None, name))
    if want_litert:
        litert.export_litert(model, os.path.join(folder, "litert"), track_config.num_scales)
        lite = litert.load_litert(os.path.join(folder, "litert"))[0]
        rows.append((f"{name}, LiteRT", tracker_class(lite, track_config), None, name))
    return rows


def peers(want_paper: bool):
    """`[(name, tracker)]` of the PyTorch trackers."""
    import _torch_siamfc as ts

    rows = []
    pth = shared_dir() / WEIGHTS / "FDSiamfc_30.pth"
    if pth.is_file():
        rows.append(("PyTorch FDSiamFC-30", ts.TorchSiamFC(ts.build_net(0.3, str(pth)))))
    if want_paper:
        rows.append(("PyTorch SiamFC full", ts.TorchSiamFC(ts.build_net(1.0, None))))
    return rows


def run_interleaved(trackers: dict, frames, first_box, repeats: int):
    """Per-frame update times (ms) and boxes of every tracker, frames in turn."""
    import numpy as np

    names = list(trackers)
    times = {name: [] for name in names}
    boxes = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names:
            trackers[name].init(frames[0], first_box)
        for index, frame in enumerate(frames[1:]):
            shift = (index + repeat) % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                box = trackers[name].update(frame)
                elapsed = (time.perf_counter() - start) * 1e3
                if repeat or index:
                    times[name].append(elapsed)
                if repeat == 0:
                    boxes[name].append(np.asarray(box, np.float64))
    return times, {name: np.array(value) for name, value in boxes.items()}


def iou(a, b):
    import numpy as np

    x0, y0 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x1 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y1 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)


def stage_breakdown(tracker, frame, repeats: int):
    """`[(stage, min ms, median ms)]` of one of our trackers at its current state."""
    import numpy as np
    import tensorflow as tf

    from memnet_tf.tracking.tracker import to_float_frame

    model = tracker.model
    current = tf.constant(to_float_frame(frame))
    centre = tracker._center.astype(np.float32)  # pylint: disable=protected-access
    side = np.array([tracker._exemplar_side], np.float32)  # pylint: disable=protected-access
    sides = np.maximum(np.round(tracker._search_side * tracker._scales), 1.0)  # pylint: disable=protected-access
    sides = sides.astype(np.float32)
    previous, previous_mean = tracker._previous, tracker._previous_mean  # pylint: disable=protected-access
    crop_fn = tf.function(tracker._crop_graph)  # pylint: disable=protected-access
    cropped = crop_fn(current, previous, previous_mean, centre, side, sides)
    uses_memory = "exemplar" in cropped

    @tf.function
    def backbone_fn(search, exemplar):
        if exemplar is None:
            return model.encode(search), None
        return model.encode(search), model.encode(exemplar)

    exemplar = cropped.get("exemplar")
    features, template = backbone_fn(cropped["search"], exemplar)
    step_fn = tf.function(lambda t, f, s: model.step_features(t, f, s))
    responses, new_state, _ = step_fn(template, features, tracker.state)
    locate_fn = tf.function(lambda r, s: tracker._locate_graph(r, s, {}))  # pylint: disable=protected-access
    frame_fn = tracker._frame_step_fn  # pylint: disable=protected-access
    to_float = lambda: tf.constant(to_float_frame(frame))  # noqa: E731
    stages = [
        ("frame to float tensor (host)", to_float),
        ("crops" + (" (searches + write exemplar)" if uses_memory else " (searches only)"),
         lambda: crop_fn(current, previous, previous_mean, centre, side, sides)),
        ("backbone" + (" (3 searches + 1 exemplar)" if uses_memory else " (3 searches)"),
         lambda: backbone_fn(cropped["search"], exemplar)),
        ("recurrent step + correlation + head" if uses_memory else "correlation + head",
         lambda: step_fn(template, features, tracker.state)),
        ("up-sampling + scale/peak search" + (" + kept state" if uses_memory else ""),
         lambda: locate_fn(responses, new_state)),
        ("one compiled frame call (all of the above but host)",
         lambda: frame_fn(current, previous, previous_mean, centre, side, sides,
                          tracker.state)),
    ]
    samples = {name: [] for name, _ in stages}
    for _ in range(repeats):
        for name, fn in stages:
            start = time.perf_counter()
            out = fn()
            tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
            samples[name].append((time.perf_counter() - start) * 1e3)
    return [(name, float(np.min(v)), float(np.median(v))) for name, v in samples.items()]


def main(argv):
    del argv
    import numpy as np

    # Quiet TensorFlow unless --verbosity is given (absl's flag).
    tf = import_tensorflow(verbose=flags.FLAGS["verbosity"].present)

    from memnet_tf.eval import report

    have_torch = torch_available()
    have_litert = litert_available()
    today = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    machine = f"nproc={len(os.sched_getaffinity(0))}, {cpu_model()}"
    versions = (f"TF {tf.__version__} (oneDNN "
                f"{'on' if os.environ.get('TF_ENABLE_ONEDNN_OPTS') == '1' else 'off'}: "
                "TF_ENABLE_ONEDNN_OPTS, on by default for the tracking commands)")
    if have_torch:
        import torch

        versions += f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    frames, first_box, description = load_frames(_FRAMES.value + 1, _SEQUENCE.value)
    with tempfile.TemporaryDirectory(prefix="track_speed_") as scratch:
        ours_rows = ours(scratch, _EXPORT.value, _LITERT.value and have_litert, _PAPER.value,
                         _LITERT_PAPER.value and have_litert)
        trackers = {name: tracker for name, tracker, _, _ in ours_rows}
        if have_torch:
            trackers.update(peers(_PAPER.value))
        print(f"MemTracker vs PyTorch SiamFC trackers, per-frame update time; {today}")
        print(f"machine: {machine}; {versions}; frames: {description}, {_REPEATS.value} "
              f"interleaved repeats, frames decoded beforehand")
        if not have_torch:
            print("torch not importable: only our trackers (pip install -e '.[bench]')")
        if not have_litert:
            print("ai-edge-litert not importable: no LiteRT rows (pip install -e '.[litert]')")
        before = load_string()
        times, boxes = run_interleaved(trackers, frames, first_box, _REPEATS.value)
        after = load_string()
        median = {name: float(np.median(v)) for name, v in times.items()}
        rows = []
        for name in trackers:
            values = times[name]
            ratio = ""
            match = [r for r in ours_rows if r[0] == name]
            if match:
                _, _, peer, in_process = match[0]
                if peer in median:
                    ratio = f"{median[name] / median[peer]:.2f}x {peer}"
                elif in_process in median:
                    overlap = iou(boxes[name], boxes[in_process])
                    ratio = (f"{median[name] / median[in_process]:.3f}x in-process; boxes: "
                             f"min IoU {overlap.min():.4f}, max diff "
                             f"{np.max(np.abs(boxes[name] - boxes[in_process])):.2g} px")
            rows.append((name, f"{np.min(values):.1f}", f"{median[name]:.1f}",
                         f"{1e3 / median[name]:.1f}", ratio))
        print(f"[{before} before, {after} after]")
        print(report.text_table(("tracker", "min ms", "median ms", "fps", "ratio"), rows))

        for name in ("ours SiamFC mode (FDSiamFC-30)", "ours MemTrack paper"):
            if name not in trackers:
                continue
            before = load_string()
            stages = stage_breakdown(trackers[name], frames[-1], _STAGE_REPEATS.value)
            after = load_string()
            full = median[name]
            print(f"stages of {name} (each its own tf.function, interleaved, "
                  f"{_STAGE_REPEATS.value} repeats) [{before} before, {after} after]")
            stage_rows = [(stage, f"{low:.2f}", f"{mid:.2f}", f"{mid / full * 100:.0f}%")
                          for stage, low, mid in stages]
            stage_rows.append(("full update (from the table above)", "", f"{full:.2f}",
                               "100%"))
            print(report.text_table(("stage", "min ms", "median ms", "of update"),
                                    stage_rows))

    def headline_ratio(ours_name, peer):
        if ours_name in median and peer in median:
            return f"{median[ours_name] / median[peer]:.2f}"
        return "n/a"

    print(f"goals: SiamFC mode / PyTorch FDSiamFC-30 <= {SIAMFC_GOAL}; MemTrack paper / "
          f"SiamFC full <= {PAPER_GOAL} (the FLOP ratio); {machine}")
    print(f"headline: SiamFC mode / PyTorch FDSiamFC-30 = "
          f"{headline_ratio('ours SiamFC mode (FDSiamFC-30)', 'PyTorch FDSiamFC-30')}; "
          f"MemTrack paper / SiamFC full = "
          f"{headline_ratio('ours MemTrack paper', 'PyTorch SiamFC full')}")


if __name__ == "__main__":
    from memnet_tf import cli

    cli.run(main, "track_speed", tool=True)
