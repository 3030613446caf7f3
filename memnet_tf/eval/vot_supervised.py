"""VOT's supervised (reset) experiment: running a tracker as VOT does, and scoring its results.

Results layout (the VOT toolkits'): `<results_dir>/<tracker>/baseline/<seq>/<seq>_001.txt`
(further repetitions `_002` ...), one line per frame: `1` = (re-)initialised, `2` = failure,
`0` = skipped, otherwise the predicted region as `x,y,w,h` or a polygon, 0-based pixels.
`<seq>_time.value` beside it holds seconds per frame.

Running (`run_supervised`): the tracker starts on frame 1; on every later frame its box is
compared with the ground-truth region (`vot_region.region_overlap`, image bounds); overlap 0
is a failure (`2`), the next 4 frames are skipped (`0`) and the tracker is re-initialised on
the ground truth 5 frames after the failure (`1`), as pysot's and VOT's runners do.

Scoring (pure functions of the results and the ground truth, exactly as pysot's
`AccuracyRobustnessBenchmark` and `EAOBenchmark`):
- accuracy: mean overlap over all frames of all sequences, excluding code lines and the 10
  frames from each initialisation on (burn-in); overlaps use the bounds `(width, height)`;
  repetitions are averaged per frame first;
- failures: number of `2` lines (mean over repetitions of their sum over sequences);
- robustness: failures / frames scored x 100 (pysot's definition);
- EAO: each trajectory is cut into fragments at the re-initialisations (failure + 5); a
  fragment that ends in a failure is padded with overlap 0, the last one is not padded; the
  expected overlap of length L is the weighted mean over fragments that reach L of their mean
  overlap on frames 2..L; EAO is its mean over the year's interval of lengths: VOT2016
  [108, 371], VOT2017/2018 [100, 356], VOT2019 [46, 291]. Overlaps here use the bounds
  `(width - 1, height - 1)` and no burn-in, as pysot's EAO does.
Published VOT2019 results (`../shared/data/published/vot2019`) reproduce the README's numbers
(tests/test_vot_supervised.py).
"""

from __future__ import annotations

import glob
import math
import os
import re
import time
import warnings
from collections.abc import Iterable, Sequence as SequenceType

import numpy as np
from absl import logging

from memnet_tf import config as config_lib
from memnet_tf.eval import ope, report
from memnet_tf.eval.sequence import Sequence, canonical_name, load_frame
from memnet_tf.eval.vot_region import region_overlap, region_polygon

# Expected-overlap intervals `(low, high)` of sequence lengths, pysot's `EAOBenchmark`.
EAO_INTERVALS = {"vot2016": (108, 371), "vot2017": (100, 356), "vot2018": (100, 356),
                 "vot2019": (46, 291)}
SKIPPED_FRAMES = 5  # re-initialise this many frames after a failure
BURN_IN = 10  # frames from each initialisation that accuracy leaves out
INIT, FAILURE, SKIPPED = 1, 2, 0


class ResultsError(report.ResultsError):
    """A VOT results file that cannot be scored; names the file."""


# ---------------------------------------------------------------------------------------------
# Results files.

def results_folder(results_dir: str, tracker: str, name: str) -> str:
    return os.path.join(results_dir, tracker, "baseline", name)


def results_path(results_dir: str, tracker: str, sequence: Sequence, repetition: int = 1) -> str:
    """`<results_dir>/<tracker>/baseline/<seq>/<seq>_00<repetition>.txt`."""
    return os.path.join(results_folder(results_dir, tracker, sequence.name),
                        f"{sequence.name}_{repetition:03d}.txt")


