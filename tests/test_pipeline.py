"""Tests of `make_dataset`: shapes, values, seeding, both sources, skips and clear errors."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from data_fixtures import REPO_ROOT, tiny_configs
from memnet_tf.config import ModelConfig
from memnet_tf.data import building, labels, pipeline, synthetic, tfrecord
from memnet_tf.data.patches import PatchGeometry, crop_patch, encode_jpeg

T, B, E, S, R, P = 3, 2, 127, 255, 17, 271


def _batches(dataset, count):
    return [tf.nest.map_structure(lambda x: x.numpy(), batch) for batch in dataset.take(count)]


def _assert_equal_batches(a, b):
    for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
        np.testing.assert_array_equal(x, y)


def test_synthetic_train_shapes_ranges_and_targets():
    data_cfg, model_cfg = tiny_configs(T, B)
    dataset = pipeline.make_dataset(data_cfg, model_cfg, "train", seed=7)
    features, targets = dataset.element_spec
    assert features["exemplar"].shape == (B, T, E, E, 3)
    assert features["search"].shape == (B, T, S, S, 3)
    assert targets["label"].shape == (B, T, R, R) and targets["weight"].shape == (B, T, R, R)
    assert targets["search_box"].shape == (B, T, 4)
    assert all(spec.dtype == tf.float32 for spec in tf.nest.flatten(dataset.element_spec))
    for features, targets in _batches(dataset, 2):
        for images in features.values():
            assert images.min() >= 0.0 and images.max() <= 1.0 and images.std() > 0.05
        box = targets["search_box"]
        centre = (box[..., :2] + box[..., 2:]) / 2
        # Patches centre the target; search crops move it by at most 4 px (x 1.05 stretch).
        assert np.all(np.abs(centre - (S - 1) / 2) < 5)
        label, weight = labels.iou_labels(box, R)
        np.testing.assert_array_equal(targets["label"], label.numpy())
        np.testing.assert_allclose(targets["weight"], weight.numpy(), rtol=1e-6)
        np.testing.assert_allclose(targets["weight"].sum(axis=(-2, -1)), 1.0, rtol=1e-5)


def test_same_seed_same_batches_other_seed_other_batches():
    data_cfg, model_cfg = tiny_configs(T, B)
    first = _batches(pipeline.make_dataset(data_cfg, model_cfg, "train", seed=3), 2)
    again = _batches(pipeline.make_dataset(data_cfg, model_cfg, "train", seed=3), 2)
    other = _batches(pipeline.make_dataset(data_cfg, model_cfg, "train", seed=4), 1)
    _assert_equal_batches(first, again)
    assert not np.allclose(first[0][0]["search"], other[0][0]["search"])


def _train_batch_with(**write_changes):
    """The first train batch without and with `write_changes` to the DataConfig (same seed),
    after checking that the change reaches only the written exemplars of steps >= 1: searches,
    targets, step 0 and the val split are the clean ones. Returns (clean, changed, targets)."""
    data_cfg, model_cfg = tiny_configs(T, B)
    changed_cfg = dataclasses.replace(data_cfg, **write_changes)
    (clean, clean_targets), = _batches(pipeline.make_dataset(data_cfg, model_cfg, "train",
                                                             seed=3), 1)
    (features, targets), = _batches(pipeline.make_dataset(changed_cfg, model_cfg, "train",
                                                          seed=3), 1)
    _assert_equal_batches((clean["search"], clean_targets), (features["search"], targets))
    np.testing.assert_array_equal(features["exemplar"][:, 0], clean["exemplar"][:, 0])
    _assert_equal_batches(_batches(pipeline.make_dataset(changed_cfg, model_cfg, "val"), 1),
                          _batches(pipeline.make_dataset(data_cfg, model_cfg, "val"), 1))
    return clean, features, targets


def test_corrupted_writes_reach_the_train_exemplars_only():
    clean, features, _ = _train_batch_with(corrupt_write_prob=1.0)
    # B = 2: with q = 1 each clip writes the other clip's exemplar from step 1 on.
    np.testing.assert_array_equal(features["exemplar"][:, 1:], clean["exemplar"][::-1, 1:])


def test_shifted_writes_are_crops_of_the_previous_search_at_wrong_boxes_in_train_only():
    _, features, targets = _train_batch_with(shifted_write_prob=1.0)
    for b in range(B):
        for t in range(1, T):
            # The 127-px crop of frame f_t's search crop (step t - 1) at an 8-px grid position
            # >= 4 positions (32 px) from the target's.
            centre = (targets["search_box"][b, t - 1, :2] + targets["search_box"][b, t - 1, 2:]) / 2
            target = (centre - (E - 1) / 2) / 8
            match = [(y, x) for y in range(17) for x in range(17) if np.array_equal(
                features["exemplar"][b, t], features["search"][b, t - 1, 8 * y:8 * y + E,
                                                               8 * x:8 * x + E])]
            assert len(match) == 1, (b, t)
            y, x = match[0]
            assert max(abs(x - target[0]), abs(y - target[1])) >= 4, (b, t, match, target)
    # --shifted_write_burst reaches the image pipeline: q = 1, K = 1 changes one step per clip.
    clean, bursts, _ = _train_batch_with(shifted_write_prob=1.0, shifted_write_burst=1)
    changed = np.any(bursts["exemplar"] != clean["exemplar"], axis=(2, 3, 4))
    assert not changed[:, 0].any() and (changed.sum(axis=1) == 1).all(), changed


def test_a_window_of_search_features_is_the_features_of_that_pixel_window():
    """Why `shifted_writes` may cut wrong exemplars from cached search features: the backbone has
    no padding, so cell k of its search features sees exactly the pixels 8k .. 8k + 126."""
    from memnet_tf.models.backbone import build_backbone

    backbone = build_backbone(dataclasses.replace(ModelConfig(), width_multiplier=0.25))
    search = tf.random.stateless_uniform([1, S, S, 3], seed=[4, 2])
    features = backbone(search, training=False).numpy()
    assert features.shape[1:3] == (22, 22)
    for y, x in [(0, 0), (3, 11), (16, 16)]:
        window = backbone(search[:, 8 * y:8 * y + E, 8 * x:8 * x + E], training=False).numpy()
        np.testing.assert_allclose(window, features[:, y:y + 6, x:x + 6], rtol=1e-4, atol=1e-5)


def test_make_example_pairs_frames_and_keeps_z0_clean():
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 256, size=(T + 1, P, P, 3)).astype(np.uint8)
    boxes = np.tile([[100.0, 110.0, 170.0, 160.0]], (T + 1, 1)).astype(np.float32)
    boxes[:, 0] += np.arange(T + 1)  # tell the frames' boxes apart
    geometry = PatchGeometry()
    key = tf.constant([5, 6], tf.int64)
    data_cfg, _ = tiny_configs(T, B)
    still = dataclasses.replace(data_cfg, exemplar_stretch=0.0, exemplar_shift=0.0,
                                search_stretch=0.0, search_shift=0.0)
    features, targets = pipeline.make_example(tf.constant(patches), tf.constant(boxes), key,
                                              geometry, still)
    z, x = (P - E) // 2, (P - S) // 2
    # Step t: exemplar of frame t, search crop of frame t + 1.
    np.testing.assert_allclose(features["exemplar"].numpy(),
                               patches[:T, z:z + E, z:z + E] / 255.0, atol=1e-4)
    np.testing.assert_allclose(features["search"].numpy(),
                               patches[1:, x:x + S, x:x + S] / 255.0, atol=1e-4)
    np.testing.assert_allclose(targets["search_box"].numpy(), boxes[1:] - x, atol=1e-4)
    # With augmentation only z_0 stays the exact centre crop.
    features, _ = pipeline.make_example(tf.constant(patches), tf.constant(boxes), key,
                                        geometry, data_cfg)
    np.testing.assert_array_equal(features["exemplar"].numpy()[0],
                                  patches[0, z:z + E, z:z + E] / np.float32(255.0))
    assert not np.allclose(features["exemplar"].numpy()[1:],
                           patches[1:T, z:z + E, z:z + E] / 255.0, atol=1e-3)


def test_synthetic_val_is_a_finite_repeatable_pass():
    data_cfg, model_cfg = tiny_configs(T, B, num_val_sequences=5)
    dataset = pipeline.make_dataset(data_cfg, model_cfg, "val", seed=1)
    first, second = _batches(dataset, -1), _batches(dataset, -1)
    assert len(first) == 5 // B
    _assert_equal_batches(first, second)
    with pytest.raises(ValueError, match="num_val_sequences=1 is smaller than the batch size"):
        pipeline.make_dataset(tiny_configs(T, B, num_val_sequences=1)[0], model_cfg, "val")


def test_other_crop_sizes():
    data_cfg, _ = tiny_configs(2, 1)
    model_cfg = ModelConfig(exemplar_size=95, search_size=191)
    features, targets = next(iter(pipeline.make_dataset(data_cfg, model_cfg, "train", seed=0)))
    r = model_cfg.response_size
    assert features["exemplar"].shape == (1, 2, 95, 95, 3)
    assert features["search"].shape == (1, 2, 191, 191, 3)
    assert targets["label"].shape == (1, 2, r, r)
    box = targets["search_box"].numpy()
    assert np.all(np.abs((box[..., :2] + box[..., 2:]) / 2 - 95) < 5)


def test_bad_settings_are_clear_errors():
    data_cfg, model_cfg = tiny_configs(T, B, synthetic_sequence_length=4)
    with pytest.raises(ValueError, match="synthetic_sequence_length=4 is too short"):
        pipeline.make_dataset(data_cfg, model_cfg, "train")
    with pytest.raises(ValueError, match="split='test'"):
        pipeline.make_dataset(tiny_configs()[0], model_cfg, "test")


# ----------------------------------------------------------------------------------------------
# TFRecords


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    """train and val shards built from 5 synthetic OTB-layout sequences of 8 frames."""
    root = tmp_path_factory.mktemp("data")
    synthetic.write_otb_sequences(str(root / "otb"), 5, seed=2, frame_size=96, length=8)
    for split, shards in (("train", 2), ("val", 1)):
        building.build_tfrecords("otb", str(root / "otb"), str(root / "tfr"), split=split,
                                 num_shards=shards, min_frames=5, progress_stream=io.StringIO())
    return str(root / "tfr")


def _tfrecord_configs(data_dir, time_steps=T, **overrides):
    return tiny_configs(time_steps, B, dataset="tfrecord", data_dir=data_dir, **overrides)


def test_tfrecord_train_and_val(shard_dir):
    data_cfg, model_cfg = _tfrecord_configs(shard_dir)
    train = pipeline.make_dataset(data_cfg, model_cfg, "train", seed=5)
    batches = _batches(train, 4)  # more clips than tracks: the stream repeats
    for features, targets in batches:
        assert features["search"].shape == (B, T, S, S, 3)
        assert np.all(np.abs((targets["search_box"][..., :2] + targets["search_box"][..., 2:])
                             / 2 - (S - 1) / 2) < 5)
    _assert_equal_batches(batches, _batches(pipeline.make_dataset(data_cfg, model_cfg, "train",
                                                                  seed=5), 4))
    val = pipeline.make_dataset(data_cfg, model_cfg, "val", seed=5)
    first = _batches(val, -1)
    assert len(first) == 5 // B
    _assert_equal_batches(first, _batches(val, -1))


@pytest.mark.parametrize("source", ["synthetic", "tfrecord"])
def test_max_frame_gap_reaches_the_clip_sampler(source, shard_dir, monkeypatch):
    calls = []
    train_frames, val_frames = pipeline.sampling.sample_train_frames, \
        pipeline.sampling.sample_val_frames

    def spy_train(num_frames, count, rng, max_gap=0):
        calls.append(("train", max_gap))
        return train_frames(num_frames, count, rng, max_gap)

    def spy_val(num_frames, count, max_gap=0):
        calls.append(("val", max_gap))
        return val_frames(num_frames, count, max_gap)

    monkeypatch.setattr(pipeline.sampling, "sample_train_frames", spy_train)
    monkeypatch.setattr(pipeline.sampling, "sample_val_frames", spy_val)
    if source == "tfrecord":
        data_cfg, model_cfg = _tfrecord_configs(shard_dir)
    else:
        data_cfg, model_cfg = tiny_configs()[:2]
    data_cfg = dataclasses.replace(data_cfg, max_frame_gap=2)
    _batches(pipeline.make_dataset(data_cfg, model_cfg, "train", seed=5), 1)
    _batches(pipeline.make_dataset(data_cfg, model_cfg, "val", seed=5), 1)
    assert ("train", 2) in calls and ("val", 2) in calls
    assert all(gap == 2 for _, gap in calls)


def test_tfrecord_folder_errors(shard_dir, tmp_path):
    model_cfg = ModelConfig()
    with pytest.raises(FileNotFoundError, match="folder not found"):
        pipeline.make_dataset(_tfrecord_configs(str(tmp_path / "none"))[0], model_cfg, "train")
    with pytest.raises(FileNotFoundError, match="no 'train-\\*.tfrecord' shards"):
        pipeline.make_dataset(_tfrecord_configs(str(tmp_path))[0], model_cfg, "train")
    with pytest.raises(ValueError, match="no usable train track: all 5 tracks have fewer than "
                                         "12 frames"):
        pipeline.make_dataset(_tfrecord_configs(shard_dir, time_steps=10)[0], model_cfg,
                              "train")
    with pytest.raises(ValueError, match="shards hold 271 px patches .* model needs 259"):
        pipeline.make_dataset(_tfrecord_configs(shard_dir, patch_margin=2)[0], model_cfg,
                              "train")


def _write_shard(folder, split, tracks):
    """Writes tracks [(name, jpegs, boxes)] as one shard with a manifest; returns its path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, tfrecord.shard_name(split, 0, 1))
    with tf.io.TFRecordWriter(path) as writer:
        for name, jpegs, boxes in tracks:
            writer.write(tfrecord.encode_track(name, jpegs, boxes, P, E))
    tfrecord.write_manifest(folder, split, {
        "split": split, "patch_size": P, "exemplar_size": E,
        "shards": [{"file": os.path.basename(path),
                    "tracks": [[name, len(jpegs)] for name, jpegs, _ in tracks]}]})
    return path


