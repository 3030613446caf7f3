"""Importing pretrained SiamFC-family PyTorch weights (FDSiamFC, siamfc-pytorch) into our model.

A SiamFC-family state dict names its AlexNet tensors `backbone.conv{i}.0.*` (the convolution,
PyTorch layout `[out_channels, in_channels / groups, kernel_h, kernel_w]`, "OIHW") and
`backbone.conv{i}.1.*` (the BatchNorm after conv1..conv4). `siamfc_name_map` ties each of them to
one variable of `AlexNetBackbone`, `import_siamfc_weights` checks and copies them, and
`write_run_folder` saves the model as a run folder that `models.loading.load_model` rebuilds.

Grouped convolutions need no special treatment: PyTorch's grouped weight holds, for output
channel o, the kernel over the inputs of o's group, with the first O/g outputs in group 0; a Keras
`Conv2D(groups=g)` kernel `[kernel_h, kernel_w, in_channels / groups, out_channels]` uses the same
group order, so the plain OIHW -> HWIO transpose is exact (verified numerically in
`tests/test_import_weights.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from memnet_tf import config as config_lib
from memnet_tf import flags as memnet_flags

# Tensor-name prefix of the backbone in FDSiamFC / siamfc-pytorch state dicts.
SIAMFC_PREFIX = "backbone."
# Bookkeeping entries of PyTorch BatchNorms: they hold no weights and are skipped on purpose.
IGNORED_SUFFIXES = ("num_batches_tracked",)
# SiamFC-family networks see raw 0-255 pixels (no normalisation).
SIAMFC_INPUT_SCALE = 255.0
NUM_CONVS = 5
NUM_NORMS = 4
# PyTorch BatchNorm parameter name -> Keras BatchNormalization variable attribute.
_BN_VARIABLES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
                 "running_var": "moving_variance"}
# PyTorch conv parameter name -> Keras Conv2D variable attribute.
_CONV_VARIABLES = {"weight": "kernel", "bias": "bias"}
_NPZ_SUFFIXES = (".npz",)
_TORCH_SUFFIXES = (".pth", ".pt")


class WeightImportError(ValueError):
    """A weights file that cannot be imported; the message names the file and every bad tensor."""


class ImportSummary(NamedTuple):
    """What `import_siamfc_weights` did.

    Attributes:
      assigned: `{source tensor name: "layer/variable"}` for every copied tensor.
      ignored: source names skipped on purpose (`num_batches_tracked`).
      head: what happened to the response head (its 'scale' bias is zeroed; a 'batchnorm' head
        is left untouched because SiamFC has no such layer).
    """

    assigned: dict
    ignored: tuple
    head: str


# ------------------------------------------------------------------------------ reading files


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Reads a state dict as `{name: numpy array}` from `.npz` or (with PyTorch) `.pth`/`.pt`.

    Args:
      path: an `.npz` written with the state dict's names and PyTorch layouts, or a PyTorch
        checkpoint (a state dict, or a dict holding one under 'state_dict' or 'model').

    Returns:
      The tensors, in their stored layouts and dtypes.

    Raises:
      FileNotFoundError: `path` does not exist.
      WeightImportError: an unknown extension, a corrupt file, or a `.pth` without PyTorch.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: weights file not found")
    lower = path.lower()
    if lower.endswith(_NPZ_SUFFIXES):
        return _load_npz(path)
    if lower.endswith(_TORCH_SUFFIXES):
        return _load_torch(path)
    raise WeightImportError(f"{path}: unknown weights format; expected "
                            f"{'/'.join(_NPZ_SUFFIXES + _TORCH_SUFFIXES)}")


def _load_npz(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: np.asarray(archive[name]) for name in archive.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise WeightImportError(f"{path}: not a readable .npz archive ({error})") from None


def _load_torch(path: str) -> dict[str, np.ndarray]:
    try:
        import torch  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise WeightImportError(
            f"{path}: reading a PyTorch file needs PyTorch, which is not installed; use the "
            ".npz export of the same state dict (e.g. FDSiamfc_30.npz) or install torch"
        ) from None
    try:
        # weights_only: a state dict needs no arbitrary unpickling.
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many unrelated types for a bad file
        raise WeightImportError(f"{path}: not a readable PyTorch file ({error})") from None
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict):
        raise WeightImportError(f"{path}: expected a state dict, got {type(loaded).__name__}")
    tensors = {}
    for name, value in loaded.items():
        if not hasattr(value, "detach"):
            raise WeightImportError(f"{path}: entry {name!r} is a {type(value).__name__}, "
                                    "not a tensor")
        tensors[name] = value.detach().cpu().numpy()
    return tensors


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file (recorded beside an imported checkpoint for provenance)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------ layouts


def oihw_to_hwio(weight: np.ndarray) -> np.ndarray:
    """PyTorch conv weight `[out, in / groups, kh, kw]` -> Keras kernel `[kh, kw, in / groups, out]`.

    Args:
      weight: `[out_channels, in_channels / groups, kernel_h, kernel_w]`.

    Returns:
      `[kernel_h, kernel_w, in_channels / groups, out_channels]` (a contiguous copy).
    """
    weight = np.asarray(weight)
    if weight.ndim != 4:
        raise ValueError(f"oihw_to_hwio: expected a 4-D OIHW weight, got shape {weight.shape}")
    return np.ascontiguousarray(np.transpose(weight, (2, 3, 1, 0)))


def siamfc_name_map(prefix: str = SIAMFC_PREFIX) -> dict[str, tuple[str, str]]:
    """Source tensor name -> (backbone sub-layer, variable attribute).

    Args:
      prefix: the backbone's name prefix in the state dict ('backbone.' in FDSiamFC).

    Returns:
      e.g. `{'backbone.conv1.0.weight': ('conv1', 'kernel'),
      'backbone.conv1.1.running_var': ('conv1_bn', 'moving_variance'), ...}`: 26 entries
      (5 convs x 2 + 4 BatchNorms x 4).
    """
    names = {}
    for i in range(1, NUM_CONVS + 1):
        for source, target in _CONV_VARIABLES.items():
            names[f"{prefix}conv{i}.0.{source}"] = (f"conv{i}", target)
        if i <= NUM_NORMS:
            for source, target in _BN_VARIABLES.items():
                names[f"{prefix}conv{i}.1.{source}"] = (f"conv{i}_bn", target)
    return names


def convert_tensor(variable_attribute: str, value: np.ndarray) -> np.ndarray:
    """A source tensor in our layout: conv kernels OIHW -> HWIO, everything else unchanged."""
    return oihw_to_hwio(value) if variable_attribute == "kernel" else np.asarray(value)


def _is_ignored(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in IGNORED_SUFFIXES


# ------------------------------------------------------------------------------ import


def plan_backbone_import(backbone, state_dict: dict[str, np.ndarray],
                         prefix: str = SIAMFC_PREFIX, source: str = "state dict"):
    """Checks a state dict against a backbone and pairs every tensor with its variable.

    Nothing is assigned, so a failed check leaves the model untouched.

    Args:
      backbone: a built `AlexNetBackbone`.
      state_dict: `{name: array}` in PyTorch layouts.
      prefix: the backbone's prefix in the names.
      source: how to name the state dict in messages (its file path).

    Returns:
      `(assignments, ignored)`: a list of `(source name, tf.Variable, float32 array)` and the
      sorted names skipped on purpose.

    Raises:
      WeightImportError: listing every missing, unused, mis-shaped or non-finite tensor, or an
        input scale other than SiamFC's 0-255.
    """
    if float(backbone.input_scale) != SIAMFC_INPUT_SCALE:
        raise WeightImportError(
            f"{source}: SiamFC-family weights expect 0-255 inputs, but the backbone scales its "
            f"[0, 1] images by {backbone.input_scale}; use --backbone=siamfc_alexnet")
    name_map = siamfc_name_map(prefix)
    ignored = sorted(name for name in state_dict if _is_ignored(name))
    missing = sorted(set(name_map) - set(state_dict))
    unused = sorted(set(state_dict) - set(name_map) - set(ignored))
    problems = [f"missing tensor {name} (for {'/'.join(name_map[name])})" for name in missing]
    problems += [f"unused tensor {name} {tuple(np.shape(state_dict[name]))}: no variable of "
                 f"the backbone takes it" for name in unused]
    assignments = []
    for name, (layer_name, attribute) in name_map.items():
        if name not in state_dict:
            continue
        variable = getattr(getattr(backbone, layer_name), attribute)
        raw = np.asarray(state_dict[name])
        if raw.ndim != len(variable.shape) or (attribute == "kernel" and raw.ndim != 4):
            problems.append(f"tensor {name} has shape {raw.shape}, but "
                            f"{layer_name}/{attribute} expects {tuple(variable.shape)}")
            continue
        value = convert_tensor(attribute, raw)
        if tuple(value.shape) != tuple(variable.shape):
            layout = "" if value.shape == raw.shape else f", {value.shape} as HWIO"
            problems.append(f"tensor {name} has shape {raw.shape}{layout}, but "
                            f"{layer_name}/{attribute} expects {tuple(variable.shape)}")
            continue
        if not np.issubdtype(value.dtype, np.floating):
            problems.append(f"tensor {name} has dtype {value.dtype}; expected floating point")
            continue
        if not np.all(np.isfinite(value)):
            problems.append(f"tensor {name} contains NaN or Inf")
            continue
        if attribute == "moving_variance" and np.any(value < 0):
            problems.append(f"tensor {name} has negative variances")
            continue
        assignments.append((name, variable, value.astype(np.float32)))
    if problems:
        hint = ("" if not any("shape" in p for p in problems) else
                "\n(the flags must give the weights' architecture, e.g. --backbone=siamfc_alexnet "
                "--width_multiplier=0.3 for FDSiamFC-30)")
        raise WeightImportError(f"{source}: cannot import {len(problems)} tensor(s):\n  "
                                + "\n  ".join(problems) + hint)
    return assignments, tuple(ignored)


def import_siamfc_weights(model, state_dict: dict[str, np.ndarray],
                          prefix: str = SIAMFC_PREFIX, source: str = "state dict") -> ImportSummary:
    """Copies a SiamFC-family state dict into `model.backbone` (all or nothing).

    Every tensor is checked before any is assigned. The SiamFC response is the plain
    correlation x 0.001 without a bias, so a 'scale' response head gets its bias set to 0.

    Args:
      model: a built `MemTrack` (any memory setting) with the `siamfc_alexnet` backbone.
      state_dict: `{name: array}` in PyTorch layouts (`load_state_dict`).
      prefix: the backbone's prefix in the names.
      source: how to name the state dict in messages (its file path).

    Returns:
      An `ImportSummary`.

    Raises:
      WeightImportError: see `plan_backbone_import`.
    """
    assignments, ignored = plan_backbone_import(model.backbone, state_dict, prefix, source)
    for _, variable, value in assignments:
        variable.assign(value)
    head = model.response_head
    if head.kind == "scale":
        head.bias.assign(tf.zeros_like(head.bias))
        head_note = f"scale head: x{head.scale}, bias set to 0 (SiamFC has none)"
    else:
        head_note = "batchnorm head left at its initial values (SiamFC has no response BN)"
    assigned = {name: variable.path for name, variable, _ in assignments}
    return ImportSummary(assigned=assigned, ignored=ignored, head=head_note)


# ------------------------------------------------------------------------------ run folder


def write_run_folder(model, output_dir: str, flag_values, metadata: dict | None = None,
                     overwrite: bool = False) -> str:
    """Saves `model` as a run folder: a checkpoint, `flags.txt`, `config.json`, `import.json`.

    The folder is written as a temporary sibling and renamed into place, so `output_dir` is
    either absent or complete. `models.loading.load_model(output_dir)` rebuilds the model.

    Args:
      model: the `MemTrack` to save.
      output_dir: the run folder to create.
      flag_values: resolved `FlagValues` describing `model` (written as `flags.txt`).
      metadata: JSON-serialisable provenance, written as `import.json`.
      overwrite: replace an existing non-empty `output_dir`.

    Returns:
      The checkpoint prefix inside `output_dir`.

    Raises:
      FileExistsError: `output_dir` exists, is not empty, and `overwrite` is False.
      ValueError: `flag_values` describe a different model than `model`'s configuration.
    """
    model_config = config_lib.model_config_from_flags(flag_values)
    if model_config != model.model_config:
        raise ValueError(f"write_run_folder: the flags describe {model_config}, but the model was "
                         f"built with {model.model_config}; flags.txt would not rebuild it")
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise FileExistsError(f"{output_dir}: exists and is not a folder")
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
        raise FileExistsError(f"{output_dir}: folder exists and is not empty (pass --overwrite to replace it)")
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.tmp-", dir=parent)
    try:
        os.chmod(staging, 0o755)  # mkdtemp makes it private; a run folder is shared like any
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), staging,
                                             max_to_keep=1)
        prefix = manager.save()
        memnet_flags.write_flagfile(os.path.join(staging, "flags.txt"), flag_values)
        config_lib.write_atomically(os.path.join(staging, "config.json"),
                                    config_lib.to_json({"model": model_config}) + "\n")
        if metadata is not None:
            config_lib.write_atomically(os.path.join(staging, "import.json"),
                                        json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        _replace_folder(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # CheckpointManager records paths relative to the folder, so the rename keeps it valid.
    return os.path.join(output_dir, os.path.basename(prefix))


def _replace_folder(staging: str, output_dir: str) -> None:
    """Renames `staging` to `output_dir`, moving an existing `output_dir` aside first."""
    if not os.path.exists(output_dir):
        os.replace(staging, output_dir)
        return
    # rename(2) replaces only an empty folder: move the old one out, then delete it.
    old = f"{staging}.old"
    os.replace(output_dir, old)
    os.replace(staging, output_dir)
    shutil.rmtree(old, ignore_errors=True)
