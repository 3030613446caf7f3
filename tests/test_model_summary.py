"""tools/model_summary.py reproduces the official parameter count."""

import subprocess
import sys

from conftest import REPO_ROOT


def _summary(flagfile):
    out = subprocess.run([sys.executable, "tools/model_summary.py", f"--flagfile={flagfile}"],
                         cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()


def test_paper_configuration_matches_official_count():
    lines = _summary("experiments/paper.flags")
    assert lines[-1] == f"trainable parameters: {3_749_440 + 2_303_495}"
    table = "\n".join(lines)
    assert "3,749,440" in table  # the backbone row
    assert "1,577,984" in table  # LSTM kernel 768x2048 + 5 layer norms


def test_tiny_configuration_is_small():
    count = int(_summary("experiments/tiny.flags")[-1].split(":")[1])
    assert 10_000 < count < 200_000
