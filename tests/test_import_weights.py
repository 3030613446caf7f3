"""Tests of the SiamFC-family weight import: layouts, checks, run folder, CLI, and real features."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from conftest import REPO_ROOT, require_shared
from memnet_tf import config as config_lib
from memnet_tf import flags as memnet_flags
from memnet_tf.geometry import boxes, crops
from memnet_tf.models import weights as weights_lib
from memnet_tf.models.loading import load_model
from memnet_tf.models.memtrack import build_model

# FDSiamFC-30's architecture (weights README): SiamFC AlexNet at 30 % width, PyTorch BN eps 1e-6.
FDSIAMFC30_FLAGS = ("--backbone=siamfc_alexnet", "--width_multiplier=0.3", "--bn_epsilon=1e-6",
                    "--response_head=scale", "--nouse_memory")
FDSIAMFC30_CHANNELS = (28, 76, 114, 114, 76)
BN_EPSILON = 1e-6
GROUPS = (1, 2, 1, 2, 2)
STRIDES = (2, 1, 1, 1, 1)


def _flag_values(*extra: str) -> flags.FlagValues:
    flag_values = flags.FlagValues()
    memnet_flags.define_flags(flag_values)
    flag_values(["test", *FDSIAMFC30_FLAGS, *extra])
    return flag_values


def _model(*extra: str):
    return build_model(config_lib.model_config_from_flags(_flag_values(*extra)))


@pytest.fixture(scope="module")
def npz_path():
    return str(require_shared("weights", "fdsiamfc30", "FDSiamfc_30.npz"))


@pytest.fixture(scope="module")
def state_dict(npz_path):
    return weights_lib.load_state_dict(npz_path)


@pytest.fixture(scope="module")
def imported_model(state_dict):
    model = _model()
    weights_lib.import_siamfc_weights(model, state_dict)
    return model


# ------------------------------------------------------------------ independent numpy AlexNet


def _conv_np(x, weight_oihw, bias, stride, groups):
    """Grouped valid convolution by explicit im2col: `[N, H, W, I]` -> `[N, H', W', O]`.

    PyTorch semantics: output channel o of group g = o // (O / groups) sees input channels
    g * I / groups ... (g + 1) * I / groups - 1, with weight[o] over them.
    """
    out_c, in_per_group, kh, kw = weight_oihw.shape
    batch, height, width, in_c = x.shape
    assert in_c == in_per_group * groups
    out_h, out_w = (height - kh) // stride + 1, (width - kw) // stride + 1
    # columns[n, i, j, c, u, v] = x[n, i * stride + u, j * stride + v, c]
    columns = np.empty((batch, out_h, out_w, in_c, kh, kw), np.float64)
    for u in range(kh):
        for v in range(kw):
            columns[..., u, v] = x[:, u:u + stride * (out_h - 1) + 1:stride,
                                   v:v + stride * (out_w - 1) + 1:stride, :]
    out_per_group = out_c // groups
    outputs = []
    for g in range(groups):
        cols = columns[:, :, :, g * in_per_group:(g + 1) * in_per_group]
        w = weight_oihw[g * out_per_group:(g + 1) * out_per_group].astype(np.float64)
        outputs.append(np.einsum("nijcuv,ocuv->nijo", cols, w))
    return np.concatenate(outputs, axis=-1) + bias.astype(np.float64)


def _max_pool_np(x, size=3, stride=2):
    """Valid max-pool of `[N, H, W, C]`."""
    out_h, out_w = (x.shape[1] - size) // stride + 1, (x.shape[2] - size) // stride + 1
    out = np.full((x.shape[0], out_h, out_w, x.shape[3]), -np.inf)
    for u in range(size):
        for v in range(size):
            out = np.maximum(out, x[:, u:u + stride * (out_h - 1) + 1:stride,
                                    v:v + stride * (out_w - 1) + 1:stride])
    return out


def _siamfc_alexnet_np(images_0_255, tensors, prefix="backbone."):
    """The SiamFC AlexNet forward in float64 straight from the PyTorch-layout state dict."""
    x = images_0_255.astype(np.float64)
    for i in range(1, 6):
        conv = f"{prefix}conv{i}.0."
        x = _conv_np(x, tensors[conv + "weight"], tensors[conv + "bias"], STRIDES[i - 1],
                     GROUPS[i - 1])
        if i <= 4:
            bn = f"{prefix}conv{i}.1."
            # BatchNorm inference: gamma * (x - mean) / sqrt(var + eps) + beta, then ReLU.
            x = (tensors[bn + "weight"] * (x - tensors[bn + "running_mean"])
                 / np.sqrt(tensors[bn + "running_var"].astype(np.float64) + BN_EPSILON)
                 + tensors[bn + "bias"])
            x = np.maximum(x, 0.0)
        if i <= 2:
            x = _max_pool_np(x)
    return x


def _real_crops():
    """An exemplar (127) and a search (255) crop, float [0, 1], from Crossing frame 1."""
    sequence = require_shared("data", "otb_mini", "Crossing")
    frame = cv2.cvtColor(cv2.imread(str(sequence / "img" / "0001.jpg")), cv2.COLOR_BGR2RGB)
    first_line = (sequence / "groundtruth_rect.txt").read_text().splitlines()[0]
    x, y, w, h = (float(v) for v in first_line.replace("\t", ",").replace(" ", ",").split(",")
                  if v)
    center = np.array([x - 1 + w / 2, y - 1 + h / 2], np.float32)  # OTB is 1-based
    image = tf.constant(frame.astype(np.float32) / 255.0)
    s_z = float(boxes.exemplar_side(w, h))
    s_x = float(crops.search_side(s_z))
    exemplar = crops.crop_and_resize(image, center, [s_z], 127, official_quirks=False)
    search = crops.crop_and_resize(image, center, [s_x], 255, official_quirks=False)
    return exemplar.numpy(), search.numpy()


# ------------------------------------------------------------------ tests


def test_width_rounding_gives_fdsiamfc30_channels(state_dict):
    cfg = config_lib.model_config_from_flags(_flag_values())
    assert cfg.channels == FDSIAMFC30_CHANNELS
    # The README's widths are those of the conv biases in the file.
    assert tuple(state_dict[f"backbone.conv{i}.0.bias"].shape[0]
                 for i in range(1, 6)) == FDSIAMFC30_CHANNELS


def test_oihw_to_hwio_moves_every_element():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(5, 3, 4, 2))
    kernel = weights_lib.oihw_to_hwio(weight)
    assert kernel.shape == (4, 2, 3, 5)
    for o, i, u, v in np.ndindex(*weight.shape):
        assert kernel[u, v, i, o] == weight[o, i, u, v]


@pytest.mark.parametrize("groups", [1, 2])
def test_keras_grouped_conv_matches_pytorch_group_layout(groups):
    # PyTorch's first O/g outputs use the first I/g inputs; check Keras does the same with the
    # converted kernel instead of assuming it.
    rng = np.random.default_rng(groups)
    in_c, out_c, k = 6, 8, 3
    weight = rng.normal(size=(out_c, in_c // groups, k, k)).astype(np.float32)
    bias = rng.normal(size=(out_c,)).astype(np.float32)
    x = rng.normal(size=(2, 9, 9, in_c)).astype(np.float32)
    conv = keras.layers.Conv2D(out_c, k, groups=groups, padding="valid")
    conv.build((None, None, None, in_c))
    conv.kernel.assign(weights_lib.oihw_to_hwio(weight))
    conv.bias.assign(bias)
    np.testing.assert_allclose(conv(x).numpy(), _conv_np(x, weight, bias, 1, groups),
                               rtol=1e-5, atol=1e-5)


def test_numpy_grouped_conv_reference_is_not_trivially_group_blind():
    # The reference must distinguish the two group orders, or the test above proves nothing.
    rng = np.random.default_rng(3)
    weight = rng.normal(size=(4, 2, 3, 3))
    x = rng.normal(size=(1, 5, 5, 4))
    swapped = np.concatenate([weight[2:], weight[:2]])
    out = _conv_np(x, weight, np.zeros(4), 1, 2)
    out_swapped = _conv_np(x, swapped, np.zeros(4), 1, 2)
    assert not np.allclose(out[..., :2], out_swapped[..., 2:])


def test_imported_features_equal_numpy_alexnet_on_real_crops(imported_model, state_dict):
    exemplar, search = _real_crops()
    for crop, side in ((exemplar, 6), (search, 22)):
        # The backbone takes [0, 1] images and scales them to SiamFC's 0-255 itself.
        features = imported_model.encode(crop).numpy()
        reference = _siamfc_alexnet_np(crop * 255.0, state_dict)
        assert features.shape == reference.shape == (1, side, side, 76)
        scale = np.abs(reference).max()
        assert scale > 1.0  # real features, not a dead network
        np.testing.assert_allclose(features, reference, rtol=1e-4, atol=1e-5 * scale)


def test_import_summary_and_response_head(imported_model, state_dict):
    summary = weights_lib.import_siamfc_weights(imported_model, state_dict)
    assert set(summary.assigned) == set(weights_lib.siamfc_name_map())
    assert len(summary.assigned) == 26 and summary.ignored == ()
    assert summary.assigned["backbone.conv2.1.running_var"].endswith(
        "conv2_bn/moving_variance")
    assert float(imported_model.response_head.bias.numpy()) == 0.0
    np.testing.assert_array_equal(imported_model.backbone.conv3_bn.moving_mean.numpy(),
                                  state_dict["backbone.conv3.1.running_mean"])


def test_num_batches_tracked_is_ignored_explicitly(state_dict):
    tensors = dict(state_dict)
    for i in range(1, 5):
        tensors[f"backbone.conv{i}.1.num_batches_tracked"] = np.array(123, np.int64)
    summary = weights_lib.import_siamfc_weights(_model(), tensors)
    assert len(summary.ignored) == 4 and all("num_batches_tracked" in n for n in summary.ignored)


def _import_error(model, tensors) -> str:
    with pytest.raises(weights_lib.WeightImportError) as error:
        weights_lib.import_siamfc_weights(model, tensors, source="FD.npz")
    return str(error.value)


def test_missing_and_unused_tensors_are_named(state_dict):
    tensors = dict(state_dict)
    del tensors["backbone.conv3.1.running_var"]
    tensors["backbone.conv6.0.weight"] = np.zeros((2, 2, 1, 1), np.float32)
    message = _import_error(_model(), tensors)
    assert "FD.npz" in message
    assert "missing tensor backbone.conv3.1.running_var" in message
    assert "unused tensor backbone.conv6.0.weight" in message


def test_misshaped_tensor_names_both_shapes(state_dict):
    message = _import_error(_model("--width_multiplier=0.25"), state_dict)
    assert ("tensor backbone.conv1.0.weight has shape (28, 3, 11, 11), (11, 11, 3, 28) as "
            "HWIO, but conv1/kernel expects (11, 11, 3, 24)") in message
    assert "--width_multiplier=0.3" in message


def test_grouping_mismatch_is_a_shape_error(state_dict):
    # Same widths and input range, but groups 1 everywhere: conv2 needs twice the inputs.
    tensors = dict(state_dict)
    tensors["backbone.conv2.0.weight"] = np.zeros((76, 28, 5, 5), np.float32)
    message = _import_error(_model(), tensors)
    assert "backbone.conv2.0.weight has shape (76, 28, 5, 5)" in message
    assert "conv2/kernel expects (5, 5, 14, 76)" in message


def test_non_finite_tensor_is_named(state_dict):
    tensors = dict(state_dict)
    tensors["backbone.conv4.1.weight"] = tensors["backbone.conv4.1.weight"].copy()
    tensors["backbone.conv4.1.weight"][5] = np.nan
    assert "tensor backbone.conv4.1.weight contains NaN or Inf" in _import_error(_model(),
                                                                                tensors)


def test_wrong_input_range_is_refused(state_dict):
    message = _import_error(_model("--backbone=memtrack_alexnet"), state_dict)
    assert "0-255" in message and "siamfc_alexnet" in message


def test_failed_import_assigns_nothing(state_dict):
    model = _model()
    before = [v.numpy().copy() for v in model.weights]
    tensors = dict(state_dict)
    del tensors["backbone.conv5.0.bias"]
    _import_error(model, tensors)
    for old, variable in zip(before, model.weights):
        np.testing.assert_array_equal(old, variable.numpy())


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        weights_lib.load_state_dict(str(tmp_path / "nothere.npz"))
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip archive")
    with pytest.raises(weights_lib.WeightImportError, match="corrupt.npz"):
        weights_lib.load_state_dict(str(corrupt))
    unknown = tmp_path / "weights.h5"
    unknown.write_bytes(b"")
    with pytest.raises(weights_lib.WeightImportError, match="unknown weights format"):
        weights_lib.load_state_dict(str(unknown))


def test_pth_without_torch_says_so():
    path = require_shared("weights", "fdsiamfc30", "FDSiamfc_30.pth")
    try:
        import torch  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        with pytest.raises(weights_lib.WeightImportError, match="needs PyTorch"):
            weights_lib.load_state_dict(str(path))
    else:
        pytest.skip("PyTorch is installed; test_pth_equals_npz covers the .pth branch")


def test_pth_equals_npz(state_dict):
    pytest.importorskip("torch")
    path = require_shared("weights", "fdsiamfc30", "FDSiamfc_30.pth")
    tensors = weights_lib.load_state_dict(str(path))
    floats = {k for k in tensors if not k.endswith("num_batches_tracked")}
    assert floats == set(state_dict)
    for name in floats:
        np.testing.assert_array_equal(tensors[name], state_dict[name])


def test_run_folder_round_trip(tmp_path, imported_model):
    output = tmp_path / "run"
    checkpoint = weights_lib.write_run_folder(imported_model, str(output), _flag_values(),
                                              metadata={"weights": "FD.npz"})
    assert tf.train.latest_checkpoint(str(output)) == checkpoint
    assert sorted(os.listdir(tmp_path)) == ["run"]  # no staging folder left behind
    assert json.loads((output / "import.json").read_text()) == {"weights": "FD.npz"}
    restored, run_flags = load_model(str(output))
    assert restored.model_config == imported_model.model_config
    assert run_flags["scale_step"].value == config_lib.TrackConfig().scale_step  # flags.txt
    images = np.random.default_rng(0).uniform(size=(2, 127, 127, 3)).astype(np.float32)
    np.testing.assert_array_equal(restored.encode(images).numpy(),
                                  imported_model.encode(images).numpy())
    np.testing.assert_array_equal(restored.response_head.bias.numpy(), 0.0)


def test_run_folder_refuses_to_clobber_and_checks_flags(tmp_path, imported_model):
    output = tmp_path / "run"
    output.mkdir()
    (output / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match=r"not empty \(pass --overwrite to replace it\)"):
        weights_lib.write_run_folder(imported_model, str(output), _flag_values())
    assert (output / "keep.txt").exists()
    with pytest.raises(ValueError, match="would not rebuild"):
        weights_lib.write_run_folder(imported_model, str(tmp_path / "other"),
                                     _flag_values("--width_multiplier=0.5"))
    weights_lib.write_run_folder(imported_model, str(output), _flag_values(), overwrite=True)
    assert not (output / "keep.txt").exists() and tf.train.latest_checkpoint(str(output))
    assert sorted(os.listdir(tmp_path)) == ["run"]


def _run_tool(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "tools/import_weights.py", *args], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def test_cli_imports_with_the_experiment_flagfile(tmp_path, npz_path, imported_model):
    output = tmp_path / "fdsiamfc30"
    result = _run_tool("--flagfile=experiments/siamfc_fdsiamfc30.flags", f"--weights={npz_path}",
                       f"--output={output}")
    assert result.returncode == 0, result.stderr
    assert "imported 26 tensors" in result.stdout
    restored, run_flags = load_model(str(output))
    assert restored.model_config.channels == FDSIAMFC30_CHANNELS
    assert not restored.model_config.use_memory
    assert run_flags["scale_step"].value == 1.0375 and not run_flags["official_quirks"].value
    images = np.random.default_rng(1).uniform(size=(1, 127, 127, 3)).astype(np.float32)
    np.testing.assert_array_equal(restored.encode(images).numpy(),
                                  imported_model.encode(images).numpy())


def test_cli_mismatched_architecture_fails_cleanly(tmp_path, npz_path):
    output = tmp_path / "bad"
    result = _run_tool("--flagfile=experiments/siamfc_fdsiamfc30.flags",
                       "--width_multiplier=0.5", f"--weights={npz_path}", f"--output={output}")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "backbone.conv1.0.weight has shape (28, 3, 11, 11)" in result.stderr
    assert not output.exists()


def _experiment_configs(monkeypatch):
    """Model and track configs parsed from the experiment flagfile (as the tools do)."""
    monkeypatch.chdir(REPO_ROOT)  # the flagfile includes experiments/paper.flags by relative path
    flag_values = flags.FlagValues()
    memnet_flags.define_flags(flag_values)
    flag_values(["test", "--flagfile=experiments/siamfc_fdsiamfc30.flags"])
    return (config_lib.model_config_from_flags(flag_values),
            config_lib.track_config_from_flags(flag_values))


def test_experiment_flagfile_is_the_authors_tracker(monkeypatch):
    model_config, track_config = _experiment_configs(monkeypatch)
    assert model_config.channels == FDSIAMFC30_CHANNELS
    assert (model_config.backbone, model_config.bn_epsilon, model_config.response_head,
            model_config.use_memory) == ("siamfc_alexnet", BN_EPSILON, "scale", False)
    # The weights README's tracking hyper-parameters.
    assert (track_config.num_scales, track_config.scale_step, track_config.scale_penalty,
            track_config.window_influence, track_config.scale_damping, track_config.context,
            track_config.upsample_factor) == (3, 1.0375, 0.9745, 0.176, 0.59, 0.5, 16)
    assert not track_config.official_quirks


def _first_frames(name: str, count: int):
    from memnet_tf.eval.datasets import load_dataset, load_frame  # pylint: disable=import-outside-toplevel

    root = require_shared("data", "otb_mini")
    sequence = next(s for s in load_dataset("otb100", str(root)) if s.name == name)
    frames = [load_frame(path) for path in sequence.image_files[:count]]
    return frames, sequence.ground_truth[:count]


@pytest.mark.slow
def test_siamfc_mode_tracks_real_video(monkeypatch, state_dict):
    from memnet_tf.eval import metrics  # pylint: disable=import-outside-toplevel
    from memnet_tf.tracking.tracker import MemTracker  # pylint: disable=import-outside-toplevel

    model_config, track_config = _experiment_configs(monkeypatch)
    model = build_model(model_config)
    weights_lib.import_siamfc_weights(model, state_dict)
    frames, truth = _first_frames("Crossing", 40)
    tracker = MemTracker(model, track_config)
    tracker.init(frames[0], truth[0])
    boxes = np.array([truth[0]] + [tracker.update(frame) for frame in frames[1:]])
    ours = metrics.iou(boxes[1:], truth[1:])
    static = metrics.iou(np.repeat(truth[:1], len(truth) - 1, axis=0), truth[1:])
    # A small pedestrian walking across the frame: the static box loses it within frames.
    assert ours.mean() > 0.6, ours
    assert ours.mean() > static.mean() + 0.3
    assert ours.min() > 0.3  # never lost, not just good on average
