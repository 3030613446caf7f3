"""How sure the tracker is about one frame: the response peak and its peak-to-sidelobe ratio.

Pure numpy, on the winning scale's response map (`[R, R]`, the 17x17 logits before
up-sampling, penalty and window). The raw peak depends on the model (a BatchNorm head and
SiamFC's x0.001 head give values on different scales); the peak-to-sidelobe ratio
(Bolme et al., MOSSE, CVPR 2010) is scale-free: `(peak - mean(sidelobe)) / std(sidelobe)`,
where the sidelobe is the map without the `(2 * radius + 1)^2` cells around the peak. A map with
one sharp peak on a flat background gives a large ratio; a target that left the search region
leaves a flat or multi-modal map and a small one (`tests/test_track_score.py`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# Cells around the peak left out of the sidelobe: +-2 response cells = +-16 search-crop pixels,
# the main lobe of a target of about a quarter of the exemplar.
SIDELOBE_EXCLUSION_RADIUS = 2


class FrameScore(NamedTuple):
    """The tracker's confidence in one frame.

    Attributes:
        peak: the highest value of the winning scale's response (the model's logit).
        psr: peak-to-sidelobe ratio of that response (0 for a constant map).
    """

    peak: float
    psr: float


def peak_to_sidelobe(response: np.ndarray,
                     radius: int = SIDELOBE_EXCLUSION_RADIUS) -> float:
    """`(peak - mean(sidelobe)) / std(sidelobe)` of a 2-D map.

    Args:
        response: `[H, W]` map (float).
        radius: cells on each side of the peak excluded from the sidelobe.

    Returns:
        The ratio as a float; 0.0 when the sidelobe is constant (no peak stands out) or empty.

    Raises:
        ValueError: a map that is not 2-D or has NaN/Inf values.
    """
    values = np.asarray(response, np.float64)
    if values.ndim != 2:
        raise ValueError(f"peak_to_sidelobe: expected a 2-D map, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("peak_to_sidelobe: the map has NaN or Inf values")
    row, col = np.unravel_index(int(np.argmax(values)), values.shape)
    mask = np.ones(values.shape, bool)
    mask[max(row - radius, 0):row + radius + 1, max(col - radius, 0):col + radius + 1] = False
    sidelobe = values[mask]
    if sidelobe.size < 2:
        return 0.0
    spread = float(sidelobe.std())
    if spread <= 1e-12 * max(1.0, abs(float(sidelobe.mean()))):
        return 0.0
    return float((values[row, col] - sidelobe.mean()) / spread)


def frame_score(response: np.ndarray) -> FrameScore:
    """The peak and peak-to-sidelobe ratio of the winning scale's `[R, R]` response."""
    values = np.asarray(response, np.float64)
    return FrameScore(peak=float(values.max()), psr=peak_to_sidelobe(values))


def lost_ranges(psr: np.ndarray, threshold: float, first_frame: int = 1) -> list[tuple[int, int]]:
    """Runs of consecutive frames whose ratio is below `threshold`, as inclusive frame numbers.

    Args:
        psr: `[num_frames]` ratios, NaN for frames without a score (the first frame).
        threshold: a frame is "probably lost" when its ratio is below this.
        first_frame: the number of `psr[0]` (1 = the first frame is frame 1).

    Returns:
        `[(start, end), ...]` in increasing order; frames without a score are never lost.
    """
    lost = np.asarray(psr, np.float64) < threshold  # NaN compares False: never lost
    ranges, start = [], None
    for index, flag in enumerate(lost):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            ranges.append((start + first_frame, index - 1 + first_frame))
            start = None
    if start is not None:
        ranges.append((start + first_frame, len(lost) - 1 + first_frame))
    return ranges


def format_ranges(ranges: list[tuple[int, int]]) -> str:
    """`33-210, 250` for `[(33, 210), (250, 250)]`."""
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)
