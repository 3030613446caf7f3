"""Scores results files against ground truth and reports them: table, JSON and OTB-style plots.

Results layout (what `ope.py` writes, and what published raw results use):
`<results_dir>/<tracker>/<seq>.txt`, one `x,y,w,h` per frame in the annotation files' own
pixel convention (OTB: 1-based), commas, tabs or spaces. The got10k toolkit's GOT-10k layout
`<tracker>/<seq>/<seq>_001.txt` (several repetitions, pooled) and the spellings other toolkits
use for OTB names (`Jogging-1`, `jogging_1`, `fleetFace`) are found too. Times:
`<seq>_time.txt` beside the boxes, or got10k's `times/<seq>_time.txt`.

Protocols (how frames count; the metric definitions are in `metrics.py`):
- `otb` (OTB-2013/100, VOT as one-pass, synthetic): every frame; the first result is replaced by
  the ground truth (got10k does); per-sequence curves averaged over sequences.
- `lasot`: like `otb` but frames where the target is absent count as failures (pysot), and the
  first result is kept as written.
- `got10k`: the first frame is dropped, only frames with the target visible count, boxes are
  clipped to the frame (`Sequence.resolution`), and frames are pooled over all sequences.

Agreement with the toolkits. On the same boxes, `otb` equals got10k's `ExperimentOTB.report`
and `got10k` equals `ExperimentGOT10k.report` (AO, SR@0.5, speed), which tests check. got10k is
itself checked against published raw results; we hold none on disk, so that step is not
repeated here. Known differences from other toolkits, all on invalid ground truth only: the
OTB MATLAB toolkit and pysot count a frame with a zero-size box as a precision *hit* (error
-1), got10k and we measure its centre error as for any box; pysot's precision also counts
frames whose ground-truth centre has a coordinate <= 0 as hits. VOT is scored here as one-pass
OPE on the axis-aligned boxes, not with the VOT EAO / re-initialisation protocol.
"""

from __future__ import annotations

import dataclasses
import glob
import io
import json
import math
import os
import re
from collections.abc import Iterable, Sequence as SequenceType

import numpy as np
from absl import logging

from memnet_tf import config as config_lib
from memnet_tf.eval import metrics
from memnet_tf.eval.datasets import DatasetError, Sequence, read_box_file

PROTOCOLS = ("otb", "lasot", "got10k")
DATASET_PROTOCOLS = {"otb100": "otb", "otb2013": "otb", "synthetic": "otb", "vot": "otb",
                     "lasot": "lasot", "got10k": "got10k"}
_PRECISION_INDEX = int(np.argmin(np.abs(metrics.CENTER_ERROR_THRESHOLDS
                                        - metrics.PRECISION_THRESHOLD)))
_NORMALIZED_INDEX = int(np.argmin(np.abs(metrics.NORMALIZED_ERROR_THRESHOLDS
                                         - metrics.NORMALIZED_PRECISION_THRESHOLD)))


class ResultsError(ValueError):
    """A results file that cannot be scored; the message names the file (and line)."""


@dataclasses.dataclass
class _Frames:
    """Per-frame measurements of one tracker on one sequence (pooled over repetitions)."""

    overlaps: np.ndarray  # [num_counted_frames] IoU
    errors: np.ndarray  # [num_counted_frames] centre error, pixels
    normalized_errors: np.ndarray  # [num_counted_frames]
    times: np.ndarray  # [num_timed_frames] seconds, > 0


def result_name_candidates(name: str) -> list[str]:
    """File stems other toolkits use for sequence `name`, the exact name first.

    The target number of two-target sequences is spelled `Jogging.1` (got10k), `Jogging-1`
    (pysot) or `Jogging_1`, whichever way the dataset itself spells it; then with a lower-case
    first letter or all lower case.
    """
    stems = [name]
    match = re.fullmatch(r"(.+)[.\-_](\d+)", name)
    if match:
        stems += [f"{match.group(1)}{separator}{match.group(2)}" for separator in ".-_"]
    for stem in list(stems):
        stems += [stem[:1].lower() + stem[1:], stem.lower()]
    return list(dict.fromkeys(stems))


def find_result_files(results_dir: str, tracker: str, name: str) -> list[str]:
    """Results files of `tracker` on sequence `name` (one, or got10k's repetitions).

    Returns:
        Paths; empty when none exists.
    """
    tracker_dir = os.path.join(results_dir, tracker)
    for stem in result_name_candidates(name):
        path = os.path.join(tracker_dir, f"{stem}.txt")
        if os.path.isfile(path):
            return [path]
        repetitions = sorted(glob.glob(os.path.join(glob.escape(tracker_dir), stem,
                                                    f"{glob.escape(stem)}_[0-9]*.txt")))
        if repetitions:
            return repetitions
    return []


