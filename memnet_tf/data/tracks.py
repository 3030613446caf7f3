"""The common `Track` record of all training sources, skip accounting and a minimal OTB reader."""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import threading

import numpy as np
from PIL import Image

from memnet_tf.eval import datasets as eval_datasets
from memnet_tf.geometry.boxes import validate_box

_MAX_EXAMPLES = 5


@dataclasses.dataclass(frozen=True)
class Track:
    """One object through the frames where it is visible.

    Attributes:
        name: unique name, e.g. "ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000/0".
        frame_paths: image file of each annotated frame, in temporal order.
        boxes: float64 `[num_frames, 4]` boxes `[x, y, w, h]`, 0-based top-left.
    """

    name: str
    frame_paths: tuple[str, ...]
    boxes: np.ndarray

    def __post_init__(self):
        boxes = np.asarray(self.boxes, dtype=np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"track {self.name}: boxes must be [num_frames, 4], got "
                             f"{list(boxes.shape)}")
        if len(self.frame_paths) != len(boxes):
            raise ValueError(f"track {self.name}: {len(self.frame_paths)} frames but "
                             f"{len(boxes)} boxes")
        for i, box in enumerate(boxes):
            validate_box(box, name=f"track {self.name} frame {i} ({self.frame_paths[i]})")
        boxes.setflags(write=False)
        object.__setattr__(self, "frame_paths", tuple(self.frame_paths))
        object.__setattr__(self, "boxes", boxes)

    def __len__(self) -> int:
        return len(self.frame_paths)


class SkipReport:
    """Counts what was skipped and why, keeping a few example messages per reason (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.counts: collections.Counter = collections.Counter()
        self.examples: dict[str, list[str]] = collections.defaultdict(list)

    def add(self, reason: str, detail: str = "", count: int = 1) -> int:
        """Records `count` skips for `reason`; returns the new total of that reason."""
        with self._lock:
            self.counts[reason] += count
            if detail and len(self.examples[reason]) < _MAX_EXAMPLES:
                self.examples[reason].append(detail)
            return self.counts[reason]

    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict:
        with self._lock:
            return {reason: {"count": count, "examples": list(self.examples.get(reason, []))}
                    for reason, count in sorted(self.counts.items())}

    def summary_lines(self) -> list[str]:
        """Human-readable lines: one per reason with its count and first example."""
        lines = []
        for reason, entry in self.as_dict().items():
            example = f" (e.g. {entry['examples'][0]})" if entry["examples"] else ""
            lines.append(f"  {entry['count']:>8}  {reason}{example}")
        return lines


def load_image(path: str) -> np.ndarray:
    """Decodes an image file strictly (a truncated JPEG is an error) to uint8 `[H, W, 3]` RGB.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable image.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: image file not found")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{path}: corrupt or unreadable image ({error})") from None


_SEPARATORS = re.compile(r"[,\s]+")


def parse_box_lines(path: str) -> list[np.ndarray | None]:
    """Parses a ground-truth file with one `x,y,w,h` per line (comma, tab or space separated).

    Returns one float64 `[4]` per line, or None for a line whose box is NaN or has no area
    (absent target in GOT-10k style files), so callers can skip those frames.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line without exactly 4 numbers, naming the file and line.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: ground-truth file not found")
    boxes = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, start=1):
        fields = [v for v in _SEPARATORS.split(line.strip()) if v]
        try:
            values = np.array([float(v) for v in fields], dtype=np.float64)
        except ValueError:
            raise ValueError(f"{path} line {number}: not numbers: {line.strip()!r}") from None
        if values.shape != (4,):
            raise ValueError(f"{path} line {number}: expected 4 numbers x,y,w,h, got "
                             f"{len(values)}: {line.strip()!r}")
        if not np.all(np.isfinite(values)) or values[2] <= 0 or values[3] <= 0:
            boxes.append(None)
        else:
            boxes.append(values)
    return boxes


def track_from_frames(name: str, frame_paths, boxes, skips: SkipReport,
                       min_frames: int, reason_absent: str = "frame without a valid box"
                       ) -> Track | None:
    """Builds a Track from aligned frames and boxes (None = skip frame), or None if too short."""
    kept_paths, kept_boxes = [], []
    for path, box in zip(frame_paths, boxes):
        if box is None:
            skips.add(reason_absent, f"{name}: {os.path.basename(path)}")
            continue
        kept_paths.append(path)
        kept_boxes.append(box)
    if len(kept_paths) < max(min_frames, 1):
        skips.add(f"track shorter than {max(min_frames, 1)} frames",
                  f"{name} ({len(kept_paths)} frames)")
        return None
    return Track(name, tuple(kept_paths), np.stack(kept_boxes))


def _sequence_folder(problem: str, root: str) -> str:
    """The sequence folder a reader's problem message is about (messages start with a path)."""
    path = problem.split(":", 1)[0]
    relative = os.path.relpath(path, root) if os.path.isabs(path) or path.startswith(root) \
        else path
    return relative.split(os.sep)[0]


def read_otb_tracks(root: str, min_frames: int = 1, skips: SkipReport | None = None,
                    strict: bool = False, keep=None) -> list[Track]:
    """Reads OTB-layout sequences (`<Seq>/img/*.jpg` + `groundtruth_rect*.txt`) as Tracks.

    Parsing is the evaluation reader's (`eval.datasets.read_otb`), so training and evaluation
    agree on every OTB convention: 1-based boxes become 0-based, a folder with several
    ground-truth files gives one track per target ("<Seq>.1", "<Seq>.2"), annotation frame
    ranges (OTB's David starts at frame 300) and surplus images (Football1) are handled.
    Frames without a valid box are skipped and counted.

    Args:
        root: folder of sequence folders.
        min_frames: tracks with fewer valid frames are skipped.
        skips: where to count what was skipped (a new report if None).
        strict: raise on a malformed sequence instead of skipping it.
        keep: optional predicate on a sequence folder's name; other sequences are left out
            before anything of theirs is counted as skipped.

    Returns:
        Tracks sorted by name.

    Raises:
        FileNotFoundError: `root` does not exist.
    """
    skips = skips if skips is not None else SkipReport()
    problems = None if strict else []
    sequences = eval_datasets.read_otb(root, errors=problems)
    for problem in problems or ():
        if keep is not None and not keep(_sequence_folder(problem, root)):
            continue
        skips.add("malformed sequence", problem)
    tracks = []
    for sequence in sorted(sequences, key=lambda s: s.name):
        if keep is not None and not keep(sequence.name.split(".")[0]):
            continue
        boxes = [box if valid else None
                 for box, valid in zip(sequence.ground_truth, sequence.valid)]
        track = track_from_frames(sequence.name, sequence.image_files, boxes, skips, min_frames)
        if track is not None:
            tracks.append(track)
    return tracks
