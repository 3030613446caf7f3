"""Tests for memnet_tf.tracking.postprocess: bicubic kernel, scale choice, window, peak geometry."""

import math

import numpy as np
import pytest
import tensorflow as tf

from memnet_tf.tracking import postprocess as pp

R, FACTOR, STRIDE, SEARCH = 17, 16, 8, 255  # MemTrack response geometry
U = R * FACTOR
RNG_SEED = 3


def _keys(x, a=-0.75):
    """Keys cubic convolution kernel, written from its piecewise definition."""
    x = abs(x)
    if x <= 1:
        return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
    if x < 2:
        return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
    return 0.0


def _legacy_bicubic_loop(image, out_h, out_w):
    """TF1 resize_bicubic(align_corners=True), one output pixel at a time (16 taps each).

    The sample location and its 1/1024 quantisation use float32 arithmetic as in TF; the
    weights come straight from `_keys` in float64; out-of-range taps are clamped to the edge.
    """
    in_h, in_w = image.shape

    def axis_taps(out_loc, in_size, out_size):
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
        loc = np.float32(out_loc) * scale
        base = math.floor(loc)
        delta = round(float(np.float32(loc - np.float32(base)) * np.float32(1024))) / 1024
        return [(min(max(base + k, 0), in_size - 1), _keys(delta - k)) for k in (-1, 0, 1, 2)]

    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            for row, wy in axis_taps(i, in_h, out_h):
                for col, wx in axis_taps(j, in_w, out_w):
                    out[i, j] += wy * wx * image[row, col]
    return out


class TestBicubic:
    def test_resize_bicubic_still_exists(self):
        assert hasattr(tf.compat.v1.image, "resize_bicubic")

    @pytest.mark.parametrize("in_size, out_size", [(R, U), (5, 9), (4, 7), (6, 40)])
    def test_matches_tf1_resize_bicubic(self, in_size, out_size):
        rng = np.random.default_rng(RNG_SEED)
        maps = rng.normal(size=(3, in_size, in_size)).astype(np.float32)
        expected = tf.compat.v1.image.resize_bicubic(
            maps[..., None], [out_size, out_size], align_corners=True)[..., 0].numpy()
        m = pp.bicubic_upsample_matrix(in_size, out_size)
        np.testing.assert_allclose(np.einsum("ui,sij,vj->suv", m, maps, m), expected, atol=5e-6)

    def test_matches_explicit_keys_loop(self):
        image = np.random.default_rng(RNG_SEED).normal(size=(5, 6))
        rows, cols = pp.bicubic_upsample_matrix(5, 13), pp.bicubic_upsample_matrix(6, 11)
        np.testing.assert_allclose(rows @ image @ cols.T, _legacy_bicubic_loop(image, 13, 11),
                                   atol=2e-6)

    def test_constant_maps_are_kept(self):
        m = pp.bicubic_upsample_matrix(R, U)
        np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-6)  # float32 weights
        np.testing.assert_allclose(pp.upsample_responses(np.full((1, R, R), 2.5))[0], 2.5,
                                   atol=5e-6)

    def test_linear_maps_follow_the_keys_bias(self):
        # Keys' kernel reproduces a ramp exactly only for a = -1/2. Summing k * K(delta - k) over
        # the four taps gives delta + 2 (a + 1/2) delta (1 - delta) (2 delta - 1) for general a,
        # so with a = -0.75 an interior ramp is bent by up to 0.048 cells and is exact only at
        # delta in {0, 1/2}.
        m = pp.bicubic_upsample_matrix(R, U)
        slope, intercept = 0.3, -1.0
        ramp = slope * np.arange(R) + intercept
        locs = np.arange(U) * (np.float32(R - 1) / np.float32(U - 1))
        base = np.floor(locs)
        delta = np.rint((locs - base).astype(np.float32) * np.float32(1024)) / 1024
        bias = 2 * (-0.75 + 0.5) * delta * (1 - delta) * (2 * delta - 1)
        interior = (base >= 1) & (base + 2 <= R - 1)
        np.testing.assert_allclose((m @ ramp)[interior],
                                   slope * (base + delta + bias)[interior] + intercept, atol=1e-5)
        assert np.abs(bias).max() > 0.04  # the bias is real, not rounding
        # At the border the clamped tap keeps its weight, so the formula no longer holds there.
        predicted = slope * (base + delta + bias) + intercept
        border_error = (m @ ramp)[~interior] - predicted[~interior]
        assert np.abs(border_error).max() > 1e-3

    @pytest.mark.parametrize("height, width, factor", [(R, R, FACTOR), (5, 5, 2), (5, 6, 3)])
    def test_upsample_responses_match_tf1_resize_bicubic(self, height, width, factor):
        # Reference: TF's own legacy kernel on the whole batch, not the module's matrix.
        maps = np.random.default_rng(RNG_SEED).normal(size=(3, height, width)).astype(np.float32)
        up = pp.upsample_responses(maps, factor)
        assert up.shape == (3, height * factor, width * factor) and up.dtype == np.float32
        expected = tf.compat.v1.image.resize_bicubic(
            maps[..., None], [height * factor, width * factor], align_corners=True)[..., 0]
        np.testing.assert_allclose(up, expected.numpy(), atol=1e-5)

    def test_upsample_responses_keeps_float64(self):
        maps = np.random.default_rng(RNG_SEED).normal(size=(2, 5, 5))
        up = pp.upsample_responses(maps, 2)
        assert up.dtype == np.float64
        expected = tf.compat.v1.image.resize_bicubic(maps[..., None], [10, 10],
                                                     align_corners=True)[..., 0].numpy()
        np.testing.assert_allclose(up, expected, atol=1e-5)

    def test_upsample_rejects_bad_input(self):
        with pytest.raises(ValueError, match="NaN"):
            pp.upsample_responses(np.full((1, 3, 3), np.nan))
        with pytest.raises(ValueError, match="num_scales"):
            pp.upsample_responses(np.zeros((3, 3)))


