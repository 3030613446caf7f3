"""Our tracker as a `got10k.trackers.Tracker`, following got10k's box conventions.

got10k hands trackers the boxes of the annotation files as they are: OTB's (and LaSOT's) are
1-based, so `ExperimentOTB` calls `init(image, [x, y, w, h])` with x, y one more than our
0-based pixel coordinates, and scores the returned boxes against the same 1-based files. Our
`MemTracker` works in 0-based pixels; taking got10k's box as 0-based crops the exemplar one
pixel off and costs about 0.014 AUC on otb_mini. `Got10kTracker` converts both ways
(`one_based=True`, the default, for ExperimentOTB / LaSOT; `one_based=False` for GOT-10k and
VOT, whose files are 0-based), and `track` decodes frames with the same decoder as our own
`evaluate` (OpenCV), so ExperimentOTB scores exactly what `python -m memnet_tf.evaluate
--checkpoint=...` scores on the same sequences (tests/test_got10k_tracker.py).

    from got10k.experiments import ExperimentOTB
    from memnet_tf.tracking.got10k_tracker import Got10kTracker

    tracker = Got10kTracker(checkpoint="runs/paper")  # or an export folder; name: MemTrack
    experiment = ExperimentOTB("data/OTB100", version=2015)
    experiment.run(tracker)
    experiment.report([tracker.name])

Needs the `got10k` package (`pip install -e ".[got10k]"`).
"""

from __future__ import annotations

import numpy as np
from got10k.trackers import Tracker

from memnet_tf.tracking.model_path import factory_for, is_export  # noqa: F401 - re-exported
from memnet_tf.tracking.tracker import track_files


class Got10kTracker(Tracker):
    """got10k tracker around `MemTracker`.

    Args:
        checkpoint: a run folder, a checkpoint prefix, or an export folder (`saved_model.pb`
            inside).
        name: the name got10k stores results under; None = what the model is ("MemTrack",
            or "SiamFC-mode" for a model without memory).
        one_based: got10k's boxes are 1-based (OTB, LaSOT: the default) or 0-based (GOT-10k,
            VOT).
        track_config: tracking hyper-parameters; None = the run's (or the export's) own.
    """

    def __init__(self, checkpoint: str, name: str | None = None, one_based: bool = True,
                 track_config=None):
        self.factory = factory_for(checkpoint, name=name, track_config=track_config)
        self._tracker = self.factory()
        super().__init__(name=self._tracker.name, is_deterministic=True)
        self.offset = np.array([1.0, 1.0, 0.0, 0.0]) if one_based else np.zeros(4)

    def init(self, image, box) -> None:
        """`box`: got10k's `[x, y, w, h]` (1-based when `one_based`)."""
        self._tracker.init(image, np.asarray(box, np.float64) - self.offset)

    def update(self, image) -> np.ndarray:
        """The box in got10k's convention."""
        return np.asarray(self._tracker.update(image), np.float64) + self.offset

    def track(self, img_files, box, visualize: bool = False):
        """got10k's `Tracker.track`, decoding frames as our `evaluate` does.

        Returns:
            (`[num_frames, 4]` boxes in got10k's convention, `[num_frames]` seconds).
        """
        del visualize  # got10k's matplotlib preview; `python -m memnet_tf.track` draws videos
        return track_files(self, img_files, box)
