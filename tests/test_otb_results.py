"""OTB scoring on results files as trackers release them: published OTB-100 reference numbers,
name spellings, short files, Tiger1 and Human4, the MATLAB toolkit's anno/ + att/ layout,
attributes, partial sets, invalid ground truth, and the UAV123 reader."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from fixtures_eval import iou_loop, random_boxes, shared_data, touch, write_boxes, write_otb_sequence
from memnet_tf.eval import datasets, metrics, otb, report, result_files, uav123

REFERENCE = {  # ../shared/data/published/README.md: success AUC, precision at 20 px
    "SiamRPN++": (0.6955, 0.9054), "MDNet": (0.6776, 0.9089), "ATOM": (0.6670, 0.8792),
    "DaSiamRPN": (0.6578, 0.8802), "SiamFC": (0.5868, 0.7717),
}


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "memnet_tf.evaluate", *args],
                          capture_output=True, text=True, env=env, timeout=300)


# ---------------------------------------------------------------------------------------------
# Published OTB-100 results, files as released.

def test_published_otb100_results_reproduce_the_reference_scores(tmp_path):
    root = shared_data("published", "otb100")
    sequences = datasets.load_dataset("otb100", annotations=str(root / "OTB2015.json"))
    scores = report.score_results(sequences, str(root / "results"))
    assert set(scores["trackers"]) == set(REFERENCE)
    for name, (auc, precision) in REFERENCE.items():
        t = scores["trackers"][name]
        assert t["errors"] == [] and t["num_sequences"] == 100, name
        assert round(t["overall"]["success_auc"], 4) == auc, name
        assert round(t["overall"]["precision"], 4) == precision, name
    # MDNet's two short files are scored over the common length, and said so by name.
    adjusted = scores["trackers"]["MDNet"]["adjusted"]
    assert len(adjusted) == 2 and "MDNet/Board.txt: 697 boxes for 698 frames" in adjusted[0]
    assert "Twinnings.txt: 471 boxes for 472 frames" in adjusted[1]
    # Board and Twinnings end with a 0,0,0,0 row: counted and reported (MDNet's end before).
    assert scores["trackers"]["ATOM"]["invalid_frames"] == 2
    assert scores["trackers"]["MDNet"]["invalid_frames"] == 0


def test_published_otb100_command_line(tmp_path):
    root = shared_data("published", "otb100")
    run = _run("--dataset=otb100", f"--annotations={root / 'OTB2015.json'}",
               f"--results_dir={root / 'results'}", f"--report_dir={tmp_path}", "--attributes")
    assert run.returncode == 0, run.stderr
    assert "MDNet: success_auc=0.678 precision=0.909" in run.stdout
    assert "sequences=100/100" in run.stdout
    assert "warning: " in run.stdout and "Board.txt: 697 boxes for 698 frames" in run.stdout
    assert "2 frames without a ground-truth box (0,0,0,0 or NaN)" in run.stdout


# ---------------------------------------------------------------------------------------------
# Names.

@pytest.mark.parametrize("key, name, written", [
    ("basketball", "Basketball", "Basketball.txt"),
    ("basketball", "Basketball", "basketball.txt"),
    ("jogging_1", "Jogging", "Jogging-1.txt"),
    ("jogging_1", "Jogging", "Jogging_1.txt"),
    ("jogging_1", "Jogging", "jogging.1.txt"),
    ("human4_2", "Human4", "human4-2.txt"),
    ("human4_2", "Human4", "Human4_2.txt"),
    ("human4_2", "Human4", "Human4.txt"),  # the entry's unique name
    ("faceOcc1", "FaceOcc1", "FaceOcc1.txt"),
    ("faceOcc1", "FaceOcc1", "Faceocc1.txt"),
])
def test_results_are_found_under_every_released_spelling(tmp_path, key, name, written):
    entries = {key: {"name": name, "image_files": [], "gt_rect": [[1, 2, 3, 4]] * 3}}
    if key == "jogging_1":
        entries["jogging_2"] = dict(entries[key])
    path = tmp_path / "anno.json"
    path.write_text(json.dumps(entries))
    sequences = {s.name: s for s in datasets.read_pysot_json(str(path), one_based=True)}
    touch(tmp_path / "T" / written)
    touch(tmp_path / "T" / "Other.txt")
    sequence = sequences[key]
    found = result_files.find_result_files(str(tmp_path), "T", sequence.name, sequence.aliases)
    assert found == [str(tmp_path / "T" / written)]


def test_a_shared_name_is_no_alias_and_two_matches_are_an_error(tmp_path):
    entries = {k: {"name": "Jogging", "gt_rect": [[1, 2, 3, 4]]} for k in ("jogging_1",
                                                                           "jogging_2")}
    path = tmp_path / "anno.json"
    path.write_text(json.dumps(entries))
    sequences = datasets.read_pysot_json(str(path), one_based=True)
    assert all(s.aliases == () for s in sequences)
    touch(tmp_path / "T" / "Jogging.txt")  # which target? neither
    assert result_files.find_result_files(str(tmp_path), "T", "jogging_1") == []
    touch(tmp_path / "T" / "Jogging-1.txt")
    touch(tmp_path / "T" / "jogging.1.txt")
    with pytest.raises(result_files.ResultsError, match="2 results files match sequence "
                       "jogging_1: T/Jogging-1.txt, T/jogging.1.txt"):
        result_files.find_result_files(str(tmp_path), "T", "jogging_1")


def test_human4_folder_with_an_empty_first_target_file(tmp_path):
    root = tmp_path / "OTB"
    write_otb_sequence(root, "Human4", 6, targets=2, real_images=False)
    (root / "Human4" / "groundtruth_rect.1.txt").write_text("")
    (sequence,) = datasets.load_dataset("otb", root=str(root))
    assert sequence.name == "Human4" and sequence.aliases == ("Human4.2",)
    touch(tmp_path / "R" / "T" / "human4-2.txt")
    assert result_files.find_result_files(str(tmp_path / "R"), "T", sequence.name,
                                          sequence.aliases)
    assert otb.missing_sequences(("Human4",), [sequence]) == []


# ---------------------------------------------------------------------------------------------
# Lengths.

def _scored_auc(truth, boxes):
    overlaps = iou_loop(boxes, truth)
    return np.mean([np.mean(overlaps > t) for t in np.linspace(0, 1, 21)])


def test_tiger1_results_of_the_otb2013_range_align_on_the_last_frame(tmp_path):
    rng = np.random.default_rng(5)
    root, results = tmp_path / "OTB", tmp_path / "results"
    (truth,) = write_otb_sequence(root, "Tiger1", 30, real_images=False, seed=5)
    boxes = truth[5:] + rng.normal(0, 2, (25, 4))
    write_boxes(results / "T" / "tiger1.txt", boxes)
    sequences = datasets.load_dataset("otb100", root=str(root))
    t = report.score_results(sequences, str(results), ["T"])["trackers"]["T"]
    assert t["errors"] == [] and "aligned on the last frame" in t["adjusted"][0]
    assert t["overall"]["success_auc"] == pytest.approx(_scored_auc(truth[5:], boxes), abs=1e-12)


def test_one_line_short_is_scored_over_the_common_length_two_is_an_error(tmp_path):
    rng = np.random.default_rng(6)
    root, results = tmp_path / "OTB", tmp_path / "results"
    (truth,) = write_otb_sequence(root, "Board", 20, real_images=False, seed=6)
    boxes = truth[:19] + rng.normal(0, 2, (19, 4))
    write_boxes(results / "Short" / "Board.txt", boxes)
    write_boxes(results / "Shorter" / "Board.txt", boxes[:18])
    sequences = datasets.load_dataset("otb", root=str(root))
    scores = report.score_results(sequences, str(results))["trackers"]
    assert scores["Short"]["overall"]["success_auc"] == pytest.approx(
        _scored_auc(truth[:19], boxes), abs=1e-12)
    assert "19 boxes for 20 frames, scored over the common 19 frames" in scores["Short"][
        "adjusted"][0]
    assert scores["Shorter"]["overall"] is None
    assert "18 lines of boxes but the sequence has 20 frames" in scores["Shorter"]["errors"][0]


# ---------------------------------------------------------------------------------------------
# Invalid ground truth.

def test_zero_and_nan_ground_truth_count_as_the_otb_toolkit_or_are_excluded(tmp_path):
    rng = np.random.default_rng(7)
    root, results = tmp_path / "OTB", tmp_path / "results"
    truth = random_boxes(rng, 24) + [1, 1, 0, 0]
    truth[[4, 9, 14]] = 0  # MIL's FaceOcc style: 0,0,0,0 every few frames
    truth[19] = np.nan  # UAV123 style
    write_otb_sequence(root, "FaceOcc1", 24, boxes=truth, real_images=False)
    boxes = random_boxes(rng, 24) + [1, 1, 0, 0]
    write_boxes(results / "T" / "FaceOcc1.txt", boxes)
    sequences = datasets.load_dataset("otb", root=str(root))
    valid = np.ones(24, bool)
    valid[[4, 9, 14, 19]] = False
    overlaps = np.where(valid, iou_loop(boxes, np.nan_to_num(truth)), 0.0)
    centres = lambda b: b[:, :2] + (b[:, 2:] - 1) / 2  # noqa: E731
    errors = np.where(valid, np.linalg.norm(centres(boxes) - centres(np.nan_to_num(truth)),
                                            axis=1), -1.0)

    toolkit = report.score_results(sequences, str(results))["trackers"]["T"]
    assert toolkit["invalid_frames"] == 4 and "precision hit" in toolkit["invalid_frames_rule"]
    assert toolkit["overall"]["success_auc"] == pytest.approx(
        np.mean([np.mean(overlaps > t) for t in metrics.IOU_THRESHOLDS]), abs=1e-12)
    assert toolkit["overall"]["precision"] == pytest.approx(np.mean(errors <= 20), abs=1e-12)

    excluded = report.score_results(sequences, str(results), invalid_frames="exclude")[
        "trackers"]["T"]
    assert excluded["invalid_frames"] == 4 and excluded["invalid_frames_rule"] == "excluded"
    assert excluded["overall"]["success_auc"] == pytest.approx(
        np.mean([np.mean(overlaps[valid] > t) for t in metrics.IOU_THRESHOLDS]), abs=1e-12)
    assert excluded["overall"]["precision"] == pytest.approx(np.mean(errors[valid] <= 20),
                                                             abs=1e-12)


# ---------------------------------------------------------------------------------------------
# The MATLAB toolkit's flat layout, attributes, partial sets.

def _flat_toolkit_tree(tmp_path, rng):
    root = tmp_path / "toolkit"
    truths = {}
    for stem, flags in (("Basketball", "1,0,1,1,0,0,0,1,0,1,0"), ("Jogging-1", None),
                        ("Jogging-2", None), ("Car4", "1,1,0,0,0,0,0,0,0,0,0")):
        truths[stem] = random_boxes(rng, 15) + [1, 1, 0, 0]
        write_boxes(root / "anno" / f"{stem}.txt", truths[stem])
        if flags:
            (root / "anno" / "att").mkdir(parents=True, exist_ok=True)
            (root / "anno" / "att" / f"{stem}.txt").write_text(flags)
    (root / "anno" / "att" / "Jogging.txt").write_text("0,0,1,1,0,0,0,1,0,0,0")
    return root, truths


def test_flat_anno_layout_with_att_flags(tmp_path):
    root, _ = _flat_toolkit_tree(tmp_path, np.random.default_rng(8))
    by_name = {s.name: s for s in datasets.load_dataset("otb100", root=str(root))}
    assert sorted(by_name) == ["Basketball", "Car4", "Jogging.1", "Jogging.2"]
    assert by_name["Basketball"].attributes == ("IV", "OCC", "DEF", "OPR", "BC")
    assert by_name["Car4"].attributes == ("IV", "SV")
    assert by_name["Jogging.2"].attributes == ("OCC", "DEF", "OPR")
    assert by_name["Jogging.1"].one_based and by_name["Jogging.1"].aliases == ("Jogging-1",)
    (root / "anno" / "att" / "Car4.txt").write_text("1,1,0")
    with pytest.raises(datasets.DatasetError, match="Car4.txt: expected 11 flags"):
        datasets.load_dataset("otb100", root=str(root))


def test_attributes_table_plots_and_partial_labels(tmp_path):
    rng = np.random.default_rng(9)
    root, truths = _flat_toolkit_tree(tmp_path, rng)
    results = tmp_path / "results"
    for stem, truth in truths.items():
        write_boxes(results / "A" / f"{stem.lower()}.txt", truth + rng.normal(0, 2, truth.shape))
    report_dir = tmp_path / "report"
    args = ("--dataset=otb100", f"--dataset_root={root}", f"--results_dir={results}",
            f"--report_dir={report_dir}", "--attributes")
    refused = _run(*args)
    assert refused.returncode == 1
    assert "A: 4/100 sequences of OTB-100; missing: Biker, Bird1" in refused.stderr
    run = _run(*args, "--allow_partial")
    assert run.returncode == 0, run.stderr
    assert "A partial (4/100): success_auc=" in run.stdout
    table = run.stdout[run.stdout.index("| Attribute"):]
    assert re.search(r"\| IV \(illumination variation\) \| 2 +\| 0\.\d{3}", table)
    assert "| OCC (occlusion)" in table and "LR" not in table
    scores = json.loads((report_dir / "scores.json").read_text())
    occ = scores["trackers"]["A"]["attributes"]["OCC"]
    members = ["Basketball", "Jogging.1", "Jogging.2"]
    assert occ["num_sequences"] == 3
    assert occ["success_auc"] == pytest.approx(np.mean(
        [scores["trackers"]["A"]["sequences"][m]["success_auc"] for m in members]))
    for attribute in ("IV", "SV", "OCC", "DEF", "OPR", "BC"):
        assert (report_dir / "attributes" / f"success_{attribute}.png").read_bytes()[:4] == (
            b"\x89PNG")
    assert not (report_dir / "attributes" / "success_LR.png").exists()


def test_otb2013_benchmark_list_has_51_targets():
    names = otb.benchmark_names("otb2013")
    assert len(names) == 51 and "Jogging.1" in names and "Skating2.1" not in names
    assert len(otb.benchmark_names("otb100")) == 100 and otb.benchmark_names("otb") is None


# ---------------------------------------------------------------------------------------------
# UAV123.

def _uav_tree(tmp_path, with_config=True):
    root = tmp_path / "UAV123"
    rng = np.random.default_rng(10)
    for i in range(1, 31):
        touch(root / "data_seq" / "UAV123" / "group3" / f"{i:06d}.jpg")
    for i in range(1, 9):
        touch(root / "data_seq" / "UAV123" / "bike1" / f"{i:06d}.jpg")
    boxes = {"group3_1": random_boxes(rng, 12), "group3_2": random_boxes(rng, 19),
             "bike1": random_boxes(rng, 8)}
    boxes["group3_2"][3:6] = np.nan  # out of view
    for name, b in boxes.items():
        write_boxes(root / "anno" / "UAV123" / f"{name}.txt", b)
    (root / "anno" / "UAV123" / "att").mkdir()
    (root / "anno" / "UAV123" / "att" / "bike1.txt").write_text("1,0,0,1,0,0,0,0,0,0,0,1")
    if with_config:
        (root / "configSeqs.m").write_text(
            "seqUAV123 = {struct('name','bike1','path','D:\\\\data_seq\\\\UAV123\\\\bike1\\\\',"
            "'startFrame',1,'endFrame',8,'nz',6,'ext','jpg','init_rect',[0,0,0,0]),...\n"
            "struct('name','group3_1','path','D:\\\\data_seq\\\\UAV123\\\\group3\\\\',"
            "'startFrame',1,'endFrame',12,'nz',6,'ext','jpg','init_rect',[0,0,0,0]),...\n"
            "struct('name','group3_2','path','D:\\\\data_seq\\\\UAV123\\\\group3\\\\',"
            "'startFrame',12,'endFrame',30,'nz',6,'ext','jpg','init_rect',[0,0,0,0])};\n")
    return root, boxes


def test_uav123_reader_cuts_segments_by_the_toolkit_frame_ranges(tmp_path):
    root, boxes = _uav_tree(tmp_path)
    by_name = {s.name: s for s in datasets.load_dataset("uav123", root=str(root))}
    assert sorted(by_name) == ["bike1", "group3_1", "group3_2"]
    second = by_name["group3_2"]
    assert [os.path.basename(f) for f in second.image_files[:2]] == ["000012.jpg", "000013.jpg"]
    assert second.num_frames == 19 and os.path.basename(second.image_files[-1]) == "000030.jpg"
    np.testing.assert_allclose(second.ground_truth[0], boxes["group3_2"][0] - [1, 1, 0, 0])
    assert second.valid.tolist() == [True] * 3 + [False] * 3 + [True] * 13
    assert by_name["bike1"].attributes == ("SV", "FM", "SOB")


def test_uav123_without_configseqs_reads_unsegmented_and_first_segments_only(tmp_path):
    root, _ = _uav_tree(tmp_path, with_config=False)
    problems = []
    names = [s.name for s in datasets.load_dataset("uav123", root=str(root), errors=problems)]
    assert names == ["bike1", "group3_1"]
    assert len(problems) == 1 and "group3_2: a segment of group3 whose frame range is only in" in (
        problems[0])
    assert uav123.UAV123_ATTRIBUTES[-1] == "SOB"
