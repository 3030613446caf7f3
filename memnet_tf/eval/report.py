"""Scores results files against ground truth and reports them: table, JSON and OTB-style plots.

Results layout (what `ope.py` writes, and what published raw results use):
`<results_dir>/<tracker>/<seq>.txt`, one `x,y,w,h` per frame in the annotation files' own
pixel convention (OTB: 1-based), commas, tabs or spaces. The got10k toolkit's GOT-10k layout
`<tracker>/<seq>/<seq>_001.txt` (several repetitions, pooled) and the spellings other toolkits
use for OTB names (`Jogging-1`, `jogging_1`, `fleetFace`) are found too. Times:
`<seq>_time.txt` beside the boxes, or got10k's `times/<seq>_time.txt`.

Protocols (how frames count; the metric definitions are in `metrics.py`):
- `otb` (OTB-2013/100, any OTB folder, UAV123, VOT as one-pass, synthetic): every frame, the
  results file as written (the OTB toolkit and pysot; `replace_first_box` = got10k's rule of
  scoring the ground truth in frame 1); per-sequence curves averaged over sequences. Frames
  whose ground truth is no box (`0,0,0,0` as in Board's last frame, NaN as in UAV123) count as
  the OTB toolkit and pysot count them, a success miss and a precision hit (or are excluded,
  `invalid_frames="exclude"`); how many there were is reported either way.
- `lasot`: like `otb` but frames where the target is absent count as failures (pysot).
- `got10k`: the first frame is dropped, only frames with the target visible count, boxes are
  clipped to the frame (`Sequence.resolution`), and frames are pooled over all sequences.
VOT's supervised (reset) experiment is `vot_supervised.py`.

Results files are found and lined up with the ground truth by `result_files.py` (released
spellings of names; one line short = common length; Tiger1's two frame ranges).

Agreement with the toolkits. On published OTB-100 raw results (`../shared/data/published/`)
`otb` equals pysot's `OPEBenchmark` to the 4 decimals of its README; with `replace_first_box`
it equals got10k's `ExperimentOTB.report`, and `got10k` equals `ExperimentGOT10k.report` (AO,
SR@0.5, speed), which tests check. got10k itself measures the centre error of a `0,0,0,0`
ground truth like any box (a miss); pysot's precision also counts frames whose ground-truth
centre has a coordinate <= 0 as hits.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
from collections.abc import Iterable, Sequence as SequenceType

import numpy as np
from absl import logging

from memnet_tf import config as config_lib
from memnet_tf.eval import metrics, otb
from memnet_tf.eval.result_files import (  # noqa: F401 - re-exported
    ResultLength, ResultsError, find_result_files, read_results, read_times)
from memnet_tf.eval.sequence import Sequence

PROTOCOLS = ("otb", "lasot", "got10k")
DATASET_PROTOCOLS = {"otb100": "otb", "otb2013": "otb", "otb": "otb", "synthetic": "otb",
                     "uav123": "otb", "vot": "otb", "lasot": "lasot", "got10k": "got10k"}
INVALID_FRAME_RULES = ("toolkit", "exclude")
_INVALID_RULE_TEXT = {"toolkit": "counted as the OTB toolkit does (success miss, precision hit)",
                      "exclude": "excluded"}
_PRECISION_INDEX = int(np.argmin(np.abs(metrics.CENTER_ERROR_THRESHOLDS
                                        - metrics.PRECISION_THRESHOLD)))
_NORMALIZED_INDEX = int(np.argmin(np.abs(metrics.NORMALIZED_ERROR_THRESHOLDS
                                         - metrics.NORMALIZED_PRECISION_THRESHOLD)))


@dataclasses.dataclass
class _Frames:
    """Per-frame measurements of one tracker on one sequence (pooled over repetitions)."""

    overlaps: np.ndarray  # [num_counted_frames] IoU
    errors: np.ndarray  # [num_counted_frames] centre error, pixels
    normalized_errors: np.ndarray  # [num_counted_frames]
    times: np.ndarray  # [num_timed_frames] seconds, > 0


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


def _measure(sequence: Sequence, raw_boxes: np.ndarray, alignment: ResultLength,
             protocol: str, invalid_frames: str, replace_first_box: bool
             ) -> tuple[_Frames, int]:
    """Per-frame IoU and centre errors of one trajectory under `protocol`.

    Returns:
        `(frames, number of frames without a valid ground-truth box among those lined up)`.
    """
    boxes = raw_boxes.copy()
    boxes[:, :2] -= sequence.pixel_offset  # to the 0-based convention of `ground_truth`
    window = slice(alignment.first_frame, alignment.first_frame + alignment.length)
    truth, valid = sequence.ground_truth[window], sequence.valid[window]
    if protocol == "otb" and replace_first_box:
        boxes[0] = truth[0]
    counted = np.ones(len(truth), bool)
    resolution = None
    if protocol == "got10k":
        counted = valid.copy()
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
    elif protocol == "otb" and invalid_frames == "exclude":
        counted = valid.copy()
    num_invalid = int(np.sum(~valid))
    boxes, truth = boxes[counted], truth[counted]
    overlaps = metrics.iou(boxes, truth, resolution)
    errors = metrics.center_errors(boxes, truth)
    normalized = metrics.normalized_center_errors(boxes, truth)
    if protocol == "lasot":
        absent = ~valid[counted]
        overlaps[absent], errors[absent], normalized[absent] = 0.0, np.inf, np.inf
    elif protocol == "otb":
        # The OTB toolkit (and pysot): coverage -1 (a miss at every IoU threshold) and centre
        # error -1 (a hit at every distance threshold), still in the denominator.
        unannotated = ~valid[counted]
        overlaps[unannotated], errors[unannotated], normalized[unannotated] = 0.0, -1.0, -1.0
    return _Frames(overlaps, errors, normalized, np.zeros(0)), num_invalid


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
                  protocol: str = "otb", invalid_frames: str = "toolkit",
                  replace_first_box: bool = False) -> dict:
    """Scores one tracker; unreadable or missing results are listed, not fatal.

    Args:
        sequences: the dataset.
        results_dir: the results root.
        tracker: the tracker's folder.
        protocol: one of `PROTOCOLS`.
        invalid_frames: `otb` protocol only, frames whose ground truth is no box (`0,0,0,0`,
            NaN): "toolkit" counts them as the OTB toolkit and pysot do (a success miss and a
            precision hit, in the denominator), "exclude" leaves them out.
        replace_first_box: `otb` protocol only: score the ground truth instead of the results
            file's first box (got10k's `ExperimentOTB`); default: as written (the OTB toolkit,
            pysot). Files written by our OPE start with the ground truth, so only other
            trackers' files can differ (published SiamRPN++ on OTB-100: +1e-4 AUC).

    Returns:
        `{"overall": summary, "sequences": {name: summary}, "attributes": {tag: summary},
        "num_sequences": scored, "num_expected": len(sequences), "errors": [message, ...],
        "scored": [names], "adjusted": [message per results file not one box per frame],
        "invalid_frames": frames without a ground-truth box in the scored sequences,
        "invalid_frames_rule": how they counted}` where a summary holds `success_auc,
        precision, normalized_precision, ao, sr50, sr75, fps` and the three curves. `overall`
        is None when nothing could be scored.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol={protocol!r}: expected one of {PROTOCOLS}")
    if invalid_frames not in INVALID_FRAME_RULES:
        raise ValueError(f"invalid_frames={invalid_frames!r}: expected one of "
                         f"{INVALID_FRAME_RULES}")
    per_sequence, errors, adjusted, num_invalid = {}, [], [], 0
    for sequence in sequences:
        try:
            paths = find_result_files(results_dir, tracker, sequence.name, sequence.aliases)
            if not paths:
                errors.append(f"{os.path.join(results_dir, tracker, sequence.name + '.txt')}: "
                              f"no results for sequence {sequence.name}")
                continue
            measured, alignments = [], []
            for path in paths:
                boxes, alignment = read_results(path, sequence)
                measured.append(_measure(sequence, boxes, alignment, protocol, invalid_frames,
                                         replace_first_box))
                alignments.append(alignment)
        except ResultsError as error:
            errors.append(str(error))
            continue
        frames = _Frames(*(np.concatenate([getattr(m, k.name) for m, _ in measured])
                           for k in dataclasses.fields(_Frames)))
        frames.times = read_times(results_dir, tracker, sequence.name, sequence.aliases)
        per_sequence[sequence.name] = frames
        num_invalid += measured[0][1]
        adjusted += [a.describe() for a in alignments if a.adjusted]
    for message in errors:
        logging.warning("%s: %s", tracker, message)
    for message in adjusted:
        logging.warning("%s: %s", tracker, message)
    pooled = protocol == "got10k"
    attributes = sorted({a for s in sequences if s.name in per_sequence for a in s.attributes})
    by_attribute = {}
    for attribute in attributes:
        group = [per_sequence[s.name] for s in sequences
                 if s.name in per_sequence and attribute in s.attributes]
        by_attribute[attribute] = dict(_summary(group, pooled), num_sequences=len(group))
    rule = {"otb": _INVALID_RULE_TEXT[invalid_frames], "lasot": "counted as failures",
            "got10k": "excluded"}[protocol]
    return {
        "overall": _summary(list(per_sequence.values()), pooled) if per_sequence else None,
        "sequences": {name: _summary([f], pooled) for name, f in per_sequence.items()},
        "attributes": by_attribute,
        "num_sequences": len(per_sequence),
        "num_expected": len(sequences),
        "scored": list(per_sequence),
        "errors": errors,
        "adjusted": adjusted,
        "invalid_frames": num_invalid,
        "invalid_frames_rule": rule,
    }


