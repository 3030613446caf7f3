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


@pytest.mark.parametrize("num_frames,count,max_gap", [(300, 17, 1), (300, 17, 3), (60, 17, 3),
                                                      (18, 17, 5), (40, 5, 2)])
def test_train_frames_with_max_gap_keep_every_gap_in_range(num_frames, count, max_gap):
    rng = np.random.default_rng(num_frames + max_gap)
    # A short track falls back to the largest gap that fits (here 60 frames: (60 - 2) // 16 = 3).
    limit = min(max_gap, (num_frames - 2) // (count - 1))
    starts, gaps = [], []
    for _ in range(500):
        frames = sampling.sample_train_frames(num_frames, count, rng, max_gap=max_gap)
        assert frames.shape == (count,) and frames.dtype == np.int64
        assert frames[0] >= 0 and frames[-1] <= num_frames - 2
        gaps.extend(np.diff(frames))
        starts.append(frames[0])
    assert min(gaps) >= 1 and max(gaps) <= limit
    # Every gap value is drawn (uniform in 1..limit), and the clip moves over the track.
    assert set(gaps) == set(range(1, limit + 1))
    if num_frames - 1 - count * limit > 10:
        assert max(starts) - min(starts) > (num_frames - count * limit) // 2


def test_train_frames_with_gap_one_are_consecutive_and_start_uniformly():
    rng = np.random.default_rng(7)
    num_frames, count, draws = 25, 5, 4000
    starts = np.zeros(num_frames, np.int64)
    for _ in range(draws):
        frames = sampling.sample_train_frames(num_frames, count, rng, max_gap=1)
        np.testing.assert_array_equal(frames, frames[0] + np.arange(count))
        starts[frames[0]] += 1
    # Starts 0 .. 19 (the window of 5 ends at frame 23 at most): each with probability 1/20.
    assert starts[20:].sum() == 0
    expected = draws / 20
    assert np.all(np.abs(starts[:20] - expected) < 5 * np.sqrt(expected))


def test_max_gap_zero_is_the_official_sampling_and_negative_is_an_error():
    a = sampling.sample_train_frames(100, 17, np.random.default_rng(3))
    b = sampling.sample_train_frames(100, 17, np.random.default_rng(3), max_gap=0)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="max_gap=-1"):
        sampling.sample_train_frames(100, 17, np.random.default_rng(3), max_gap=-1)
    with pytest.raises(ValueError, match="max_gap=-2"):
        sampling.sample_val_frames(100, 17, max_gap=-2)


@pytest.mark.parametrize("num_frames,count,max_gap,expected", [
    (100, 5, 3, [0, 3, 6, 9, 12]),
    (10, 5, 3, [0, 2, 4, 6, 8]),       # 3 * 4 > 9: the largest gap that fits is 2
    (4, 5, 2, [0, 0, 1, 2, 3]),        # shorter than the clip: the linspace rule
])
def test_val_frames_with_max_gap(num_frames, count, max_gap, expected):
    np.testing.assert_array_equal(sampling.sample_val_frames(num_frames, count, max_gap),
                                  expected)