def _random_with(shape, index, value):
    """Random map with one entry set to `value` (NaN, +-Inf)."""
    values = np.random.default_rng(RNG_SEED).normal(size=shape)
    values[index] = value
    return values


@pytest.mark.parametrize("function, args, match", [
    pytest.param(pp.select_scale, (_random_with((3, 6, 6), (2, 4, 1), np.nan), 0.97),
                 "select_scale: upsampled responses have NaN", id="select_scale-nan"),
    pytest.param(pp.select_scale, (np.ones((3, 6, 6)), 0.0), "scale_penalty=0.0",
                 id="select_scale-zero-penalty"),
    pytest.param(pp.select_scale, (np.ones((3, 6, 6)), -0.97), "scale_penalty=-0.97",
                 id="select_scale-negative-penalty"),
    pytest.param(pp.select_scale, (np.ones((6, 6)), 0.97), "select_scale: upsampled must be",
                 id="select_scale-2d"),
    pytest.param(pp.locate_peak, (_random_with((6, 6), (3, 2), np.nan), 0.15, pp.hann_window(6)),
                 "locate_peak: upsampled_map has NaN", id="locate_peak-nan"),
    pytest.param(pp.upsample_responses, (_random_with((2, 5, 5), (1, 3, 0), np.inf),),
                 "upsample_responses: responses have NaN or Inf", id="upsample-inf"),
    pytest.param(pp.upsample_responses, (_random_with((2, 5, 5), (0, 2, 4), -np.inf),),
                 "upsample_responses: responses have NaN or Inf", id="upsample-minus-inf"),
    pytest.param(pp.upsample_responses, (np.ones((1, 5, 5)), 0), "factor=0 must be >= 1",
                 id="upsample-factor-0"),
    pytest.param(pp.upsample_responses, (np.ones((1, 5, 5)), -2), "factor=-2 must be >= 1",
                 id="upsample-factor-negative"),
    pytest.param(pp.hann_window, (1,), "hann_window: size=1 must be >= 2", id="hann-1"),
    pytest.param(pp.hann_window, (0,), "hann_window: size=0 must be >= 2", id="hann-0"),
    pytest.param(pp.update_size, ([40.0, 20.0], 0.0, 0.6), "update_size: scale=0.0",
                 id="update_size-zero-scale"),
    pytest.param(pp.update_size, ([40.0, 20.0], -1.05, 0.6), "update_size: scale=-1.05",
                 id="update_size-negative-scale"),
    pytest.param(pp.update_size, ([40.0, 20.0], float("nan"), 0.6), "update_size: scale=nan",
                 id="update_size-nan-scale"),
    pytest.param(pp.peak_to_displacement, (7, 7, FACTOR, FACTOR, STRIDE, 100.0, SEARCH, False),
                 "response size 1 must be >= 2", id="displacement-response-size-1"),
    pytest.param(pp.peak_to_displacement, (0, 0, U, FACTOR, STRIDE, 100.0, 1, True),
                 "search_size=1", id="displacement-search-size-1"),
    pytest.param(pp.bicubic_upsample_matrix, (0, 9), "in_size=0", id="bicubic-in-0"),
    pytest.param(pp.bicubic_upsample_matrix, (5, 0), "out_size=0", id="bicubic-out-0"),
])
def test_bad_input_raises_naming_the_input(function, args, match):
    with pytest.raises(ValueError, match=match):
        function(*args)


