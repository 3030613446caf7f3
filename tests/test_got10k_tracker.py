"""`Got10kTracker` driven by got10k's `ExperimentOTB` scores what our own OPE + report score."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("got10k")

from memnet_tf.eval import datasets, ope, report  # noqa: E402
from memnet_tf.tracking import tracker as tracker_lib  # noqa: E402
from memnet_tf.tracking.got10k_tracker import Got10kTracker  # noqa: E402
from test_track_cli import write_otb_blob_sequence, write_tiny_run  # noqa: E402


@pytest.mark.slow
def test_experiment_otb_scores_what_our_evaluate_scores(tmp_path):
    from got10k.datasets import OTB
    from got10k.experiments import ExperimentOTB

    root = tmp_path / "OTB"
    for folder, frames in (("Couple", 8), ("Crossing", 6)):
        write_otb_blob_sequence(str(root / folder), frames)
    run = write_tiny_run(tmp_path / "run")

    sequences = datasets.load_dataset("otb100", root=str(root))
    ours_dir = tmp_path / "ours"
    ope.run_ope(tracker_lib.TrackerFactory(checkpoint=run), sequences, str(ours_dir), "MemTrack",
                progress=False)
    ours = report.score_results(sequences, str(ours_dir), ["MemTrack"])["trackers"]["MemTrack"]

    experiment = ExperimentOTB.__new__(ExperimentOTB)
    experiment.dataset = OTB(str(root), version=2015, download=False)
    experiment.result_dir, experiment.report_dir = str(tmp_path / "g"), str(tmp_path / "gr")
    experiment.nbins_iou, experiment.nbins_ce = 21, 51
    experiment.plot_curves = lambda names: None
    tracker = Got10kTracker(checkpoint=run)
    assert tracker.name == "MemTrack"  # named by what the model is (it has memory)
    experiment.run(tracker)
    theirs = experiment.report(["MemTrack"])["MemTrack"]

    assert ours["errors"] == [] and ours["num_sequences"] == 2
    assert theirs["overall"]["success_score"] == pytest.approx(ours["overall"]["success_auc"],
                                                               abs=1e-6)
    assert theirs["overall"]["precision_score"] == pytest.approx(ours["overall"]["precision"],
                                                                 abs=1e-6)
    for sequence in sequences:
        got10k_boxes = np.loadtxt(tmp_path / "g" / "MemTrack" / f"{sequence.name}.txt",
                                  delimiter=",")
        our_boxes = np.loadtxt(ours_dir / "MemTrack" / f"{sequence.name}.txt", delimiter=",")
        np.testing.assert_allclose(got10k_boxes, our_boxes, atol=2e-3)  # both 1-based files

    # The bug the wrapper fixes: got10k's 1-based first box taken as 0-based moves the track.
    plain = tracker_lib.TrackerFactory(checkpoint=run)()
    sequence = sequences[0]
    one_based_first = sequence.ground_truth[0] + [1, 1, 0, 0]
    shifted, _ = plain.track(sequence.image_files, one_based_first)
    wrapped, _ = tracker.track(sequence.image_files, one_based_first)
    assert np.abs(shifted[1:] + [1, 1, 0, 0] - wrapped[1:]).max() > 0.1


def test_export_folders_are_told_from_run_folders(tmp_path):
    from memnet_tf.tracking import model_path as got10k_tracker

    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "saved_model.pb").write_bytes(b"")
    assert got10k_tracker.is_export(str(tmp_path / "export"))
    assert not got10k_tracker.is_export(str(tmp_path))
    with pytest.raises(ValueError, match="give a run folder"):
        Got10kTracker(checkpoint="")