def score_results(sequences: SequenceType[Sequence], results_dir: str,
                  trackers: Iterable[str] | None = None, protocol: str = "otb",
                  invalid_frames: str = "toolkit", replace_first_box: bool = False) -> dict:
    """Scores every tracker's results files against the sequences' ground truth.

    Args:
        sequences: The dataset (`datasets.load_dataset`); no image is read.
        results_dir: Folder of `<tracker>/<seq>.txt` results.
        trackers: Tracker folder names; default every folder with results.
        protocol: One of `PROTOCOLS` (see the module docstring); `DATASET_PROTOCOLS` maps
            dataset names to theirs.
        invalid_frames, replace_first_box: see `score_tracker`.

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
        "trackers": {t: score_tracker(sequences, results_dir, t, protocol, invalid_frames,
                                      replace_first_box) for t in trackers},
    }


def _ranked(scores: dict, key: str) -> list[str]:
    """Tracker names with an overall score, best `key` first."""
    scored = [n for n, t in scores["trackers"].items() if t["overall"] is not None]
    return sorted(scored, key=lambda n: -scores["trackers"][n]["overall"][key])


def mark_completeness(scores: dict, expected: SequenceType[str] | None,
                      sequences: SequenceType[Sequence]) -> None:
    """Records, per tracker, which of a benchmark's `expected` sequences it has no score for.

    Sets `benchmark_size` (N), `missing` (names) and `label` ("partial (k/N)" or None) in each
    tracker's scores; with `expected` None (no completeness rule) N is the dataset's size and
    nothing is partial.
    """
    for tracker_scores in scores["trackers"].values():
        scored = [s for s in sequences if s.name in tracker_scores["scored"]]
        if expected is None:
            tracker_scores.update(benchmark_size=len(sequences), missing=[
                s.name for s in sequences if s.name not in tracker_scores["scored"]], label=None)
            continue
        missing = otb.missing_sequences(tuple(expected), scored)
        size = len(expected)
        tracker_scores.update(benchmark_size=size, missing=missing,
                              label=f"partial ({size - len(missing)}/{size})" if missing else None)


def display_name(name: str, tracker_scores: dict) -> str:
    """`name`, or `name partial (k/N)` for a partial result set."""
    label = tracker_scores.get("label")
    return f"{name} {label}" if label else name


def _counts(tracker_scores: dict) -> str:
    """`k/N`: sequences scored of the benchmark's (or, without a rule, the dataset's)."""
    if "benchmark_size" not in tracker_scores:
        return f"{tracker_scores['num_sequences']}/{tracker_scores['num_expected']}"
    size = tracker_scores["benchmark_size"]
    return f"{size - len(tracker_scores['missing'])}/{size}"


def summary_line(name: str, tracker_scores: dict) -> str:
    """One line per tracker: `name: success_auc=0.xxx precision=0.xxx ...`."""
    overall = tracker_scores["overall"]
    counts = f"sequences={_counts(tracker_scores)}"
    name = display_name(name, tracker_scores)
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
        rows.append((display_name(name, t), f"{o['success_auc']:.3f}", f"{o['precision']:.3f}",
                     f"{o['normalized_precision']:.3f}", f"{o['ao']:.3f}", f"{o['sr50']:.3f}",
                     f"{o['sr75']:.3f}", "n/a" if o["fps"] is None else f"{o['fps']:.1f}",
                     _counts(t)))
    for name, t in scores["trackers"].items():
        if t["overall"] is None:
            rows.append((display_name(name, t),) + ("-",) * 7 + (_counts(t),))
    return text_table(columns, rows)


def attribute_scores(scores: dict, attribute: str) -> dict:
    """`scores` with each tracker's `overall` replaced by its summary on one attribute."""
    trackers = {}
    for name, t in scores["trackers"].items():
        if attribute in t["attributes"]:
            trackers[name] = dict(t, overall=t["attributes"][attribute])
    return dict(scores, trackers=trackers)


