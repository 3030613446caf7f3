"""Trains MemTrack: `python -m memnet_tf.train --flagfile=experiments/quickstart.flags`.

flags -> configs -> datasets -> Trainer.run(); the resolved flags go to `<model_dir>/flags.txt`
(a valid --flagfile) and the configs to `<model_dir>/config.json`. A restarted run resumes from the
latest checkpoint of its model_dir.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from absl import flags

from memnet_tf import cli
from memnet_tf import config as config_lib
from memnet_tf import flags as memnet_flags

FLAGS = flags.FLAGS


def _fail(message: str, status: int = cli.EXIT_USAGE) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


def build_configs(flag_values):
    """The four configs from flags; invalid values become one clear line."""
    try:
        return (config_lib.model_config_from_flags(flag_values),
                config_lib.data_config_from_flags(flag_values),
                config_lib.train_config_from_flags(flag_values),
                config_lib.track_config_from_flags(flag_values))
    except ValueError as e:
        _fail(str(e))


def resume_conflict(model_dir: str, model_cfg: config_lib.ModelConfig) -> str | None:
    """Why `model_cfg` cannot resume the run in `model_dir`, or None when it can.

    Checked before anything is written: a restart with other architecture flags would otherwise
    overwrite the run's flags.txt and config.json, then fail to restore, and leave a run
    folder whose checkpoints no longer match its own flags.
    """
    config_path = os.path.join(model_dir, "config.json")
    if not (os.path.isfile(os.path.join(model_dir, "checkpoint"))
            and os.path.isfile(config_path)):
        return None
    with open(config_path, encoding="utf-8") as f:
        stored = json.load(f).get("model", {})
    given = dataclasses.asdict(model_cfg)
    differences = [f"{name}: {stored[name]!r} in the run, {given[name]!r} now"
                   for name in given if name in stored and stored[name] != given[name]]
    if not differences:
        return None
    return (f"{model_dir} holds checkpoints of another model ({'; '.join(differences)}); resume "
            f"it with --flagfile={os.path.join(model_dir, 'flags.txt')} or choose a new "
            "--model_dir")


def cached_datasets(model_cfg, data_cfg, train_cfg):
    """(train_dataset_fn, val_dataset_fn) over the frozen backbone's cached features.

    The cache (data/feature_cache.py) is built on first use in `data_cfg.feature_cache` from the
    shards of `data_dir`, with the backbone of `init_backbone`, and reused by later runs with the
    same backbone, data and augmentation settings (other settings are refused). It holds the
    features of the last frozen layer (`frozen_layers`): the backbone's output when it is all
    frozen, e.g. conv4's when conv5 trains.
    """
    layer = train_cfg.frozen_layers
    if not (layer and train_cfg.init_backbone):
        raise ValueError("--feature_cache needs --freeze_backbone (or --frozen_backbone_layers) "
                         "and --init_backbone: cached features are only valid for fixed, "
                         "pretrained layers")
    from memnet_tf.data import feature_cache, pipeline
    from memnet_tf.data.patches import PatchGeometry
    from memnet_tf.models.loading import restore_backbone
    from memnet_tf.models.memtrack import build_model

    for split in ("train", "val"):
        pipeline.check_tfrecord_dir(data_cfg.data_dir, split,
                                    PatchGeometry.from_configs(data_cfg, model_cfg),
                                    data_cfg.time_steps)
    encoder = build_model(model_cfg)
    restore_backbone(encoder, train_cfg.init_backbone)
    caches = {split: feature_cache.ensure_cache(
        encoder, model_cfg, data_cfg, data_cfg.feature_cache, split,
        data_cfg.feature_cache_augmentations, feature_cache.AUGMENTATION_SEED,
        progress=lambda line: print(line, flush=True), layer=layer)
        for split in ("train", "val")}
    del encoder
    need = data_cfg.time_steps + 2
    for split, cache in caches.items():
        short = [cache.track_names[i] for i in range(cache.num_tracks)
                 if cache.track_length(i) < need]
        print(f"feature cache (conv{layer}, {split}): {cache.num_tracks} tracks, "
              f"{cache.search.shape[0]} frames x {cache.augmentations} augmentations in {data_cfg.feature_cache}"
              + (f"; {len(short)} track(s) shorter than {need} frames are never sampled: "
                 f"{', '.join(short[:5])}" if short else ""), flush=True)

    def train_dataset(start_step):
        return feature_cache.make_dataset(caches["train"], data_cfg.time_steps, "train",
                                          train_cfg.seed + start_step, data_cfg.batch_size,
                                          max_frame_gap=data_cfg.max_frame_gap,
                                          corrupt_write_prob=data_cfg.corrupt_write_prob,
                                          shifted_write_prob=data_cfg.shifted_write_prob,
                                          exemplar_pixels=model_cfg.exemplar_size,
                                          shifted_write_burst=data_cfg.shifted_write_burst)

    def val_dataset():
        return feature_cache.make_dataset(
            caches["val"], data_cfg.time_steps, "val", train_cfg.seed, data_cfg.batch_size,
            num_val_clips=train_cfg.validation_steps * data_cfg.batch_size,
            max_frame_gap=data_cfg.max_frame_gap)

    return train_dataset, val_dataset


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]} (flags take the form --name=value)")
    if not FLAGS.model_dir:
        _fail("--model_dir is required (where checkpoints, logs and flags.txt go)")
    model_cfg, data_cfg, train_cfg, track_cfg = build_configs(FLAGS)
    conflict = resume_conflict(train_cfg.model_dir, model_cfg)
    if conflict:
        _fail(conflict)

    cli.import_tensorflow_quietly()
    import tensorflow as tf  # after flag parsing: `--help` stays fast

    import keras

    from memnet_tf.data import pipeline
    from memnet_tf.training.trainer import (NonFiniteLossError, Trainer, is_chief,
                                            make_strategy)

    try:
        # First: a multi-worker strategy must exist before any other TF op runs.
        strategy = make_strategy(train_cfg.strategy)
    except (ValueError, tf.errors.OpError) as e:
        _fail(str(e))
    chief = is_chief(strategy)
    if chief:  # other workers share the chief's model_dir and write nothing there
        os.makedirs(train_cfg.model_dir, exist_ok=True)
        memnet_flags.write_flagfile(os.path.join(train_cfg.model_dir, "flags.txt"))
        config_lib.write_atomically(
            os.path.join(train_cfg.model_dir, "config.json"),
            config_lib.to_json({"model": model_cfg, "data": data_cfg, "train": train_cfg,
                                "track": track_cfg}))
    keras.utils.set_random_seed(train_cfg.seed)
    try:
        if data_cfg.feature_cache:
            if train_cfg.strategy == "multi_worker":
                raise ValueError("--feature_cache cannot be sharded over workers yet; train "
                                 "on cached features with --strategy=default or mirrored")
            train_dataset, val_dataset = cached_datasets(model_cfg, data_cfg, train_cfg)
        else:
            def train_dataset(start_step, shard=None):
                # Each worker reads its own shard, batch_size / workers clips per batch.
                workers = shard[1] if shard else 1
                return pipeline.make_dataset(data_cfg, model_cfg, "train",
                                             seed=train_cfg.seed + start_step,
                                             batch_size=data_cfg.batch_size // workers,
                                             shard=shard)

            def val_dataset():
                return pipeline.make_dataset(data_cfg, model_cfg, "val", seed=train_cfg.seed)

            # Fail early, with the data's own message, before building the model (training
            # validates from its first step on, so the val split must exist too).
            pipeline.make_dataset(data_cfg, model_cfg, "train", seed=train_cfg.seed)
            val_dataset()
        print(f"training {model_cfg.backbone} x{model_cfg.width_multiplier} "
              f"(memory {model_cfg.memory_size if model_cfg.use_memory else 'off'}) on "
              f"{data_cfg.dataset} clips: batch {data_cfg.batch_size} x {data_cfg.time_steps} "
              f"steps, {strategy.num_replicas_in_sync} replica(s), model_dir "
              f"{train_cfg.model_dir}", flush=True)
        trainer = Trainer(model_cfg, data_cfg, train_cfg, train_dataset, val_dataset, strategy)
        trainer.run(progress=lambda line: print(line, flush=True))
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    except NonFiniteLossError as e:  # the run failed; the command line was fine
        _fail(str(e), cli.EXIT_FAILURE)
    except tf.errors.OpError as e:
        _fail(f"{type(e).__name__}: {e.message.splitlines()[0] if e.message else e}",
              cli.EXIT_FAILURE)

    if FLAGS.final_eval_sequences > 0 and chief:
        from memnet_tf.eval import synthetic_benchmark

        synthetic_benchmark.evaluate_after_training(
            trainer.model, model_cfg, data_cfg, track_cfg, train_cfg.model_dir,
            FLAGS.final_eval_sequences)


if __name__ == "__main__":
    cli.run(main, "train")
