"""Ablation study: trains variants of one configuration and compares them on the same videos.

    python tools/ablation.py [--base_flagfile=experiments/quickstart.flags]
        [--output_dir=runs/ablation] [--variant='name:--flag=value --other_flag' ...]
        [--common_flags='--train_steps=200 --final_eval_sequences=16']

Each variant is the base flagfile, then `--common_flags`, then its own flags. All are trained with the same seed on the
same data by `python -m memnet_tf.train` into `<output_dir>/<name>` (one process each, so no
state leaks between them; an interrupted study resumes where it stopped) and then tracked on the
same held-out synthetic sequences (`--final_eval_sequences` of the trainer). The default variants
take one component out at a time:

    memtrack        the base configuration
    no_attention    the controller reads the mean of the search patches (--nouse_attention)
    memory_2        two memory slots instead of the base's
    siamfc_mode     no memory: the first-frame template only (--nouse_memory)

Prints the machine and date, one row per variant, and as the last line the memory's
contribution (first variant minus `siamfc_mode`) when both are present. `<output_dir>/
ablation.json` keeps the table. Differences of a few thousandths are within the run-to-run
spread of one seed on a CPU (see README.md).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import subprocess
import sys
import time

from absl import flags

from memnet_tf import cli
from memnet_tf import config as config_lib
from memnet_tf.eval import report

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from _machine import cpu_model  # noqa: E402  (the benchmarks' shared machine description)

DEFAULT_VARIANTS = ("memtrack:", "no_attention:--nouse_attention", "memory_2:--memory_size=2",
                    "siamfc_mode:--nouse_memory")
NO_MEMORY_VARIANT = "siamfc_mode"

_BASE = flags.DEFINE_string("base_flagfile", "experiments/quickstart.flags",
                            "Flagfile every variant starts from.")
_OUTPUT = flags.DEFINE_string("output_dir", "runs/ablation", "One run folder per variant here.")
_VARIANTS = flags.DEFINE_multi_string(
    "variant", list(DEFAULT_VARIANTS),
    "name:flags, e.g. 'no_attention:--nouse_attention'; repeat for several variants.")
_COMMON = flags.DEFINE_string("common_flags", "", "Training flags given to every variant, "
                               "after the base flagfile (e.g. '--train_steps=200').")


def split_flags(text: str, where: str) -> list[str]:
    """Whitespace-separated `--flag` words; anything else is a usage error naming `where`."""
    words = text.split()
    bad = [word for word in words if not word.startswith("--")]
    if bad:
        raise cli.UsageError(f"{where}: {bad[0]!r} is not a --flag")
    return words


def parse_variants(specs) -> list[tuple[str, list[str]]]:
    """`['name:--a --b=1', ...]` -> `[(name, ['--a', '--b=1']), ...]`, names unique."""
    variants = []
    for spec in specs:
        name, sep, extra = spec.partition(":")
        name = name.strip()
        if not sep or not name or not name.replace("_", "").replace("-", "").isalnum():
            raise cli.UsageError(f"--variant={spec!r}: expected name:flags with a name of "
                                 "letters, digits, '_' or '-'")
        variants.append((name, split_flags(extra, f"--variant={spec!r}")))
    names = [name for name, _ in variants]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise cli.UsageError(f"--variant names must be unique; repeated: {duplicated}")
    return variants


def train_variant(name: str, extra: list[str], common: list[str],
                  output_dir: str) -> tuple[dict, float]:
    """Trains (or resumes) one variant and returns its held-out scores and the wall time."""
    model_dir = os.path.join(output_dir, name)
    command = [sys.executable, "-m", "memnet_tf.train", f"--flagfile={_BASE.value}",
               f"--model_dir={model_dir}", *common, *extra]
    print(f"[{name}] {' '.join(command[2:])}", flush=True)
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up lines, once per variant
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"[{name}] training failed (exit status {result.returncode}); its "
                           f"output is above, its run folder is {model_dir}")
    scores_path = os.path.join(model_dir, "heldout_eval.json")
    if not os.path.isfile(scores_path):
        raise RuntimeError(f"{scores_path}: missing; give the variants "
                           "--final_eval_sequences >= 1 (base flagfile or --common_flags)")
    with open(scores_path, encoding="utf-8") as f:
        return json.load(f), seconds


def format_table(rows: list[dict]) -> str:
    header = ("variant", "flags", "success_auc", "precision", "vs " + rows[0]["variant"],
              "sequences", "minutes")
    return report.text_table(header, [
        (row["variant"], " ".join(row["flags"]) or "(base)", f"{row['success_auc']:.3f}",
         f"{row['precision']:.3f}", f"{row['success_auc'] - rows[0]['success_auc']:+.3f}",
         str(row["num_sequences"]), f"{row['seconds'] / 60:.1f}") for row in rows])


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not os.path.isfile(REPO_ROOT / _BASE.value) and not os.path.isfile(_BASE.value):
        raise cli.UsageError(f"--base_flagfile={_BASE.value}: file not found")
    variants = parse_variants(_VARIANTS.value)
    common = split_flags(_COMMON.value, "--common_flags")
    output_dir = os.path.abspath(_OUTPUT.value)
    rows = []
    for name, extra in variants:
        try:
            scores, seconds = train_variant(name, extra, common, output_dir)
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        rows.append({"variant": name, "flags": extra, "seconds": seconds,
                     **{key: scores[key] for key in ("success_auc", "precision",
                                                     "baseline_success_auc", "num_sequences")}})
    today = datetime.date.today().isoformat()
    print(f"\nAblation of {_BASE.value} on held-out synthetic videos (same seed and data for "
          f"every variant); machine: nproc={os.cpu_count()}, {cpu_model()}; date: {today}")
    print(format_table(rows))
    os.makedirs(output_dir, exist_ok=True)
    config_lib.write_atomically(os.path.join(output_dir, "ablation.json"), json.dumps(
        {"base_flagfile": _BASE.value, "common_flags": common, "date": today,
         "variants": rows}, indent=2) + "\n")
    by_name = {row["variant"]: row for row in rows}
    first = rows[0]
    if NO_MEMORY_VARIANT in by_name and first["variant"] != NO_MEMORY_VARIANT:
        difference = first["success_auc"] - by_name[NO_MEMORY_VARIANT]["success_auc"]
        print(f"memory contribution ({first['variant']} - {NO_MEMORY_VARIANT}): "
              f"{difference:+.3f} success AUC on {first['num_sequences']} held-out sequences")
    else:
        best = max(rows, key=lambda row: row["success_auc"])
        print(f"best variant: {best['variant']} (success AUC {best['success_auc']:.3f})")
    return 0


if __name__ == "__main__":
    cli.run(main, "ablation", tool=True)
