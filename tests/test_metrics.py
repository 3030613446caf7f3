"""Tests of the tracking metrics against explicit loops, analytic cases and the got10k toolkit."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from fixtures_eval import iou_loop, random_boxes, shared_data, touch, write_boxes
from memnet_tf.eval import datasets, metrics, report




def _center_error_loop(a, b):
    return np.array([math.hypot((ax + (aw - 1) / 2) - (bx + (bw - 1) / 2),
                                (ay + (ah - 1) / 2) - (by + (bh - 1) / 2))
                     for (ax, ay, aw, ah), (bx, by, bw, bh) in zip(a, b)])


def _pair(seed, num=200):
    rng = np.random.default_rng(seed)
    truth = random_boxes(rng, num, 200, 150)
    boxes = truth + rng.normal(0, 8, truth.shape)
    boxes[:, 2:] = np.abs(boxes[:, 2:]) + 1
    boxes[:20] = random_boxes(rng, 20, 200, 150)  # some far off, some disjoint
    return boxes, truth


class TestPerFrame:
    def test_iou_matches_loop(self):
        boxes, truth = _pair(0)
        np.testing.assert_allclose(metrics.iou(boxes, truth), iou_loop(boxes, truth),
                                   rtol=0, atol=1e-12)

    def test_iou_analytic_cases(self):
        box = np.array([[10.0, 20.0, 30.0, 40.0]])
        assert metrics.iou(box, box)[0] == pytest.approx(1.0)
        half_shift = box + [15, 0, 0, 0]  # overlap 15x40 of union 45x40
        assert metrics.iou(half_shift, box)[0] == pytest.approx(1 / 3)
        far = box + [100, 0, 0, 0]
        assert metrics.iou(far, box)[0] == 0.0

    def test_center_errors_match_loop(self):
        boxes, truth = _pair(1)
        np.testing.assert_allclose(metrics.center_errors(boxes, truth),
                                   _center_error_loop(boxes, truth), rtol=0, atol=1e-12)

    def test_normalized_errors_match_loop(self):
        boxes, truth = _pair(2)
        expected = [math.hypot(((bx + (bw - 1) / 2) - (gx + (gw - 1) / 2)) / gw,
                               ((by + (bh - 1) / 2) - (gy + (gh - 1) / 2)) / gh)
                    for (bx, by, bw, bh), (gx, gy, gw, gh) in zip(boxes, truth)]
        np.testing.assert_allclose(metrics.normalized_center_errors(boxes, truth), expected,
                                   rtol=1e-12)

    def test_nan_fails_everywhere_and_zero_size_truth_gives_zero_iou(self):
        truth = np.array([[5.0, 5, 10, 10], [5, 5, 0, 10], [np.nan, 5, 10, 10]])
        boxes = np.array([[np.nan, 5, 10, 10], [5, 5, 10, 10], [5, 5, 10, 10]])
        overlaps = metrics.iou(boxes, truth)
        errors = metrics.center_errors(boxes, truth)
        np.testing.assert_array_equal(overlaps, [0, 0, 0])
        assert np.isinf(errors[0]) and np.isinf(errors[2]) and errors[1] == pytest.approx(5.0)
        assert metrics.success_curve(overlaps).max() == 0.0

    def test_clip_to_frame(self):
        clipped = metrics.clip_to_frame(np.array([[-5.0, 10, 20, 100], [90, -1, 30, 5]]),
                                        100, 50)
        np.testing.assert_array_equal(clipped, [[0, 10, 20, 40], [90, 0, 10, 5]])

    def test_wrong_shapes_raise(self):
        with pytest.raises(ValueError, match=r"\[num_frames, 4\]"):
            metrics.iou(np.zeros((3, 5)), np.zeros((3, 5)))
        with pytest.raises(ValueError, match="differ"):
            metrics.iou(np.ones((3, 4)), np.ones((2, 4)))


class TestCurves:
    def test_success_and_precision_curves_match_loops(self):
        rng = np.random.default_rng(3)
        overlaps = rng.uniform(0, 1, 97)
        errors = rng.uniform(0, 60, 97)
        success = [sum(o > t for o in overlaps) / 97 for t in np.linspace(0, 1, 21)]
        precision = [sum(e <= t for e in errors) / 97 for t in range(51)]
        np.testing.assert_allclose(metrics.success_curve(overlaps), success)
        np.testing.assert_allclose(metrics.precision_curve(errors), precision)
        assert metrics.auc(metrics.success_curve(overlaps)) == pytest.approx(np.mean(success))
        assert metrics.precision_at(errors, 20) == pytest.approx(precision[20])
        assert metrics.normalized_precision(errors / 100) == pytest.approx(precision[20])

    def test_perfect_tracking_auc_is_20_of_21(self):
        # IoU 1 passes every threshold but the last (IoU > 1 never holds).
        curve = metrics.success_curve(np.ones(10))
        assert metrics.auc(curve) == pytest.approx(20 / 21)
        assert metrics.precision_curve(np.zeros(10)).min() == 1.0

    def test_ao_and_success_rates(self):
        overlaps = np.array([0.0, 0.5, 0.6, 0.8, 1.0])
        ao, sr = metrics.got10k_ao_sr(overlaps)
        assert ao == pytest.approx(0.58)
        assert sr == {0.5: pytest.approx(0.6), 0.75: pytest.approx(0.4)}
        with pytest.raises(ValueError, match="no frames"):
            metrics.got10k_ao_sr(np.zeros(0))


class TestGot10kToolkitFunctions:
    def test_rect_iou_center_error_and_bound(self):
        toolkit = pytest.importorskip("got10k.utils.metrics")
        boxes, truth = _pair(4)
        truth[5, 2] = 0.0  # a zero-size ground truth: both give IoU 0
        np.testing.assert_allclose(metrics.iou(boxes, truth),
                                   toolkit.rect_iou(boxes.copy(), truth.copy()), rtol=0, atol=1e-15)
        np.testing.assert_allclose(metrics.center_errors(boxes, truth),
                                   toolkit.center_error(boxes, truth), rtol=0, atol=1e-12)
        bound = (120, 90)
        np.testing.assert_allclose(metrics.iou(boxes, truth, bound),
                                   toolkit.rect_iou(boxes.copy(), truth.copy(), bound=bound),
                                   rtol=0, atol=1e-15)

    def test_curves_match_experiment_otb(self):
        otb = pytest.importorskip("got10k.experiments.otb")
        experiment = otb.ExperimentOTB.__new__(otb.ExperimentOTB)
        experiment.nbins_iou, experiment.nbins_ce = 21, 51
        boxes, truth = _pair(5)
        overlaps, errors = metrics.iou(boxes, truth), metrics.center_errors(boxes, truth)
        success, precision = experiment._calc_curves(overlaps, errors)
        np.testing.assert_array_equal(metrics.success_curve(overlaps), success)
        np.testing.assert_array_equal(metrics.precision_curve(errors), precision)

    def test_ao_sr_match_experiment_got10k(self):
        got = pytest.importorskip("got10k.experiments.got10k")
        experiment = got.ExperimentGOT10k.__new__(got.ExperimentGOT10k)
        overlaps = np.random.default_rng(6).uniform(0, 1, 500)
        ao, sr, _, _ = experiment._evaluate(overlaps, np.zeros(0))
        ours_ao, ours_sr = metrics.got10k_ao_sr(overlaps)
        assert ours_ao == pytest.approx(ao, abs=1e-15)
        assert ours_sr[0.5] == pytest.approx(sr, abs=1e-15)


def _write_noisy_results(sequences, results_dir, tracker, seed, layout="otb"):
    """Perturbed ground truth (file convention) as a tracker's results."""
    rng = np.random.default_rng(seed)
    for sequence in sequences:
        boxes = sequence.ground_truth + rng.normal(0, 6, sequence.ground_truth.shape)
        boxes[:, 2:] = np.abs(boxes[:, 2:]) + 1
        boxes[:, :2] += sequence.pixel_offset
        if layout == "otb":
            write_boxes(os.path.join(results_dir, tracker, f"{sequence.name}.txt"),
                        boxes.round(3))
        else:
            seq_dir = os.path.join(results_dir, tracker, sequence.name)
            write_boxes(os.path.join(seq_dir, f"{sequence.name}_001.txt"), boxes.round(3))
            # got10k's report needs the times file of this layout.
            times = rng.uniform(0.01, 0.05, (sequence.num_frames, 1))
            write_boxes(os.path.join(seq_dir, f"{sequence.name}_time.txt"), times)