def find_trajectories(results_dir: str, tracker: str, sequence: Sequence) -> list[str]:
    """Repetition files of `tracker` on `sequence` (folder name matched like OTB names)."""
    baseline = os.path.join(results_dir, tracker, "baseline")
    if not os.path.isdir(baseline):
        return []
    keys = {canonical_name(n) for n in (sequence.name, *sequence.aliases)}
    folders = [d for d in sorted(os.listdir(baseline)) if d == sequence.name] or [
        d for d in sorted(os.listdir(baseline)) if canonical_name(d) in keys]
    if len(folders) > 1:
        raise ResultsError(f"{baseline}: {len(folders)} folders match sequence {sequence.name}: "
                           f"{', '.join(folders)}; keep one")
    if not folders:
        return []
    folder = os.path.join(baseline, folders[0])
    return [p for p in sorted(glob.glob(os.path.join(glob.escape(folder), "*.txt")))
            if re.fullmatch(r".+_\d{3}\.txt", os.path.basename(p))]


def read_trajectory(path: str) -> list[np.ndarray]:
    """One VOT results file: per line a float array (1 value = a code, 4 = box, 8 = polygon).

    Raises:
        ResultsError: an unreadable line, naming `path:line`.
    """
    lines = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                values = np.asarray([float(v) for v in re.split(r"[,\s]+", text) if v])
            except ValueError:
                raise ResultsError(f"{path}:{number}: not a list of numbers: {text!r}") from None
            if values.size == 1 and values[0] not in (INIT, FAILURE, SKIPPED):
                raise ResultsError(f"{path}:{number}: code {values[0]:g} (expected 0, 1 or 2)")
            if values.size not in (1, 4) and (values.size < 6 or values.size % 2):
                raise ResultsError(f"{path}:{number}: {values.size} values (expected a code, "
                                   "x,y,w,h or a polygon)")
            lines.append(values)
    if not lines:
        raise ResultsError(f"{path}: empty results file")
    return lines


def ground_truth_regions(sequence: Sequence) -> list[np.ndarray]:
    """The sequence's regions in file pixels: polygons, or `x,y,w,h` rows."""
    if sequence.polygons is not None:
        return list(sequence.polygons + 0.0)
    boxes = sequence.ground_truth.copy()
    boxes[:, :2] += sequence.pixel_offset
    return list(boxes)


def frame_size(sequence: Sequence) -> tuple[int, int]:
    """`(width, height)`: stated by the dataset or read from the first frame."""
    if sequence.resolution is not None:
        return sequence.resolution
    if sequence.image_files and os.path.isfile(sequence.image_files[0]):
        height, width = load_frame(sequence.image_files[0]).shape[:2]
        sequence.resolution = (width, height)
        return sequence.resolution
    raise ResultsError(f"{sequence.annotation_file or sequence.name}: sequence {sequence.name} "
                       "states no frame size and has no frame to read it from (VOT overlaps "
                       "need the image bounds)")


# ---------------------------------------------------------------------------------------------
# Pure measures.

def failure_frames(trajectory: SequenceType[np.ndarray]) -> list[int]:
    """0-based frames whose line is the failure code `2`."""
    return [i for i, line in enumerate(trajectory) if line.size == 1 and line[0] == FAILURE]


def _inside(region, bounds) -> bool:
    """True when `region`'s pixel-rounded bounding box lies inside `[0, bounds]`."""
    polygon = region_polygon(region)
    return bool(polygon is not None and np.all(np.floor(polygon.min(axis=0)) >= 0)
                and np.all(np.ceil(polygon.max(axis=0)) <= np.asarray(bounds)))


def frame_overlaps(trajectory, regions, bounds_list) -> list[np.ndarray]:
    """Per-frame overlaps under each of `bounds_list` (NaN on code lines).

    Over the first `min(len(trajectory), len(regions))` frames, as pysot. A frame whose two
    regions lie inside the smallest bounds has the same overlap under all of them, so it is
    rasterised once.
    """
    length = min(len(trajectory), len(regions))
    results = [np.full(length, np.nan) for _ in bounds_list]
    smallest = np.min(np.asarray(bounds_list, np.float64), axis=0)
    for i in range(length):
        if trajectory[i].size == 1:
            continue
        if _inside(trajectory[i], smallest) and _inside(regions[i], smallest):
            value = region_overlap(trajectory[i], regions[i], bounds_list[0])
            for result in results:
                result[i] = value
        else:
            for result, bounds in zip(results, bounds_list):
                result[i] = region_overlap(trajectory[i], regions[i], bounds)
    return results


