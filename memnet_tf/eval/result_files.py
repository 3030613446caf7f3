"""Finding and reading one tracker's results files for a sequence, as trackers release them.

Names. A results file is `<tracker>/<stem>.txt` (or got10k's repetitions
`<tracker>/<stem>/<stem>_001.txt ...`). Released files spell sequence names every way:
`Basketball.txt`, `basketball.txt`, `Jogging-1.txt`, `Jogging_1.txt`, `jogging.1.txt`,
`human4-2.txt`, `Faceocc1.txt`. A stem matches a sequence when it equals the sequence's name
or one of its aliases (a pysot JSON entry's `name`, the target file an OTB folder was read
from) case-insensitively, with any of `- _ .` before the target number (`canonical_name`).
The exact name wins; two different files that both match are an error naming them, never a
silent pick.

Lengths. A results file must have one box per ground-truth frame, with two exceptions that
published results need, both reported by `ResultLength`:
- one line short (MDNet's released Board and Twinnings): scored over the common length, as the
  OTB toolkits do;
- OTB's Tiger1, whose OTB-2013 frame range omits the first 5 of the 354 frames: results of the
  other range are aligned on the last frame.
"""

from __future__ import annotations

import dataclasses
import glob
import io
import os
import re

import numpy as np
from absl import logging

from memnet_tf.eval.sequence import DatasetError, Sequence, canonical_name, read_box_file

# Lines a results file may lack at its end and still be scored (over the common length).
MAX_MISSING_LINES = 1
# Sequences whose two published frame ranges differ by a known number of leading frames
# (OTB-2013 vs OTB-2015 Tiger1, the toolkit's `initOmit`): results of either range are
# aligned on the last frame.
LEADING_FRAME_OFFSETS = {"tiger1": 5}


class ResultsError(ValueError):
    """A results file that cannot be scored; the message names the file (and line)."""


@dataclasses.dataclass(frozen=True)
class ResultLength:
    """How a results file lines up with the ground truth.

    Attributes:
        path: the results file.
        num_lines: boxes in the file.
        num_frames: ground-truth frames.
        first_frame: ground-truth frame (0-based) of the file's first box.
        first_line: file line (0-based box index) scored first.
        length: boxes scored.
    """

    path: str
    num_lines: int
    num_frames: int
    first_frame: int
    first_line: int
    length: int

    @property
    def adjusted(self) -> bool:
        return self.num_lines != self.num_frames

    def describe(self) -> str:
        if self.first_frame or self.first_line:
            return (f"{self.path}: {self.num_lines} boxes for {self.num_frames} frames, aligned "
                    f"on the last frame (the sequence's other published frame range)")
        return (f"{self.path}: {self.num_lines} boxes for {self.num_frames} frames, scored over "
                f"the common {self.length} frames")


def _target_suffix(name: str) -> tuple[str, str] | None:
    match = re.fullmatch(r"(.+?)[.\-_](\d+)", name)
    return (match.group(1), match.group(2)) if match else None


def name_keys(name: str, aliases=()) -> list[str]:
    """Canonical keys a results stem may have for a sequence, its own name first."""
    return list(dict.fromkeys(canonical_name(n) for n in (name, *aliases)))


def _stems(tracker_dir: str) -> dict[str, list[str]]:
    """`{stem: [results paths]}` of one tracker folder (flat files or got10k repetitions)."""
    found = {}
    if not os.path.isdir(tracker_dir):
        return found
    for entry in sorted(os.listdir(tracker_dir)):
        path = os.path.join(tracker_dir, entry)
        if entry.endswith(".txt") and os.path.isfile(path):
            stem = entry[:-4]
            if not stem.endswith("_time"):
                found.setdefault(stem, []).append(path)
        elif os.path.isdir(path):
            repetitions = sorted(glob.glob(os.path.join(glob.escape(path),
                                                        f"{glob.escape(entry)}_[0-9]*.txt")))
            repetitions = [p for p in repetitions
                           if re.fullmatch(r"_\d+", os.path.basename(p)[len(entry):-4])]
            if repetitions:
                found.setdefault(entry, []).extend(repetitions)
    return found