class TestScoresEqualGot10kExperiments:
    def test_otb_report_on_shared_otb_mini(self, tmp_path):
        otb_experiments = pytest.importorskip("got10k.experiments.otb")
        from got10k.datasets import OTB

        root = str(shared_data("otb_mini"))
        sequences = datasets.load_dataset("otb100", root=root)
        results_dir = str(tmp_path / "results")
        for seed, tracker in enumerate(("A", "B")):
            _write_noisy_results(sequences, results_dir, tracker, seed)
        ours = report.score_results(sequences, results_dir, ["A", "B"], protocol="otb",
                                    replace_first_box=True)  # got10k's rule

        experiment = otb_experiments.ExperimentOTB.__new__(otb_experiments.ExperimentOTB)
        experiment.dataset = OTB(root, version=2015, download=False)
        experiment.result_dir, experiment.report_dir = results_dir, str(tmp_path / "reports")
        experiment.nbins_iou, experiment.nbins_ce = 21, 51
        experiment.plot_curves = lambda names: None  # scores only, no 300-dpi figures
        theirs = experiment.report(["A", "B"])
        assert sorted(experiment.dataset.seq_names) == sorted(s.name for s in sequences)
        for tracker in ("A", "B"):
            mine, toolkit = ours["trackers"][tracker], theirs[tracker]
            assert mine["errors"] == []
            assert mine["overall"]["success_auc"] == pytest.approx(
                toolkit["overall"]["success_score"], abs=1e-12)
            assert mine["overall"]["precision"] == pytest.approx(
                toolkit["overall"]["precision_score"], abs=1e-12)
            np.testing.assert_allclose(mine["overall"]["success_curve"],
                                       toolkit["overall"]["success_curve"], atol=1e-12)
            for name, seq_scores in toolkit["seq_wise"].items():
                assert mine["sequences"][name]["success_auc"] == pytest.approx(
                    seq_scores["success_score"], abs=1e-12)

    def test_got10k_report_on_fixture_split(self, tmp_path):
        got_experiments = pytest.importorskip("got10k.experiments.got10k")
        from got10k.datasets import GOT10k

        rng = np.random.default_rng(7)
        split = tmp_path / "GOT-10k" / "val"
        names = [f"GOT-10k_Val_{i:06d}" for i in range(1, 4)]
        for index, name in enumerate(names):
            num = 12 + 3 * index
            seq = split / name
            for i in range(1, num + 1):
                touch(seq / f"{i:08d}.jpg")
            truth = random_boxes(rng, num, 64, 48)
            truth[-2:, :2] += [50, 40]  # partly outside the 64x48 frame: the bound matters
            write_boxes(seq / "groundtruth.txt", truth)
            cover = rng.integers(0, 9, num)
            cover[1] = 8
            (seq / "cover.label").write_text("\n".join(str(c) for c in cover) + "\n")
            for label in ("absence", "cut_by_image"):
                (seq / f"{label}.label").write_text("\n".join(["0"] * num) + "\n")
            (seq / "meta_info.ini").write_text("[METAINFO]\nresolution: (64, 48)\n")
        (split / "list.txt").write_text("\n".join(names) + "\n")
        sequences = datasets.load_dataset("got10k", root=str(tmp_path / "GOT-10k"))
        results_dir = str(tmp_path / "results")
        _write_noisy_results(sequences, results_dir, "A", 8, layout="got10k")
        ours = report.score_results(sequences, results_dir, ["A"], protocol="got10k")

        experiment = got_experiments.ExperimentGOT10k.__new__(got_experiments.ExperimentGOT10k)
        experiment.dataset = GOT10k(str(tmp_path / "GOT-10k"), subset="val")
        experiment.subset, experiment.nbins_iou, experiment.repetitions = "val", 101, 3
        experiment.result_dir, experiment.report_dir = results_dir, str(tmp_path / "reports")
        experiment.plot_curves = lambda files, names: None
        theirs = experiment.report(["A"])["A"]["overall"]
        mine = ours["trackers"]["A"]["overall"]
        assert ours["trackers"]["A"]["errors"] == []
        assert mine["ao"] == pytest.approx(theirs["ao"], abs=1e-12)
        assert mine["sr50"] == pytest.approx(theirs["sr"], abs=1e-12)
        assert mine["fps"] == pytest.approx(theirs["speed_fps"], rel=1e-4)  # times: 6 digits


def test_attribute_breakdown_averages_its_sequences(tmp_path):
    root = str(shared_data("otb_mini"))
    sequences = datasets.load_dataset("otb100", root=root)
    _write_noisy_results(sequences, str(tmp_path), "A", seed=9)
    scores = report.score_results(sequences, str(tmp_path), ["A"])["trackers"]["A"]
    for attribute in ("BC", "SV", "IPR"):
        members = [s.name for s in sequences if attribute in s.attributes]
        expected = np.mean([scores["sequences"][n]["success_auc"] for n in members])
        assert scores["attributes"][attribute]["num_sequences"] == len(members) > 0
        assert scores["attributes"][attribute]["success_auc"] == pytest.approx(expected)
    assert "OCC" not in scores["attributes"]