def apply_burn_in(overlaps: np.ndarray, trajectory, burn_in: int) -> np.ndarray:
    """`overlaps` with NaN on the `burn_in` frames from each initialisation (`1`) on."""
    overlaps = np.array(overlaps, np.float64)
    for i, line in enumerate(trajectory[:len(overlaps)]):
        if line.size == 1 and line[0] == INIT:
            overlaps[i:i + burn_in] = np.nan
    return overlaps


def trajectory_overlaps(trajectory, regions, bounds, burn_in: int = 0) -> np.ndarray:
    """Per-frame overlaps, NaN on code lines and on `burn_in` frames from each `1` (pysot's
    `calculate_accuracy`)."""
    return apply_burn_in(frame_overlaps(trajectory, regions, [bounds])[0], trajectory, burn_in)


def accuracy_robustness(overlaps: dict[str, list[np.ndarray]],
                        failures: dict[str, list[int]]) -> dict:
    """pysot's `AccuracyRobustnessBenchmark.show_result` on per-sequence repetitions.

    Args:
        overlaps: `{sequence: [per-repetition overlaps with burn-in]}`.
        failures: `{sequence: [per-repetition failure counts]}`.

    Returns:
        `{"accuracy", "robustness", "failures", "frames"}`.
    """
    per_sequence = []
    for name, repetitions in overlaps.items():
        stacked = np.vstack([np.asarray(r, np.float64) for r in repetitions])
        with warnings.catch_warnings():  # an all-NaN frame (a code line) is NaN, as in pysot
            warnings.simplefilter("ignore", RuntimeWarning)
            per_sequence.append(np.nanmean(stacked, axis=0))
    frames = int(sum(len(o) for o in per_sequence))
    everything = np.concatenate(per_sequence) if per_sequence else np.zeros(0)
    finite = everything[~np.isnan(everything)]
    counts = np.sum(np.asarray([failures[n] for n in overlaps], np.float64), axis=0)
    return {"accuracy": float(np.mean(finite)) if finite.size else float("nan"),
            "robustness": float(np.mean(counts / frames) * 100) if frames else float("nan"),
            "failures": float(np.mean(counts)), "frames": frames}


def eao_fragments(overlaps: list[np.ndarray], failures: list[list[int]], lengths: list[int],
                  weight: float = 1.0, skipping: int = SKIPPED_FRAMES
                  ) -> tuple[np.ndarray, np.ndarray]:
    """pysot's fragments of the EAO: `([num_fragments, max_len] overlaps, [num] weights)`.

    Args:
        overlaps: per trajectory, overlaps without burn-in (NaN on code lines).
        failures: per trajectory, its failure frames.
        lengths: per trajectory, its sequence's number of frames.
        weight: per-trajectory weight (1 / repetitions).
        skipping: frames from a failure to the re-initialisation.
    """
    max_len = max(len(o) for o in overlaps)
    count = sum(len(f) + 1 for f in failures)
    fragments = np.full((count, max_len), np.nan)
    weights = np.full(count, np.nan)
    row = 0
    for trajectory, fails, length in zip(overlaps, failures, lengths):
        tags = np.ones(length)  # the "all" tag
        if not fails:
            end = min(len(trajectory), max_len)
            fragments[row, :end] = trajectory[:end]
            weights[row] = weight * np.sum(tags[:end]) / end
            row += 1
            continue
        points = [0] + [f + skipping for f in fails if f + skipping <= len(trajectory)]
        for i, start in enumerate(points):
            last = i == len(points) - 1
            piece = np.array(trajectory[start:] if last else trajectory[start:points[i + 1] + 1])
            if not last:
                fragments[row, :] = 0.0
            piece[np.isnan(piece)] = 0.0
            fragments[row, :len(piece)] = piece
            if last:
                weights[row] = weight * np.sum(tags[start:len(trajectory)]) / (
                    length - start + 1e-16)
            else:
                weights[row] = weight * np.sum(tags[start:points[i + 1] + 1]) / (
                    points[i + 1] - start + 1)
            row += 1
    return fragments, weights


