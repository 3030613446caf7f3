"""Trivial trackers with the got10k contract, as baselines and for testing the evaluation."""

from __future__ import annotations

import numpy as np


class StaticBoxTracker:
    """"The box never moves": every frame gets the first-frame box.

    The floor a trained tracker must beat. Picklable (a plain top-level class), so the class
    itself can be the `tracker_factory` of `ope.run_ope`, also with several processes.
    """

    name = "StaticBox"

    def __init__(self):
        self._box = None

    def init(self, image: np.ndarray, box) -> None:
        """Starts a sequence.

        Args:
            image: `[height, width, 3]` uint8 RGB first frame (unused).
            box: `[x, y, w, h]` 0-based first-frame box.
        """
        del image
        self._box = np.asarray(box, np.float64).copy()

    def update(self, image: np.ndarray) -> np.ndarray:
        """Returns the first-frame box `[x, y, w, h]` for any `[height, width, 3]` frame."""
        del image
        if self._box is None:
            raise RuntimeError("StaticBoxTracker.update called before init")
        return self._box.copy()
