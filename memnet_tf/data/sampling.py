"""Which frames of a track make one training clip (spec 7.2): pure numpy, seeded by the caller."""

from __future__ import annotations

import numpy as np


def min_track_frames(time_steps: int) -> int:
    """Fewest frames a track needs for a training clip of `time_steps` steps.

    A clip uses T + 1 distinct frames drawn from 0 .. n - 2 (the last frame is never used), so
    n - 1 >= T + 1.
    """
    return time_steps + 2


def sample_train_frames(num_frames: int, count: int, rng: np.random.Generator,
                        max_gap: int = 0) -> np.ndarray:
    """Draws `count` distinct frames from 0 .. num_frames - 2, in temporal order.

    `max_gap=0` is the official `_process_images` (with `is_limit_search = False`): frames uniform
    over the whole track, so gaps between the chosen frames are random and often large. The last
    frame of a track is never used.

    `max_gap=g > 0` draws a clip at (close to) the frame rate the tracker sees: each of the
    count - 1 gaps is uniform in 1 .. g, and the window starts uniformly where it fits. A track
    too short for gaps of up to g uses gaps of up to `(num_frames - 2) // (count - 1)` instead.

    Args:
        num_frames: frames in the track.
        count: frames to draw (T + 1 for T steps).
        rng: the numpy generator to draw from.
        max_gap: largest distance between successive clip frames; 0 = no limit.

    Returns:
        int64 `[count]` sorted frame indices.

    Raises:
        ValueError: fewer than `count` frames to choose from, or a negative `max_gap`.
    """
    if count < 1:
        raise ValueError(f"count={count} must be positive")
    if max_gap < 0:
        raise ValueError(f"max_gap={max_gap} must be >= 0 (0 = gaps over the whole track)")
    if num_frames - 1 < count:
        raise ValueError(f"a track of {num_frames} frames has only {max(num_frames - 1, 0)} "
                         f"usable frames (the last is never used); {count} are needed")
    if max_gap == 0 or count == 1:
        return np.sort(rng.choice(num_frames - 1, size=count, replace=False)).astype(np.int64)
    gap_limit = min(max_gap, (num_frames - 2) // (count - 1))
    offsets = np.concatenate([[0], np.cumsum(rng.integers(1, gap_limit + 1, size=count - 1))])
    start = rng.integers(num_frames - 1 - offsets[-1])
    return (start + offsets).astype(np.int64)


def sample_val_frames(num_frames: int, count: int, max_gap: int = 0) -> np.ndarray:
    """`count` fixed frames of a validation clip (spec 7.2).

    `max_gap=0`: evenly spaced over the whole track, `floor(linspace(0, num_frames - 1, count))`
    like the official `tf.to_int32`; when `count > num_frames` some frames repeat.
    `max_gap=g > 0`: the clip at the training frame rate, frames 0, g', 2g', ... with g' = g, or
    the largest gap that fits a short track (a track shorter than the clip: as for 0).

    Args:
        num_frames: frames in the track.
        count: frames to return.
        max_gap: the training clips' largest gap (`sample_train_frames`); 0 = no limit.

    Returns:
        int64 `[count]` non-decreasing frame indices from 0.
    """
    if num_frames < 1 or count < 1:
        raise ValueError(f"num_frames={num_frames} and count={count} must be positive")
    if max_gap < 0:
        raise ValueError(f"max_gap={max_gap} must be >= 0 (0 = evenly over the whole track)")
    gap = min(max_gap, (num_frames - 1) // (count - 1)) if max_gap and count > 1 else 0
    if gap:
        return gap * np.arange(count, dtype=np.int64)
    return np.floor(np.linspace(0.0, num_frames - 1, count)).astype(np.int64)
