"""TraX runner helpers that need no toolkit: region conversion and the offline workspace."""

from __future__ import annotations

import configparser

import numpy as np
import pytest

from memnet_tf.eval import datasets
from memnet_tf.tracking import trax_runner


def test_regions_become_boxes_as_our_vot_reader_makes_them():
    rng = np.random.default_rng(0)
    polygons = rng.uniform(10, 90, (5, 8))
    for polygon in polygons:
        np.testing.assert_allclose(trax_runner.region_to_box(polygon),
                                   datasets.polygons_to_boxes(polygon[None])[0])
    np.testing.assert_allclose(trax_runner.region_to_box([1, 2, 3, 4]), [1, 2, 3, 4])
    np.testing.assert_allclose(trax_runner.region_to_box([0, 0, 4, 0, 4, 2, 2, 3, 0, 2]),
                               [0, 0, 4, 3])  # a pentagon: its bounding box
    with pytest.raises(ValueError, match="region with 5 values"):
        trax_runner.region_to_box([1, 2, 3, 4, 5])


def test_offline_workspace_links_sequences_and_runs_this_module(tmp_path):
    from test_track_cli import write_tiny_run

    sequence = tmp_path / "bag"
    sequence.mkdir()
    (sequence / "groundtruth.txt").write_text("1,2,3,4\n")
    run = write_tiny_run(tmp_path / "run")
    name = trax_runner.make_vot_workspace(str(tmp_path / "ws"), [str(sequence)], str(run),
                                          python="/usr/bin/python3")
    assert name == "MemTrack"
    ws = tmp_path / "ws"
    assert (ws / "sequences" / "list.txt").read_text().split() == ["bag"]
    assert (ws / "sequences" / "bag").resolve() == sequence.resolve()
    stack = (ws / "stack.yaml").read_text()
    assert "type: unsupervised" in stack and "dataset:" not in stack
    ini = configparser.ConfigParser()
    ini.read(ws / "trackers.ini")
    entry = ini["MemTrack"]
    assert entry["protocol"] == "traxpython"
    assert entry["command"] == "memnet_tf.tracking.trax_runner"
    assert entry["python"] == "/usr/bin/python3"
    assert entry["env_MEMNET_CHECKPOINT"] == str(tmp_path / "run")
    # A model without memory is announced as what it is.
    siamfc = write_tiny_run(tmp_path / "siamfc", extra_flags=("--nouse_memory",))
    assert trax_runner.write_trackers_ini(str(tmp_path / "s.ini"), str(siamfc)) == "SiamFC-mode"
    assert (tmp_path / "s.ini").read_text().startswith("[SiamFC-mode]\nlabel = SiamFC-mode\n")
    with pytest.raises(ValueError, match="experiment='reset'"):
        trax_runner.make_vot_workspace(str(ws), [], "run", experiment="reset")


def test_runner_without_a_checkpoint_says_how_to_give_one(monkeypatch, capsys):
    monkeypatch.delenv("MEMNET_CHECKPOINT", raising=False)
    assert trax_runner.main([]) == 2
    assert "--checkpoint=RUN_OR_EXPORT" in capsys.readouterr().err
