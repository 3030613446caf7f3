"""The official VOT toolkit runs our tracker over TraX, offline (`tracking/trax_runner.py`).

Runs only where the toolkit is installed: `vot` on $PATH, or $MEMNET_VOT_TOOLKIT naming its
`vot` executable (it belongs in a virtualenv of its own: its opencv-python clashes with our
opencv-python-headless; see WORKSPACE.md), and `trax` (vot-trax) importable here, since the
toolkit starts our runner with this interpreter.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import require_shared

VOT = os.environ.get("MEMNET_VOT_TOOLKIT") or shutil.which("vot")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not VOT, reason="the VOT toolkit (vot-toolkit) is not installed: no "
                       "`vot` on $PATH and $MEMNET_VOT_TOOLKIT unset"),
]


def _vot(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([VOT, *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=900)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    pytest.importorskip("trax", reason="vot-trax is not installed here (pip install -e .[trax])")
    from memnet_tf.tracking import trax_runner
    from test_track_cli import write_tiny_run

    root = require_shared("data", "vot_bag")
    folder = tmp_path_factory.mktemp("vot")
    run = write_tiny_run(folder / "run")
    trax_runner.make_vot_workspace(str(folder / "ws"), [str(root)], run, python=sys.executable)
    return folder / "ws"


def test_vot_test_runs_our_tracker_over_trax(workspace):
    result = _vot("--registry", str(workspace), "test", "MemTrack", cwd=workspace)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Test concluded successfuly" in result.stdout + result.stderr


def test_vot_evaluate_and_analysis_on_a_local_workspace(workspace):
    result = _vot("evaluate", "--workspace", str(workspace), "MemTrack", cwd=workspace)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert glob.glob(str(workspace / "results" / "MemTrack" / "baseline" / "vot_bag" / "*_001*"))
    result = _vot("analysis", "--workspace", str(workspace), "MemTrack", cwd=workspace)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (report,) = glob.glob(str(workspace / "analysis" / "*.json"))
    text = json.dumps(json.load(open(report, encoding="utf-8")))
    assert "MemTrack" in text
