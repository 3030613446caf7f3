"""Tests of tools/ablation.py: variant parsing, and a two-variant study end to end (tiny)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from absl import app

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tools"))
import ablation  # noqa: E402


def test_parse_variants():
    assert ablation.parse_variants(["base:", "small:--memory_size=2 --nouse_attention"]) == [
        ("base", []), ("small", ["--memory_size=2", "--nouse_attention"])]
    for bad, message in (("no_colon", "expected name:flags"), (":--x=1", "expected name:flags"),
                         ("a:memory_size=2", "is not a --flag")):
        with pytest.raises(app.UsageError, match=message):
            ablation.parse_variants([bad])
    with pytest.raises(app.UsageError, match=r"repeated: \['a'\]"):
        ablation.parse_variants(["a:", "a:--nouse_memory"])
    with pytest.raises(app.UsageError, match="--common_flags: 'x' is not a --flag"):
        ablation.split_flags("--a=1 x", "--common_flags")


@pytest.mark.slow
def test_two_variant_study_prints_a_table_and_the_memory_contribution(tmp_path):
    output = tmp_path / "ablation"
    result = subprocess.run(
        [sys.executable, "tools/ablation.py", "--base_flagfile=experiments/tiny.flags",
         f"--output_dir={output}", "--variant=memtrack:", "--variant=siamfc_mode:--nouse_memory",
         "--common_flags=--train_steps=2 --final_eval_sequences=1 "
         "--synthetic_sequence_length=8"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((output / "ablation.json").read_text())
    rows = {row["variant"]: row for row in saved["variants"]}
    assert list(rows) == ["memtrack", "siamfc_mode"] and rows["siamfc_mode"]["flags"] == [
        "--nouse_memory"]
    for name in rows:  # each variant's own run folder and held-out scores
        scores = json.loads((output / name / "heldout_eval.json").read_text())
        assert rows[name]["success_auc"] == pytest.approx(scores["success_auc"])
    assert json.loads((output / "siamfc_mode" / "config.json").read_text())["model"][
        "use_memory"] is False
    expected = rows["memtrack"]["success_auc"] - rows["siamfc_mode"]["success_auc"]
    match = re.fullmatch(r"memory contribution \(memtrack - siamfc_mode\): ([+-]\d\.\d{3}) "
                         r"success AUC on 1 held-out sequences", result.stdout.splitlines()[-1])
    assert match and float(match.group(1)) == pytest.approx(expected, abs=5e-4)
