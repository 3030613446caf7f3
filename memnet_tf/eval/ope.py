"""One-pass evaluation (OPE): run a tracker over every sequence and store its boxes and times.

Output, per sequence: `<results_dir>/<tracker_name>/<seq>.txt`, one `x,y,w,h` line per frame
(the first line is the initial box), in the annotation files' pixel convention (0-based boxes
plus `Sequence.pixel_offset`: OTB results are 1-based like every published OTB result), and
`<seq>_time.txt`, one line of seconds per frame. Both are written atomically, so a complete
results file means a finished sequence: a rerun skips those (resume) and redoes the others.
Given a `provenance` (what the tracker is: its checkpoint and settings), `run_ope` records it in
`<results_dir>/<tracker_name>/provenance.json` and refuses to resume results that another
tracker wrote, so a new checkpoint is never scored on an old one's boxes.

The tracker follows the got10k contract: `init(image, box)` and `update(image) -> [x, y, w, h]`
with RGB uint8 `[height, width, 3]` numpy frames and 0-based boxes. `tracker_factory()` is called
once per process and the tracker is reused across sequences, so `init` must reset all state.
With `num_workers > 1` sequences run in processes started with 'spawn' (TensorFlow is not
fork-safe): the factory must then be picklable, i.e. a top-level class or function, or a
`functools.partial` of one, not a lambda or a closure.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence as SequenceType

import numpy as np
from absl import logging

from memnet_tf import config as config_lib
from memnet_tf.eval.datasets import Sequence, load_frame

_WORKER_TRACKER = None  # the tracker of a worker process, built once by `_init_worker`
PROVENANCE_FILE = "provenance.json"


class TrackingError(RuntimeError):
    """A sequence that could not be tracked; the message names the sequence, frame and file."""


def results_path(results_dir: str, tracker_name: str, sequence_name: str) -> str:
    """`<results_dir>/<tracker_name>/<sequence_name>.txt`."""
    return os.path.join(results_dir, tracker_name, f"{sequence_name}.txt")


def times_path(results_dir: str, tracker_name: str, sequence_name: str) -> str:
    """`<results_dir>/<tracker_name>/<sequence_name>_time.txt`."""
    return os.path.join(results_dir, tracker_name, f"{sequence_name}_time.txt")


def is_complete(path: str, num_frames: int) -> bool:
    """True when `path` holds exactly `num_frames` non-empty lines (a finished sequence)."""
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8", errors="replace") as f:
        return sum(1 for line in f if line.strip()) == num_frames


def _write_lines(path: str, lines: list[str]) -> None:
    """Writes `lines` to `path` atomically (temp file in the same folder, then rename)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    config_lib.write_atomically(path, "\n".join(lines) + "\n")


def claim_results_folder(results_dir: str, tracker_name: str, provenance: dict) -> None:
    """Makes sure `<results_dir>/<tracker_name>` holds (or will hold) results of this tracker only.

    Args:
        results_dir: the results root.
        tracker_name: the tracker's sub-folder.
        provenance: JSON-serialisable description of the tracker (checkpoint, settings).

    Raises:
        ValueError: the folder holds results of another tracker (its provenance differs, naming
            what), or results files of an unknown one (no provenance file).
    """
    folder = os.path.join(results_dir, tracker_name)
    path = os.path.join(folder, PROVENANCE_FILE)
    wanted = json.loads(json.dumps(provenance))  # tuples -> lists, as read back from JSON
    advice = ("give another --tracker_name or --results_dir, or delete the folder to start "
              "over")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
        if stored != wanted:
            changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
            details = "; ".join(f"{k}: {stored.get(k)!r} there, {wanted.get(k)!r} now"
                                for k in changed)
            raise ValueError(f"{folder}: holds results of another tracker ({details}); {advice}")
        return
    if os.path.isdir(folder) and any(name.endswith(".txt") for name in os.listdir(folder)):
        raise ValueError(f"{folder}: holds results files of an unknown tracker (no "
                         f"{PROVENANCE_FILE}); {advice}")
    os.makedirs(folder, exist_ok=True)
    config_lib.write_atomically(path, json.dumps(wanted, indent=2, sort_keys=True) + "\n")