class TestWindowAndScale:
    def test_hann_window_matches_cosine_formula(self):
        n = 10
        w1 = [0.5 - 0.5 * math.cos(2 * math.pi * k / (n - 1)) for k in range(n)]
        expected = np.outer(w1, w1) / np.sum(np.outer(w1, w1))
        np.testing.assert_allclose(pp.hann_window(n), expected, atol=1e-15)
        assert pp.hann_window(U).sum() == pytest.approx(1.0)

    @staticmethod
    def _select_scale_loop(maps, penalty):
        best, best_peak = None, -math.inf
        centre = len(maps) // 2
        for s, response in enumerate(maps):
            peak = max(v * (penalty if s != centre else 1.0) for v in response.ravel())
            if peak > best_peak:
                best, best_peak = s, peak
        return best

    def test_select_scale_matches_loop(self):
        rng = np.random.default_rng(RNG_SEED)
        for _ in range(20):
            maps = rng.normal(size=(3, 6, 6)) + rng.normal(size=(3, 1, 1))
            assert pp.select_scale(maps, 0.97) == self._select_scale_loop(maps, 0.97)

    def test_penalty_keeps_centre_for_positive_peaks(self):
        maps = np.zeros((3, 4, 4))
        maps[0, 1, 1], maps[1, 2, 2], maps[2, 0, 0] = 1.02, 1.0, 0.5
        assert pp.select_scale(maps, 0.97) == 1  # 1.02 * 0.97 = 0.9894 < 1.0

    def test_penalty_raises_negative_non_centre_peak(self):
        maps = np.full((3, 4, 4), -5.0)
        maps[0, 1, 1], maps[1, 2, 2], maps[2, 0, 0] = -1.02, -1.0, -3.0
        assert pp.select_scale(maps, 0.97) == 0  # -1.02 * 0.97 = -0.9894 > -1.0 (pitfall 15)

    def test_ties_go_to_lowest_index(self):
        assert pp.select_scale(np.ones((3, 4, 4)), 1.0) == 0


class TestLocatePeak:
    @staticmethod
    def _locate_loop(response, w, window):
        lo = min(response.ravel())
        total = sum(v - lo for v in response.ravel())
        best, where = -math.inf, None
        for y in range(response.shape[0]):
            for x in range(response.shape[1]):
                v = (1 - w) * (response[y, x] - lo) / total + w * window[y, x]
                if v > best:
                    best, where = v, (x, y)
        return where

    def test_matches_loop(self):
        rng = np.random.default_rng(RNG_SEED)
        window = pp.hann_window(12)
        for w in (0.0, 0.15, 0.5, 0.9):
            response = rng.normal(size=(12, 12))
            assert pp.locate_peak(response, w, window) == self._locate_loop(response, w, window)

    def test_window_moves_an_off_centre_peak(self):
        window = pp.hann_window(12)
        response = np.zeros((12, 12))
        response[5, 6] = 1.0     # near the centre
        response[0, 11] = 1.005  # slightly higher, but in the corner where the window is 0
        assert pp.locate_peak(response, 0.0, window) == (11, 0)
        assert pp.locate_peak(response, 0.15, window) == (6, 5)

    def test_first_occurrence_and_constant_map(self):
        response = np.zeros((6, 6))
        response[2, 4] = response[4, 1] = 1.0
        assert pp.locate_peak(response, 0.0, pp.hann_window(6)) == (4, 2)
        # A constant map leaves the window alone: its first maximum, at (2, 2) for size 6.
        assert pp.locate_peak(np.ones((6, 6)), 0.15, pp.hann_window(6)) == (2, 2)

    @pytest.mark.parametrize("gain, offset", [(3.7e-4, -2.5), (12.0, 40.0)])
    def test_peak_ignores_a_positive_affine_response_head(self, gain, offset):
        # At tracking time the BatchNorm response head is one map y = gain * x + offset (moving
        # statistics, gain = gamma / sqrt(var + eps) > 0 when trained): up-sampling keeps
        # constants and the min/sum normalisation removes gain and offset, so the head cannot
        # move (or hide a move of) the peak within a scale.
        rng = np.random.default_rng(RNG_SEED)
        window = pp.hann_window(U)
        for _ in range(5):
            raw = rng.normal(size=(1, R, R))
            peak = pp.locate_peak(pp.upsample_responses(raw, FACTOR)[0], 0.15, window)
            headed = pp.upsample_responses(gain * raw + offset, FACTOR)[0]
            assert pp.locate_peak(headed, 0.15, window) == peak

    def test_rejects_bad_input(self):
        with pytest.raises(ValueError, match="same 2-D shape"):
            pp.locate_peak(np.zeros((4, 4)), 0.1, np.zeros((5, 5)))
        with pytest.raises(ValueError, match="window_influence"):
            pp.locate_peak(np.zeros((4, 4)), 1.5, np.zeros((4, 4)))


