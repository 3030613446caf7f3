"""Which frames of a track make one training clip (spec 7.2): pure numpy, seeded by the caller."""

from __future__ import annotations

import numpy as np


def min_track_frames(time_steps: int) -> int:
    """Fewest frames a track needs for a training clip of `time_steps` steps.

    A clip uses T + 1 distinct frames drawn from 0 .. n - 2 (the last frame is never used), so
    n - 1 >= T + 1.
    """
    return time_steps + 2


def sample_train_frames(num_frames: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Draws `count` distinct frames uniformly from 0 .. num_frames - 2, in temporal order.

    As the official `_process_images` (with `is_limit_search = False`): the last frame of a track
    is never used, and gaps between the chosen frames are random and often large.

    Args:
        num_frames: frames in the track.
        count: frames to draw (T + 1 for T steps).
        rng: the numpy generator to draw from.

    Returns:
        int64 `[count]` sorted frame indices.

    Raises:
        ValueError: fewer than `count` frames to choose from.
    """
    if count < 1:
        raise ValueError(f"count={count} must be positive")
    if num_frames - 1 < count:
        raise ValueError(f"a track of {num_frames} frames has only {max(num_frames - 1, 0)} "
                         f"usable frames (the last is never used); {count} are needed")
    return np.sort(rng.choice(num_frames - 1, size=count, replace=False)).astype(np.int64)


def sample_val_frames(num_frames: int, count: int) -> np.ndarray:
    """`count` frames evenly spaced over the whole track (validation, spec 7.2).

    Indices are `floor(linspace(0, num_frames - 1, count))` like the official `tf.to_int32`;
    when `count > num_frames` some frames repeat.

    Args:
        num_frames: frames in the track.
        count: frames to return.

    Returns:
        int64 `[count]` non-decreasing frame indices from 0 to num_frames - 1.
    """
    if num_frames < 1 or count < 1:
        raise ValueError(f"num_frames={num_frames} and count={count} must be positive")
    return np.floor(np.linspace(0.0, num_frames - 1, count)).astype(np.int64)