def attributes_of(scores: dict) -> list[str]:
    """Attributes any tracker was scored on: OTB's 11 in the toolkit's order, then others."""
    found = {a for t in scores["trackers"].values() for a in t["attributes"]}
    return [a for a in otb.OTB_ATTRIBUTES if a in found] + sorted(found - set(otb.OTB_ATTRIBUTES))


def format_attribute_table(scores: dict) -> str:
    """Success AUC per attribute (rows) and tracker (columns, best overall first)."""
    names = _ranked(scores, "success_auc")
    columns = ("Attribute", "Sequences", *(display_name(n, scores["trackers"][n]) for n in names))
    rows = []
    for attribute in attributes_of(scores):
        counts = {scores["trackers"][n]["attributes"].get(attribute, {}).get("num_sequences")
                  for n in names} - {None}
        long_name = otb.OTB_ATTRIBUTE_NAMES.get(attribute)
        label = f"{attribute} ({long_name})" if long_name else attribute
        cells = []
        for n in names:
            summary = scores["trackers"][n]["attributes"].get(attribute)
            cells.append("-" if summary is None else f"{summary['success_auc']:.3f}")
        rows.append((label, "/".join(str(c) for c in sorted(counts)), *cells))
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
STYLES = ("-", "--", "-.")
COLORS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown",
           "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def save_plot(figure, axes, path: str) -> None:
    """Grid, a legend beside the curves (if any) and an atomic PNG write: every plot's ending."""
    axes.grid(True, linestyle=":")
    if axes.lines:
        axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    config_lib.replace_atomically(
        path, lambda tmp: figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight"),
        suffix=".png")


