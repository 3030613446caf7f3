"""The training loop: a distributed `train_step` returning a logs dict, and a plain Python loop
that owns cadence (console progress, TensorBoard, checkpoints, validation).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time

import tensorflow as tf
import keras

from memnet_tf import config as config_lib
from memnet_tf.layers import batch_norm
from memnet_tf.models.loading import restore_backbone
from memnet_tf.models.memtrack import MemTrack, build_model
from memnet_tf.training import losses
from memnet_tf.training import summaries


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy named by `--strategy`."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                             "describing the cluster and this worker's task")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"--strategy={name!r}: expected one of {config_lib.STRATEGIES}")


def make_optimizer(cfg: config_lib.TrainConfig,
                   learning_rate_scale: float = 1.0) -> keras.optimizers.Optimizer:
    """Adam with the official staircase decay and TF1's epsilon. Clipping is done in train_step."""
    schedule = keras.optimizers.schedules.ExponentialDecay(
        cfg.learning_rate * learning_rate_scale, cfg.lr_decay_steps, cfg.lr_decay_rate,
        staircase=True)
    return keras.optimizers.Adam(learning_rate=schedule, epsilon=cfg.adam_epsilon)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (always, except on non-chief workers)."""
    return bool(strategy.extended.should_checkpoint)


def worker_index(strategy: tf.distribute.Strategy) -> int:
    """This process's task index in a multi-worker cluster (0 on one machine)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(resolver.task_id or 0) if resolver is not None else 0


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or Inf; the run stops without saving."""


class Trainer:
    """Trains a MemTrack model.

    Args:
      model_cfg, data_cfg, train_cfg: configuration.
      train_dataset_fn: `start_step -> tf.data.Dataset` of global batches `(features, targets)`,
        repeating. Resumed runs get a stream seeded by their start step: reproducible, and not a
        replay of the batches already trained on (iterators over generated data cannot be saved).
        With several workers it is called as `train_dataset_fn(start_step, (index, count))` and
        returns worker `index`'s part of the data in batches of batch_size / count clips.
      val_dataset_fn: optional callable returning a finite validation dataset (same structure).
      strategy: a tf.distribute strategy (default: the current one).
    """

    def __init__(self, model_cfg: config_lib.ModelConfig, data_cfg: config_lib.DataConfig,
                 train_cfg: config_lib.TrainConfig, train_dataset_fn,
                 val_dataset_fn=None, strategy: tf.distribute.Strategy | None = None):
        self.model_cfg, self.data_cfg, self.train_cfg = model_cfg, data_cfg, train_cfg
        self.strategy = strategy or tf.distribute.get_strategy()
        replicas = self.strategy.num_replicas_in_sync
        if data_cfg.batch_size % replicas:
            raise ValueError(f"batch_size={data_cfg.batch_size} is the global batch and must be "
                             f"a multiple of the {replicas} replicas")
        # Non-chief workers take part in every save (TF requires it) but into a temporary
        # folder that is deleted at once; they read checkpoints from the chief's model_dir.
        self.is_chief = is_chief(self.strategy)
        self.val_dataset_fn = val_dataset_fn
        backbone_dtype = None if train_cfg.precision == "float32" else train_cfg.precision
        with self.strategy.scope():
            self.model: MemTrack = build_model(model_cfg, seed=train_cfg.seed,
                                               backbone_dtype=backbone_dtype)
            adam = make_optimizer(train_cfg)
            # float16 gradients underflow without loss scaling; bfloat16 has float32's range.
            self.optimizer = (keras.optimizers.LossScaleOptimizer(adam)
                              if train_cfg.precision == "mixed_float16" else adam)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        # Frozen means fixed weights *and* fixed BatchNorm statistics.
        if train_cfg.frozen_layers:  # all five (--freeze_backbone) or the first K
            self.model.backbone.freeze_layers(train_cfg.frozen_layers)
        # (optimizer, indices into model.trainable_variables) pairs: one Adam for everything,
        # or a second one at a scaled learning rate for the trainable backbone layers.
        variables = self.model.trainable_variables
        backbone_paths = {v.path for v in self.model.backbone.trainable_variables}
        in_backbone = [v.path in backbone_paths for v in variables]
        optimizers = {"optimizer": adam}
        self.variable_groups = [(self.optimizer, list(range(len(variables))))]
        if train_cfg.backbone_learning_rate_scale != 1.0 and any(in_backbone):
            with self.strategy.scope():
                backbone_adam = make_optimizer(train_cfg, train_cfg.backbone_learning_rate_scale)
            optimizers["backbone_optimizer"] = backbone_adam
            self.variable_groups = [
                (self.optimizer, [i for i, b in enumerate(in_backbone) if not b]),
                (backbone_adam, [i for i, b in enumerate(in_backbone) if b])]
        with self.strategy.scope():
            # Adam's slots are created here, not lazily inside the distributed tf.function.
            for optimizer, indices in self.variable_groups:
                optimizer.build([variables[i] for i in indices])
        # Adam itself, not the loss-scale wrapper: checkpoints are the same in every precision
        # (a resumed float16 run starts its loss scale afresh; it adapts in a few steps).
        self.checkpoint = tf.train.Checkpoint(model=self.model, step=self.step, **optimizers)
        self.manager = None
        if train_cfg.model_dir:
            self.manager = tf.train.CheckpointManager(
                self.checkpoint, train_cfg.model_dir, max_to_keep=train_cfg.keep_checkpoints)
        self.train_dataset_fn = train_dataset_fn
        self._train_step_fn = None
        self.warm_started_from = None
        self._eval_step_fn = None

    # ------------------------------------------------------------------ set-up

    def restore_or_initialize(self) -> str | None:
        """Resumes from the latest checkpoint of model_dir, else warm-starts the backbone.

        Returns:
          the checkpoint resumed from, or None for a fresh run.
        """
        if self.manager is not None and self.manager.latest_checkpoint:
            path = self.manager.latest_checkpoint
            self.checkpoint.restore(path).assert_existing_objects_matched()
            return path
        if self.train_cfg.init_backbone:
            self.warm_started_from = restore_backbone(self.model, self.train_cfg.init_backbone)
        return None

    # ------------------------------------------------------------------ steps

    def _losses(self, outputs, targets, num_maps):
        logistic = losses.balanced_logistic_loss(outputs["response"], targets["label"],
                                                 targets["weight"], num_maps=num_maps)
        return logistic

    def compute_gradients(self, features, targets):
        """Globally summed and clipped gradients of this replica's batch, with the step's logs.

        Returns:
          grads: one per trainable variable, equal on every replica.
          logs: scalar logs of this replica (sum over replicas for the global values).
        """
        replicas = self.strategy.num_replicas_in_sync
        global_maps = tf.cast(tf.shape(targets["label"])[0] * replicas
                              * tf.shape(targets["label"])[1], tf.float32)
        variables = self.model.trainable_variables
        scaled = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
        with tf.GradientTape() as tape:
            outputs = self.model(features, training=True)
            logistic = self._losses(outputs, targets, global_maps)
            # Each replica adds its share, so the all-reduced gradient has the decay once.
            regularization = losses.weight_decay_loss(
                variables, self.train_cfg.weight_decay) / replicas
            loss = logistic + regularization
            objective = self.optimizer.scale_loss(loss) if scaled else loss
        grads = tape.gradient(objective, variables)
        grads = [tf.zeros_like(v) if g is None else tf.cast(g, v.dtype)
                 for g, v in zip(grads, variables)]
        # Keras clips per replica before summing; clipping must see the global gradient, so sum
        # here and clip (the caller hands the optimiser 1/replicas of it for its own sum).
        grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
        # With loss scaling the gradients are x scale until the optimiser divides them: clip at
        # clip_norm x scale, which is clipping the true gradient at clip_norm. Non-finite
        # gradients (scale too large) make the optimiser skip the step and halve the scale.
        scale = self.optimizer.dynamic_scale if scaled else 1.0
        grads, grad_norm = tf.clip_by_global_norm(grads, self.train_cfg.clip_norm * scale)
        grad_norm = grad_norm / scale
        logs = {
            "loss/total": loss,
            "loss/logistic": logistic,
            "loss/regularization": regularization,
            "gradient_norm": grad_norm / replicas,
            "metrics/center_dist_error": losses.center_distance_error(outputs["response"])
            / replicas,
        }
        if "control_gates" in outputs:
            # Logged on the scalar schedule (summaries.py): mean gates of this replica's clips,
            # / replicas so the replica sum is the global mean.
            gates = tf.reduce_mean(tf.reshape(outputs["control_gates"], [-1, 3]), axis=0)
            for index, gate in enumerate(summaries.GATE_NAMES):
                logs[f"gates/mean_{gate}"] = gates[index] / replicas
        return grads, logs

    def _replica_train_step(self, features, targets):
        replicas = self.strategy.num_replicas_in_sync
        grads, logs = self.compute_gradients(features, targets)
        variables = self.model.trainable_variables
        for optimizer, indices in self.variable_groups:
            optimizer.apply_gradients([(grads[i] / replicas, variables[i]) for i in indices])
        return logs

    def train_step(self, iterator) -> dict:
        """One optimiser step on the next global batch; returns scalar logs."""
        if self._train_step_fn is None:
            replica_step = self._replica_train_step
            if self.train_cfg.jit_compile:
                # XLA compiles the replica's forward, backward and update; reading the input
                # (iterator, tf.data) stays outside. The data pipeline's crop_and_resize never
                # enters the step (crops arrive made). XLA's fused BatchNorm has a one-pass
                # variance: the compiled step normalises with the composed two-pass ops.
                batch_norm.compose_batch_norms(self.model)
                replica_step = tf.function(replica_step, jit_compile=True)

            @tf.function
            def step_fn(iterator):
                features, targets = next(iterator)
                per_replica = self.strategy.run(replica_step, args=(features, targets))
                return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                        for k, v in per_replica.items()}
            self._train_step_fn = step_fn
        return self._train_step_fn(iterator)

    def eval_step(self, features, targets) -> dict:
        """Validation logs of one batch (inference mode)."""
        if self._eval_step_fn is None:
            @tf.function
            def eval_fn(features, targets):
                outputs = self.model(features, training=False)
                return {
                    "loss/logistic": self._losses(outputs, targets, None),
                    "metrics/center_dist_error": losses.center_distance_error(
                        outputs["response"]),
                }
            self._eval_step_fn = eval_fn
        return self._eval_step_fn(features, targets)

    def predict_diagnostics(self, features) -> dict:
        """Outputs and diagnostics on a batch (images or cached features), for summaries."""
        return self.model(features, training=False)

    # ------------------------------------------------------------------ loop

    def validate(self) -> dict:
        """Mean validation logs over `validation_steps` batches."""
        totals, count = {}, 0
        for features, targets in self.val_dataset_fn().take(self.train_cfg.validation_steps):
            for k, v in self.eval_step(features, targets).items():
                totals[k] = totals.get(k, 0.0) + float(v)
            count += 1
        return {k: v / max(count, 1) for k, v in totals.items()}

    def save(self) -> str | None:
        """Saves a checkpoint; returns its path (None on non-chief workers and without model_dir)."""
        if self.manager is None:
            return None
        if self.is_chief:
            return self.manager.save(checkpoint_number=int(self.step.numpy()))
        scratch = tempfile.mkdtemp(prefix=f"memnet_tf_worker{worker_index(self.strategy)}_")
        try:
            self.checkpoint.write(os.path.join(scratch, "ckpt"))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return None

    def _train_iterator(self, start: int):
        """The distributed iterator over training batches, from step `start` on."""
        global_batch = self.data_cfg.batch_size

        def worker_dataset(context: tf.distribute.InputContext):
            shard = (context.input_pipeline_id, context.num_input_pipelines)
            per_replica = context.get_per_replica_batch_size(global_batch)
            # One element per local replica: rebatch splits the worker's batch in order.
            return self.train_dataset_fn(start, shard).rebatch(per_replica)

        if isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return iter(self.strategy.distribute_datasets_from_function(worker_dataset))
        return iter(self.strategy.experimental_distribute_dataset(self.train_dataset_fn(start)))

    def run(self, progress=print) -> dict:
        """Trains to `train_steps`, resuming if possible. Returns the last logs."""
        cfg = self.train_cfg
        resumed = self.restore_or_initialize()
        start = int(self.step.numpy())
        if resumed:
            progress(f"resumed from {resumed} at step {start}")
        elif self.warm_started_from:
            frozen = {0: "", 5: " (frozen)"}.get(
                self.train_cfg.frozen_layers,
                f" (conv1-{self.train_cfg.frozen_layers} frozen)")
            progress(f"backbone warm-started from {self.warm_started_from}{frozen}")
        if start >= cfg.train_steps:
            progress(f"already at step {start} >= train_steps={cfg.train_steps}")
            return {}
        writers = summaries.Writers(cfg.model_dir) if cfg.model_dir and self.is_chief else None
        image_batch = None  # images and memory panels (cached features: the panels alone)
        if writers is not None and self.val_dataset_fn is not None:
            image_batch = next(iter(self.val_dataset_fn().take(1)))
        iterator = self._train_iterator(start)
        global_batch = self.data_cfg.batch_size
        logs, tic, last_step, run_start = {}, time.time(), start, time.time()
        for step in range(start + 1, cfg.train_steps + 1):
            logs = {k: float(v) for k, v in self.train_step(iterator).items()}
            self.step.assign(step)
            if not math.isfinite(logs["loss/total"]):
                raise NonFiniteLossError(
                    f"step {step}: loss is {logs['loss/total']} (logistic "
                    f"{logs['loss/logistic']}, regularisation {logs['loss/regularization']}); "
                    f"stopping without saving. Last good checkpoint: "
                    f"{self.manager.latest_checkpoint if self.manager else None}")
            if step % cfg.log_every == 0 or step == cfg.train_steps:
                now = time.time()
                rate = (step - last_step) / max(now - tic, 1e-9)
                eta = (cfg.train_steps - step) / max(rate, 1e-9)
                progress(f"step {step}/{cfg.train_steps}  loss {logs['loss/total']:.4f}  "
                         f"logistic {logs['loss/logistic']:.4f}  "
                         f"centre err {logs['metrics/center_dist_error']:.1f}px  "
                         f"{rate:.2f} steps/s  ETA {_duration(eta)}")
                logs["perf/steps_per_sec"] = rate
                logs["perf/examples_per_sec"] = rate * global_batch
                tic, last_step = now, step
            if writers is not None:
                if step % cfg.summary_every == 0 or step == cfg.train_steps:
                    lr = float(self.optimizer.learning_rate)
                    writers.scalars("train", {**logs, "learning_rate": lr}, step)
                if image_batch is not None and (step % cfg.image_summary_every == 0
                                                or step == cfg.train_steps):
                    outputs = self.predict_diagnostics(image_batch[0])
                    writers.images(image_batch, outputs, step)
            if self.val_dataset_fn is not None and self.is_chief and (
                    step % cfg.validate_every == 0 or step == cfg.train_steps):
                val_logs = self.validate()
                progress(f"validation at step {step}: " + "  ".join(
                    f"{k} {v:.4f}" for k, v in val_logs.items()))
                if writers is not None:
                    writers.scalars("validation", val_logs, step)
            if step % cfg.checkpoint_every == 0 or step == cfg.train_steps:
                path = self.save()
                if path:
                    progress(f"saved {path}")
        if writers is not None:
            writers.flush()
        progress(f"trained {cfg.train_steps - start} steps in {_duration(time.time() - run_start)}")
        return logs


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"
