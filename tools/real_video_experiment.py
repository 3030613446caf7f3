"""The real-video experiment: MemTrack and its no-memory twin trained on drone video, tracked on
unseen OTB/VOT sequences.

    python tools/real_video_experiment.py --output_dir=runs/real_video \
        [--variants=memtrack,no_memory,...] [--seeds=0,1,2] [--train_flags='--train_steps=500']

Steps, each skipped when its output is already there (an interrupted experiment resumes):
1. imports the FDSiamFC-30 weights into `<output_dir>/fdsiamfc30` (the frozen backbone);
2. builds TFRecord shards of `<shared>/data/aerial_half` into `--data_dir` (default
   `<output_dir>/data`): the `--val_sequences` as the val split, every other sequence as train
   (whole sequences, never frames of one video in both; NaN rows counted and left out);
3. trains every variant and seed with `python -m memnet_tf.train` into
   `<output_dir>/<variant>_seed<k>/` (a run folder that `--checkpoint` of track, evaluate and
   export accepts), log in `<variant>_seed<k>/train.log`; the first run computes the frozen
   backbone's feature cache (`<data_dir>/features`, one per frozen layer), later runs reuse it;
4. tracks the validation sequences (for choosing between recipes: never the test sequences) and
   the unseen test sequences (otb_mini + vot_bag) with every run, SiamFC mode and the static box,
   and prints benchmarks/memory_on_real_video.py's tables (`--memory_write_interval` and
   `--memory_write_min_psr` change when the memory runs write, at tracking time only);
   `<output_dir>/report_<set>_<variants>[_<write flags>].txt` keeps them and
   `<output_dir>/timings.json` the wall time of every step.

Variants (all from experiments/memtrack_real.flags; `no_memory` is experiments/no_memory_real.flags):
    memtrack      full MemTrack: attention, LSTM controller, 8-slot memory, T_0 + r (.) T_retr
    no_memory     the twin: same data, steps, seed and response head; template = T_0
    no_residual   memory without the residual path: T_final = T_retr (--nouse_residual)
    no_attention  the controller reads the mean-pooled search features (--nouse_attention)
    memory_2      2 slots instead of 8 (--memory_size=2)
    memtrack_agree
                  the residual gate also sees how far T_retr is from T_0 (--residual_agreement;
                  not in the paper)
    memtrack_conv5, no_memory_conv5
                  MemTrack and its twin with conv5 fine-tuned at a tenth of the learning rate
                  (experiments/*_real_conv5.flags; the cache then holds conv4's features)
"""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import subprocess
import sys
import time

from absl import flags

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from memnet_tf import cli  # noqa: E402

VARIANTS = {
    "memtrack": ("experiments/memtrack_real.flags", []),
    "no_memory": ("experiments/no_memory_real.flags", []),
    "no_residual": ("experiments/memtrack_real.flags", ["--nouse_residual"]),
    "no_attention": ("experiments/memtrack_real.flags", ["--nouse_attention"]),
    "memory_2": ("experiments/memtrack_real.flags", ["--memory_size=2"]),
    # Not in the paper: the residual gate also sees cos(T_retr, T_0) (docs/results.md, 8th recipe).
    "memtrack_agree": ("experiments/memtrack_real.flags", ["--residual_agreement"]),
    # conv5 fine-tuned at lr / 10 (conv1-4 frozen), and its twin trained the same way.
    "memtrack_conv5": ("experiments/memtrack_real_conv5.flags", []),
    "no_memory_conv5": ("experiments/no_memory_real_conv5.flags", []),
}
VAL_SEQUENCES = ("boat1", "person11", "wakeboard10")