def _plot(scores, path, curve_key, score_key, thresholds, xlabel, ylabel, title, xlim):
    # Figure + Agg canvas directly: no pyplot, so no global backend or figure state is touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 5.0))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for i, name in enumerate(_ranked(scores, score_key)):
        overall = scores["trackers"][name]["overall"]
        axes.plot(thresholds, overall[curve_key], linestyle=STYLES[i // 10 % 3],
                  color=COLORS[i % 10], linewidth=2 if i == 0 else 1.5,
                  label=f"{display_name(name, scores['trackers'][name])} "
                        f"[{overall[score_key]:.3f}]")
    axes.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=xlim, ylim=(0, 1))
    save_plot(figure, axes, path)


def plot_success(scores: dict, path: str, title: str = "Success plots of OPE") -> None:
    """OTB success plot: one curve per tracker, legend `name [AUC]`, best first (PNG)."""
    _plot(scores, path, "success_curve", "success_auc", scores["thresholds"]["iou"],
          "Overlap threshold", "Success rate", title, (0, 1))


def plot_precision(scores: dict, path: str, title: str = "Precision plots of OPE") -> None:
    """OTB precision plot: one curve per tracker, legend `name [precision@20px]` (PNG)."""
    thresholds = scores["thresholds"]["center_error"]
    _plot(scores, path, "precision_curve", "precision", thresholds,
          "Location error threshold (pixels)", "Precision", title, (0, max(thresholds)))