def check_initial_box(sequence: Sequence, image: np.ndarray) -> None:
    """Raises when the first box cannot start a tracker: not finite, zero size, or off-frame.

    Args:
        sequence: Gives the box and, for the message, its annotation file and line.
        image: `[height, width, 3]` first frame.
    """
    x, y, w, h = sequence.ground_truth[0]
    height, width = image.shape[:2]
    where = f"{sequence.where(0)}: initial box [{x:g}, {y:g}, {w:g}, {h:g}] (0-based)"
    if not np.all(np.isfinite([x, y, w, h])):
        raise TrackingError(f"{where} is not finite")
    if w <= 0 or h <= 0:
        raise TrackingError(f"{where} has zero size")
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise TrackingError(f"{where} lies outside the {width}x{height} frame "
                            f"{sequence.image_files[0]}")


def track_sequence(tracker, sequence: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Runs `tracker` over one sequence.

    Args:
        tracker: got10k-style tracker (`init`, `update`).
        sequence: The sequence; its first ground-truth box starts the tracker.

    Returns:
        `([num_frames, 4] 0-based boxes, [num_frames] seconds per frame)`.

    Raises:
        TrackingError: unreadable frame, bad initial box, tracker exception or a tracker output
            that is not 4 finite numbers; the message names the sequence, frame and file.
    """
    if len(sequence.image_files) != sequence.num_frames:
        raise TrackingError(f"{sequence.name}: {len(sequence.image_files)} frame files for "
                            f"{sequence.num_frames} boxes")
    boxes = np.zeros((sequence.num_frames, 4))
    times = np.zeros(sequence.num_frames)
    for frame, path in enumerate(sequence.image_files):
        where = f"{sequence.name}: frame {frame + 1} ({path})"
        try:
            image = load_frame(path)
        except (FileNotFoundError, ValueError) as error:
            raise TrackingError(f"{where}: {error}") from None
        start = time.perf_counter()
        try:
            if frame == 0:
                check_initial_box(sequence, image)
                tracker.init(image, sequence.ground_truth[0].copy())
                box = sequence.ground_truth[0]
            else:
                box = tracker.update(image)
        except TrackingError:
            raise
        except Exception as error:  # noqa: BLE001 - any tracker failure is reported per sequence
            raise TrackingError(
                f"{where}: tracker raised {type(error).__name__}: {error}") from error
        times[frame] = time.perf_counter() - start
        box = np.asarray(box, np.float64).ravel()
        if box.shape != (4,) or not np.all(np.isfinite(box)):
            raise TrackingError(f"{where}: tracker returned {box.tolist()!r}, expected 4 finite "
                                "numbers [x, y, w, h]")
        boxes[frame] = box
    return boxes, times


def _track_and_record(tracker, sequence: Sequence, results_dir: str, tracker_name: str) -> float:
    """Tracks one sequence and writes its results and times; returns frames per second.

    The speed is that of the frames after the first update (`steady_fps`): `init` and a first
    update that traces the tracker's graph are not tracking speed.
    """
    boxes, times = track_sequence(tracker, sequence)
    boxes[:, :2] += sequence.pixel_offset  # back to the annotation files' convention
    # Times first: a results file present means the whole sequence is recorded.
    _write_lines(times_path(results_dir, tracker_name, sequence.name),
                 [f"{t:.8f}" for t in times])
    _write_lines(results_path(results_dir, tracker_name, sequence.name),
                 [",".join(f"{v:.4f}" for v in box) for box in boxes])
    return steady_fps(times)


def steady_fps(times) -> float:
    """Frames per second over the frames after the first update (all of them when there are
    fewer than 3): frame 0 is `init`, frame 1 may trace the graph (seconds, once per process)."""
    times = np.asarray(times, np.float64)
    steady = times[2:] if times.size > 2 else times
    return float(steady.size / max(float(np.sum(steady)), 1e-12))


def _init_worker(tracker_factory: Callable[[], object]) -> None:
    global _WORKER_TRACKER
    _WORKER_TRACKER = tracker_factory()


def _run_in_worker(track_and_record, sequence: Sequence, results_dir: str,
                   tracker_name: str) -> float:
    return track_and_record(_WORKER_TRACKER, sequence, results_dir, tracker_name)


def run_ope(tracker_factory: Callable[[], object], sequences: SequenceType[Sequence],
            results_dir: str, tracker_name: str, num_workers: int = 1,
            progress: bool = True, provenance: dict | None = None,
            track_and_record: Callable | None = None,
            results_file: Callable[[str, str, Sequence], str] | None = None) -> dict:
    """Runs one-pass evaluation, skipping sequences whose results are already complete.

    Args:
        tracker_factory: Zero-argument callable returning a got10k-style tracker; picklable
            when `num_workers > 1` (see the module docstring).
        sequences: The dataset.
        results_dir: Results root; files go to `<results_dir>/<tracker_name>/`.
        tracker_name: The results sub-folder.
        num_workers: Sequences tracked in parallel processes (1 = in this process).
        progress: One line per finished sequence on stderr (and the reused ones' count).
        provenance: what the tracker is (`claim_results_folder`); when given, results of
            another tracker in the same folder are an error instead of being resumed.
        track_and_record: `(tracker, sequence, results_dir, tracker_name) -> fps`, a top-level
            function (picklable) that tracks one sequence under another protocol and writes
            its files (`vot_supervised.track_and_record`); default one pass.
        results_file: `(results_dir, tracker_name, sequence) -> path` of the file whose
            `num_frames` lines mark a finished sequence (goes with `track_and_record`).

    Returns:
        `{"completed": [names], "skipped": [names already complete], "failed": {name: message}}`.
        A failing sequence does not stop the others.
    """
    if num_workers < 1:
        raise ValueError(f"num_workers={num_workers}: expected >= 1")
    if provenance is not None:
        claim_results_folder(results_dir, tracker_name, provenance)
    track_and_record = track_and_record or _track_and_record
    results_file = results_file or (lambda root, name, seq: results_path(root, name, seq.name))
    summary = {"completed": [], "skipped": [], "failed": {}}
    todo = []
    for sequence in sequences:
        if is_complete(results_file(results_dir, tracker_name, sequence), sequence.num_frames):
            summary["skipped"].append(sequence.name)
        else:
            todo.append(sequence)
    if progress and summary["skipped"]:
        # Said on stderr whatever the log level: reused results must never be silent.
        print(f"{tracker_name}: {len(summary['skipped'])} sequences already complete (results "
              f"reused), {len(todo)} to run", file=sys.stderr, flush=True)

    def record(index, sequence, outcome):
        if isinstance(outcome, Exception):
            summary["failed"][sequence.name] = str(outcome)
            logging.error("[%d/%d] %s failed: %s", index, len(todo), sequence.name, outcome)
        else:
            summary["completed"].append(sequence.name)
            if progress:  # a user's progress on long work: shown whatever the log level
                print(f"{tracker_name} [{index}/{len(todo)}] {sequence.name}: "
                      f"{sequence.num_frames} frames, {outcome:.1f} fps", file=sys.stderr,
                      flush=True)

    if num_workers == 1 or len(todo) <= 1:
        tracker = tracker_factory() if todo else None
        for index, sequence in enumerate(todo, start=1):
            try:
                outcome = track_and_record(tracker, sequence, results_dir, tracker_name)
            except (TrackingError, OSError) as error:
                outcome = error
            record(index, sequence, outcome)
        return summary

    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
            max_workers=min(num_workers, len(todo)), mp_context=context,
            initializer=_init_worker, initargs=(tracker_factory,)) as pool:
        futures = {pool.submit(_run_in_worker, track_and_record, s, results_dir, tracker_name): s
                   for s in todo}
        for index, future in enumerate(concurrent.futures.as_completed(futures), start=1):
            try:
                outcome = future.result()
            except Exception as error:  # noqa: BLE001 - includes a worker that died
                outcome = error
            record(index, futures[future], outcome)
    return summary
