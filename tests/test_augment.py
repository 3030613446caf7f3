"""Tests of the stretch/translate augmentation (spec 7.3): geometry, image/box agreement, seeds."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from memnet_tf.data import augment

P, S, E = 271, 255, 127


def _random_patches(num, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(num, P, P, 3)).astype(np.uint8)


@pytest.mark.parametrize("out_size", [S, E])
def test_unaugmented_crop_equals_the_centre_crop(out_size):
    patches = _random_patches(3)
    crops, boxes = augment.random_crops(tf.constant(patches), tf.constant([1, 2]), out_size,
                                        max_stretch=0.0, max_shift=0.0,
                                        boxes=tf.constant([[100.0, 110.0, 170.0, 160.0]] * 3))
    offset = (P - out_size) // 2
    expected = patches[:, offset:offset + out_size, offset:offset + out_size] / 255.0
    # crop_and_resize samples at y * (P - 1) from normalised float32 coordinates: exact pixels
    # up to float rounding (1e-4 is 0.03 grey levels).
    np.testing.assert_allclose(crops.numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(augment.centre_crop(tf.constant(patches), out_size).numpy(),
                               expected, atol=1e-7)
    np.testing.assert_allclose(boxes.numpy(), [[100 - offset, 110 - offset, 170 - offset,
                                                160 - offset]] * 3, atol=1e-4)


def test_windows_follow_the_official_formula():
    rng = np.random.default_rng(0)
    uniforms = rng.uniform(-1, 1, size=(50, 4))
    uniforms[:4] = [[0, 0, 0, 0], [1, 1, 1, 1], [-1, -1, -1, -1], [1, -1, -1, 1]]
    for out_size, stretch, shift in [(S, 0.05, 4.0), (E, 0.1, 8.0)]:
        windows = augment.stretch_translate_windows(uniforms, out_size, P, stretch, shift).numpy()
        for u, (y0, x0, side_h, side_w) in zip(uniforms, windows):
            for axis, (start, side) in enumerate([(y0, side_h), (x0, side_w)]):
                ref_side = np.round(min((1 + stretch * u[axis]) * out_size, P))
                ref_range = min(shift, (P - ref_side) / 2)
                ref_start = (P - ref_side) / 2 + ref_range * u[2 + axis]
                assert side == pytest.approx(ref_side)
                assert start == pytest.approx(ref_start, abs=1e-4)
                assert start >= -1e-4 and start + side <= P + 1e-4  # stays inside the patch


def test_box_transform_matches_the_white_region_of_the_image():
    # A white rectangle on black: after any stretch/shift, the white pixels of the crop must lie
    # where the transformed box says.
    num = 24
    patches = np.zeros((num, P, P, 3), np.uint8)
    rng = np.random.default_rng(3)
    boxes = []
    for i in range(num):
        w, h = rng.integers(30, 150, size=2)
        x1, y1 = rng.integers(20, P - 20 - w), rng.integers(20, P - 20 - h)
        patches[i, y1:y1 + h, x1:x1 + w] = 255
        boxes.append([x1, y1, x1 + w - 1, y1 + h - 1])
    boxes = np.asarray(boxes, np.float32)
    crops, new_boxes = augment.random_crops(tf.constant(patches), tf.constant([7, 9]), S,
                                            max_stretch=0.3, max_shift=8.0,
                                            boxes=tf.constant(boxes))
    crops, new_boxes = crops.numpy(), new_boxes.numpy()
    stretched = 0
    for crop, box, old in zip(crops, new_boxes, boxes):
        white = crop[..., 0] > 0.5
        ys, xs = np.nonzero(white)
        # Bilinear edges move the 0.5 level by at most half a source pixel (scaled); parts of
        # the box outside the crop are cut off.
        np.testing.assert_allclose([xs.min(), ys.min(), xs.max(), ys.max()],
                                   np.clip(box, 0, S - 1), atol=1.0)
        stretched += not np.allclose(box[2:] - box[:2], old[2:] - old[:2], atol=0.5)
    assert stretched > num // 2  # the test really exercised stretching


def test_same_seed_same_crops_other_seed_other_crops():
    patches = tf.constant(_random_patches(4, seed=5))
    a = augment.random_crops(patches, tf.constant([1, 2], tf.int64), E, 0.1, 8.0)
    b = augment.random_crops(patches, tf.constant([1, 2], tf.int64), E, 0.1, 8.0)
    c = augment.random_crops(patches, tf.constant([1, 3], tf.int64), E, 0.1, 8.0)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(a.numpy(), c.numpy())


def test_crops_stay_in_range_and_have_static_shapes():
    patches = tf.constant(_random_patches(3, seed=2))
    crops, boxes = augment.random_crops(patches, tf.constant([4, 4]), S, 0.05, 4.0,
                                        boxes=tf.zeros([3, 4]))
    assert crops.shape == (3, S, S, 3) and boxes.shape == (3, 4)
    assert crops.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(crops)) and float(tf.reduce_max(crops)) <= 1.0


# ---------------------------------------------------------------------------------------------
# Corrupted writes (--corrupt_write_prob).


def _source_clips(original, corrupted):
    """For each (b, t): the clip b' whose step t the corrupted batch holds (exact match)."""
    batch, steps = original.shape[:2]
    source = np.full((batch, steps), -1)
    for b in range(batch):
        for t in range(steps):
            matches = [c for c in range(batch) if np.array_equal(corrupted[b, t], original[c, t])]
            assert len(matches) == 1, (b, t, matches)
            source[b, t] = matches[0]
    return source


