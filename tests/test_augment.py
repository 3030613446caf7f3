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


# ---------------------------------------------------------------------------------------------
# Writes cut at a wrong box of the same frame (--shifted_write_prob).


def _window_positions(searches, written, original, cell, h):
    """For each (b, t): None if step t kept its exemplar, else the (y, x) grid position of the
    window of search t - 1 it holds (exact match; exactly one must match)."""
    batch, steps = original.shape[:2]
    positions = (searches.shape[2] - h) // cell + 1
    found = np.full((batch, steps), None, dtype=object)
    for b in range(batch):
        for t in range(steps):
            if np.array_equal(written[b, t], original[b, t]):
                continue
            assert t > 0, (b, t)
            matches = [(y, x) for y in range(positions) for x in range(positions)
                       if np.array_equal(written[b, t], searches[b, t - 1, cell * y:cell * y + h,
                                                                  cell * x:cell * x + h])]
            assert len(matches) == 1, (b, t, matches)
            found[b, t] = matches[0]
    return found


def test_shifted_writes_are_windows_of_the_previous_search_far_from_the_target():
    rng = np.random.default_rng(7)
    batch, steps, h, big, cell, stride = 6, 30, 3, 11, 1, 8  # 9 x 9 window positions
    exemplars = rng.normal(size=(batch, steps, h, h, 2)).astype(np.float32)
    searches = rng.normal(size=(batch, steps, big, big, 2)).astype(np.float32)
    # Target centres anywhere on the grid (in pixels: window k covers 8k .. 8k + 126).
    centre = 63.0 + stride * rng.uniform(0, 8, size=(batch, steps, 2))
    boxes = np.concatenate([centre - 20.0, centre + 20.0], -1).astype(np.float32)
    out = augment.shifted_writes(tf.constant(exemplars), tf.constant(searches),
                                 tf.constant(boxes), 0.4, tf.constant([3, 4]), cell,
                                 stride=stride, exemplar_pixels=127).numpy()
    found = _window_positions(searches, out, exemplars, cell, h)
    replaced = np.array([[position is not None for position in row] for row in found])
    assert not replaced[:, 0].any()
    # 174 Bernoulli(0.4) draws: within 5 standard deviations (0.037) of q.
    assert abs(replaced[:, 1:].mean() - 0.4) < 0.19, replaced.mean()
    # Each window is >= 32 px (4 positions) from the target of the frame it was cut from, in
    # x or in y.
    distances = []
    for b, t in zip(*np.nonzero(replaced)):
        target = (centre[b, t - 1] - 63.0) / stride  # (x, y) in positions
        y, x = found[b, t]
        distances.append(max(abs(x - target[0]), abs(y - target[1])))
    assert min(distances) >= 4.0 and max(distances) > 6.0, distances
    # Many different windows occur (uniform over the allowed positions, not a fixed offset).
    assert len({found[b, t] for b, t in zip(*np.nonzero(replaced))}) > 20


def test_shifted_writes_all_none_reproducible_and_image_cells():
    rng = np.random.default_rng(8)
    # Image crops, kept small: 4 elements per 8-px stride (cell = 4), 5 window positions per axis.
    h, big, cell = 8, 24, 4
    exemplars = tf.constant(rng.normal(size=(3, 5, h, h, 1)), tf.float32)
    searches = rng.normal(size=(3, 5, big, big, 1)).astype(np.float32)
    # Target centre 63 px: window (0, 0); only windows at x = 4 or y = 4 are 4 positions off.
    boxes = tf.constant(np.tile([[43.0, 43.0, 83.0, 83.0]], (3, 5, 1)), tf.float32)
    seed = tf.constant([1, 2])

    def shift(probability, seed=seed):
        return augment.shifted_writes(exemplars, tf.constant(searches), boxes, probability,
                                      seed, cell, stride=8, exemplar_pixels=127)

    assert shift(0.0) is exemplars
    every = _window_positions(searches, shift(1.0).numpy(), exemplars.numpy(), cell, h)
    assert all(position is not None for position in every[:, 1:].ravel())
    assert all(max(position) == 4 for position in every[:, 1:].ravel())
    assert len(set(every[:, 1:].ravel())) > 3
    np.testing.assert_array_equal(shift(0.5).numpy(), shift(0.5).numpy())
    assert any(not np.array_equal(shift(0.5).numpy(), shift(0.5, tf.constant([1, k])).numpy())
               for k in range(3, 8))


