"""GOT-10k reader: `list.txt` + `<seq>/groundtruth.txt` (+ absence/cover labels) into Tracks."""

from __future__ import annotations

import os

import numpy as np

from memnet_tf.data.tracks import SkipReport, Track, parse_box_lines, track_from_frames
from memnet_tf.eval import datasets as eval_datasets


def _read_int_labels(path: str) -> list[int]:
    """One integer per line (`absence.label`, `cover.label`); errors name the file and line."""
    values = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                values.append(int(float(line.strip())))
            except ValueError:
                raise ValueError(f"{path} line {number}: not an integer: {line.strip()!r}") \
                    from None
    return values


def split_folder(root: str, split: str) -> str:
    """The folder holding `list.txt`: `root/<split>` or `root` itself."""
    for folder in (os.path.join(root, split), root):
        if os.path.isfile(os.path.join(folder, "list.txt")):
            return folder
    raise FileNotFoundError(f"{root}: no list.txt in {os.path.join(root, split)} or {root} "
                            "(is --root the GOT-10k folder?)")


def read_got10k_sequence(folder: str) -> tuple[list[str], list[np.ndarray | None]]:
    """Frames and boxes of one GOT-10k sequence; a box is None where the target is not visible.

    A frame counts as not visible when `absence.label` says 1, `cover.label` says 0, or its box
    is NaN or has no area.

    Returns:
        (frame paths, boxes) aligned, boxes float64 `[4]` 0-based `[x, y, w, h]` or None.

    Raises:
        FileNotFoundError: missing folder or groundtruth.txt.
        ValueError: a malformed line or a line count that does not match the images.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: sequence folder listed in list.txt not found")
    frames = eval_datasets.list_images(folder)
    gt_path = os.path.join(folder, "groundtruth.txt")
    boxes = parse_box_lines(gt_path)
    if len(boxes) != len(frames):
        raise ValueError(f"{gt_path}: {len(boxes)} lines but {len(frames)} images in {folder}")
    for label_name, hidden in (("absence.label", lambda v: v == 1),
                               ("cover.label", lambda v: v == 0)):
        path = os.path.join(folder, label_name)
        if not os.path.isfile(path):
            continue
        labels = _read_int_labels(path)
        if len(labels) != len(frames):
            raise ValueError(f"{path}: {len(labels)} lines but {len(frames)} images in {folder}")
        boxes = [None if hidden(v) else b for v, b in zip(labels, boxes)]
    return frames, boxes


def read_got10k_tracks(root: str, split: str = "train", min_frames: int = 1,
                       skips: SkipReport | None = None, strict: bool = False) -> list[Track]:
    """Reads the GOT-10k train or val split as one Track per sequence.

    Args:
        root: the GOT-10k folder (with `train/` and `val/`), or a split folder with `list.txt`.
        split: "train" or "val" (test has only first-frame boxes).
        min_frames: sequences with fewer visible frames are skipped.
        skips: where to count what was skipped (a new report if None).
        strict: raise on a malformed sequence instead of skipping it.

    Returns:
        Tracks in `list.txt` order, named by sequence.

    Raises:
        FileNotFoundError: no list.txt.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split={split!r}: GOT-10k training reads 'train' or 'val'")
    folder = split_folder(root, split)
    skips = skips if skips is not None else SkipReport()
    list_path = os.path.join(folder, "list.txt")
    with open(list_path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    tracks = []
    for name in names:
        try:
            frames, boxes = read_got10k_sequence(os.path.join(folder, name))
        except (FileNotFoundError, ValueError) as error:
            if strict:
                raise
            skips.add("malformed sequence", str(error))
            continue
        track = track_from_frames(name, frames, boxes, skips, min_frames,
                                  reason_absent="frame with the target absent or fully covered")
        if track is not None:
            tracks.append(track)
    return tracks
