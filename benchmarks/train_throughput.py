"""Training throughput: input pipeline vs. model consumption, and peak memory, per configuration.

    python benchmarks/train_throughput.py [--configs=tiny,quickstart,paper] [--steps=3]
    python benchmarks/train_throughput.py --compare [--configs=quickstart] [--rounds=3]
    python benchmarks/train_throughput.py --efficiency [--configs=paper] [--steps=1]
    python benchmarks/train_throughput.py --profile [--configs=paper] [--rounds=3]

--compare: float32, mixed_bfloat16 and float32 + XLA (--jit_compile) train steps of the same
configuration, each round running the three in turn in fresh processes (interleaved, so a change
in machine load hits all three alike); steps/s min and median over rounds, peak RSS.
--efficiency: the train step's FLOPs (forward + backward, counted from the layer shapes) per
second, as a fraction of this machine's measured float32 matrix-multiply ceiling.
--profile: where the step's time goes: the whole step, the backbone forward and forward+backward
(and the BatchNorms alone), the memory cell with the correlation and response head, and the
optimiser update, each timed as a tf.function of its own, interleaved over rounds.

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




def _trainer_on_one_batch(name: str, precision: str = "float32", jit_compile: bool = False,
                          overrides: tuple[str, ...] = ()):
    """(configs, trainer, the dataset's iterator, its first batch) for `name`, in this process."""
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
    flag_values(["bench", f"--flagfile={flagfile}", *extra, f"--precision={precision}",
                 f"--jit_compile={jit_compile}", *overrides])
    model_cfg = config_lib.model_config_from_flags(flag_values)
    data_cfg = config_lib.data_config_from_flags(flag_values)
    train_cfg = config_lib.train_config_from_flags(flag_values)
    train_cfg = config_lib.TrainConfig(**{**train_cfg.__dict__, "model_dir": ""})

    dataset = make_dataset(data_cfg, model_cfg, "train", seed=1)
    iterator = iter(dataset)
    batch = next(iterator)  # warm-up (and the cached batch for the training measurement)
    cached = tf.data.Dataset.from_tensors(batch).repeat()
    trainer = Trainer(model_cfg, data_cfg, train_cfg, lambda start: cached)
    return model_cfg, data_cfg, trainer, iterator, batch


def measure(name: str, steps: int, precision: str = "float32", jit_compile: bool = False,
            overrides: tuple[str, ...] = ()) -> dict:
    """Runs inside the child process."""
    import tensorflow as tf

    model_cfg, data_cfg, trainer, iterator, batch = _trainer_on_one_batch(
        name, precision, jit_compile, overrides)
    pipeline_batches = max(4, steps * 2)
    tic = time.perf_counter()
    for _ in range(pipeline_batches):
        next(iterator)
    pipeline_clips = pipeline_batches * data_cfg.batch_size / (time.perf_counter() - tic)
    del iterator

    train_iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    trainer.train_step(train_iterator)  # trace
    tic = time.perf_counter()
    for _ in range(steps):
        logs = trainer.train_step(train_iterator)
    float(logs["loss/total"])
    step_time = (time.perf_counter() - tic) / steps
    consumed = data_cfg.batch_size / step_time
    return {
        "config": name,
        "precision": precision,
        "xla": jit_compile,
        "step_s": step_time,
        "flops": train_step_flops(model_cfg, data_cfg.batch_size, data_cfg.time_steps),
        "clip": f"{data_cfg.batch_size}x{data_cfg.time_steps}",
        "width": model_cfg.width_multiplier,
        "pipeline_clips_per_s": pipeline_clips,
        "steps_per_s": 1.0 / step_time,
        "consumed_clips_per_s": consumed,
        "ratio": pipeline_clips / consumed,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20,
        "loss": float(logs["loss/total"]),
    }


# The parts of a train step that --profile times on their own, in the order printed.
PROFILE_PARTS = ("train step (all of it)", "backbone forward", "backbone forward+backward",
                 "  of which BatchNorm f+b", "memory cell + xcorr + head f+b",
                 "  of which xcorr + head f+b", "optimiser update")


def profile_parts(name: str, rounds: int, precision: str = "float32",
                  overrides: tuple[str, ...] = ()) -> dict:
    """Seconds per round of each of PROFILE_PARTS, each a tf.function of its own, interleaved.

    The backbone parts run the step's two backbone batches (all exemplars, all searches) in
    training mode, backward against fixed random cotangents; BatchNorm is the four BatchNorms
    alone on random inputs of their shapes in the step; the memory part is the unrolled cell, the
    correlation, the response head and the loss on fixed backbone features, backward to the
    memory's variables and to those features (as in the step); the optimiser is Adam's update of
    every variable. Runs inside the child process.
    """
    import numpy as np
    import tensorflow as tf

    from memnet_tf.layers.xcorr import xcorr
    from memnet_tf.models.backbone import convolve
    from memnet_tf.models.memtrack import _merge_batch_time
    from memnet_tf.training import losses

    _, _, trainer, _, batch = _trainer_on_one_batch(name, precision, False, overrides)
    features, targets = batch
    model = trainer.model
    backbone = model.backbone
    backbone_ids = {id(v) for v in backbone.trainable_variables}
    memory_variables = [v for v in model.trainable_variables if id(v) not in backbone_ids]
    templates, searches = model.encode_clips(features, training=True)
    rng = np.random.default_rng(0)
    template_cotangent = tf.constant(rng.normal(size=templates.shape), templates.dtype)
    search_cotangent = tf.constant(rng.normal(size=searches.shape), searches.dtype)
    batch_maps = tf.cast(tf.reduce_prod(tf.shape(targets["label"])[:2]), tf.float32)

    # Inputs of the BatchNorms' shapes in the step: conv1-4 outputs of both backbone batches.
    norm_inputs = []
    for images in (features["exemplar"], features["search"]):
        x = backbone.features_after(tf.reshape(images, [-1, *images.shape[2:]]), 0)
        for i in range(4):
            shape = convolve(backbone.convs[i], x).shape
            norm_inputs.append(tf.constant(rng.normal(size=shape), backbone.compute_dtype))
            x = backbone.continue_from(x, i, training=True, last=i + 1)
    norm_variables = [v for n in backbone.norms for v in n.trainable_variables]

    cached = iter(tf.data.Dataset.from_tensors(batch).repeat())

    def step():  # trainer.train_step is a tf.function already
        return trainer.train_step(cached)

    @tf.function
    def backbone_forward():
        return model.encode_clips(features, training=True)

    @tf.function
    def backbone_forward_backward():
        with tf.GradientTape() as tape:
            z, x = model.encode_clips(features, training=True)
            loss = (tf.reduce_sum(tf.cast(z, tf.float32) * template_cotangent)
                    + tf.reduce_sum(tf.cast(x, tf.float32) * search_cotangent))
        return tape.gradient(loss, backbone.trainable_variables)

    @tf.function
    def batchnorm_forward_backward():
        with tf.GradientTape() as tape:
            tape.watch(norm_inputs)
            total = 0.0
            for index, x in enumerate(norm_inputs):
                y = backbone.norms[index % 4](x, training=True)
                total += tf.reduce_sum(tf.cast(y, tf.float32))
        return tape.gradient(total, norm_variables + norm_inputs)

    @tf.function
    def memory_forward_backward():
        with tf.GradientTape() as tape:
            tape.watch([templates, searches])
            outputs = model.unroll(templates, searches, training=True)
            loss = losses.balanced_logistic_loss(outputs["response"], targets["label"],
                                                 targets["weight"], num_maps=batch_maps)
        return tape.gradient(loss, memory_variables + [templates, searches])

    @tf.function
    def xcorr_and_head_forward_backward():
        with tf.GradientTape() as tape:
            tape.watch([templates, searches])
            raw = xcorr(_merge_batch_time(searches), _merge_batch_time(templates))
            response = model.response_head(raw, training=True)
            loss = tf.reduce_sum(response)
        return tape.gradient(loss, model.response_head.trainable_variables
                             + [templates, searches])

    tiny_gradients = [tf.fill(tf.shape(v), tf.constant(1e-9, v.dtype))
                      for v in model.trainable_variables]

    @tf.function
    def optimiser_update():
        for optimizer, indices in trainer.variable_groups:
            optimizer.apply_gradients([(tiny_gradients[i], model.trainable_variables[i])
                                       for i in indices])
        return tf.constant(0.0)

    functions = dict(zip(PROFILE_PARTS, (step, backbone_forward, backbone_forward_backward,
                                         batchnorm_forward_backward, memory_forward_backward,
                                         xcorr_and_head_forward_backward, optimiser_update)))

    def run(function):
        tic = time.perf_counter()
        result = function()
        for value in tf.nest.flatten(result):  # wait for the values, not just the dispatch
            if value is not None:
                np.asarray(value)
        return time.perf_counter() - tic

    for function in functions.values():  # trace and warm up
        run(function)
    seconds = {part: [] for part in PROFILE_PARTS}
    for _ in range(rounds):
        for part, function in functions.items():  # interleaved
            seconds[part].append(run(function))
    return {"seconds": seconds, "config": name, "precision": trainer.train_cfg.precision,
            "clip": f"{trainer.data_cfg.batch_size}x{trainer.data_cfg.time_steps}"}


def conv_flops(batch, size, kernel, stride, c_in, c_out, groups=1):
    """(multiply-add x 2) FLOPs of a valid convolution and its output side."""
    out = (size - kernel) // stride + 1
    return 2 * batch * out * out * kernel * kernel * c_in // groups * c_out, out


def train_step_flops(model_cfg, batch: int, time_steps: int) -> dict:
    """FLOPs of one training step by part, from the layer shapes (forward + backward).

    Backward of a convolution or matmul is 2x its forward (gradients of inputs and of weights;
    conv1's input gradient is not needed: 1x). Elementwise work (BN, ReLU, pooling, the optimiser)
    is counted too, at a few FLOPs per element, so the fraction of peak is not flattered.
    """
    from memnet_tf.models.backbone import _CONV_GEOMETRY

    channels = (3, *model_cfg.channels)
    groups = (1, 1, 1, 1, 1) if model_cfg.backbone == "memtrack_alexnet" else (1, 2, 1, 2, 2)
    parts = {"backbone convs": 0, "backbone elementwise": 0}
    n = batch * time_steps
    for size in (model_cfg.exemplar_size, model_cfg.search_size):
        side = size
        for i, (kernel, stride) in enumerate(_CONV_GEOMETRY):
            fwd, side = conv_flops(n, side, kernel, stride, channels[i], channels[i + 1],
                                   groups[i])
            parts["backbone convs"] += fwd * (2 if i == 0 else 3)
            elements = n * side * side * channels[i + 1]
            if i < 4:  # BN (two passes + normalise) and ReLU, forward and backward
                parts["backbone elementwise"] += 20 * elements
            if i < 2:
                side = (side - 3) // 2 + 1
                parts["backbone elementwise"] += 2 * 9 * n * side * side * channels[i + 1]
    c, h = model_cfg.feature_channels, model_cfg.hidden_size
    t, search_side = model_cfg.template_size, (model_cfg.search_size - 87) // 8 + 1
    r = model_cfg.response_size
    parts["xcorr"] = 3 * 2 * n * r * r * t * t * c
    cells = search_side - t + 1  # attention over the L x L pooled positions
    per_step = (2 * (c + h) * 4 * h  # LSTM gates
                + 2 * h * (c * 2 + model_cfg.memory_size + 8)  # memory heads (approx.)
                + 2 * cells * cells * (t * t * c + c * c)  # attention pooling + projection
                + 6 * model_cfg.memory_size * t * t * c)  # read, write, cosine similarity
    parts["memory cell"] = 3 * n * per_step
    parts["optimiser"] = 12 * model_cfg_parameters(model_cfg)
    parts["total"] = sum(parts.values())
    return parts


def model_cfg_parameters(model_cfg) -> int:
    from memnet_tf.models.memtrack import build_model

    return int(sum(v.shape.num_elements() for v in build_model(model_cfg).trainable_variables))


def matmul_ceiling(size: int = 2048, repeats: int = 10) -> float:
    """Best float32 GFLOP/s of a size^3 tf.matmul on this machine (all cores)."""
    import tensorflow as tf

    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    tf.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        tf.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - tic)
    return 2 * size ** 3 / best / 1e9