_OUTPUT = flags.DEFINE_string("output_dir", None, "Experiment folder (runs, data, reports).")
_VARIANTS = flags.DEFINE_list("variants", ["memtrack", "no_memory"],
                              f"Variants to train, from {sorted(VARIANTS)}.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds of every variant.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "Shards and feature cache (default "
                                "<output_dir>/data).")
_VAL = flags.DEFINE_list("val_sequences", list(VAL_SEQUENCES),
                         "Whole aerial_half sequences held out as the val split.")
_TRAIN_FLAGS = flags.DEFINE_string("train_flags", "", "Extra flags for every training run, "
                                   "e.g. '--train_steps=500'.")
_WRITE_INTERVAL = flags.DEFINE_integer(
    "memory_write_interval", None, "Track the memory runs writing every N-th frame only "
    "(default: every frame, the paper's); see docs/results.md, fourth recipe.", lower_bound=1)
_WRITE_MIN_PSR = flags.DEFINE_float(
    "memory_write_min_psr", None, "Track the memory runs refusing the writes of frames whose "
    "peak-to-sidelobe ratio is below this (default: 0, never).", lower_bound=0.0)
_SETS = flags.DEFINE_list("evaluate", ["aerial_val", "test"],
                          "Sequence sets to track after training (aerial_val, test; empty = "
                          "none).")


def shared_dir() -> str:
    return os.environ.get("MEMNET_SHARED_DIR", str(REPO_ROOT.parent / "shared"))


def run(command: list[str], log_path: str | None = None) -> float:
    """Runs a command from the repository root (output to `log_path` if given); returns seconds."""
    tic = time.time()
    print("$ " + " ".join(shlex.quote(c) for c in command), flush=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])))
    if log_path:
        with open(log_path, "a", encoding="utf-8") as log:
            code = subprocess.call(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env=env)
    else:
        code = subprocess.call(command, cwd=REPO_ROOT, env=env)
    if code != 0:
        where = f" (log: {log_path})" if log_path else ""
        raise RuntimeError(f"command failed with exit code {code}{where}: {' '.join(command)}")
    return time.time() - tic


def import_backbone(output_dir: str) -> str:
    folder = os.path.join(output_dir, "fdsiamfc30")
    if not os.path.isfile(os.path.join(folder, "checkpoint")):
        run([sys.executable, "tools/import_weights.py", "--flagfile=experiments/"
             "siamfc_fdsiamfc30.flags", "--weights=" + os.path.join(
                 shared_dir(), "weights", "fdsiamfc30", "FDSiamfc_30.npz"),
             "--output=" + folder])
    return folder


def build_shards(data_dir: str, val_sequences: list[str]) -> None:
    root = os.path.join(shared_dir(), "data", "aerial_half")
    common = [sys.executable, "tools/build_tfrecords.py", "--source=otb", f"--root={root}",
              f"--output_dir={data_dir}", "--min_frames=20"]
    names = ",".join(val_sequences)
    for split, selection, shards in (("val", f"--sequences={names}", 1),
                                     ("train", f"--exclude_sequences={names}", 4)):
        if not os.path.isfile(os.path.join(data_dir, f"{split}-manifest.json")):
            run(common + [f"--split={split}", selection, f"--num_shards={shards}"])


