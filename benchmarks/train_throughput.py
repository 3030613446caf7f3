"""Training throughput: input pipeline vs. model consumption, and peak memory, per configuration.

    python benchmarks/train_throughput.py [--configs=tiny,quickstart,paper] [--steps=3]

For each configuration (run in its own process, so peak resident memory is its own):
- pipeline: clips/s produced by `make_dataset` alone (synthetic videos, the built-in source);
- training: optimiser steps/s on a cached batch (pure consumption), and clips/s consumed;
- ratio = pipeline clips/s / consumed clips/s (target >= 3: the pipeline never starves the model);
- peak RSS of the process.
The last line is the headline: the smallest ratio.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import time
from _machine import cpu_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {
    # name: (flagfile, extra overrides)
    "tiny": ("experiments/tiny.flags", []),
    "quickstart": ("experiments/quickstart.flags", []),
    # The paper model and clip shape; data from the synthetic source (no VID on this machine).
    "paper": ("experiments/paper.flags", ["--dataset=synthetic"]),
}




def measure(name: str, steps: int) -> dict:
    """Runs inside the child process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from absl import flags

    import tensorflow as tf

    from memnet_tf import config as config_lib
    from memnet_tf import flags as memnet_flags
    from memnet_tf.data.pipeline import make_dataset
    from memnet_tf.training.trainer import Trainer

    flagfile, extra = CONFIGS[name]
    flag_values = flags.FlagValues()
    memnet_flags.define_flags(flag_values)
    flag_values(["bench", f"--flagfile={flagfile}", *extra])
    model_cfg = config_lib.model_config_from_flags(flag_values)
    data_cfg = config_lib.data_config_from_flags(flag_values)
    train_cfg = config_lib.train_config_from_flags(flag_values)
    train_cfg = config_lib.TrainConfig(**{**train_cfg.__dict__, "model_dir": ""})

    dataset = make_dataset(data_cfg, model_cfg, "train", seed=1)
    iterator = iter(dataset)
    batch = next(iterator)  # warm-up (and the cached batch for the training measurement)
    pipeline_batches = max(4, steps * 2)
    tic = time.perf_counter()
    for _ in range(pipeline_batches):
        next(iterator)
    pipeline_clips = pipeline_batches * data_cfg.batch_size / (time.perf_counter() - tic)
    del iterator

    cached = tf.data.Dataset.from_tensors(batch).repeat()
    trainer = Trainer(model_cfg, data_cfg, train_cfg, lambda start: cached)
    train_iterator = iter(cached)
    trainer.train_step(train_iterator)  # trace
    tic = time.perf_counter()
    for _ in range(steps):
        logs = trainer.train_step(train_iterator)
    float(logs["loss/total"])
    step_time = (time.perf_counter() - tic) / steps
    consumed = data_cfg.batch_size / step_time
    return {
        "config": name,
        "clip": f"{data_cfg.batch_size}x{data_cfg.time_steps}",
        "width": model_cfg.width_multiplier,
        "pipeline_clips_per_s": pipeline_clips,
        "steps_per_s": 1.0 / step_time,
        "consumed_clips_per_s": consumed,
        "ratio": pipeline_clips / consumed,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="tiny,quickstart,paper")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per config")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(measure(args.child, args.steps)), flush=True)
        return
    print(f"train_throughput  {datetime.date.today()}  nproc={os.cpu_count()}  cpu={cpu_model()}")
    rows = []
    for name in args.configs.split(","):
        if name not in CONFIGS:
            sys.exit(f"unknown config {name!r}; known: {sorted(CONFIGS)}")
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        out = subprocess.run([sys.executable, __file__, f"--child={name}",
                              f"--steps={args.steps}"], cwd=REPO, capture_output=True,
                             text=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
        if out.returncode != 0 or not lines:
            sys.exit(f"{name} failed:\n{out.stderr[-2000:]}")
        rows.append(json.loads(lines[-1][len("RESULT "):]))
    header = (f"{'config':<11}{'B x T':>7}{'width':>7}{'pipeline clips/s':>18}{'steps/s':>9}"
              f"{'consumed clips/s':>18}{'ratio':>7}{'peak RSS GiB':>14}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['config']:<11}{r['clip']:>7}{r['width']:>7.3g}{r['pipeline_clips_per_s']:>18.1f}"
              f"{r['steps_per_s']:>9.3f}{r['consumed_clips_per_s']:>18.2f}{r['ratio']:>7.1f}"
              f"{r['peak_rss_gib']:>14.2f}")
    worst = min(rows, key=lambda r: r["ratio"])
    print(f"min pipeline/consumption ratio: {worst['ratio']:.1f} ({worst['config']}; target >= 3)")


if __name__ == "__main__":
    main()