def test_corrupted_writes_come_from_other_clips_at_the_same_step_and_never_at_step_0():
    rng = np.random.default_rng(3)
    exemplars = rng.normal(size=(16, 40, 3, 3, 2)).astype(np.float32)
    out = augment.corrupt_writes(tf.constant(exemplars), 0.3, tf.constant([5, 9])).numpy()
    source = _source_clips(exemplars, out)
    own = np.arange(16)[:, None]
    np.testing.assert_array_equal(source[:, 0], np.arange(16))
    replaced = source[:, 1:] != own
    # 624 Bernoulli(0.3) draws: the fraction is within 5 standard deviations (0.018) of q.
    assert abs(replaced.mean() - 0.3) < 0.09, replaced.mean()
    # The other clip is uniform over the B - 1 others: all of them occur.
    offsets = ((source[:, 1:] - own) % 16)[replaced]
    assert set(offsets.tolist()) == set(range(1, 16))


def test_corrupted_writes_all_or_none_and_reproducible():
    rng = np.random.default_rng(4)
    exemplars = tf.constant(rng.normal(size=(4, 6, 2, 2, 3)), tf.float32)
    seed = tf.constant([1, 2])
    assert augment.corrupt_writes(exemplars, 0.0, seed) is exemplars
    every = _source_clips(exemplars.numpy(), augment.corrupt_writes(exemplars, 1.0, seed).numpy())
    assert np.all(every[:, 1:] != np.arange(4)[:, None]) and np.all(every[:, 0] == np.arange(4))
    again = augment.corrupt_writes(exemplars, 0.5, seed).numpy()
    np.testing.assert_array_equal(again, augment.corrupt_writes(exemplars, 0.5, seed).numpy())
    others = [augment.corrupt_writes(exemplars, 0.5, tf.constant([1, k])).numpy()
              for k in range(3, 8)]
    assert any(not np.array_equal(again, other) for other in others)
    single = exemplars[:1]  # a batch of one has no other clip to take a write from
    np.testing.assert_array_equal(augment.corrupt_writes(single, 1.0, seed).numpy(),
                                  single.numpy())


@pytest.mark.parametrize("probability", [-0.1, 1.5])
def test_corrupt_write_probability_outside_0_1_is_refused(probability):
    from memnet_tf.config import DataConfig

    with pytest.raises(ValueError, match="corrupt_write_prob"):
        augment.corrupt_writes(tf.zeros([2, 3, 1]), probability, tf.constant([0, 0]))
    with pytest.raises(ValueError, match="corrupt_write_prob"):
        DataConfig(corrupt_write_prob=probability)
