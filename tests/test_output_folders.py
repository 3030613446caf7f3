"""Tests of `output_folders.staged_folder`: whole folders or nothing, stale staging cleaned."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from memnet_tf import output_folders


def _write(folder, name, text):
    with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
        f.write(text)


def _read(folder, name):
    with open(os.path.join(folder, name), encoding="utf-8") as f:
        return f.read()


def test_a_finished_folder_replaces_the_earlier_one_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "deep" / "export"
    with output_folders.staged_folder(str(target)) as staging:
        assert not target.exists() and os.path.dirname(staging) == str(target.parent)
        _write(staging, "a.txt", "first")
    assert _read(target, "a.txt") == "first"
    with output_folders.staged_folder(str(target)) as staging:
        _write(staging, "b.txt", "second")
        assert _read(target, "a.txt") == "first"  # the earlier folder stays until the end
    assert sorted(os.listdir(target)) == ["b.txt"]
    assert os.listdir(target.parent) == ["export"]


def test_a_failure_keeps_the_earlier_folder_and_removes_the_staging(tmp_path):
    target = tmp_path / "export"
    with output_folders.staged_folder(str(target)) as staging:
        _write(staging, "a.txt", "first")
    with pytest.raises(RuntimeError, match="half-way"):
        with output_folders.staged_folder(str(target)) as staging:
            _write(staging, "b.txt", "partial")
            raise RuntimeError("half-way")
    assert sorted(os.listdir(target)) == ["a.txt"] and os.listdir(tmp_path) == ["export"]


def test_staging_of_dead_processes_is_removed_and_of_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = tmp_path / f".export.tmp-{dead.stdout.strip()}-abc"
    live = tmp_path / f".export.tmp-{os.getppid()}-xyz"
    stale.mkdir()
    live.mkdir()
    with output_folders.staged_folder(str(tmp_path / "export")) as staging:
        _write(staging, "a.txt", "x")
    assert not stale.exists() and live.exists()


def test_an_unmakeable_parent_is_an_os_error_naming_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="file/sub: cannot create"):
        with output_folders.staged_folder(str(blocker / "sub" / "export")):
            pass
