"""OTB / GOT-10k tracking scores as pure numpy functions, defined exactly as the got10k toolkit.

Definitions (got10k `utils/metrics.py`, `experiments/otb.py`, `experiments/got10k.py`):
- IoU of `[x, y, w, h]` boxes: `inter / (union + eps)` clipped to [0, 1], no +1 pixel terms.
- Centre of a box: `x + (w - 1) / 2` (the OTB toolkit's), centre error = Euclidean distance.
- Success curve: fraction of frames with IoU **>** t for t = linspace(0, 1, 21); its mean is
  the AUC ("success score").
- Precision curve: fraction of frames with centre error **<=** t for t = 0, 1, ..., 50 px;
  "precision" is its value at 20 px.
- Normalised precision (pysot / LaSOT): centres divided by the ground-truth size, thresholds
  0, 0.01, ..., 0.5, reported at 0.2.
- GOT-10k: AO = mean IoU, SR@t = fraction of IoU > t (t = 0.5, 0.75).

Invalid frames. got10k applies no mask on OTB: a zero-size ground truth gives IoU 0 (the eps
keeps it finite) and an ordinary centre error; we do the same. A NaN anywhere makes the frame a
failure at every threshold (got10k's comparisons with NaN are false): we return IoU 0 and an
infinite error, which count identically and keep means finite. Frames a dataset flags as absent
are handled by the caller (`report.py`).
"""

from __future__ import annotations

import numpy as np

# OTB success thresholds t (IoU > t) and precision thresholds (error <= t, pixels).
IOU_THRESHOLDS = np.linspace(0.0, 1.0, 21)
CENTER_ERROR_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORMALIZED_ERROR_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0
PRECISION_THRESHOLD = 20.0
NORMALIZED_PRECISION_THRESHOLD = 0.2
SUCCESS_RATE_THRESHOLDS = (0.5, 0.75)


def _as_boxes(boxes) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"expected boxes of shape [num_frames, 4], got {boxes.shape}")
    return boxes