def find_result_files(results_dir: str, tracker: str, name: str, aliases=()) -> list[str]:
    """Results files of `tracker` on sequence `name` (one, or got10k's repetitions).

    Args:
        results_dir: the results root.
        tracker: the tracker's folder.
        name: the sequence name.
        aliases: other names of the sequence (see the module docstring).

    Returns:
        Paths; empty when none exists.

    Raises:
        ResultsError: two different stems both match (names them).
    """
    stems = _stems(os.path.join(results_dir, tracker))
    if name in stems:
        return stems[name]
    keys = set(name_keys(name, aliases))
    matches = sorted(stem for stem in stems if canonical_name(stem) in keys)
    if len(matches) > 1:
        files = ", ".join(os.path.relpath(stems[m][0], results_dir) for m in matches)
        raise ResultsError(f"{os.path.join(results_dir, tracker)}: {len(matches)} results files "
                           f"match sequence {name}: {files}; keep one")
    return stems[matches[0]] if matches else []


def align(path: str, num_lines: int, sequence: Sequence) -> ResultLength:
    """How `num_lines` boxes of `path` line up with `sequence` (module docstring, "Lengths").

    Raises:
        ResultsError: any other line count, naming both counts.
    """
    frames = sequence.num_frames
    if num_lines == frames:
        return ResultLength(path, num_lines, frames, 0, 0, frames)
    offset = next((LEADING_FRAME_OFFSETS[k] for k in name_keys(sequence.name, sequence.aliases)
                   if k in LEADING_FRAME_OFFSETS), None)
    if offset is not None and num_lines == frames - offset:
        return ResultLength(path, num_lines, frames, offset, 0, num_lines)
    if offset is not None and num_lines == frames + offset:
        return ResultLength(path, num_lines, frames, 0, offset, frames)
    if frames - MAX_MISSING_LINES <= num_lines < frames:
        return ResultLength(path, num_lines, frames, 0, 0, num_lines)
    raise ResultsError(f"{path}: {num_lines} lines of boxes but the sequence has {frames} "
                       "frames (one line per frame expected)")


def read_results(path: str, sequence: Sequence) -> tuple[np.ndarray, ResultLength]:
    """Reads one results file and lines it up with the sequence.

    Args:
        path: text file, one `x,y,w,h` per line (commas, tabs or spaces; `nan` allowed); extra
            columns (`track --output_boxes`' peak and psr) are ignored, `#` lines skipped.
        sequence: the sequence it is for.

    Returns:
        `(boxes [length, 4] as written (file pixel convention), alignment)`; the boxes are
        those of ground-truth frames `alignment.first_frame ... + length`.

    Raises:
        ResultsError: bad line (names `path:line`) or a line count that cannot be lined up.
    """
    try:
        boxes, _ = read_box_file(path, widths=(4, 5, 6))
    except DatasetError as error:
        raise ResultsError(str(error)) from None
    boxes = boxes[:, :4]
    alignment = align(path, len(boxes), sequence)
    return boxes[alignment.first_line:alignment.first_line + alignment.length], alignment


def read_times(results_dir: str, tracker: str, name: str, aliases=()) -> np.ndarray:
    """Per-frame seconds of `tracker` on `name` (positive ones), or an empty array."""
    tracker_dir = os.path.join(results_dir, tracker)
    keys = set(name_keys(name, aliases))
    candidates = []
    for folder in (tracker_dir, os.path.join(tracker_dir, "times")):
        if os.path.isdir(folder):
            candidates += [os.path.join(folder, f) for f in sorted(os.listdir(folder))
                           if f.endswith("_time.txt")]
    candidates += sorted(glob.glob(os.path.join(glob.escape(tracker_dir), "*", "*_time.txt")))
    exact = [p for p in candidates if os.path.basename(p) == f"{name}_time.txt"]
    matching = exact or [p for p in candidates
                         if canonical_name(os.path.basename(p)[:-len("_time.txt")]) in keys]
    for path in matching:
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