def expected_overlaps(fragments: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """pysot's `calculate_expected_overlap`: `[max_len]` float32, entry 0 = 1.

    Entry L is the weighted mean, over fragments with an overlap at index L, of their mean
    overlap on indices 1..L (NaN when such a fragment has a NaN there).
    """
    length = fragments.shape[1]
    curve = np.zeros(length, np.float32)
    curve[0] = 1
    if length < 2:
        return curve
    sums = np.cumsum(fragments[:, 1:], axis=1)  # NaN propagates, as np.sum does in pysot
    means = sums / np.arange(1, length)[None]
    present = ~np.isnan(fragments[:, 1:])
    w = np.where(present, weights[:, None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        numerator = np.sum(np.where(present, means * weights[:, None], 0.0), axis=0)
        values = numerator / np.sum(w, axis=0)
    reached = present.any(axis=0)
    curve[1:][reached] = values[reached].astype(np.float32)
    return curve


def eao_score(curve: np.ndarray, interval: tuple[int, int]) -> float:
    """Mean of the expected-overlap curve over lengths `[low, high]` (pysot's indexing)."""
    low, high = interval
    weight = np.zeros(len(curve))
    weight[low - 1:high] = 1
    valid = ~np.isnan(curve)
    return float(np.sum(curve[valid] * weight[valid]) / np.sum(weight[valid]))


# ---------------------------------------------------------------------------------------------
# Scoring a results folder.

def score_tracker(sequences: SequenceType[Sequence], results_dir: str, tracker: str,
                  year: str) -> dict:
    """Accuracy, robustness, failures and EAO of one tracker (module docstring).

    Returns:
        `{"eao", "accuracy", "robustness", "failures", "frames", "eao_curve", "num_sequences",
        "num_expected", "sequences": {name: {"accuracy", "failures"}}, "errors", "warnings"}`;
        the scores are None when a sequence is missing (EAO is defined on the whole set only).
    """
    interval = EAO_INTERVALS.get(year)
    if interval is None:
        raise ValueError(f"year={year!r}: EAO intervals are known for {sorted(EAO_INTERVALS)}")
    ar_overlaps, ar_failures, errors, notes = {}, {}, [], []
    eao_overlaps, eao_failures, eao_lengths, repetitions = [], [], [], 1
    per_sequence = {}
    for sequence in sequences:
        try:
            paths = find_trajectories(results_dir, tracker, sequence)
            if not paths:
                raise ResultsError(f"{results_path(results_dir, tracker, sequence)}: no results "
                                   f"for sequence {sequence.name}")
            width, height = frame_size(sequence)
            regions = ground_truth_regions(sequence)
            trajectories = [read_trajectory(p) for p in paths]
        except ResultsError as error:
            errors.append(str(error))
            continue
        for path, trajectory in zip(paths, trajectories):
            if len(trajectory) != len(regions):
                notes.append(f"{path}: {len(trajectory)} lines for {len(regions)} frames; "
                                f"overlaps over the first {min(len(trajectory), len(regions))}, "
                                "failures over every line (as pysot)")
        ar_overlaps[sequence.name], ar_failures[sequence.name] = [], []
        for trajectory in trajectories:
            # Accuracy bounds the regions by (width, height), pysot's EAO by (width - 1,
            # height - 1).
            ar, eao = frame_overlaps(trajectory, regions,
                                     [(width, height), (width - 1, height - 1)])
            ar_overlaps[sequence.name].append(apply_burn_in(ar, trajectory, BURN_IN))
            ar_failures[sequence.name].append(len(failure_frames(trajectory)))
            eao_overlaps.append(eao)
            eao_failures.append(failure_frames(trajectory))
            eao_lengths.append(len(regions))
        repetitions = len(trajectories)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            accuracy = float(np.nanmean(np.concatenate(ar_overlaps[sequence.name])))
        per_sequence[sequence.name] = {"accuracy": accuracy,
                                       "failures": float(np.mean(ar_failures[sequence.name]))}
    for message in errors + notes:
        logging.warning("%s: %s", tracker, message)
    result = {"eao": None, "accuracy": None, "robustness": None, "failures": None,
              "frames": None, "eao_curve": None, "num_sequences": len(per_sequence),
              "num_expected": len(sequences), "sequences": per_sequence, "errors": errors,
              "warnings": notes, "interval": list(interval)}
    if per_sequence and not errors:
        result.update(accuracy_robustness(ar_overlaps, ar_failures))
        fragments, weights = eao_fragments(eao_overlaps, eao_failures, eao_lengths,
                                           weight=1 / (repetitions + 1e-10))
        curve = expected_overlaps(fragments, weights)
        result.update(eao=eao_score(curve, interval), eao_curve=curve.astype(float).tolist())
    elif per_sequence:
        errors.append(f"{tracker}: {len(per_sequence)}/{len(sequences)} sequences have results; "
                      "EAO, accuracy and robustness are defined on the whole set, not scored")
    return result


def list_trackers(results_dir: str) -> list[str]:
    """Sub-folders of `results_dir` with a `baseline/` folder of VOT results."""
    if not os.path.isdir(results_dir):
        raise FileNotFoundError(f"{results_dir}: results folder not found")
    return [n for n in sorted(os.listdir(results_dir))
            if os.path.isdir(os.path.join(results_dir, n, "baseline"))]


def score_results(sequences: SequenceType[Sequence], results_dir: str,
                  trackers: Iterable[str] | None = None, year: str = "vot2019") -> dict:
    """`{"protocol": "supervised", "year", "trackers": {name: score_tracker(...)}}`."""
    trackers = list(trackers) if trackers else list_trackers(results_dir)
    return {"protocol": "supervised", "year": year,
            "trackers": {t: score_tracker(sequences, results_dir, t, year) for t in trackers}}


def _ranked(scores: dict) -> list[str]:
    scored = [n for n, t in scores["trackers"].items() if t["eao"] is not None]
    return sorted(scored, key=lambda n: -scores["trackers"][n]["eao"])


def _failures_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def summary_line(name: str, tracker_scores: dict) -> str:
    """`name: eao=0.xxx accuracy=0.xxx robustness=0.xxx failures=N`."""
    t = tracker_scores
    if t["eao"] is None:
        return (f"{name}: not scored (sequences={t['num_sequences']}/{t['num_expected']}, "
                "see the problems above)")
    return (f"{name}: eao={t['eao']:.3f} accuracy={t['accuracy']:.3f} "
            f"robustness={t['robustness']:.3f} failures={_failures_text(t['failures'])}")


def format_table(scores: dict) -> str:
    columns = ("Tracker", "EAO", "Accuracy", "Robustness", "Failures", "Sequences")
    rows = []
    for name in _ranked(scores):
        t = scores["trackers"][name]
        rows.append((name, f"{t['eao']:.3f}", f"{t['accuracy']:.3f}", f"{t['robustness']:.3f}",
                     _failures_text(t["failures"]), f"{t['num_sequences']}/{t['num_expected']}"))
    for name, t in scores["trackers"].items():
        if t["eao"] is None:
            rows.append((name, "-", "-", "-", "-", f"{t['num_sequences']}/{t['num_expected']}"))
    return report.text_table(columns, rows)


def plot_eao_curves(scores: dict, path: str, title: str) -> None:
    """Expected overlap against sequence length, the interval shaded; legend `name [EAO]`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 5.0))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    interval = None
    for i, name in enumerate(_ranked(scores)):
        t = scores["trackers"][name]
        interval = t["interval"]
        curve = np.asarray(t["eao_curve"], np.float64)
        axes.plot(np.arange(1, len(curve) + 1), curve, color=report.COLORS[i % 10],
                  linestyle=report.STYLES[i // 10 % 3], linewidth=2 if i == 0 else 1.5,
                  label=f"{name} [{t['eao']:.3f}]")
    if interval:
        axes.axvspan(interval[0], interval[1], color="0.9", zorder=0)
    axes.set(xlabel="Sequence length (frames)", ylabel="Expected overlap", title=title,
             ylim=(0, 1))
    report.save_plot(figure, axes, path)


# ---------------------------------------------------------------------------------------------
# Running a tracker.

def _region_text(values: np.ndarray) -> str:
    return ",".join(f"{v:.4f}" for v in values)


def track_supervised(tracker, sequence: Sequence) -> tuple[list[str], np.ndarray]:
    """Runs `tracker` over `sequence` with VOT's resets (module docstring).

    Returns:
        `(lines of the results file, [num_frames] seconds per frame, 0 on skipped frames)`.

    Raises:
        ope.TrackingError: an unreadable frame, a bad initial box or a tracker error.
    """
    regions = ground_truth_regions(sequence)
    bounds = frame_size(sequence)
    lines, times = [], np.zeros(sequence.num_frames)
    next_init = 0
    for frame, path in enumerate(sequence.image_files):
        if frame < next_init:
            lines.append(str(SKIPPED))
            continue
        where = f"{sequence.name}: frame {frame + 1} ({path})"
        try:
            image = load_frame(path)
        except (FileNotFoundError, ValueError) as error:
            raise ope.TrackingError(f"{where}: {error}") from None
        start = time.perf_counter()
        try:
            if frame == next_init:
                if not sequence.valid[frame]:  # no region to start from: try the next frame
                    lines.append(str(SKIPPED))
                    next_init += 1
                    continue
                box = sequence.ground_truth[frame].copy()
                tracker.init(image, box)
                lines.append(str(INIT))
            else:
                box = np.asarray(tracker.update(image), np.float64).ravel()
                if box.shape != (4,) or not np.all(np.isfinite(box)):
                    raise ope.TrackingError(f"{where}: tracker returned {box.tolist()!r}, "
                                            "expected 4 finite numbers [x, y, w, h]")
                written = box.copy()
                written[:2] += sequence.pixel_offset
                overlap = region_overlap(written, regions[frame], bounds)
                if overlap > 0 or math.isnan(overlap):
                    lines.append(_region_text(written))
                else:
                    lines.append(str(FAILURE))
                    next_init = frame + SKIPPED_FRAMES
        except ope.TrackingError:
            raise
        except Exception as error:  # noqa: BLE001 - any tracker failure is reported per sequence
            raise ope.TrackingError(
                f"{where}: tracker raised {type(error).__name__}: {error}") from error
        times[frame] = time.perf_counter() - start
    return lines, times


def track_and_record(tracker, sequence: Sequence, results_dir: str, tracker_name: str) -> float:
    """Tracks one sequence with resets and writes its VOT results; returns frames per second."""
    lines, times = track_supervised(tracker, sequence)
    path = results_path(results_dir, tracker_name, sequence)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # Times first: a complete results file means the whole sequence is recorded.
    config_lib.write_atomically(path[:-len("_001.txt")] + "_time.value",
                                "\n".join(f"{t:.8f}" for t in times) + "\n")
    config_lib.write_atomically(path, "\n".join(lines) + "\n")
    timed = times[times > 0]
    return float(len(timed) / max(np.sum(timed), 1e-12))


def run_supervised(tracker_factory, sequences: SequenceType[Sequence], results_dir: str,
                   tracker_name: str, num_workers: int = 1, progress: bool = True,
                   provenance: dict | None = None) -> dict:
    """`ope.run_ope` with VOT's reset protocol (same resume, provenance and workers)."""
    return ope.run_ope(tracker_factory, sequences, results_dir, tracker_name,
                       num_workers=num_workers, progress=progress, provenance=provenance,
                       track_and_record=track_and_record, results_file=results_path)