def _run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], cwd=REPO, capture_output=True,
                         text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        sys.exit(f"{args} failed:\n{out.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} (1/5 min) on {os.cpu_count()} cores"


VARIANTS = (("float32", False), ("mixed_bfloat16", False), ("float32", True))


def compare(names: list[str], steps: int, rounds: int) -> None:
    import statistics

    print(f"train_throughput --compare  {datetime.datetime.now():%Y-%m-%d %H:%M}  "
          f"nproc={os.cpu_count()}  cpu={cpu_model()}  {_load()}")
    header = (f"{'config':<11}{'variant':<17}{'steps/s min':>12}{'median':>9}{'max':>9}"
              f"{'peak RSS GiB':>14}{'loss':>9}")
    print(header)
    print("-" * len(header))
    baseline = {}
    for name in names:
        results = {v: [] for v in VARIANTS}
        for _ in range(rounds):
            for precision, xla in VARIANTS:  # interleaved
                print(f"measuring {name} {precision} xla={xla} ...", file=sys.stderr, flush=True)
                results[(precision, xla)].append(_run_child(
                    [f"--child={name}", f"--steps={steps}", f"--precision={precision}",
                     f"--jit_compile={xla}"]))
        for (precision, xla), runs in results.items():
            rates = [r["steps_per_s"] for r in runs]
            label = precision + (" + XLA" if xla else "")
            print(f"{name:<11}{label:<17}{min(rates):>12.3f}{statistics.median(rates):>9.3f}"
                  f"{max(rates):>9.3f}{max(r['peak_rss_gib'] for r in runs):>14.2f}"
                  f"{runs[-1]['loss']:>9.4f}")
            baseline.setdefault(name, {})[label] = statistics.median(rates)
    print(f"machine after the runs: {_load()}")
    line = ", ".join(f"{name}: bfloat16 {v['mixed_bfloat16'] / v['float32']:.2f}x, "
                     f"XLA {v['float32 + XLA'] / v['float32']:.2f}x" for name, v in
                     baseline.items())
    print(f"median steps/s relative to float32: {line}")


def efficiency(names: list[str], steps: int, overrides: list[str]) -> None:
    print(f"train_throughput --efficiency  {datetime.datetime.now():%Y-%m-%d %H:%M}  "
          f"nproc={os.cpu_count()}  cpu={cpu_model()}  {_load()}")
    ceiling = _run_child(["--child=matmul"])["gflops"]
    print(f"float32 matmul ceiling (2048^3 tf.matmul, best of 10): {ceiling:.1f} GFLOP/s")
    for name in names:
        r = _run_child([f"--child={name}", f"--steps={steps}",
                        *[f"--override={o}" for o in overrides]])
        print(f"\n{name} ({r['clip']}, width {r['width']}), {' '.join(overrides)}: "
              f"{r['step_s']:.2f} s/step")
        print(f"{'part':<24}{'GFLOP/step':>12}{'share':>8}")
        for part, value in r["flops"].items():
            if part != "total":
                print(f"{part:<24}{value / 1e9:>12.1f}{value / r['flops']['total']:>8.1%}")
        achieved = r["flops"]["total"] / r["step_s"] / 1e9
        print(f"{'total':<24}{r['flops']['total'] / 1e9:>12.1f}  -> {achieved:.1f} GFLOP/s")
    print(f"machine after the runs: {_load()}")
    print(f"{names[-1]} train step: {achieved:.1f} GFLOP/s = {achieved / ceiling:.0%} of the "
          f"measured float32 matmul ceiling ({ceiling:.0f} GFLOP/s)")


def profile(names: list[str], rounds: int, overrides: list[str]) -> None:
    import statistics

    print(f"train_throughput --profile  {datetime.datetime.now():%Y-%m-%d %H:%M}  "
          f"nproc={os.cpu_count()}  cpu={cpu_model()}  {_load()}")
    for name in names:
        r = _run_child([f"--child=profile:{name}", f"--rounds={rounds}",
                        *[f"--override={o}" for o in overrides]])
        seconds = r["seconds"]
        step = statistics.median(seconds[PROFILE_PARTS[0]])
        print(f"\n{name} ({r['clip']}), {r['precision']} {' '.join(overrides)}: {rounds} "
              "interleaved rounds, each part its own tf.function")
        header = f"{'part':<34}{'s min':>9}{'median':>9}{'of step':>9}"
        print(header)
        print("-" * len(header))
        for part in PROFILE_PARTS:
            values = seconds[part]
            print(f"{part:<34}{min(values):>9.3f}{statistics.median(values):>9.3f}"
                  f"{statistics.median(values) / step:>9.1%}")
        named = (statistics.median(seconds["backbone forward+backward"])
                 + statistics.median(seconds["memory cell + xcorr + head f+b"])
                 + statistics.median(seconds["optimiser update"]))
        print(f"{'rest (loss, decay, clipping, ...)':<34}{'':>9}{step - named:>9.3f}"
              f"{(step - named) / step:>9.1%}")
    print(f"machine after the runs: {_load()}")
    backbone = statistics.median(seconds["backbone forward+backward"])
    print(f"{names[-1]} train step {step:.2f} s (median): backbone forward+backward "
          f"{backbone / step:.0%} (BatchNorm "
          f"{statistics.median(seconds['  of which BatchNorm f+b']) / step:.0%}), memory cell + "
          f"xcorr + head "
          f"{statistics.median(seconds['memory cell + xcorr + head f+b']) / step:.0%}, "
          f"optimiser {statistics.median(seconds['optimiser update']) / step:.0%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="tiny,quickstart,paper")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per config")
    parser.add_argument("--compare", action="store_true",
                        help="float32 vs mixed_bfloat16 vs XLA, interleaved (default: quickstart)")
    parser.add_argument("--rounds", type=int, default=3, help="--compare rounds")
    parser.add_argument("--efficiency", action="store_true",
                        help="FLOP/s of the train step vs the matmul ceiling (default: paper)")
    parser.add_argument("--profile", action="store_true",
                        help="seconds of each part of the train step, timed on its own "
                             "(default: paper)")
    parser.add_argument("--override", action="append", default=[],
                        help="extra train flag for --efficiency and --profile, e.g. "
                             "--override=--batch_size=2")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--jit_compile", default="False", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "matmul":
        print("RESULT " + json.dumps({"gflops": matmul_ceiling()}), flush=True)
        return
    if args.child.startswith("profile:"):
        print("RESULT " + json.dumps(profile_parts(args.child.split(":", 1)[1], args.rounds,
                                                   overrides=tuple(args.override))), flush=True)
        return
    if args.child:
        print("RESULT " + json.dumps(measure(args.child, args.steps, args.precision,
                                             args.jit_compile == "True",
                                             tuple(args.override))), flush=True)
        return
    names = args.configs.split(",")
    for name in names:
        if name not in CONFIGS:
            sys.exit(f"unknown config {name!r}; known: {sorted(CONFIGS)}")
    if args.compare:
        compare(names if args.configs != parser.get_default("configs") else ["quickstart"],
                args.steps, args.rounds)
        return
    if args.profile:
        profile(names if args.configs != parser.get_default("configs") else ["paper"],
                args.rounds, args.override)
        return
    if args.efficiency:
        efficiency(names if args.configs != parser.get_default("configs") else ["paper"],
                   args.steps, args.override)
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