def read_results(path: str, num_frames: int) -> np.ndarray:
    """Reads one results file and checks it has one box per frame.

    Args:
        path: Text file, one `x,y,w,h` per line (commas, tabs or spaces; `nan` allowed); extra
            columns (`track --output_boxes`' peak and psr) are ignored, `#` lines skipped.
        num_frames: The sequence's number of frames.

    Returns:
        `[num_frames, 4]` float64 boxes as written (file pixel convention).

    Raises:
        ResultsError: bad line (names `path:line`) or wrong line count (names both counts).
    """
    try:
        boxes, _ = read_box_file(path, widths=(4, 5, 6))
    except DatasetError as error:
        raise ResultsError(str(error)) from None
    boxes = boxes[:, :4]
    if len(boxes) != num_frames:
        raise ResultsError(f"{path}: {len(boxes)} lines of boxes but the sequence has "
                           f"{num_frames} frames (one line per frame expected)")
    return boxes


def read_times(results_dir: str, tracker: str, name: str) -> np.ndarray:
    """Per-frame seconds of `tracker` on `name` (positive ones), or an empty array."""
    tracker_dir = os.path.join(results_dir, tracker)
    for stem in result_name_candidates(name):
        for path in (os.path.join(tracker_dir, f"{stem}_time.txt"),
                     os.path.join(tracker_dir, "times", f"{stem}_time.txt"),
                     os.path.join(tracker_dir, stem, f"{stem}_time.txt")):
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    text = f.read().replace(",", " ")
                try:
                    times = np.loadtxt(io.StringIO(text), ndmin=1).ravel()
                except ValueError:
                    logging.warning("%s: unreadable times file, speed not reported", path)
                    return np.zeros(0)
                times = times[np.isfinite(times)]
                return times[times > 0]
    return np.zeros(0)


def list_trackers(results_dir: str) -> list[str]:
    """Sub-folders of `results_dir` that hold results files (report folders are skipped)."""
    if not os.path.isdir(results_dir):
        raise FileNotFoundError(f"{results_dir}: results folder not found")
    trackers = []
    for name in sorted(os.listdir(results_dir)):
        folder = os.path.join(results_dir, name)
        if name.startswith(".") or not os.path.isdir(folder):
            continue
        if glob.glob(os.path.join(glob.escape(folder), "*.txt")) or glob.glob(
                os.path.join(glob.escape(folder), "*", "*.txt")):
            trackers.append(name)
    return trackers


def _measure(sequence: Sequence, raw_boxes: np.ndarray, protocol: str) -> _Frames:
    """Per-frame IoU and centre errors of one trajectory under `protocol`."""
    boxes = raw_boxes.copy()
    boxes[:, :2] -= sequence.pixel_offset  # to the 0-based convention of `ground_truth`
    truth = sequence.ground_truth
    if protocol == "otb":
        boxes[0] = truth[0]
    counted = np.ones(len(truth), bool)
    resolution = None
    if protocol == "got10k":
        counted = sequence.valid.copy()
        counted[0] = False
        resolution = sequence.resolution
        if resolution is None:
            logging.log_first_n(
                logging.WARNING, "%s: no frame size (meta_info.ini); GOT-10k scores clip boxes "
                "to the frame, these are scored unclipped (as may be other sequences)", 1,
                sequence.annotation_file or sequence.name)
        if not counted.any():
            raise ResultsError(f"{sequence.annotation_file}: no frame after the first has a "
                               "visible target (GOT-10k test split? its results are scored by "
                               "the server)")
    boxes, truth = boxes[counted], truth[counted]
    overlaps = metrics.iou(boxes, truth, resolution)
    errors = metrics.center_errors(boxes, truth)
    normalized = metrics.normalized_center_errors(boxes, truth)
    if protocol == "lasot":
        absent = ~sequence.valid[counted]
        overlaps[absent], errors[absent], normalized[absent] = 0.0, np.inf, np.inf
    return _Frames(overlaps, errors, normalized, np.zeros(0))


