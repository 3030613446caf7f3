"""benchmarks/train_throughput.py --profile: every part of the step is timed and reported."""

import subprocess
import sys

import pytest

from conftest import REPO_ROOT


@pytest.mark.slow
def test_profile_times_every_part_of_the_tiny_step():
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import train_throughput

    result = subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--profile",
                             "--configs=tiny", "--rounds=1"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("train_throughput --profile  ") and "nproc=" in lines[0]
    for part in train_throughput.PROFILE_PARTS:
        [row] = [line for line in lines if line.startswith(part + " ")]
        seconds_min, seconds_median, share = row[len(part):].split()
        assert 0 < float(seconds_min) <= float(seconds_median), row
        assert share.endswith("%")
    step_row = next(line for line in lines if line.startswith("train step (all of it)"))
    assert step_row.split()[-1] == "100.0%"
    assert lines[-1].startswith("tiny train step ") and "backbone forward+backward" in lines[-1]
