"""Tests of report.py beyond the OTB defaults: the LaSOT and GOT-10k protocols, normalised
precision and SR@0.75 at report level, other toolkits' file names and time files.

Expectations come from plain loops written here (one frame at a time) or from the got10k toolkit.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from fixtures_eval import random_boxes, touch, write_boxes
from memnet_tf.eval import datasets, report

WIDTH, HEIGHT = 200.0, 150.0  # frame size of the fixtures; images are empty placeholders


# ---------------------------------------------------------------------------------------------
# Reference rules, one frame at a time.

def _iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - iw * ih
    return iw * ih / union if union > 0 else 0.0


def _centre(box):
    x, y, w, h = box
    return x + (w - 1) / 2, y + (h - 1) / 2


def _centre_error(a, b):
    (ax, ay), (bx, by) = _centre(a), _centre(b)
    return math.hypot(ax - bx, ay - by)


def _normalized_error(a, truth):
    (ax, ay), (gx, gy) = _centre(a), _centre(truth)
    return math.hypot((ax - gx) / truth[2], (ay - gy) / truth[3])


def _clip(box, width, height):
    """GOT-10k's bound: x, y into the frame, then w, h so that the box stays inside."""
    x, y, w, h = box
    x, y = min(max(x, 0.0), width), min(max(y, 0.0), height)
    return x, y, min(max(w, 0.0), width - x), min(max(h, 0.0), height - y)


def _fraction(values, keep):
    values = list(values)
    return sum(1 for v in values if keep(v)) / len(values)


def _scores_by_hand(overlaps, errors, normalized):
    """Scores of one group of frames (failures given as IoU 0 and error inf)."""
    success = [_fraction(overlaps, lambda o, t=k / 20: o > t) for k in range(21)]
    return {
        "success_curve": success,
        "success_auc": sum(success) / 21,
        "precision": _fraction(errors, lambda e: e <= 20),
        "normalized_precision": _fraction(normalized, lambda e: e <= 0.2),
        "ao": sum(overlaps) / len(overlaps),
        "sr50": _fraction(overlaps, lambda o: o > 0.5),
        "sr75": _fraction(overlaps, lambda o: o > 0.75),
    }


def _mean_over_sequences(per_sequence):
    names = list(per_sequence)
    return {key: sum(per_sequence[n][key] for n in names) / len(names)
            for key in ("success_auc", "precision", "normalized_precision", "ao", "sr50",
                        "sr75")}


def _assert_scores(got, expected):
    for key, value in expected.items():
        if key == "success_curve":
            np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-12)
        else:
            assert got[key] == pytest.approx(value, abs=1e-12), key