def _summary(frames: list[_Frames], pooled: bool) -> dict:
    """Scores of a group of sequences: pooled frames (GOT-10k) or mean of per-sequence curves."""
    if pooled:
        frames = [_Frames(*(np.concatenate([getattr(f, k.name) for f in frames])
                            for k in dataclasses.fields(_Frames)))]
    success = np.mean([metrics.success_curve(f.overlaps) for f in frames], axis=0)
    precision = np.mean([metrics.precision_curve(f.errors) for f in frames], axis=0)
    normalized = np.mean([metrics.precision_curve(f.normalized_errors,
                                                  metrics.NORMALIZED_ERROR_THRESHOLDS)
                          for f in frames], axis=0)
    rates = [metrics.got10k_ao_sr(f.overlaps) for f in frames]
    speeds = [float(np.mean(1.0 / f.times)) for f in frames if f.times.size]
    return {
        "success_auc": metrics.auc(success),
        "precision": float(precision[_PRECISION_INDEX]),
        "normalized_precision": float(normalized[_NORMALIZED_INDEX]),
        "ao": float(np.mean([ao for ao, _ in rates])),
        "sr50": float(np.mean([sr[0.5] for _, sr in rates])),
        "sr75": float(np.mean([sr[0.75] for _, sr in rates])),
        "fps": float(np.mean(speeds)) if speeds else None,
        "success_curve": success.tolist(),
        "precision_curve": precision.tolist(),
        "normalized_precision_curve": normalized.tolist(),
    }