def clip_to_frame(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """GOT-10k's `bound`: clamps x to [0, W], y to [0, H], then w, h so the box stays inside.

    Args:
        boxes: `[num_frames, 4]` boxes `[x, y, w, h]`.
        width: Frame width W.
        height: Frame height H.

    Returns:
        `[num_frames, 4]` clipped copy.
    """
    boxes = _as_boxes(boxes).copy()
    boxes[:, 0] = np.clip(boxes[:, 0], 0, width)
    boxes[:, 1] = np.clip(boxes[:, 1], 0, height)
    boxes[:, 2] = np.clip(boxes[:, 2], 0, width - boxes[:, 0])
    boxes[:, 3] = np.clip(boxes[:, 3], 0, height - boxes[:, 1])
    return boxes


def iou(boxes: np.ndarray, ground_truth: np.ndarray,
        resolution: tuple[float, float] | None = None) -> np.ndarray:
    """Per-frame intersection over union.

    Args:
        boxes: `[num_frames, 4]` predicted `[x, y, w, h]`.
        ground_truth: `[num_frames, 4]` ground-truth `[x, y, w, h]`.
        resolution: `(width, height)`: clip both to the frame first (GOT-10k), or None (OTB).

    Returns:
        `[num_frames]` IoU in [0, 1]; 0 where any input is NaN.
    """
    boxes, ground_truth = _as_boxes(boxes), _as_boxes(ground_truth)
    if boxes.shape != ground_truth.shape:
        raise ValueError(f"boxes {boxes.shape} and ground truth {ground_truth.shape} differ")
    if resolution is not None:
        boxes = clip_to_frame(boxes, *resolution)
        ground_truth = clip_to_frame(ground_truth, *resolution)
    x1 = np.maximum(boxes[:, 0], ground_truth[:, 0])
    y1 = np.maximum(boxes[:, 1], ground_truth[:, 1])
    x2 = np.minimum(boxes[:, 0] + boxes[:, 2], ground_truth[:, 0] + ground_truth[:, 2])
    y2 = np.minimum(boxes[:, 1] + boxes[:, 3], ground_truth[:, 1] + ground_truth[:, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = boxes[:, 2] * boxes[:, 3] + ground_truth[:, 2] * ground_truth[:, 3] - intersection
    overlaps = np.clip(intersection / (union + np.finfo(float).eps), 0.0, 1.0)
    return np.nan_to_num(overlaps, nan=0.0)


def box_centers(boxes: np.ndarray) -> np.ndarray:
    """The OTB toolkit's box centres `[x + (w - 1) / 2, y + (h - 1) / 2]`.

    They sit half a pixel before `geometry/boxes.py`'s centre `x + w / 2`; the constant cancels
    in every centre error, so the formula is kept as the toolkits write it.

    Args:
        boxes: `[num_frames, 4]` boxes `[x, y, w, h]`.

    Returns:
        `[num_frames, 2]` centres.
    """
    boxes = _as_boxes(boxes)
    return boxes[:, :2] + (boxes[:, 2:] - 1) / 2


def center_errors(boxes: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
    """Per-frame Euclidean distance between OTB centres, in pixels.

    Args:
        boxes: `[num_frames, 4]` predicted `[x, y, w, h]`.
        ground_truth: `[num_frames, 4]` ground truth.

    Returns:
        `[num_frames]` distances; +inf where any input is NaN.
    """
    difference = box_centers(boxes) - box_centers(ground_truth)
    errors = np.sqrt(np.sum(difference ** 2, axis=1))
    return np.nan_to_num(errors, nan=np.inf)


def normalized_center_errors(boxes: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
    """Centre distance after dividing both centres by the ground-truth size (pysot).

    Args:
        boxes: `[num_frames, 4]` predicted `[x, y, w, h]`.
        ground_truth: `[num_frames, 4]` ground truth.

    Returns:
        `[num_frames]` dimensionless distances; +inf where any input is NaN.
    """
    size = _as_boxes(ground_truth)[:, 2:] + 1e-16
    difference = (box_centers(boxes) - box_centers(ground_truth)) / size
    with np.errstate(invalid="ignore", over="ignore"):
        errors = np.sqrt(np.sum(difference ** 2, axis=1))
    return np.nan_to_num(errors, nan=np.inf)


def success_curve(overlaps: np.ndarray, thresholds: np.ndarray = IOU_THRESHOLDS) -> np.ndarray:
    """Fraction of frames whose IoU is strictly above each threshold.

    Args:
        overlaps: `[num_frames]` IoU.
        thresholds: `[num_thresholds]`, default the OTB 21 steps 0, 0.05, ..., 1.

    Returns:
        `[num_thresholds]` success rates.
    """
    overlaps = np.asarray(overlaps, np.float64).reshape(-1, 1)
    return np.mean(overlaps > np.asarray(thresholds).reshape(1, -1), axis=0)


def precision_curve(errors: np.ndarray,
                    thresholds: np.ndarray = CENTER_ERROR_THRESHOLDS) -> np.ndarray:
    """Fraction of frames whose (normalised) centre error is at most each threshold.

    Args:
        errors: `[num_frames]` centre errors.
        thresholds: `[num_thresholds]`, default 0..50 pixels.

    Returns:
        `[num_thresholds]` precisions.
    """
    errors = np.asarray(errors, np.float64).reshape(-1, 1)
    return np.mean(errors <= np.asarray(thresholds).reshape(1, -1), axis=0)


def auc(curve: np.ndarray) -> float:
    """Area under a success curve as OTB computes it: the mean over its thresholds."""
    return float(np.mean(curve))


def precision_at(errors: np.ndarray, threshold: float = PRECISION_THRESHOLD) -> float:
    """Fraction of frames with centre error <= `threshold` (OTB precision at 20 px)."""
    return float(np.mean(np.asarray(errors, np.float64) <= threshold))


def normalized_precision(normalized_errors: np.ndarray,
                         threshold: float = NORMALIZED_PRECISION_THRESHOLD) -> float:
    """Fraction of frames with normalised centre error <= `threshold` (0.2, pysot / LaSOT)."""
    return float(np.mean(np.asarray(normalized_errors, np.float64) <= threshold))


def got10k_ao_sr(overlaps: np.ndarray, thresholds: tuple[float, ...] = SUCCESS_RATE_THRESHOLDS
                 ) -> tuple[float, dict[float, float]]:
    """GOT-10k average overlap and success rates.

    Args:
        overlaps: `[num_frames]` IoU of the frames that count (GOT-10k: all but the first, and
            only where the target is visible), pooled over sequences and repetitions.
        thresholds: SR thresholds (IoU > t).

    Returns:
        `(AO, {t: SR@t})`.
    """
    overlaps = np.asarray(overlaps, np.float64)
    if overlaps.size == 0:
        raise ValueError("no frames to score")
    return float(np.mean(overlaps)), {t: float(np.mean(overlaps > t)) for t in thresholds}