def _write_rows(path, rows):
    """Comma-separated rows with every digit kept (results and times files)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in np.atleast_2d(np.asarray(rows, np.float64)):
            f.write(",".join(repr(float(v)) for v in row) + "\n")


def _noisy(rng, truth, sigma):
    boxes = truth + rng.normal(0, sigma, truth.shape)
    boxes[:, 2:] = np.abs(boxes[:, 2:]) + 1
    return boxes.round(3)


def _write_otb(root, folder, truths):
    """An OTB folder (1-based `groundtruth_rect[.k].txt`, tab separated) with empty frames."""
    for i in range(1, len(truths[0]) + 1):
        touch(root / folder / "img" / f"{i:04d}.jpg")
    for k, truth in enumerate(truths, start=1):
        name = "groundtruth_rect.txt" if len(truths) == 1 else f"groundtruth_rect.{k}.txt"
        write_boxes(root / folder / name, truth, separator="\t")


# ---------------------------------------------------------------------------------------------
# LaSOT: absent frames count as failures, the first result is kept as written.

def _write_lasot_sequence(root, name, truth, occluded, out_of_view):
    seq = root / name.rsplit("-", 1)[0] / name
    for i in range(1, len(truth) + 1):
        touch(seq / "img" / f"{i:08d}.jpg")
    write_boxes(seq / "groundtruth.txt", truth)
    (seq / "full_occlusion.txt").write_text(",".join(str(int(v)) for v in occluded))
    (seq / "out_of_view.txt").write_text(",".join(str(int(v)) for v in out_of_view))


def test_lasot_protocol_counts_absent_frames_as_failures(tmp_path):
    rng = np.random.default_rng(21)
    root, results = tmp_path / "lasot", tmp_path / "results"
    raw = {}
    for name, num in (("cat-1", 30), ("cat-3", 24)):
        truth = random_boxes(rng, num, WIDTH, HEIGHT)
        occluded = np.zeros(num, bool)
        out_of_view = np.zeros(num, bool)
        occluded[rng.choice(np.arange(2, num), 4, replace=False)] = True
        out_of_view[rng.choice(np.arange(2, num), 3, replace=False)] = True
        boxes = _noisy(rng, truth, 5)
        absent = occluded | out_of_view
        boxes[absent] = truth[absent]  # perfect boxes on absent frames must still fail
        boxes[0, 0] += 30  # the first result is scored as written, not replaced
        truth[np.flatnonzero(absent)[:2]] = 0  # LaSOT writes 0,0,0,0 for some absent frames
        _write_lasot_sequence(root, name, truth, occluded, out_of_view)
        _write_rows(results / "T" / f"{name}.txt", boxes)
        raw[name] = (truth, boxes, absent)

    sequences = datasets.load_dataset("lasot", root=str(root))
    scores = report.score_results(sequences, str(results), ["T"], protocol="lasot")
    scores = scores["trackers"]["T"]
    assert scores["errors"] == [] and scores["num_sequences"] == 2

    expected = {}
    for name, (truth, boxes, absent) in raw.items():
        overlaps, errors, normalized = [], [], []
        for box, gt, is_absent in zip(boxes, truth, absent):
            overlaps.append(0.0 if is_absent else _iou(box, gt))
            errors.append(math.inf if is_absent else _centre_error(box, gt))
            normalized.append(math.inf if is_absent else _normalized_error(box, gt))
        expected[name] = _scores_by_hand(overlaps, errors, normalized)
        _assert_scores(scores["sequences"][name], expected[name])
        # The fixture is not degenerate: every score lies strictly between 0 and 1.
        for key in ("precision", "normalized_precision", "sr50", "sr75"):
            assert 0 < expected[name][key] < 1, (name, key)
    _assert_scores(scores["overall"], _mean_over_sequences(expected))


def test_lasot_and_otb_protocols_differ_only_where_the_rules_do(tmp_path):
    # Without absent frames, `lasot` equals `otb`; got10k's rule replaces the first box.
    rng = np.random.default_rng(22)
    root, results = tmp_path / "lasot", tmp_path / "results"
    truth = random_boxes(rng, 12, WIDTH, HEIGHT)
    boxes = _noisy(rng, truth, 6)
    boxes[0] = truth[0] + [40, 0, 0, 0]  # IoU of the first frame well below 1
    _write_lasot_sequence(root, "dog-2", truth, np.zeros(12), np.zeros(12))
    _write_rows(results / "T" / "dog-2.txt", boxes)
    sequences = datasets.load_dataset("lasot", root=str(root))
    lasot = report.score_results(sequences, str(results), ["T"], "lasot")["trackers"]["T"]
    otb = report.score_results(sequences, str(results), ["T"], "otb")["trackers"]["T"]
    got10k = report.score_results(sequences, str(results), ["T"], "otb",
                                  replace_first_box=True)["trackers"]["T"]
    as_written = [_iou(b, g) for b, g in zip(boxes, truth)]
    replaced = [1.0] + as_written[1:]
    assert as_written[0] < 0.5
    assert lasot["overall"]["ao"] == pytest.approx(sum(as_written) / 12, abs=1e-12)
    assert otb["overall"]["ao"] == pytest.approx(sum(as_written) / 12, abs=1e-12)
    assert got10k["overall"]["ao"] == pytest.approx(sum(replaced) / 12, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# OTB: normalised precision and SR@0.75 at report level (mean of per-sequence values).

def test_otb_normalized_precision_and_sr75_match_loops(tmp_path):
    rng = np.random.default_rng(23)
    root, results = tmp_path / "otb", tmp_path / "results"
    raw = {}
    for folder, num in (("Couple", 25), ("Crossing", 18), ("Dog1", 21)):
        truth = random_boxes(rng, num, WIDTH, HEIGHT) + [1, 1, 0, 0]  # 1-based file numbers
        boxes = _noisy(rng, truth, 5)
        _write_otb(root, folder, [truth])
        _write_rows(results / "T" / f"{folder}.txt", boxes)
        raw[folder] = (truth, boxes)
    sequences = datasets.load_dataset("otb100", root=str(root))
    scores = report.score_results(sequences, str(results), ["T"], "otb")["trackers"]["T"]

    expected = {}
    for name, (truth, boxes) in raw.items():
        scored = list(boxes)  # OTB toolkit / pysot: the results file as written
        # File numbers on both sides: the common 1-pixel shift cancels in every measure.
        expected[name] = _scores_by_hand([_iou(b, g) for b, g in zip(scored, truth)],
                                         [_centre_error(b, g) for b, g in zip(scored, truth)],
                                         [_normalized_error(b, g) for b, g in zip(scored, truth)])
        _assert_scores(scores["sequences"][name], expected[name])
        for key in ("normalized_precision", "sr75"):
            assert 0 < expected[name][key] < 1, (name, key)
    _assert_scores(scores["overall"], _mean_over_sequences(expected))
    assert len({e["sr75"] for e in expected.values()}) > 1  # a mean of different values


# ---------------------------------------------------------------------------------------------
# Other toolkits' file names and time files.

@pytest.mark.parametrize("name, written", [
    ("Jogging.1", ["Jogging-1.txt"]),
    ("Jogging.1", ["Jogging_1.txt"]),
    ("Jogging.2", ["jogging-2.txt"]),
    ("Jogging.2", ["jogging_2.txt"]),
    ("Jogging-1", ["Jogging.1.txt"]),  # a pysot JSON name, got10k's results
    ("Skating2-1", ["skating2_1.txt"]),
    ("Human4.2", ["human4.2.txt"]),
    ("FleetFace", ["fleetFace.txt"]),
    ("FleetFace", ["fleetface.txt"]),
    ("Jogging.1", ["jogging_1/jogging_1_002.txt", "jogging_1/jogging_1_001.txt"]),
    ("GOT-10k_Val_000004", ["GOT-10k_Val_000004/GOT-10k_Val_000004_001.txt",
                            "GOT-10k_Val_000004/GOT-10k_Val_000004_002.txt",
                            "GOT-10k_Val_000004/GOT-10k_Val_000004_003.txt"]),
])
def test_find_result_files_accepts_other_spellings(tmp_path, name, written):
    for relative in written:
        touch(tmp_path / "T" / relative)
    touch(tmp_path / "T" / "Other.txt")
    found = report.find_result_files(str(tmp_path), "T", name)
    assert found == sorted(str(tmp_path / "T" / relative) for relative in written)


@pytest.mark.parametrize("name, written", [
    ("Jogging.1", "Jogging1.txt"),  # the target number needs a separator
    ("Jogging.1", "Jogging.2.txt"),  # another target
    ("Jogging.1", "Jogging.txt"),
    ("FleetFace", "FleetFace/FleetFace_time.txt"),  # a times file is no repetition
])
def test_find_result_files_does_not_take_other_sequences(tmp_path, name, written):
    touch(tmp_path / "T" / written)
    assert report.find_result_files(str(tmp_path), "T", name) == []


def test_exact_name_wins_over_other_spellings(tmp_path):
    for stem in ("jogging_1", "Jogging.1", "Jogging-1"):
        touch(tmp_path / "T" / f"{stem}.txt")
    assert report.find_result_files(str(tmp_path), "T", "Jogging.1") == [
        str(tmp_path / "T" / "Jogging.1.txt")]


@pytest.mark.parametrize("relative", ["Jogging.1_time.txt", "times/Jogging.1_time.txt",
                                      "times/jogging_1_time.txt", "Jogging-1_time.txt",
                                      "jogging_1/jogging_1_time.txt"])
def test_read_times_finds_each_layout_and_keeps_positive_times(tmp_path, relative):
    rng = np.random.default_rng(24)
    times = rng.uniform(0.01, 0.1, (9, 2)).round(8)  # two repetitions, as got10k writes
    times[0, 0], times[3, 1], times[5, 0] = 0.0, -1.0, np.nan
    path = tmp_path / "T" / relative
    os.makedirs(path.parent, exist_ok=True)
    path.write_text("\n".join(",".join(f"{t:.8f}" for t in row) for row in times) + "\n")
    got = report.read_times(str(tmp_path), "T", "Jogging.1")
    expected = [t for row in times for t in row if t > 0]  # NaN > 0 is False
    np.testing.assert_allclose(np.sort(got), np.sort(expected), rtol=1e-7)
    assert report.read_times(str(tmp_path), "T", "Jogging.2").size == 0


def test_renamed_results_and_times_score_as_got10k_experiment_otb(tmp_path):
    otb_experiments = pytest.importorskip("got10k.experiments.otb")
    from got10k.datasets import OTB

    rng = np.random.default_rng(25)
    root, results = tmp_path / "otb", tmp_path / "results"
    truths = {"Jogging": [random_boxes(rng, 16, WIDTH, HEIGHT) + [1, 1, 0, 0] for _ in range(2)],
              "FleetFace": [random_boxes(rng, 14, WIDTH, HEIGHT) + [1, 1, 0, 0]],
              "Couple": [random_boxes(rng, 11, WIDTH, HEIGHT) + [1, 1, 0, 0]]}
    for folder, folder_truths in truths.items():
        _write_otb(root, folder, folder_truths)
    # got10k's names and `times/` for the toolkit; other spellings and time layouts for ours.
    renamed = {"Jogging.1": ("jogging_1", "times/jogging_1_time.txt"),
               "Jogging.2": ("Jogging-2", "Jogging-2_time.txt"),
               "FleetFace": ("fleetFace", "fleetFace/fleetFace_time.txt"),
               "Couple": ("couple", "times/couple_time.txt")}
    named = {"Jogging.1": truths["Jogging"][0], "Jogging.2": truths["Jogging"][1],
             "FleetFace": truths["FleetFace"][0], "Couple": truths["Couple"][0]}
    speeds = []
    for name, truth in named.items():
        boxes = _noisy(rng, truth, 5)
        times = rng.uniform(0.01, 0.05, len(truth))
        times[0] = 0.0  # a frame without a time
        speeds.append(sum(1 / t for t in times if t > 0) / sum(1 for t in times if t > 0))
        stem, time_file = renamed[name]
        _write_rows(results / "canon" / f"{name}.txt", boxes)
        _write_rows(results / "canon" / "times" / f"{name}_time.txt", times[:, None])
        _write_rows(results / "renamed" / f"{stem}.txt", boxes)
        _write_rows(results / "renamed" / time_file, times[:, None])

    sequences = datasets.load_dataset("otb100", root=str(root))
    ours = report.score_results(sequences, str(results), ["renamed"], "otb",
                                replace_first_box=True)["trackers"]
    mine = ours["renamed"]
    assert mine["errors"] == [] and mine["num_sequences"] == 4

    experiment = otb_experiments.ExperimentOTB.__new__(otb_experiments.ExperimentOTB)
    experiment.dataset = OTB(str(root), version=2015, download=False)
    experiment.result_dir, experiment.report_dir = str(results), str(tmp_path / "reports")
    experiment.nbins_iou, experiment.nbins_ce = 21, 51
    experiment.plot_curves = lambda names: None
    theirs = experiment.report(["canon"])["canon"]
    assert sorted(theirs["seq_wise"]) == sorted(named)
    assert mine["overall"]["success_auc"] == pytest.approx(
        theirs["overall"]["success_score"], abs=1e-12)
    assert mine["overall"]["precision"] == pytest.approx(
        theirs["overall"]["precision_score"], abs=1e-12)
    assert mine["overall"]["fps"] == pytest.approx(theirs["overall"]["speed_fps"], rel=1e-6)
    assert mine["overall"]["fps"] == pytest.approx(sum(speeds) / len(speeds), rel=1e-6)
    for name, seq_scores in theirs["seq_wise"].items():
        assert mine["sequences"][name]["success_auc"] == pytest.approx(
            seq_scores["success_score"], abs=1e-12)
        assert mine["sequences"][name]["fps"] == pytest.approx(seq_scores["speed_fps"],
                                                               rel=1e-6)


# ---------------------------------------------------------------------------------------------
# GOT-10k: repetitions `<seq>/<seq>_001.txt`, `_002.txt` pooled with all sequences.

def _write_got10k_split(root, rng, lengths):
    split = root / "val"
    names, raw = [], {}
    for index, num in enumerate(lengths, start=1):
        name = f"GOT-10k_Val_{index:06d}"
        names.append(name)
        seq = split / name
        for i in range(1, num + 1):
            touch(seq / f"{i:08d}.jpg")
        truth = random_boxes(rng, num, WIDTH, HEIGHT)
        truth[-2:, :2] += [150, 110]  # partly outside the frame: the bound matters
        write_boxes(seq / "groundtruth.txt", truth)
        cover = rng.integers(0, 9, num)
        cover[1], cover[2] = 8, 0  # one visible and one invisible frame at least
        (seq / "cover.label").write_text("\n".join(str(c) for c in cover) + "\n")
        for label in ("absence", "cut_by_image"):
            (seq / f"{label}.label").write_text("\n".join(["0"] * num) + "\n")
        (seq / "meta_info.ini").write_text(
            f"[METAINFO]\nresolution: ({int(WIDTH)}, {int(HEIGHT)})\n")
        raw[name] = (truth, cover)
    (split / "list.txt").write_text("\n".join(names) + "\n")
    return raw


def test_got10k_repetitions_are_pooled(tmp_path):
    rng = np.random.default_rng(26)
    raw = _write_got10k_split(tmp_path / "GOT-10k", rng, (10, 13, 16))
    results = tmp_path / "results"
    pooled_overlaps, all_times, per_sequence = [], [], {}
    for name, (truth, cover) in raw.items():
        seq_dir = results / "A" / name
        seq_overlaps = []
        for repetition in (1, 2):
            boxes = _noisy(rng, truth, 6)
            _write_rows(seq_dir / f"{name}_{repetition:03d}.txt", boxes)
            for f in range(1, len(truth)):  # the first frame is dropped
                if cover[f] > 0:
                    seq_overlaps.append(_iou(_clip(boxes[f], WIDTH, HEIGHT),
                                             _clip(truth[f], WIDTH, HEIGHT)))
        times = rng.uniform(0.01, 0.05, (len(truth), 2))  # one column per repetition
        times[0, 1] = 0.0
        _write_rows(seq_dir / f"{name}_time.txt", times)
        all_times += [t for t in times.ravel() if t > 0]
        pooled_overlaps += seq_overlaps
        per_sequence[name] = seq_overlaps

    sequences = datasets.load_dataset("got10k", root=str(tmp_path / "GOT-10k"))
    scores = report.score_results(sequences, str(results), ["A"], "got10k")["trackers"]["A"]
    assert scores["errors"] == [] and scores["num_sequences"] == 3
    overall = scores["overall"]
    n = len(pooled_overlaps)
    assert overall["ao"] == pytest.approx(sum(pooled_overlaps) / n, abs=1e-12)
    for key, threshold in (("sr50", 0.5), ("sr75", 0.75)):
        assert overall[key] == pytest.approx(
            _fraction(pooled_overlaps, lambda o, t=threshold: o > t), abs=1e-12)
    success = [_fraction(pooled_overlaps, lambda o, t=k / 20: o > t) for k in range(21)]
    np.testing.assert_allclose(overall["success_curve"], success, rtol=0, atol=1e-12)
    assert overall["fps"] == pytest.approx(sum(1 / t for t in all_times) / len(all_times),
                                           rel=1e-9)
    assert 0 < overall["sr75"] < overall["sr50"] < 1
    for name, overlaps in per_sequence.items():
        assert scores["sequences"][name]["ao"] == pytest.approx(sum(overlaps) / len(overlaps),
                                                                abs=1e-12)

    got_experiments = pytest.importorskip("got10k.experiments.got10k")
    from got10k.datasets import GOT10k

    experiment = got_experiments.ExperimentGOT10k.__new__(got_experiments.ExperimentGOT10k)
    experiment.dataset = GOT10k(str(tmp_path / "GOT-10k"), subset="val")
    experiment.subset, experiment.nbins_iou, experiment.repetitions = "val", 101, 3
    experiment.result_dir, experiment.report_dir = str(results), str(tmp_path / "reports")
    experiment.plot_curves = lambda files, names: None
    theirs = experiment.report(["A"])["A"]
    assert overall["ao"] == pytest.approx(theirs["overall"]["ao"], abs=1e-12)
    assert overall["sr50"] == pytest.approx(theirs["overall"]["sr"], abs=1e-12)
    assert overall["fps"] == pytest.approx(theirs["overall"]["speed_fps"], rel=1e-9)
    for name, seq_scores in theirs["seq_wise"].items():
        assert scores["sequences"][name]["ao"] == pytest.approx(seq_scores["ao"], abs=1e-12)
        assert scores["sequences"][name]["sr50"] == pytest.approx(seq_scores["sr"], abs=1e-12)