def test_shifted_writes_keep_the_exemplar_when_no_window_is_far_enough():
    # 3 x 3 positions, target in the middle: nothing is 4 positions away.
    exemplars = tf.constant(np.random.default_rng(9).normal(size=(2, 3, 2, 2, 1)), tf.float32)
    searches = tf.constant(np.random.default_rng(10).normal(size=(2, 3, 4, 4, 1)), tf.float32)
    boxes = tf.constant(np.tile([[51.0, 51.0, 91.0, 91.0]], (2, 3, 1)), tf.float32)
    out = augment.shifted_writes(exemplars, searches, boxes, 1.0, tf.constant([0, 1]), 1)
    np.testing.assert_array_equal(out.numpy(), exemplars.numpy())


@pytest.mark.parametrize("probability", [-0.1, 1.5])
def test_shifted_write_probability_outside_0_1_is_refused(probability):
    from memnet_tf.config import DataConfig

    with pytest.raises(ValueError, match="shifted_write_prob"):
        augment.shifted_writes(tf.zeros([1, 2, 1, 1, 1]), tf.zeros([1, 2, 3, 3, 1]),
                               tf.zeros([1, 2, 4]), probability, tf.constant([0, 0]), 1)
    with pytest.raises(ValueError, match="shifted_write_prob"):
        DataConfig(shifted_write_prob=probability)


@pytest.mark.parametrize("probability", [-0.1, 1.5])
def test_corrupt_write_probability_outside_0_1_is_refused(probability):
    from memnet_tf.config import DataConfig

    with pytest.raises(ValueError, match="corrupt_write_prob"):
        augment.corrupt_writes(tf.zeros([2, 3, 1]), probability, tf.constant([0, 0]))
    with pytest.raises(ValueError, match="corrupt_write_prob"):
        DataConfig(corrupt_write_prob=probability)


@pytest.mark.parametrize("burst, steps", [(3, 10), (8, 16), (20, 6)])
def test_shifted_write_bursts_are_runs_of_k_steps_in_a_fraction_q_of_clips(burst, steps):
    rng = np.random.default_rng(11)
    batch, h, big = 200, 2, 10  # 9 x 9 window positions
    exemplars = rng.normal(size=(batch, steps, h, h, 1)).astype(np.float32)
    searches = rng.normal(size=(batch, steps, big, big, 1)).astype(np.float32)
    boxes = np.tile([[43.0, 43.0, 83.0, 83.0]], (batch, steps, 1)).astype(np.float32)  # window 0
    out = augment.shifted_writes(tf.constant(exemplars), tf.constant(searches),
                                 tf.constant(boxes), 0.3, tf.constant([5, 6]), 1,
                                 burst=burst).numpy()
    found = _window_positions(searches, out, exemplars, 1, h)
    replaced = np.array([[position is not None for position in row] for row in found])
    length = min(burst, steps - 1)
    starts = []
    for row in replaced[replaced.any(axis=1)]:
        run = np.flatnonzero(row)
        assert len(run) == length and np.all(np.diff(run) == 1), run  # one run of K steps
        starts.append(run[0])
    # 200 Bernoulli(0.3) clips: within 5 standard deviations (0.16) of q.
    assert abs(len(starts) / batch - 0.3) < 0.16, len(starts)
    assert min(starts) >= 1 and max(starts) <= steps - length
    if steps - length > 1:
        assert len(set(starts)) > 1  # the run's start is drawn, not fixed
    # Every burst write is still a window far from the target.
    assert all(max(found[b, t]) >= 4 for b, t in zip(*np.nonzero(replaced)))


def test_negative_shifted_write_burst_is_refused():
    from memnet_tf.config import DataConfig

    with pytest.raises(ValueError, match="shifted_write_burst"):
        augment.shifted_writes(tf.zeros([1, 2, 1, 1, 1]), tf.zeros([1, 2, 3, 3, 1]),
                               tf.zeros([1, 2, 4]), 0.5, tf.constant([0, 0]), 1, burst=-1)
    with pytest.raises(ValueError, match="shifted_write_burst"):
        DataConfig(shifted_write_burst=-2)