def score_tracker(sequences: SequenceType[Sequence], results_dir: str, tracker: str,
                  protocol: str = "otb") -> dict:
    """Scores one tracker; unreadable or missing results are listed, not fatal.

    Returns:
        `{"overall": summary, "sequences": {name: summary}, "attributes": {tag: summary},
        "num_sequences": scored, "num_expected": len(sequences), "errors": [message, ...]}`
        where a summary holds `success_auc, precision, normalized_precision, ao, sr50, sr75,
        fps` and the three curves. `overall` is None when nothing could be scored.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol={protocol!r}: expected one of {PROTOCOLS}")
    per_sequence, errors = {}, []
    for sequence in sequences:
        paths = find_result_files(results_dir, tracker, sequence.name)
        if not paths:
            errors.append(f"{os.path.join(results_dir, tracker, sequence.name + '.txt')}: "
                          f"no results for sequence {sequence.name}")
            continue
        try:
            measured = [_measure(sequence, read_results(p, sequence.num_frames), protocol)
                        for p in paths]
        except ResultsError as error:
            errors.append(str(error))
            continue
        frames = _Frames(*(np.concatenate([getattr(m, k.name) for m in measured])
                           for k in dataclasses.fields(_Frames)))
        frames.times = read_times(results_dir, tracker, sequence.name)
        per_sequence[sequence.name] = frames
    for message in errors:
        logging.warning("%s: %s", tracker, message)
    pooled = protocol == "got10k"
    attributes = sorted({a for s in sequences if s.name in per_sequence for a in s.attributes})
    by_attribute = {}
    for attribute in attributes:
        group = [per_sequence[s.name] for s in sequences
                 if s.name in per_sequence and attribute in s.attributes]
        by_attribute[attribute] = dict(_summary(group, pooled), num_sequences=len(group))
    return {
        "overall": _summary(list(per_sequence.values()), pooled) if per_sequence else None,
        "sequences": {name: _summary([f], pooled) for name, f in per_sequence.items()},
        "attributes": by_attribute,
        "num_sequences": len(per_sequence),
        "num_expected": len(sequences),
        "errors": errors,
    }


def score_results(sequences: SequenceType[Sequence], results_dir: str,
                  trackers: Iterable[str] | None = None, protocol: str = "otb") -> dict:
    """Scores every tracker's results files against the sequences' ground truth.

    Args:
        sequences: The dataset (`datasets.load_dataset`); no image is read.
        results_dir: Folder of `<tracker>/<seq>.txt` results.
        trackers: Tracker folder names; default every folder with results.
        protocol: One of `PROTOCOLS` (see the module docstring); `DATASET_PROTOCOLS` maps
            dataset names to theirs.

    Returns:
        `{"protocol", "thresholds": {...}, "trackers": {name: score_tracker(...)}}`.
    """
    trackers = list(trackers) if trackers else list_trackers(results_dir)
    return {
        "protocol": protocol,
        "thresholds": {
            "iou": metrics.IOU_THRESHOLDS.tolist(),
            "center_error": metrics.CENTER_ERROR_THRESHOLDS.tolist(),
            "normalized_center_error": metrics.NORMALIZED_ERROR_THRESHOLDS.tolist(),
        },
        "trackers": {t: score_tracker(sequences, results_dir, t, protocol) for t in trackers},
    }


def _ranked(scores: dict, key: str) -> list[str]:
    """Tracker names with an overall score, best `key` first."""
    scored = [n for n, t in scores["trackers"].items() if t["overall"] is not None]
    return sorted(scored, key=lambda n: -scores["trackers"][n]["overall"][key])


def summary_line(name: str, tracker_scores: dict) -> str:
    """One line per tracker: `name: success_auc=0.xxx precision=0.xxx ...`."""
    overall = tracker_scores["overall"]
    counts = f"sequences={tracker_scores['num_sequences']}/{tracker_scores['num_expected']}"
    if overall is None:
        return f"{name}: no sequence could be scored {counts}"
    fps = "n/a" if overall["fps"] is None else f"{overall['fps']:.1f}"
    return (f"{name}: success_auc={overall['success_auc']:.3f} "
            f"precision={overall['precision']:.3f} "
            f"normalized_precision={overall['normalized_precision']:.3f} "
            f"ao={overall['ao']:.3f} sr50={overall['sr50']:.3f} sr75={overall['sr75']:.3f} "
            f"fps={fps} {counts}")


def format_table(scores: dict) -> str:
    """A terminal table of the overall scores, best success AUC first."""
    columns = ("Tracker", "Success AUC", "Precision", "Norm. prec.", "AO", "SR0.5", "SR0.75",
               "FPS", "Sequences")
    rows = []
    for name in _ranked(scores, "success_auc"):
        t = scores["trackers"][name]
        o = t["overall"]
        rows.append((name, f"{o['success_auc']:.3f}", f"{o['precision']:.3f}",
                     f"{o['normalized_precision']:.3f}", f"{o['ao']:.3f}", f"{o['sr50']:.3f}",
                     f"{o['sr75']:.3f}", "n/a" if o["fps"] is None else f"{o['fps']:.1f}",
                     f"{t['num_sequences']}/{t['num_expected']}"))
    for name, t in scores["trackers"].items():
        if t["overall"] is None:
            rows.append((name,) + ("-",) * 7 + (f"0/{t['num_expected']}",))
    return text_table(columns, rows)


def text_table(header, rows) -> str:
    """A boxed terminal table: a rule, the header, a rule, the rows, a rule; cells left-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(row):
        return "| " + " | ".join(str(v).ljust(w) for v, w in zip(row, widths)) + " |"

    return "\n".join([rule, line(header), rule, *(line(row) for row in rows), rule])


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(scores: dict, path: str) -> None:
    """Writes the scores as JSON, atomically (temp file in the same folder, then rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    config_lib.write_atomically(path, json.dumps(_jsonable(scores), indent=2))


# Line styles as the OTB toolkit cycles them: 10 colours, then dashed, then dash-dot.
_STYLES = ("-", "--", "-.")
_COLORS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown",
           "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def _plot(scores, path, curve_key, score_key, thresholds, xlabel, ylabel, title, xlim):
    # Figure + Agg canvas directly: no pyplot, so no global backend or figure state is touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 5.0))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for i, name in enumerate(_ranked(scores, score_key)):
        overall = scores["trackers"][name]["overall"]
        axes.plot(thresholds, overall[curve_key], linestyle=_STYLES[i // 10 % 3],
                  color=_COLORS[i % 10], linewidth=2 if i == 0 else 1.5,
                  label=f"{name} [{overall[score_key]:.3f}]")
    axes.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=xlim, ylim=(0, 1))
    axes.grid(True, linestyle=":")
    if axes.lines:
        axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    config_lib.replace_atomically(
        path, lambda tmp: figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight"),
        suffix=".png")


def plot_success(scores: dict, path: str, title: str = "Success plots of OPE") -> None:
    """OTB success plot: one curve per tracker, legend `name [AUC]`, best first (PNG)."""
    _plot(scores, path, "success_curve", "success_auc", scores["thresholds"]["iou"],
          "Overlap threshold", "Success rate", title, (0, 1))


def plot_precision(scores: dict, path: str, title: str = "Precision plots of OPE") -> None:
    """OTB precision plot: one curve per tracker, legend `name [precision@20px]` (PNG)."""
    thresholds = scores["thresholds"]["center_error"]
    _plot(scores, path, "precision_curve", "precision", thresholds,
          "Location error threshold (pixels)", "Precision", title, (0, max(thresholds)))