def train(variant: str, seed: int, output_dir: str, data_dir: str, backbone: str,
          extra: list[str]) -> tuple[str, float]:
    flagfile, variant_flags = VARIANTS[variant]
    model_dir = os.path.join(output_dir, f"{variant}_seed{seed}")
    os.makedirs(model_dir, exist_ok=True)
    seconds = run([sys.executable, "-m", "memnet_tf.train", f"--flagfile={flagfile}",
                   *variant_flags, f"--model_dir={model_dir}", f"--seed={seed}",
                   f"--init_backbone={backbone}", f"--data_dir={data_dir}",
                   f"--feature_cache={os.path.join(data_dir, 'features')}", *extra],
                  log_path=os.path.join(model_dir, "train.log"))
    return model_dir, seconds


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    unknown = sorted(set(_VARIANTS.value) - set(VARIANTS))
    if unknown:
        raise cli.UsageError(f"--variants: unknown {unknown}; known {sorted(VARIANTS)}")
    try:
        seeds = [int(s) for s in _SEEDS.value]
    except ValueError:
        raise cli.UsageError(f"--seeds: integers expected, got {_SEEDS.value}") from None
    bad_sets = sorted(set(_SETS.value) - {"aerial_val", "test"})
    if bad_sets:
        raise cli.UsageError(f"--evaluate: unknown {bad_sets}; known aerial_val, test")
    output_dir = os.path.abspath(_OUTPUT.value)
    data_dir = os.path.abspath(_DATA_DIR.value or os.path.join(output_dir, "data"))
    os.makedirs(output_dir, exist_ok=True)
    timings_path = os.path.join(output_dir, "timings.json")

    def record(key, seconds):
        # Read-modify-write each time: two experiments may share one output folder.
        timings = {}
        if os.path.isfile(timings_path):
            with open(timings_path, encoding="utf-8") as f:
                timings = json.load(f)
        timings[key] = round(seconds, 1)
        with open(timings_path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(timings, f, indent=1)
        os.replace(timings_path + ".tmp", timings_path)

    try:
        run_experiment(output_dir, data_dir, seeds, record)
    except RuntimeError as error:  # a step failed: its log is named in the message
        print(f"error: {error}", file=sys.stderr)
        return cli.EXIT_FAILURE
    return cli.EXIT_OK


def run_experiment(output_dir: str, data_dir: str, seeds: list[int], record) -> None:
    """Steps 1-4 of the module docstring; `record(key, seconds)` keeps each step's wall time."""
    tic = time.time()
    backbone = import_backbone(output_dir)
    build_shards(data_dir, _VAL.value)
    record("prepare", time.time() - tic)
    extra = _TRAIN_FLAGS.value.split()
    runs = {}
    for seed in seeds:
        for variant in _VARIANTS.value:
            model_dir, seconds = train(variant, seed, output_dir, data_dir, backbone, extra)
            runs[f"{variant}_seed{seed}"] = model_dir
            print(f"trained {variant} seed {seed} in {seconds / 60:.1f} min -> {model_dir}",
                  flush=True)
            record(f"train/{variant}_seed{seed}", seconds)
    import memory_on_real_video  # pylint: disable=import-outside-toplevel

    run_list = ",".join(f"{name}:{path}" for name, path in runs.items())
    writes = [f"--{flag.name}={flag.value}" for flag in (_WRITE_INTERVAL, _WRITE_MIN_PSR)
              if flag.value is not None]
    suffix = "".join(f"_{flag.name}{flag.value:g}" for flag in (_WRITE_INTERVAL, _WRITE_MIN_PSR)
                     if flag.value is not None)
    for sequence_set in _SETS.value:
        tic = time.time()
        report_path = os.path.join(
            output_dir, f"report_{sequence_set}_{'+'.join(_VARIANTS.value)}{suffix}.txt")
        stdout = sys.stdout
        with open(report_path + ".tmp", "w", encoding="utf-8") as out:
            sys.stdout = Tee(stdout, out)
            try:
                code = memory_on_real_video.main([f"--runs={run_list}", f"--sequence_set={sequence_set}",
                                           f"--siamfc_checkpoint={backbone}",
                                           f"--plot={report_path[:-4]}.png", *writes])
            finally:
                sys.stdout = stdout
        if code:
            raise RuntimeError(f"tracking the {sequence_set} sequences failed (exit status "
                               f"{code}); partial report: {report_path}.tmp")
        os.replace(report_path + ".tmp", report_path)
        record(f"evaluate/{sequence_set}{suffix}", time.time() - tic)


class Tee:
    """Writes to several streams (the console and the report file)."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()


if __name__ == "__main__":
    flags.mark_flag_as_required("output_dir")
    cli.run(main, "real_video_experiment", tool=True)
