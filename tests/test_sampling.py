"""Tests of the clip frame sampling (spec 7.2)."""

from __future__ import annotations

import numpy as np
import pytest

from memnet_tf.data import sampling


@pytest.mark.parametrize("num_frames,count", [(18, 17), (60, 17), (300, 17), (7, 4)])
def test_train_frames_are_distinct_sorted_and_never_last(num_frames, count):
    rng = np.random.default_rng(num_frames)
    for _ in range(200):
        frames = sampling.sample_train_frames(num_frames, count, rng)
        assert frames.shape == (count,)
        assert np.all(np.diff(frames) > 0)  # sorted and distinct
        assert frames[0] >= 0 and frames[-1] <= num_frames - 2


def test_train_frames_are_uniform_over_all_but_last():
    num_frames, count, draws = 30, 5, 6000
    rng = np.random.default_rng(1)
    counts = np.zeros(num_frames, np.int64)
    for _ in range(draws):
        np.add.at(counts, sampling.sample_train_frames(num_frames, count, rng), 1)
    assert counts[-1] == 0
    # Each of the 29 usable frames is drawn with probability 5/29 per clip.
    expected = draws * count / (num_frames - 1)
    assert np.all(np.abs(counts[:-1] - expected) < 5 * np.sqrt(expected))


def test_train_frames_depend_only_on_the_generator_state():
    a = sampling.sample_train_frames(100, 17, np.random.default_rng([3, 4]))
    b = sampling.sample_train_frames(100, 17, np.random.default_rng([3, 4]))
    c = sampling.sample_train_frames(100, 17, np.random.default_rng([3, 5]))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_train_frames_too_short_track_is_a_clear_error():
    with pytest.raises(ValueError, match="10 frames has only 9 usable"):
        sampling.sample_train_frames(10, 17, np.random.default_rng(0))
    assert sampling.min_track_frames(16) == 18
    sampling.sample_train_frames(sampling.min_track_frames(16), 17, np.random.default_rng(0))


@pytest.mark.parametrize("num_frames,count", [(60, 17), (49, 49), (300, 49), (10, 17), (1, 3)])
def test_val_frames_match_the_linspace_loop(num_frames, count):
    frames = sampling.sample_val_frames(num_frames, count)
    reference = []
    for i in range(count):
        position = 0.0 if count == 1 else i * (num_frames - 1) / (count - 1)
        reference.append(int(np.floor(position + 1e-9)))
    np.testing.assert_array_equal(frames, reference)
    assert frames[0] == 0 and frames[-1] == num_frames - 1
    assert np.all(np.diff(frames) >= 0)


def test_val_frames_bad_input():
    with pytest.raises(ValueError, match="must be positive"):
        sampling.sample_val_frames(0, 5)
    with pytest.raises(ValueError, match="must be positive"):
        sampling.sample_val_frames(5, 0)
