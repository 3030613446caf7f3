"""README.md works top to bottom: consistent run folders, the fast Usage rows and the snippets run.

The set-up command (the 6.5-minute quickstart training) is replaced by a tiny run written at
`runs/quickstart` with the held-out synthetic sequences the quickstart writes; every *fast* row
of the Usage table then runs, in order, in a scratch copy of the repository layout, followed by
the Library section's Python snippets (except the got10k one, which needs the full OTB-100).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, shared_dir

README = REPO_ROOT / "README.md"


def usage_rows() -> list[tuple[str, list[str], str]]:
    """`(what, [commands], speed)` of the Usage table, in order."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Usage"):].split("\n\n| what")[1].split("\n\n")[0]
    rows = []
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        what, command, speed = cells[0], cells[1], cells[-1]
        rows.append((what, re.findall(r"`([^`]+)`", command), speed))
    return rows


def python_snippets() -> list[str]:
    text = README.read_text(encoding="utf-8")
    library = text[text.index("### Library"):]
    return re.findall(r"```python\n(.*?)```", library, re.DOTALL)


def _commands(rows):
    return [c for _, commands, _ in rows for c in commands if c.startswith(("python", "tensorboard"))]


def test_every_row_uses_folders_an_earlier_row_makes():
    rows = usage_rows()
    assert len(rows) >= 10 and all(speed in ("fast", "slow", "data") for _, _, speed in rows)
    made = {"runs/quickstart"}  # the set-up command: experiments/quickstart.flags
    quickstart = (REPO_ROOT / "experiments" / "quickstart.flags").read_text()
    assert "--model_dir=runs/quickstart" in quickstart
    made |= {"runs/quickstart/heldout"}  # its --final_eval_sequences
    for command in _commands(rows):
        for flag, path in re.findall(r"--(checkpoint|saved_model|logdir|dataset_root)[= ]"
                                     r"((?:runs|exports)/[\w/]+)", command):
            root = "/".join(path.split("/")[:2]) if path.startswith("exports") else path
            assert any(root == m or root.startswith(m + "/") for m in made), (
                f"{command}: --{flag}={path} is not made by an earlier row ({sorted(made)})")
        made |= set(re.findall(r"--(?:model_dir|output|output_dir|export_dir)=((?:runs|exports)/\w+)",
                               command))
    # The snippets and shell blocks (the TraX one, ...) use folders the rows make.
    text = README.read_text(encoding="utf-8")
    blocks = python_snippets() + re.findall(r"```bash\n(.*?)```", text, re.DOTALL)
    assert len(blocks) > len(python_snippets())
    for block in blocks:
        for path in re.findall(r"[\"'=\s]((?:runs|exports)/\w+)", block):
            assert path in made, f"README block uses {path}, which no row makes:\n{block}"


def _scratch_repo(tmp_path):
    """`<tmp>/repo` with the repository's experiments, tools, benchmarks and `../shared`."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("experiments", "tools", "benchmarks"):
        os.symlink(REPO_ROOT / name, repo / name)
    if shared_dir().is_dir():
        os.symlink(shared_dir(), tmp_path / "shared")
    return repo


def _fake_quickstart(repo):
    from memnet_tf.data import synthetic
    from test_track_cli import write_tiny_run

    run = repo / "runs" / "quickstart"
    write_tiny_run(run)
    synthetic.write_otb_sequences(str(run / "heldout"), 2, seed=7, frame_size=128, length=5)


@pytest.mark.slow
def test_fast_rows_then_snippets_run_in_order(tmp_path):
    repo = _scratch_repo(tmp_path)
    _fake_quickstart(repo)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), CUDA_VISIBLE_DEVICES="",
               TF_CPP_MIN_LOG_LEVEL="2")
    ran = 0
    for what, commands, speed in usage_rows():
        if speed != "fast":
            continue
        for command in commands:
            argv = shlex.split(command)
            if argv[0] == "tensorboard":  # a server: check that its folder exists instead
                assert (repo / argv[-1]).is_dir(), command
                continue
            if "../shared/weights" in command and not (tmp_path / "shared" / "weights").is_dir():
                continue
            argv[0] = sys.executable
            result = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True,
                                    timeout=600)
            assert result.returncode == 0, f"{what}: {command}\n{result.stderr[-3000:]}"
            ran += 1
    assert ran >= 6
    snippets = [s for s in python_snippets() if "got10k" not in s]
    assert len(snippets) == 3
    for snippet in snippets:
        result = subprocess.run([sys.executable, "-c", snippet], cwd=repo, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{snippet}\n{result.stderr[-3000:]}"
    assert "(3, 17, 17)" in result.stdout  # the export snippet's response


def test_slow_and_data_rows_use_only_flags_their_command_has():
    """The rows no test runs as written (long, or needing data not here): every `--flag` they
    show is one their command accepts (its --helpfull), so a renamed flag cannot rot them."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), CUDA_VISIBLE_DEVICES="",
               TF_CPP_MIN_LOG_LEVEL="2")
    helps = {}
    checked = 0
    for what, commands, speed in usage_rows():
        if speed == "fast":
            continue
        for command in commands:
            if not command.startswith("python"):
                continue
            argv = shlex.split(command.replace("[", " ").replace("]", " "))
            entry = argv[1:3] if argv[1] == "-m" else argv[1:2]
            key = " ".join(entry)
            if key not in helps:
                # The benchmarks' --help lists all their flags; commands and tools need --helpfull.
                full = "--help" if entry[0].startswith("benchmarks/") else "--helpfull"
                result = subprocess.run([sys.executable, *entry, full], cwd=REPO_ROOT,
                                        env=env, capture_output=True, text=True, timeout=300)
                assert result.returncode == 0, f"{key} {full}: {result.stderr[-2000:]}"
                helps[key] = result.stdout
            for name in [a[2:].split("=")[0] for a in argv[len(entry) + 1:]
                         if a.startswith("--")]:
                known = {f"--{name}", f"--[no]{name}"}
                if name.startswith("no"):
                    known.add(f"--[no]{name[2:]}")
                assert any(k in helps[key] for k in known), (
                    f"README row {what!r}: {key} has no --{name}")
                checked += 1
    assert checked >= 20
