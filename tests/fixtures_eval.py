"""Helpers for the evaluation tests: the shared data folder and tiny benchmark trees on disk."""

from __future__ import annotations

import os
import pathlib

import cv2
import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def shared_data(*parts: str) -> pathlib.Path:
    """`<shared>/data/<parts>`, or skip the test saying where it looked."""
    shared = pathlib.Path(os.environ.get("MEMNET_SHARED_DIR", REPO_ROOT.parent / "shared"))
    path = shared.joinpath("data", *parts)
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (set MEMNET_SHARED_DIR)")
    return path


def read_raw_boxes(path) -> np.ndarray:
    """Independent reader of OTB-style box files: any of ',', tab, space between numbers."""
    with open(path, encoding="utf-8") as f:
        rows = [line.replace(",", " ").split() for line in f if line.strip()]
    return np.asarray(rows, np.float64)


def write_image(path, height: int = 24, width: int = 32, seed: int = 0, grey: bool = False):
    """Writes a small random JPEG (3 channels, or 1 when `grey`)."""
    rng = np.random.default_rng(seed)
    shape = (height, width) if grey else (height, width, 3)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), rng.integers(0, 255, shape, dtype=np.uint8))


def touch(path) -> None:
    """An empty placeholder file (readers list frames but never open them)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").close()


def write_boxes(path, boxes, separator: str = ",") -> None:
    """One box per line."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for box in np.asarray(boxes):
            f.write(separator.join(f"{v:g}" for v in box) + "\n")


def random_boxes(rng, num, width=32.0, height=24.0) -> np.ndarray:
    """`[num, 4]` random boxes with positive size inside a `width` x `height` frame."""
    w = rng.uniform(4, width / 2, num)
    h = rng.uniform(4, height / 2, num)
    x = rng.uniform(0, width - w)
    y = rng.uniform(0, height - h)
    return np.stack([x, y, w, h], axis=1).round(2)


def write_otb_sequence(root, folder, num_frames, boxes=None, targets=1, real_images=True,
                       num_images=None, seed=0, attributes=None):
    """`<root>/<folder>/img/0001.jpg...` + `groundtruth_rect[.k].txt` (1-based, tab separated).

    Returns:
        A list with the 1-based boxes written for each target.
    """
    rng = np.random.default_rng(seed)
    seq_dir = pathlib.Path(root, folder)
    for i in range(1, (num_images or num_frames) + 1):
        path = seq_dir / "img" / f"{i:04d}.jpg"
        write_image(path, seed=seed + i) if real_images else touch(path)
    written = []
    for target in range(1, targets + 1):
        target_boxes = boxes if boxes is not None else random_boxes(rng, num_frames) + [1, 1, 0, 0]
        name = "groundtruth_rect.txt" if targets == 1 else f"groundtruth_rect.{target}.txt"
        write_boxes(seq_dir / name, target_boxes, separator="\t")
        written.append(np.asarray(target_boxes, np.float64))
    if attributes:
        (seq_dir / "attrs.txt").write_text(", ".join(attributes))
    return written


def iou_loop(a, b) -> np.ndarray:
    """Reference IoU of two lists of [x, y, w, h] boxes, one pair at a time (no +1 pixel terms)."""
    out = []
    for (ax, ay, aw, ah), (bx, by, bw, bh) in zip(a, b):
        iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
        ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
        union = aw * ah + bw * bh - iw * ih
        out.append(iw * ih / union if union > 0 else 0.0)
    return np.array(out)
