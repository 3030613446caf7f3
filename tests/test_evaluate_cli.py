"""Tests of `python -m memnet_tf.evaluate` (subprocess) and its tracker hook."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from fixtures_eval import REPO_ROOT, shared_data, write_boxes
from memnet_tf.eval import datasets, report


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "memnet_tf.evaluate", *args], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def _write_results(sequences, results_dir, tracker, noise, seed):
    rng = np.random.default_rng(seed)
    for sequence in sequences:
        boxes = sequence.ground_truth + rng.normal(0, noise, sequence.ground_truth.shape)
        boxes[:, 2:] = np.abs(boxes[:, 2:]) + 1
        boxes[:, :2] += sequence.pixel_offset
        write_boxes(results_dir / tracker / f"{sequence.name}.txt", boxes.round(2))


def _printed_scores(stdout):
    lines = {}
    for match in re.finditer(r"^(.+?): success_auc=(\d\.\d{3}) precision=(\d\.\d{3})",
                             stdout, re.M):
        lines[match.group(1)] = (float(match.group(2)), float(match.group(3)))
    return lines


@pytest.fixture
def otb_results(tmp_path):
    root = shared_data("otb_mini")
    sequences = datasets.load_dataset("otb100", root=str(root))
    results = tmp_path / "results"
    _write_results(sequences, results, "Good", noise=2, seed=0)
    _write_results(sequences, results, "Noisy", noise=15, seed=1)
    # A results file three lines short: reported with both counts, the rest still scored.
    bad = results / "Noisy" / "Couple.txt"
    bad.write_text("\n".join(bad.read_text().splitlines()[:-3]) + "\n")
    return root, sequences, results


def test_scores_existing_results_table_json_and_plots(otb_results, tmp_path):
    root, sequences, results = otb_results
    report_dir = tmp_path / "report"
    run = _run("--dataset=otb", f"--dataset_root={root}", f"--results_dir={results}",
               f"--report_dir={report_dir}")
    assert run.returncode == 0, run.stderr
    assert "otb_mini: 6 sequences" in run.stdout  # --dataset=otb is named after its folder
    printed = _printed_scores(run.stdout)
    assert set(printed) == {"Good", "Noisy"}
    expected = report.score_results(sequences, str(results), ["Good", "Noisy"])["trackers"]
    for name, (success, precision) in printed.items():
        assert success == pytest.approx(expected[name]["overall"]["success_auc"], abs=5e-4)
        assert precision == pytest.approx(expected[name]["overall"]["precision"], abs=5e-4)
    assert printed["Good"][0] > printed["Noisy"][0]
    assert "sequences=5/6" in run.stdout and "sequences=6/6" in run.stdout
    assert f"{results / 'Noisy' / 'Couple.txt'}: 137 lines of boxes but the sequence has 140 " \
           "frames" in run.stderr
    saved = json.loads((report_dir / "scores.json").read_text())
    assert saved["trackers"]["Good"]["overall"]["success_auc"] == pytest.approx(
        expected["Good"]["overall"]["success_auc"])
    assert "Couple" not in saved["trackers"]["Noisy"]["sequences"]
    assert set(saved["trackers"]["Good"]["attributes"]) >= {"BC", "OPR"}
    for png in ("success_plot.png", "precision_plot.png"):
        assert (report_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_report_that_cannot_be_written_fails_with_status_1(otb_results, tmp_path):
    root, _, results = otb_results
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    run = _run("--dataset=otb", f"--dataset_root={root}", f"--results_dir={results}",
               f"--report_dir={blocker / 'report'}")
    assert run.returncode == 1, run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot write" in errors[0] and "Traceback" not in run.stderr


def test_otb2013_from_json_and_tracker_selection(otb_results, tmp_path):
    root, sequences, results = otb_results
    # A pysot-style JSON of the same sequences, plus one that is not in OTB-2013.
    entries = {s.name: {"video_dir": s.name.split(".")[0],
                        "img_names": [os.path.relpath(f, root) for f in s.image_files],
                        "init_rect": (s.ground_truth[0] + [1, 1, 0, 0]).tolist(),
                        "gt_rect": (s.ground_truth + [1, 1, 0, 0]).tolist(), "attr": []}
               for s in sequences}
    entries["Biker"] = dict(entries["Couple"])
    annotations = tmp_path / "OTB100.json"
    annotations.write_text(json.dumps(entries))
    args = ("--dataset=otb2013", f"--annotations={annotations}", f"--results_dir={results}",
            "--trackers=Good", f"--report_dir={tmp_path / 'r2'}")
    run = _run(*args)
    # 6 of OTB-2013's 51: not scored as OTB-2013, what is missing is listed.
    assert run.returncode == 1
    assert "Good: 6/51 sequences of OTB-2013; missing: Basketball, Bolt, Boy" in run.stderr
    assert "Good" not in _printed_scores(run.stdout)
    run = _run(*args, "--allow_partial")
    assert run.returncode == 0, run.stderr
    assert "OTB100.json (6 of OTB-2013's 51 sequences): 6 sequences" in run.stdout
    assert set(_printed_scores(run.stdout)) == {"Good partial (6/51)"}
    assert "| Good partial (6/51) |" in run.stdout


def test_usage_errors_are_clear(tmp_path):
    run = _run("--dataset=otb100", f"--results_dir={tmp_path}")
    assert run.returncode == 2 and "give --dataset_root=DIR or --annotations=FILE.json" in (
        run.stderr + run.stdout)
    run = _run("--dataset=otb100", f"--dataset_root={tmp_path / 'nowhere'}",
               f"--results_dir={tmp_path}")
    assert run.returncode == 2 and f"{tmp_path / 'nowhere'}: OTB dataset root not found" in (
        run.stderr)


def test_tracker_hook_uses_the_run_tracking_flags_unless_overridden(tmp_path):
    from absl import flags

    from memnet_tf import flags as memnet_flags
    from memnet_tf.tracking import tracker as tracker_lib
    from test_track_cli import write_tiny_run

    run = write_tiny_run(tmp_path / "run", extra_flags=("--scale_step=1.0375",
                                                         "--window_influence=0.176"))
    flag_values = flags.FlagValues()
    memnet_flags.define_flags(flag_values)
    flag_values(["evaluate", f"--checkpoint={run}", "--window_influence=0.3"])
    factory = tracker_lib.factory_from_flags(flag_values)
    assert factory.checkpoint == run
    assert factory.track_config.scale_step == 1.0375       # from the run
    assert factory.track_config.window_influence == 0.3    # explicitly overridden
    assert factory.track_config.scale_penalty == 0.97      # default in both


def test_results_folder_is_claimed_by_one_tracker(tmp_path):
    from memnet_tf.eval import ope

    first = {"checkpoint": "/runs/a/ckpt-1", "track_config": {"scale_step": 1.05}}
    ope.claim_results_folder(str(tmp_path), "MemTrack", first)
    ope.claim_results_folder(str(tmp_path), "MemTrack", dict(first))  # the same tracker resumes
    newer = dict(first, checkpoint="/runs/a/ckpt-2")
    with pytest.raises(ValueError, match=r"holds results of another tracker \(checkpoint: "
                                         r"'/runs/a/ckpt-1' there, '/runs/a/ckpt-2' now\)"):
        ope.claim_results_folder(str(tmp_path), "MemTrack", newer)
    foreign = tmp_path / "SiamFC"
    foreign.mkdir()
    (foreign / "Couple.txt").write_text("1,2,3,4\n")
    with pytest.raises(ValueError, match="unknown tracker"):
        ope.claim_results_folder(str(tmp_path), "SiamFC", first)
    assert not (foreign / ope.PROVENANCE_FILE).exists()