class TestDisplacement:
    SIDE = 301.0

    def test_official_centre_and_steps(self):
        assert pp.peak_to_displacement(136, 136, U, FACTOR, STRIDE, self.SIDE, SEARCH,
                                       True) == (0.0, 0.0)
        for k in (-3, 1, 5):
            dx, dy = pp.peak_to_displacement(136 + FACTOR * k, 136 - FACTOR, U, FACTOR, STRIDE,
                                             self.SIDE, SEARCH, True)
            assert dx == pytest.approx(k * STRIDE * self.SIDE / SEARCH)
            assert dy == pytest.approx(-STRIDE * self.SIDE / SEARCH)
        # 8/16 crop pixels per up-sampled pixel.
        dx, _ = pp.peak_to_displacement(137, 136, U, FACTOR, STRIDE, SEARCH, SEARCH, True)
        assert dx == pytest.approx(0.5)

    def test_exact_centre_and_cell_steps(self):
        centre = (U - 1) / 2
        assert pp.peak_to_displacement(centre, centre, U, FACTOR, STRIDE, self.SIDE, SEARCH,
                                       False) == (0.0, 0.0)
        per_cell = (U - 1) / (R - 1)  # up-sampled pixels per response cell, 271 / 16
        for k in (-2, 1, 4):
            dx, dy = pp.peak_to_displacement(centre + k * per_cell, centre, U, FACTOR, STRIDE,
                                             self.SIDE, SEARCH, False)
            assert dx == pytest.approx(k * STRIDE * (self.SIDE - 1) / (SEARCH - 1))
            assert dy == pytest.approx(0.0)
        dx, _ = pp.peak_to_displacement(centre + 1, centre, U, FACTOR, STRIDE, SEARCH, SEARCH,
                                        False)
        assert dx == pytest.approx(8 * 16 / 271)

    @pytest.mark.parametrize("k, m", [(0, 0), (2, -1), (-3, 4)])
    def test_end_to_end_peak_k_cells_off_centre(self, k, m):
        response = np.full((1, R, R), -1.0)
        response[0, 8 + m, 8 + k] = 3.0
        up = pp.upsample_responses(response, FACTOR)[0]
        px, py = pp.locate_peak(up, 0.0, pp.hann_window(U))
        dx, dy = pp.peak_to_displacement(px, py, U, FACTOR, STRIDE, self.SIDE, SEARCH, False)
        frame_per_cell = STRIDE * (self.SIDE - 1) / (SEARCH - 1)
        half_pixel = 0.5 * (R - 1) / (U - 1) * frame_per_cell  # rounding to an up-sampled pixel
        assert abs(dx - k * frame_per_cell) <= half_pixel + 1e-9
        assert abs(dy - m * frame_per_cell) <= half_pixel + 1e-9

    def test_rejects_inconsistent_sizes(self):
        with pytest.raises(ValueError, match="multiple"):
            pp.peak_to_displacement(0, 0, 270, FACTOR, STRIDE, 100.0, SEARCH, True)
        with pytest.raises(ValueError, match="search_side_frame"):
            pp.peak_to_displacement(0, 0, U, FACTOR, STRIDE, 0.0, SEARCH, True)


class TestSizeAndCentre:
    def test_update_size(self):
        np.testing.assert_allclose(pp.update_size([40.0, 20.0], 1.05, 0.6),
                                   [0.4 * 40 + 0.6 * 42, 0.4 * 20 + 0.6 * 21])
        np.testing.assert_allclose(pp.update_size([40.0, 20.0], 1.05, 0.0), [40, 20])
        with pytest.raises(ValueError, match="damping"):
            pp.update_size([1.0, 1.0], 1.0, 1.5)

    def test_clamp_size(self):
        np.testing.assert_allclose(pp.clamp_size([1.0, 300.0], [10.0, 50.0], 0.2, 5.0), [2, 250])
        np.testing.assert_allclose(pp.clamp_size([12.0, 40.0], [10.0, 50.0], 0.2, 5.0), [12, 40])
        with pytest.raises(ValueError, match="min_scale"):
            pp.clamp_size([1.0, 1.0], [1.0, 1.0], 5.0, 0.2)

    def test_clamp_center(self):
        np.testing.assert_allclose(pp.clamp_center_to_frame([-3.0, 500.0], (320, 240)), [0, 240])
        np.testing.assert_allclose(pp.clamp_center_to_frame([30.0, 50.0], (320, 240)), [30, 50])
