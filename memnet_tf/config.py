"""Frozen configuration dataclasses: the only bridge between absl flags and library code.

Library code takes these dataclasses; only the `main()` of an entry point reads `FLAGS` and calls
`*_config_from_flags`. Defaults equal the official MemTrack code (`memtrack_spec.md`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import Any

# The SiamFC AlexNet channel widths of conv1..conv5 before the width multiplier.
ALEXNET_CHANNELS = (96, 256, 384, 384, 256)
# Total stride of the AlexNet backbones: one response cell is 8 search-crop pixels.
TOTAL_STRIDE = 8
BACKBONES = ("memtrack_alexnet", "siamfc_alexnet")
RESPONSE_HEADS = ("batchnorm", "scale")
STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
TRAIN_DATASETS = ("synthetic", "tfrecord")
BENCHMARKS = ("otb100", "otb2013", "otb", "uav123", "vot", "vot2016", "vot2018", "vot2019",
              "got10k", "lasot")
DATASETS = TRAIN_DATASETS + BENCHMARKS


def scaled_width(channels: int, width_multiplier: float) -> int:
    """SiamFC's width rounding `int(int(r * C / 2) * 2)`: even, so groups of 2 divide it."""
    return int(int(width_multiplier * channels / 2) * 2)


def backbone_output_size(input_size: int) -> int:
    """Side of the AlexNet feature map for a square input of `input_size` pixels.

    conv1 11/2, pool 3/2, conv2 5/1, pool 3/2, conv3..5 3/1, all valid: 127 -> 6, 255 -> 22.
    """
    size = (input_size - 11) // 2 + 1
    size = (size - 3) // 2 + 1
    size = size - 4
    size = (size - 3) // 2 + 1
    return size - 6


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The network: backbone, controller, memory and response head."""

    backbone: str = "memtrack_alexnet"
    width_multiplier: float = 1.0
    bn_epsilon: float = 1e-3
    bn_momentum: float = 0.99
    exemplar_size: int = 127
    search_size: int = 255
    memory_size: int = 8
    hidden_size: int = 512
    usage_decay: float = 0.99
    controller_dropout: float = 0.2
    response_head: str = "batchnorm"
    response_scale: float = 1e-3
    use_memory: bool = True
    use_attention: bool = True
    # T_final = T_0 + r (.) T_retr; off = T_retr alone (an ablation of the residual path).
    use_residual: bool = True
    # Not in the paper: r also sees cos(T_retr, T_0) (memtrack.MemTrackCell, residual_agreement).
    residual_agreement: bool = False

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone={self.backbone!r}: expected one of {BACKBONES}")
        if self.response_head not in RESPONSE_HEADS:
            raise ValueError(
                f"response_head={self.response_head!r}: expected one of {RESPONSE_HEADS}")
        if not 0.0 < self.width_multiplier <= 4.0:
            raise ValueError(f"width_multiplier={self.width_multiplier}: expected (0, 4]")
        if min(self.channels) < 2:
            raise ValueError(f"width_multiplier={self.width_multiplier} leaves a layer with "
                             f"fewer than 2 channels: {self.channels}")
        if self.template_size < 1:
            raise ValueError(f"exemplar_size={self.exemplar_size} is too small: the backbone "
                             "needs at least 87 pixels")
        if self.search_size < self.exemplar_size:
            raise ValueError(f"search_size={self.search_size} must be >= exemplar_size="
                             f"{self.exemplar_size}")
        if self.memory_size < 1 or self.hidden_size < 1:
            raise ValueError("memory_size and hidden_size must be positive")
        if self.residual_agreement and not (self.use_memory and self.use_residual):
            raise ValueError("residual_agreement=True needs use_memory=True and use_residual=True:"
                             " it changes the residual gate of T_0 + r (.) T_retr")
        if not 0.0 <= self.controller_dropout < 1.0:
            raise ValueError(f"controller_dropout={self.controller_dropout}: expected [0, 1)")

    @property
    def channels(self) -> tuple[int, ...]:
        """Output channels of conv1..conv5."""
        return tuple(scaled_width(c, self.width_multiplier) for c in ALEXNET_CHANNELS)

    @property
    def feature_channels(self) -> int:
        """C: channels of a template and of the search features."""
        return self.channels[-1]

    @property
    def template_size(self) -> int:
        """Side of the exemplar feature map (6 for 127)."""
        return backbone_output_size(self.exemplar_size)

    @property
    def search_feature_size(self) -> int:
        """Side of the search feature map (22 for 255)."""
        return backbone_output_size(self.search_size)

    @property
    def response_size(self) -> int:
        """Side of the response map (17 for 22 and 6)."""
        return self.search_feature_size - self.template_size + 1

    @property
    def input_scale(self) -> float:
        """The backbone multiplies [0, 1] images by this: MemTrack sees [0, 1], SiamFC 0-255."""
        return 255.0 if self.backbone == "siamfc_alexnet" else 1.0


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where clips come from and how they are sampled and augmented (spec section 7)."""

    dataset: str = "synthetic"  # synthetic | tfrecord
    data_dir: str = ""
    batch_size: int = 8
    time_steps: int = 16
    # Largest gap between successive frames of a clip; 0 = anywhere in the track (official).
    max_frame_gap: int = 0
    # Probability that a training step t >= 1 writes another clip's exemplar (augment.corrupt_writes);
    # 0 = always the ground truth's, as the official code.
    corrupt_write_prob: float = 0.0
    # Probability that it writes the same frame cut at a wrong box instead (augment.shifted_writes).
    shifted_write_prob: float = 0.0
    # 0: those wrong writes are drawn per step; K > 0: per clip, as a run of K consecutive steps.
    shifted_write_burst: int = 0
    # Context margin around the search crop in the stored patch: patch = search + 2 * 8.
    patch_margin: int = 8
    exemplar_stretch: float = 0.1
    exemplar_shift: float = 8.0
    search_stretch: float = 0.05
    search_shift: float = 4.0
    label_iou_threshold: float = 0.7
    num_train_sequences: int = 2000
    num_val_sequences: int = 64
    synthetic_frame_size: int = 320
    synthetic_sequence_length: int = 60
    seed: int = 1234
    # Frozen backbone only: train on its features of the patches, computed once (feature_cache.py).
    feature_cache: str = ""
    feature_cache_augmentations: int = 4

    def __post_init__(self):
        if self.dataset not in TRAIN_DATASETS:
            raise ValueError(f"dataset={self.dataset!r}: training reads one of {TRAIN_DATASETS}")
        if self.dataset == "tfrecord" and not self.data_dir:
            raise ValueError("dataset='tfrecord' needs --data_dir (a folder of TFRecord shards)")
        if self.batch_size < 1 or self.time_steps < 1:
            raise ValueError("batch_size and time_steps must be positive")
        if self.feature_cache and self.dataset != "tfrecord":
            raise ValueError("feature_cache caches the patches of TFRecord shards: it needs "
                             "--dataset=tfrecord")
        if self.max_frame_gap < 0:
            raise ValueError(f"max_frame_gap={self.max_frame_gap} must be >= 0 (0 = frames "
                             "anywhere in the track)")
        if not 0.0 <= self.corrupt_write_prob <= 1.0:
            raise ValueError(f"corrupt_write_prob={self.corrupt_write_prob} must be in [0, 1]")
        if not 0.0 <= self.shifted_write_prob <= 1.0:
            raise ValueError(f"shifted_write_prob={self.shifted_write_prob} must be in [0, 1]")
        if self.shifted_write_burst < 0:
            raise ValueError(f"shifted_write_burst={self.shifted_write_burst} must be >= 0")
        if self.feature_cache_augmentations < 1:
            raise ValueError(f"feature_cache_augmentations={self.feature_cache_augmentations} "
                             "must be positive")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, cadence and run management (spec 7.5)."""

    model_dir: str = ""
    train_steps: int = 100_000
    learning_rate: float = 1e-4
    lr_decay_steps: int = 10_000
    lr_decay_rate: float = 0.8
    weight_decay: float = 1e-4
    clip_norm: float = 20.0
    adam_epsilon: float = 1e-8
    log_every: int = 10
    summary_every: int = 100
    image_summary_every: int = 1000
    checkpoint_every: int = 5000
    keep_checkpoints: int = 5
    validate_every: int = 5000
    validation_steps: int = 20
    strategy: str = "default"
    init_backbone: str = ""
    freeze_backbone: bool = False
    # conv1..convK (and their BatchNorms) fixed, the later backbone layers train; 5 = the whole
    # backbone, which is what freeze_backbone means.
    frozen_backbone_layers: int = 0
    # The trainable backbone layers learn at learning_rate x this (their own Adam).
    backbone_learning_rate_scale: float = 1.0
    seed: int = 1234
    # Keras dtype policy of the backbone in training (the rest, the loss and every BatchNorm's
    # statistics stay float32); mixed_float16 adds dynamic loss scaling.
    precision: str = "float32"
    jit_compile: bool = False  # XLA-compile the forward + backward + update of a train step

    @property
    def frozen_layers(self) -> int:
        """How many backbone layers, from conv1 on, do not train (5: the whole backbone)."""
        return 5 if self.freeze_backbone else self.frozen_backbone_layers

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy={self.strategy!r}: expected one of {STRATEGIES}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}: expected one of {PRECISIONS}")
        if self.train_steps < 0:
            raise ValueError(f"train_steps={self.train_steps} must be >= 0")
        for name in ("lr_decay_steps", "log_every", "summary_every", "image_summary_every",
                     "checkpoint_every", "keep_checkpoints", "validate_every",
                     "validation_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1 (to do something "
                                 f"rarely, give it a value above train_steps)")
        for name in ("learning_rate", "clip_norm", "adam_epsilon"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        if not 0 <= self.frozen_backbone_layers <= 5:
            raise ValueError(f"frozen_backbone_layers={self.frozen_backbone_layers}: expected "
                             "0 (none) .. 5 (the whole backbone)")
        if self.freeze_backbone and self.frozen_backbone_layers not in (0, 5):
            raise ValueError(f"freeze_backbone freezes all 5 backbone layers, "
                             f"frozen_backbone_layers={self.frozen_backbone_layers} only the "
                             "first ones: give one of them")
        if not self.backbone_learning_rate_scale > 0:
            raise ValueError(f"backbone_learning_rate_scale={self.backbone_learning_rate_scale} "
                             "must be > 0")
        if self.backbone_learning_rate_scale != 1.0 and self.precision == "mixed_float16":
            raise ValueError("backbone_learning_rate_scale needs a second optimiser, which "
                             "mixed_float16's loss scaling does not support here: use "
                             "precision=float32 or mixed_bfloat16")
        if not 0.0 < self.lr_decay_rate <= 1.0 or self.weight_decay < 0:
            raise ValueError(f"lr_decay_rate={self.lr_decay_rate} must be in (0, 1] and "
                             f"weight_decay={self.weight_decay} >= 0")


@dataclasses.dataclass(frozen=True)
class TrackConfig:
    """Inference hyper-parameters (spec section 8)."""

    num_scales: int = 3
    scale_step: float = 1.05
    scale_penalty: float = 0.97
    window_influence: float = 0.15
    scale_damping: float = 0.6
    upsample_factor: int = 16
    context: float = 0.5
    # Clamp of the target size relative to the first-frame size (bilylee's [0.2, 5]).
    min_scale: float = 0.2
    max_scale: float = 5.0
    # Reproduce the official tracker's sub-pixel quirks (peak centre 136, 8/16 px step, crop
    # normalised by H'). See WORKSPACE.md.
    official_quirks: bool = True
    # Memory writes at tracking time (the paper writes every frame: 1 and 0). Training clips
    # sample frames ~17 apart on 10 fps video while tracking writes every frame, so the 8 slots
    # fill with near-copies of the last 8 frames (docs/results.md); these keep the paper's
    # behaviour by default and let a recipe space the writes or refuse unsure ones.
    memory_write_interval: int = 1
    memory_write_min_psr: float = 0.0

    def __post_init__(self):
        if self.memory_write_interval < 1:
            raise ValueError(f"memory_write_interval={self.memory_write_interval}: expected "
                             ">= 1 (1 = write every frame)")
        if not self.memory_write_min_psr >= 0.0:
            raise ValueError(f"memory_write_min_psr={self.memory_write_min_psr}: expected >= 0 "
                             "(0 = never refuse a write)")
        if self.num_scales < 1 or self.num_scales % 2 == 0:
            raise ValueError(f"num_scales={self.num_scales}: expected an odd positive number")
        if not 0.0 <= self.window_influence <= 1.0:
            raise ValueError(f"window_influence={self.window_influence}: expected [0, 1]")
        if not 0.0 <= self.scale_damping <= 1.0:
            raise ValueError(f"scale_damping={self.scale_damping}: expected [0, 1]")
        if not 0.0 < self.scale_penalty <= 1.0:
            raise ValueError(f"scale_penalty={self.scale_penalty}: expected (0, 1]")
        if not self.scale_step > 0.0:
            raise ValueError(f"scale_step={self.scale_step}: expected > 0")
        if self.upsample_factor < 1:
            raise ValueError(f"upsample_factor={self.upsample_factor}: expected >= 1")
        if self.context < 0.0:
            raise ValueError(f"context={self.context}: expected >= 0")
        if not 0.0 < self.min_scale <= 1.0 <= self.max_scale:
            raise ValueError(f"min_scale={self.min_scale}, max_scale={self.max_scale}: expected "
                             "0 < min_scale <= 1 <= max_scale")


CONFIG_CLASSES = {
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "track": TrackConfig,
}


def config_from_flags(cls, flag_values):
    """A config dataclass from the flags of the same names (absent flags keep the defaults)."""
    return cls(**{field.name: flag_values[field.name].value for field in dataclasses.fields(cls)
                  if field.name in flag_values})


def model_config_from_flags(flag_values) -> ModelConfig:
    return config_from_flags(ModelConfig, flag_values)


def data_config_from_flags(flag_values) -> DataConfig:
    return config_from_flags(DataConfig, flag_values)


def train_config_from_flags(flag_values) -> TrainConfig:
    return config_from_flags(TrainConfig, flag_values)


def track_config_from_flags(flag_values) -> TrackConfig:
    return config_from_flags(TrackConfig, flag_values)


def override_from_flags(config, flag_values):
    """`config` with the fields whose flags were given explicitly on the command line replaced.

    Commands that reuse a run's configuration (tracking with a checkpoint's own track config,
    say) let the flags typed on their own command line take precedence, and nothing else.
    """
    given = {field.name: flag_values[field.name].value for field in dataclasses.fields(config)
             if field.name in flag_values and flag_values[field.name].present}
    return dataclasses.replace(config, **given)


def to_json(configs: dict[str, Any]) -> str:
    """Serialises a dict of config dataclasses (name -> instance) to JSON."""
    return json.dumps({k: dataclasses.asdict(v) for k, v in configs.items()}, indent=2)


def config_from_dict(cls, values: dict[str, Any]):
    """Builds a config dataclass from a dict, ignoring unknown keys (older or newer runs)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def model_config_from_dict(values: dict[str, Any]) -> ModelConfig:
    return config_from_dict(ModelConfig, values)


def replace_atomically(path: str, write: Callable[[str], None], suffix: str = "") -> None:
    """Creates `path` by `write(temporary path)` then a rename, so it is never half-written.

    The temporary file sits beside `path` (same file system, so the rename is atomic); when
    `write` fails it is removed and the error re-raised, leaving `path` as it was.

    Args:
        path: the file to create or replace.
        write: writes the complete file to the path it is given.
        suffix: ending of the temporary name (e.g. ".png" for writers that infer the format).
    """
    tmp = f"{path}.tmp-{os.getpid()}{suffix}"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_atomically(path: str, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename (`replace_atomically`)."""

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    replace_atomically(path, write)


def read_format_json(path: str, expected_format: str, written_by: str) -> dict:
    """The JSON metadata file `path` of an export, checked to be of `expected_format`.

    Raises:
        FileNotFoundError: no such file (the message says the folder was not written by
          `written_by`).
        ValueError: not valid JSON, or its "format" is not `expected_format`.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: missing; this folder was not written by "
                                f"`{written_by}`")
    try:
        with open(path, encoding="utf-8") as f:
            metadata = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != expected_format:
        found = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
        raise ValueError(f"{path}: unknown format {found!r} (expected {expected_format!r})")
    return metadata