def _track(seed, frames=6):
    video = synthetic.SyntheticVideo(seed, 0, 96, frames)
    jpegs, boxes = [], []
    for k in range(frames):
        patch, box = crop_patch(video.render(k), video.boxes[k], PatchGeometry())
        jpegs.append(encode_jpeg(patch))
        boxes.append(box)
    return f"track{seed}", jpegs, np.stack(boxes)


def test_corrupt_jpeg_is_skipped_and_counted(tmp_path):
    good_a, bad, good_b = _track(1), _track(2), _track(3)
    bad = (bad[0], [jpeg[:len(jpeg) // 3] for jpeg in bad[1]], bad[2])
    _write_shard(str(tmp_path), "val", [good_a, bad, good_b])
    before = pipeline.skipped_samples().get("corrupt JPEG patch", 0)
    data_cfg, model_cfg = _tfrecord_configs(str(tmp_path))
    batches = _batches(pipeline.make_dataset(data_cfg, model_cfg, "val"), -1)
    assert len(batches) == 1  # the two good tracks
    assert pipeline.skipped_samples()["corrupt JPEG patch"] == before + 1


def test_corrupt_record_is_counted_and_the_run_goes_on(tmp_path):
    path = _write_shard(str(tmp_path), "val", [_track(4), _track(5), _track(6), _track(7)])
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF  # inside the third record
    with open(path, "wb") as f:
        f.write(bytes(data))
    reason = "record unreadable (corrupt shard)"
    before = pipeline.skipped_samples().get(reason, 0)
    data_cfg, model_cfg = _tfrecord_configs(str(tmp_path))
    batches = _batches(pipeline.make_dataset(data_cfg, model_cfg, "val"), -1)
    assert len(batches) == 1  # the two records before the corrupt one
    assert pipeline.skipped_samples()[reason] == before + 2


def test_process_exits_while_an_iterator_is_alive(tmp_path):
    # A crash with a live iterator used to hang the interpreter at exit (Python stages in flight).
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        from data_fixtures import tiny_configs
        from memnet_tf.data import pipeline
        iterator = iter(pipeline.make_dataset(*tiny_configs(), "train", seed=1))
        next(iterator)
        raise RuntimeError("simulated crash")
    """ % str(REPO_ROOT / "tests"))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=180, cwd=str(REPO_ROOT))
    assert run.returncode == 1 and "simulated crash" in run.stderr
