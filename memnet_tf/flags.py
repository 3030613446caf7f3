"""Every absl flag of memnet_tf, defined in one place (Model Garden style).

Nothing is defined at import time: entry points call `define_flags()` once. Defaults are the
official MemTrack numbers (`memtrack_spec.md`); experiments override them in `experiments/*.flags`.
Library code never reads `FLAGS`: `memnet_tf.config` turns flag values into frozen dataclasses.
"""

from __future__ import annotations

import os

from absl import flags

from memnet_tf import config as config_lib

_MODULE = __name__


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines all memnet_tf flags on `flag_values` (idempotent)."""
    if "memory_size" in flag_values:
        return
    fv = dict(flag_values=flag_values, module_name=_MODULE)
    m, d, tr, tk = (config_lib.ModelConfig(), config_lib.DataConfig(), config_lib.TrainConfig(),
                    config_lib.TrackConfig())

    # Model
    flags.DEFINE_enum("backbone", m.backbone, config_lib.BACKBONES,
                      "Feature network: the official MemTrack AlexNet (no groups, inputs in "
                      "[0,1]) or the SiamFC AlexNet (groups 2 on conv2/4/5, inputs 0-255).", **fv)
    flags.DEFINE_float("width_multiplier", m.width_multiplier,
                       "Multiplier of the AlexNet widths 96/256/384/384/256 (SiamFC rounding).",
                       **fv)
    flags.DEFINE_float("bn_epsilon", m.bn_epsilon, "Epsilon of the backbone BatchNorms.", **fv)
    flags.DEFINE_float("bn_momentum", m.bn_momentum, "Momentum of all BatchNorm moving averages.",
                       **fv)
    flags.DEFINE_integer("exemplar_size", m.exemplar_size, "Side of the exemplar crop (z).", **fv)
    flags.DEFINE_integer("search_size", m.search_size, "Side of the search crop (x).", **fv)
    flags.DEFINE_integer("memory_size", m.memory_size, "Number of memory slots N.", **fv)
    flags.DEFINE_integer("hidden_size", m.hidden_size, "LSTM controller hidden size.", **fv)
    flags.DEFINE_float("usage_decay", m.usage_decay, "Usage decay lambda of the memory.", **fv)
    flags.DEFINE_float("controller_dropout", m.controller_dropout,
                       "Dropout rate on the LSTM candidate in training (official keep 0.8).", **fv)
    flags.DEFINE_enum("response_head", m.response_head, config_lib.RESPONSE_HEADS,
                      "Response normalisation: BatchNorm (MemTrack) or x0.001 (SiamFC).", **fv)
    flags.DEFINE_float("response_scale", m.response_scale,
                       "Scale of the 'scale' response head.", **fv)
    flags.DEFINE_boolean("use_memory", m.use_memory,
                         "Use the memory; off = the first-frame template only (SiamFC).", **fv)
    flags.DEFINE_boolean("use_attention", m.use_attention,
                         "Spatial attention as controller input; off = uniform average.", **fv)
    flags.DEFINE_boolean("use_residual", m.use_residual,
                         "Final template T_0 + r * T_retr; off = the retrieved template T_retr "
                         "alone (ablation of the residual path).", **fv)
    flags.DEFINE_boolean("residual_agreement", m.residual_agreement,
                         "Not in the paper: the residual gate also sees how far the retrieved "
                         "template is from T_0, r = sigmoid(z + a * (1 - cos(T_retr, T_0))) with "
                         "a learned channel-wise a starting at 0 (the paper's gate).", **fv)

    # Data
    flags.DEFINE_enum("dataset", d.dataset, config_lib.DATASETS,
                      "train: 'synthetic' (built-in videos) or 'tfrecord' (shards made by "
                      "tools/build_tfrecords.py in --data_dir). evaluate: a benchmark (otb100, "
                      "otb2013: complete sets only unless --allow_partial; otb: any folder of "
                      "OTB-layout sequences; uav123; vot (one pass); vot2016/vot2018/vot2019 "
                      "(supervised reset protocol, EAO); got10k; lasot) or 'synthetic' "
                      "(held-out clips).",
                      **fv)
    flags.DEFINE_string("data_dir", d.data_dir, "Folder of TFRecord shards (dataset=tfrecord).",
                        **fv)
    flags.DEFINE_integer("batch_size", d.batch_size, "Global batch size (clips per step).", **fv)
    flags.DEFINE_integer("time_steps", d.time_steps, "Frames T unrolled per clip.", **fv)
    flags.DEFINE_integer("max_frame_gap", d.max_frame_gap,
                         "Largest gap between successive frames of a training clip (gaps uniform "
                         "in 1..N: clips at the tracker's frame rate); 0 = frames drawn anywhere "
                         "in the track, as the official code.", **fv)
    flags.DEFINE_float("corrupt_write_prob", d.corrupt_write_prob,
                       "Probability q that step t >= 1 of a training clip writes the exemplar of "
                       "another clip of the batch (a write at a wrong box, as the tracker makes); "
                       "searches and labels are unchanged. 0 = always the true target's, as the "
                       "official code.", **fv)
    flags.DEFINE_float("shifted_write_prob", d.shifted_write_prob,
                       "Probability q that step t >= 1 of a training clip writes its own frame cut "
                       "at a wrong box (>= 32 px off the target: the tracker drifting onto "
                       "background or a neighbour); searches and labels are unchanged. 0 = always "
                       "the true target's, as the official code.", **fv)
    flags.DEFINE_integer("shifted_write_burst", d.shifted_write_burst,
                         "0: --shifted_write_prob draws each step's wrong write independently. "
                         "K > 0: it is the probability that a clip loses the target for K "
                         "consecutive writes, as a tracker does through an occlusion (K >= "
                         "--memory_size fills every slot with wrong writes).", **fv)
    flags.DEFINE_float("exemplar_stretch", d.exemplar_stretch, "Exemplar stretch augmentation.",
                       **fv)
    flags.DEFINE_float("exemplar_shift", d.exemplar_shift, "Exemplar shift augmentation (px).",
                       **fv)
    flags.DEFINE_float("search_stretch", d.search_stretch, "Search stretch augmentation.", **fv)
    flags.DEFINE_float("search_shift", d.search_shift, "Search shift augmentation (px).", **fv)
    flags.DEFINE_integer("num_train_sequences", d.num_train_sequences,
                         "Synthetic training sequences.", **fv)
    flags.DEFINE_integer("num_val_sequences", d.num_val_sequences,
                         "Synthetic held-out sequences.", **fv)
    flags.DEFINE_integer("synthetic_frame_size", d.synthetic_frame_size,
                         "Side of a synthetic video frame.", **fv)
    flags.DEFINE_integer("synthetic_sequence_length", d.synthetic_sequence_length,
                         "Frames per synthetic sequence.", **fv)
    flags.DEFINE_string("feature_cache", d.feature_cache,
                        "train with --freeze_backbone: folder where the frozen backbone's features "
                        "of the training patches are computed once (K augmentations per frame) "
                        "and reused; steps then cost the memory side only. Empty = live crops.",
                        **fv)
    flags.DEFINE_integer("feature_cache_augmentations", d.feature_cache_augmentations,
                         "Augmented exemplar/search crops cached per frame (K).", **fv)

    # Optimisation
    flags.DEFINE_string("model_dir", tr.model_dir,
                        "Run folder: checkpoints, TensorBoard logs, flags.txt.", **fv)
    flags.DEFINE_integer("train_steps", tr.train_steps, "Total optimiser steps.", **fv)
    flags.DEFINE_float("learning_rate", tr.learning_rate, "Initial Adam learning rate.", **fv)
    flags.DEFINE_integer("lr_decay_steps", tr.lr_decay_steps, "Staircase decay period.", **fv)
    flags.DEFINE_float("lr_decay_rate", tr.lr_decay_rate, "Staircase decay factor.", **fv)
    flags.DEFINE_float("weight_decay", tr.weight_decay,
                       "L2 factor: loss += wd * 1/2 * sum(w^2) over all trainable variables.", **fv)
    flags.DEFINE_float("clip_norm", tr.clip_norm, "Global-norm gradient clipping.", **fv)
    flags.DEFINE_float("adam_epsilon", tr.adam_epsilon, "Adam epsilon (TF1 default 1e-8).", **fv)
    flags.DEFINE_integer("log_every", tr.log_every, "Console progress cadence (steps).", **fv)
    flags.DEFINE_integer("summary_every", tr.summary_every, "Scalar summary cadence.", **fv)
    flags.DEFINE_integer("image_summary_every", tr.image_summary_every,
                         "Image/histogram summary cadence.", **fv)
    flags.DEFINE_integer("checkpoint_every", tr.checkpoint_every, "Checkpoint cadence.", **fv)
    flags.DEFINE_integer("keep_checkpoints", tr.keep_checkpoints, "Checkpoints kept.", **fv)
    flags.DEFINE_integer("validate_every", tr.validate_every, "Validation cadence.", **fv)
    flags.DEFINE_integer("validation_steps", tr.validation_steps, "Batches per validation.", **fv)
    flags.DEFINE_enum("strategy", tr.strategy, config_lib.STRATEGIES,
                      "tf.distribute strategy: default (one device), mirrored (all local GPUs), "
                      "multi_worker (TF_CONFIG).", **fv)
    flags.DEFINE_enum("precision", tr.precision, config_lib.PRECISIONS,
                      "Backbone compute dtype in training: float32, mixed_bfloat16 (TPU/Ampere+ "
                      "GPUs, AVX-512 CPUs) or mixed_float16 (GPUs, with dynamic loss scaling). "
                      "Variables, the memory, the loss and BatchNorm statistics stay float32.",
                      **fv)
    flags.DEFINE_boolean("jit_compile", tr.jit_compile,
                         "XLA-compile the train step (forward, backward, optimiser update).",
                         **fv)
    flags.DEFINE_string("init_backbone", tr.init_backbone,
                        "Checkpoint (or run folder) whose backbone warm-starts training.", **fv)
    flags.DEFINE_boolean("freeze_backbone", tr.freeze_backbone,
                         "Train only attention, controller, memory heads and response head.", **fv)
    flags.DEFINE_integer("frozen_backbone_layers", tr.frozen_backbone_layers,
                         "Fix conv1..convK of the backbone (weights and BatchNorm statistics) "
                         "and train the rest, e.g. 4 to fine-tune conv5 only; with "
                         "--feature_cache the cache holds convK's features. 5 = "
                         "--freeze_backbone.", **fv)
    flags.DEFINE_float("backbone_learning_rate_scale", tr.backbone_learning_rate_scale,
                       "Learning rate of the trainable backbone layers, as a fraction of "
                       "--learning_rate (their own Adam; same decay schedule).", **fv)
    flags.DEFINE_integer("seed", tr.seed, "Seed of weights, data and augmentation.", **fv)

    # Tracking
    flags.DEFINE_integer("num_scales", tk.num_scales, "Scales searched per frame.", **fv)
    flags.DEFINE_float("scale_step", tk.scale_step, "Ratio between adjacent scales.", **fv)
    flags.DEFINE_float("scale_penalty", tk.scale_penalty, "Penalty on non-centre scales.", **fv)
    flags.DEFINE_float("window_influence", tk.window_influence, "Cosine window weight.", **fv)
    flags.DEFINE_float("scale_damping", tk.scale_damping, "Size update learning rate.", **fv)
    flags.DEFINE_integer("upsample_factor", tk.upsample_factor, "Response upsampling.", **fv)
    flags.DEFINE_float("context", tk.context, "Context margin around the target when tracking "
                       "(training patches always use the builder's 0.5).", **fv)
    flags.DEFINE_float("min_scale", tk.min_scale, "Smallest target size / first size.", **fv)
    flags.DEFINE_float("max_scale", tk.max_scale, "Largest target size / first size.", **fv)
    flags.DEFINE_boolean("official_quirks", tk.official_quirks,
                         "Reproduce the official tracker's sub-pixel quirks (see WORKSPACE.md).",
                         **fv)
    flags.DEFINE_integer("memory_write_interval", tk.memory_write_interval,
                         "Write the template into the memory on every N-th frame only (1 = "
                         "every frame, the paper's); reads happen every frame.", **fv)
    flags.DEFINE_float("memory_write_min_psr", tk.memory_write_min_psr,
                       "Skip the write of a frame whose response peak-to-sidelobe ratio is "
                       "below this (0 = never skip; see --lost_threshold for the scale).", **fv)

    # Runtime: commands that load a trained model, track or evaluate
    flags.DEFINE_string("checkpoint", "",
                        "A run folder (latest checkpoint) or a checkpoint path; the model is "
                        "rebuilt from the flags.txt beside it.", **fv)
    flags.DEFINE_string("saved_model", "", "An exported SavedModel folder.", **fv)
    flags.DEFINE_string("litert", "", "A LiteRT export folder (export --format=litert); "
                        "needs ai-edge-litert.", **fv)
    flags.DEFINE_string("video", "", "track: a video file to track in.", **fv)
    flags.DEFINE_string("images", "", "track: a folder of frames (sorted by name).", **fv)
    flags.DEFINE_string("sequence", "", "track: an OTB or VOT sequence folder; its ground "
                        "truth, when it has one, gives the first box and the scores (without "
                        "one, give --init_box).", **fv)
    flags.DEFINE_string("init_box", "", "track: first-frame box x,y,w,h (0-based pixels, "
                        "top-left corner); default: the sequence's ground truth.", **fv)
    flags.DEFINE_integer("start_frame", 1, "track: start at this frame (1 = the first; film "
                         "clips often open on black frames).", lower_bound=1, **fv)
    flags.DEFINE_integer("target", None, "track: which target of a two-target OTB sequence "
                         "(groundtruth_rect.N.txt, e.g. Jogging); default: the first.",
                         lower_bound=1, **fv)
    flags.DEFINE_float("lost_threshold", None, "track: frames whose peak-to-sidelobe ratio "
                       "(psr column) is below this are reported as probably lost, e.g. 4; "
                       "default: off.", **fv)
    flags.DEFINE_string("output_video", "", "track: write an annotated mp4 here (input frame "
                        "rate; boxes, legend, confidence in a side panel).", **fv)
    flags.DEFINE_string("output_boxes", "", "track: write x,y,w,h,peak,psr per frame here "
                        "(the header states the pixel convention: that of the sequence's "
                        "ground truth and evaluate's results, else 0-based).", **fv)
    flags.DEFINE_boolean("show_response", False, "track: draw the response map and the read "
                         "weights in the output video's side panel.", **fv)
    flags.DEFINE_string("dataset_root", "", "evaluate: the benchmark's root folder.", **fv)
    flags.DEFINE_string("annotations", "", "evaluate: a pysot-style dataset JSON file.", **fv)
    flags.DEFINE_string("results_dir", "results", "evaluate: <results_dir>/<tracker>/<seq>.txt.",
                        **fv)
    flags.DEFINE_list("trackers", [], "evaluate: trackers to score (default: all found).", **fv)
    flags.DEFINE_string("tracker_name", "", "evaluate: name our results are stored under; "
                        "default: what the model is, MemTrack or SiamFC-mode (no memory).",
                        **fv)
    flags.DEFINE_integer("num_workers", 1, "evaluate: sequences tracked in parallel processes.",
                         **fv)
    flags.DEFINE_string("report_dir", "", "evaluate: where the JSON report and plots go "
                        "(default: <results_dir>/report).", **fv)
    flags.DEFINE_enum("protocol", "", ["", "ope", "supervised"],
                      "evaluate: 'ope' (one pass) or 'supervised' (VOT's reset experiment: "
                      "re-initialise 5 frames after a failure; accuracy, robustness, EAO). "
                      "Default: supervised for vot2016/vot2018/vot2019, ope otherwise.", **fv)
    flags.DEFINE_boolean("allow_partial", False, "evaluate: score an OTB-100/OTB-2013 result "
                         "set that lacks sequences, labelled 'partial (k/N)' (otherwise: list "
                         "what is missing and exit 1).", **fv)
    flags.DEFINE_boolean("attributes", False, "evaluate: print success AUC per attribute and "
                         "draw one success plot per attribute (<report_dir>/attributes/).", **fv)
    flags.DEFINE_enum("invalid_frames", "toolkit", ["toolkit", "exclude"],
                      "evaluate (OPE): frames whose ground truth is no box (0,0,0,0 or NaN): "
                      "'toolkit' counts them as the OTB toolkit and pysot do (success miss, "
                      "precision hit); 'exclude' leaves them out. Their number is printed.", **fv)
    flags.DEFINE_boolean("replace_first_box", False, "evaluate (OPE): score the ground truth "
                         "instead of each results file's first box (got10k's ExperimentOTB "
                         "rule; default: as written, as the OTB toolkit and pysot).", **fv)
    flags.DEFINE_string("export_dir", "", "export: the folder to write.", **fv)
    flags.DEFINE_enum("format", "saved_model", ["saved_model", "litert"], "export: a "
                      "SavedModel, or LiteRT .tflite models with the batch fixed to "
                      "--num_scales of the run.", **fv)
    flags.DEFINE_integer("final_eval_sequences", 0, "train: after training, track this many "
                         "held-out synthetic sequences and print their success AUC next to a "
                         "'box never moves' baseline (0 = off).", **fv)


def this_module_flags(flag_values: flags.FlagValues = flags.FLAGS):
    """The flags defined by `define_flags` (not absl's or TensorFlow's own)."""
    return flag_values.flags_by_module_dict().get(_MODULE, [])


def write_flagfile(path: str, flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Writes this module's resolved flags to `path`, usable as `--flagfile` (atomically)."""
    lines = [f.serialize() for f in sorted(this_module_flags(flag_values), key=lambda f: f.name)]
    config_lib.write_atomically(path, "\n".join(line for line in lines if line) + "\n")


def read_flagfile(path: str) -> flags.FlagValues:
    """Parses a flags.txt written by `write_flagfile` into a fresh FlagValues."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no flags.txt; cannot rebuild the model configuration")
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    flag_values([os.path.basename(path), f"--flagfile={path}"])
    return flag_values
