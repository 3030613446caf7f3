"""Tests for memnet_tf.geometry.crops: sizes, scale pyramid, the TF crop and its numpy reference."""

import math
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from memnet_tf.geometry import boxes, crops

H, W, OUT = 23, 31, 9  # tiny frame and crop; one place
RNG_SEED = 11


def _shared_data_dir() -> str:
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    shared = os.environ.get("MEMNET_SHARED_DIR", os.path.join(repo_root, "..", "shared"))
    return os.path.join(shared, "data")


def _random_image(seed=RNG_SEED, height=H, width=W):
    return np.random.default_rng(seed).random((height, width, 3)).astype(np.float32)


def _official_npad(center, sides, height, width):
    """npad of the official `_pad_frame`, in float32 with round-half-to-even (python's round)."""
    half = np.float32(max(sides)) / np.float32(2)
    cx, cy = np.float32(center[0]), np.float32(center[1])
    return max(0, -round(float(cx - half)), -round(float(cy - half)),
               round(float(cx + half)) - width, round(float(cy + half)) - height)


def _spec_grid(center, side, all_sides, out, height, width, quirks):
    """Frame coordinates sampled by one crop, per spec section 8 (ys, xs), each [out]."""
    npad = _official_npad(center, all_sides, height, width) if quirks else 0
    radius = (side - 1) / 2
    grids = []
    for c, size in ((center[1], height), (center[0], width)):
        shrink = (size + 2 * npad - 1) / (size + 2 * npad) if quirks else 1.0
        start = (npad + c - radius) * shrink - npad
        step = 2 * radius * shrink / (out - 1)
        grids.append(np.array([start + i * step for i in range(out)]))
    return grids


def _padded_bilinear_loop(image, ys, xs):
    """Bilinear samples of the frame extended with its mean colour (explicit loops)."""
    height, width = image.shape[:2]
    mean = image.astype(np.float64).mean(axis=(0, 1))

    def pixel(row, col):
        return image[row, col] if 0 <= row < height and 0 <= col < width else mean

    out = np.zeros((len(ys), len(xs), 3))
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            y0, x0 = math.floor(y), math.floor(x)
            fy, fx = y - y0, x - x0
            top = (1 - fx) * pixel(y0, x0) + fx * pixel(y0, x0 + 1)
            bottom = (1 - fx) * pixel(y0 + 1, x0) + fx * pixel(y0 + 1, x0 + 1)
            out[i, j] = (1 - fy) * top + fy * bottom
    return out


def _literal_official_crop(image, center, sides, out, quirks):
    """The official code path: materialise the padded frame, then tf.image.crop_and_resize."""
    height, width = image.shape[:2]
    npad = _official_npad(center, sides, height, width)
    if not quirks:  # the exact crop does not depend on npad as long as it is large enough
        npad = int(math.ceil(max(sides))) + 2
    mean = image.mean(axis=(0, 1))
    padded = np.pad(image - mean, [[npad, npad], [npad, npad], [0, 0]]) + mean
    norm_h, norm_w = padded.shape[0] - (0 if quirks else 1), padded.shape[1] - (0 if quirks else 1)
    crop_boxes = []
    for side in sides:
        r = (side - 1) / 2
        crop_boxes.append([(npad + center[1] - r) / norm_h, (npad + center[0] - r) / norm_w,
                      (npad + center[1] + r) / norm_h, (npad + center[0] + r) / norm_w])
    return tf.image.crop_and_resize(padded[None], np.float32(crop_boxes),
                                    np.zeros(len(sides), np.int32), [out, out]).numpy()


class TestSizes:
    def test_exemplar_side_analytic_and_loop(self):
        assert boxes.exemplar_side(10, 10) == pytest.approx(20.0)  # p = 10: sqrt(20 * 20)
        rng = np.random.default_rng(RNG_SEED)
        w, h = rng.uniform(2, 200, 6), rng.uniform(2, 200, 6)
        expected = [math.sqrt((wi + 0.5 * (wi + hi)) * (hi + 0.5 * (wi + hi)))
                    for wi, hi in zip(w, h)]
        np.testing.assert_allclose(boxes.exemplar_side(w, h), expected, rtol=1e-12)

    @pytest.mark.parametrize("w, h", [(0, 5), (5, -1), (np.nan, 5)])
    def test_exemplar_side_rejects_bad_sizes(self, w, h):
        with pytest.raises(ValueError, match="target size"):
            boxes.exemplar_side(w, h)

    def test_search_side(self):
        assert crops.search_side(127.0) == pytest.approx(255.0)
        assert crops.search_side(50.0, 127, 255) == pytest.approx(50 * 255 / 127)

    def test_scale_factors(self):
        np.testing.assert_allclose(crops.scale_factors(3, 1.05), [1 / 1.05, 1, 1.05])
        np.testing.assert_allclose(crops.scale_factors(5, 2.0), [0.25, 0.5, 1, 2, 4])
        np.testing.assert_allclose(crops.scale_factors(1, 1.05), [1.0])
        with pytest.raises(ValueError, match="odd"):
            crops.scale_factors(4, 1.05)

    def test_search_sides_round_to_pixels(self):
        np.testing.assert_array_equal(crops.search_sides(100.4, [0.95, 1.0, 1.05]),
                                      [95.0, 100.0, 105.0])


class TestCropAndResize:
    @pytest.mark.parametrize("quirks", [True, False])
    @pytest.mark.parametrize("center", [(15.0, 11.0), (2.3, 20.6), (-6.0, 5.5), (29.5, -3.2)])
    def test_matches_padded_bilinear_loop(self, quirks, center):
        image = _random_image()
        sides = [7.0, 12.0, 19.0]
        result = crops.crop_and_resize(image, center, sides, OUT, official_quirks=quirks).numpy()
        assert result.shape == (3, OUT, OUT, 3) and result.dtype == np.float32
        for k, side in enumerate(sides):
            ys, xs = _spec_grid(center, side, sides, OUT, H, W, quirks)
            np.testing.assert_allclose(result[k], _padded_bilinear_loop(image, ys, xs), atol=2e-5)

    @pytest.mark.parametrize("quirks", [True, False])
    def test_matches_literal_official_padding(self, quirks):
        image = _random_image(RNG_SEED + 1, 37, 29)
        for center in [(3.7, 30.2), (14.0, 18.0), (-8.0, 40.0)]:
            sides = [21.0, 33.0, 45.0]
            ours = crops.crop_and_resize(image, center, sides, 15, official_quirks=quirks)
            np.testing.assert_allclose(
                ours.numpy(), _literal_official_crop(image, center, sides, 15, quirks), atol=2e-5)

    @pytest.mark.parametrize("quirks", [True, False])
    def test_constant_region_gives_its_colour(self, quirks):
        image = _random_image()
        colour = np.array([0.2, 0.5, 0.9], np.float32)
        image[2:20, 5:28] = colour
        result = crops.crop_and_resize(image, (16.0, 11.0), [9.0, 13.0], OUT, quirks).numpy()
        np.testing.assert_allclose(result, np.broadcast_to(colour, result.shape), atol=1e-6)

    def test_exact_mode_hits_integer_pixels(self):
        image = _random_image()
        # side 7 at centre (10, 12): samples x = 7..13, y = 9..15, one per pixel.
        result = crops.crop_and_resize(image, (10.0, 12.0), [7.0], 7, official_quirks=False)
        np.testing.assert_allclose(result.numpy()[0], image[9:16, 7:14], atol=1e-6)

    def test_quirk_shift_depends_on_largest_crop(self):
        # A linear image is reproduced exactly by bilinear sampling, so values reveal positions.
        a, b, c = 0.011, 0.017, 0.1
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
        image = np.repeat((a * xx + b * yy + c)[..., None], 3, axis=2).astype(np.float32)
        # The 41 crop overshoots the left edge by 8 - 20.5 = -12.5, which TF rounds half to
        # even: npad = 12.
        center, sides = (8.0, 11.0), [9.0, 41.0]
        assert _official_npad(center, sides, H, W) == 12
        quirk = crops.crop_and_resize(image, center, sides, OUT, official_quirks=True).numpy()
        exact = crops.crop_and_resize(image, center, sides, OUT, official_quirks=False).numpy()
        shrink_y, shrink_x = (H + 23) / (H + 24), (W + 23) / (W + 24)
        xs = (12 + 8.0 - 4) * shrink_x - 12 + np.arange(OUT) * 8 * shrink_x / (OUT - 1)
        ys = (12 + 11.0 - 4) * shrink_y - 12 + np.arange(OUT) * 8 * shrink_y / (OUT - 1)
        expected = a * xs[None, :] + b * ys[:, None] + c
        np.testing.assert_allclose(quirk[0, ..., 0], expected, atol=1e-5)
        exact_xs, exact_ys = 4 + np.arange(OUT), 7 + np.arange(OUT)
        np.testing.assert_allclose(exact[0, ..., 0],
                                   a * exact_xs[None, :] + b * exact_ys[:, None] + c, atol=1e-5)
        assert np.abs(quirk[0] - exact[0]).max() > 1e-3  # the quirk moves the samples

    @pytest.mark.parametrize("quirks", [True, False])
    def test_padding_is_frame_mean(self, quirks):
        image = _random_image()
        center, sides = (1.5, 20.0), [15.0]
        result = crops.crop_and_resize(image, center, sides, OUT, quirks).numpy()[0]
        ys, xs = _spec_grid(center, 15.0, sides, OUT, H, W, quirks)
        # Samples at x <= -1 or y >= H only touch padding pixels.
        outside = (xs[None, :] <= -1) | (ys[:, None] >= H)
        assert outside.sum() >= OUT and (~outside).sum() >= OUT
        mean = image.mean(axis=(0, 1))
        np.testing.assert_allclose(result[outside], np.broadcast_to(mean, result[outside].shape),
                                   atol=1e-6)

    def test_far_outside_is_mean_without_padding_the_frame(self):
        image = _random_image()
        # A literal padded frame here would be ~2e6 x 2e6 pixels; this must stay instant.
        result = crops.crop_and_resize(image, (1e6, -1e6), [4e5, 5e5], OUT).numpy()
        mean = image.mean(axis=(0, 1))
        np.testing.assert_allclose(result, np.broadcast_to(mean, result.shape), atol=1e-6)

    def test_tf_function_traces_once_for_all_frame_sizes(self):
        crop_fn = tf.function(
            lambda image, center, sides: crops.crop_and_resize(image, center, sides, OUT),
            input_signature=[tf.TensorSpec([None, None, 3], tf.float32),
                             tf.TensorSpec([2], tf.float32), tf.TensorSpec([None], tf.float32)])
        for seed, (height, width) in enumerate([(H, W), (40, 17), (12, 50)]):
            image = _random_image(seed, height, width)
            center = tf.constant([width / 3, height / 2], tf.float32)
            sides = tf.constant([9.0, 21.0], tf.float32)
            np.testing.assert_allclose(crop_fn(image, center, sides).numpy(),
                                       crops.crop_and_resize(image, center, sides, OUT).numpy(),
                                       atol=1e-6)
        assert crop_fn.experimental_get_tracing_count() == 1

    @pytest.mark.parametrize("kwargs, message", [
        (dict(center_xy=(np.nan, 3.0)), "center_xy"),
        (dict(sides=[5.0, 0.0]), "sides"),
        (dict(sides=[]), "sides"),
        (dict(image=np.zeros((H, W, 3), np.uint8)), "float32"),
        (dict(image=np.zeros((H, W), np.float32)), r"\[H, W, 3\]"),
        (dict(out_size=0), "out_size"),
    ])
    def test_bad_inputs_raise_value_error(self, kwargs, message):
        args = dict(image=_random_image(), center_xy=(5.0, 5.0), sides=[7.0], out_size=OUT)
        args.update(kwargs)
        with pytest.raises(ValueError, match=message):
            crops.crop_and_resize(**args)

    def test_bad_values_inside_tf_function_fail_with_message(self):
        crop_fn = tf.function(lambda image, center, sides: crops.crop_and_resize(
            image, center, sides, OUT))
        with pytest.raises(tf.errors.InvalidArgumentError, match="center_xy"):
            crop_fn(_random_image(), tf.constant([np.nan, 1.0], tf.float32),
                    tf.constant([5.0], tf.float32))


def _cv2_sample_positions(start, size, out):
    """Window coordinates sampled by cv2.resize INTER_LINEAR (half-pixel, clamped), + start."""
    j = np.arange(out)
    return start + np.clip((j + 0.5) * size / out - 0.5, 0, size - 1)


class TestGetSubwindowNp:
    def test_integer_window_placement(self):
        image = _random_image()
        np.testing.assert_array_equal(crops.get_subwindow_np(image, (10.0, 12.0), 5, 5),
                                      image[10:15, 8:13])
        # Half-way centres round up: side 4 at 10.5 covers columns 9..12.
        np.testing.assert_array_equal(crops.get_subwindow_np(image, (10.5, 6.5), 4, 4),
                                      image[5:9, 9:13])

    def test_padding_is_frame_mean(self):
        image = _random_image()
        patch = crops.get_subwindow_np(image, (2.0, 21.0), 9, 9)  # columns -2..6, rows 17..25
        mean = image.mean(axis=(0, 1))
        np.testing.assert_allclose(patch[:, :2], np.broadcast_to(mean, (9, 2, 3)), atol=1e-6)
        np.testing.assert_allclose(patch[6:, :], np.broadcast_to(mean, (3, 9, 3)), atol=1e-6)
        np.testing.assert_array_equal(patch[:6, 2:], image[17:23, 0:7])

    def test_gradient_image_downscaled(self):
        a, b, c = 0.013, 0.007, 0.2
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
        image = np.repeat((a * xx + b * yy + c)[..., None], 3, axis=2).astype(np.float32)
        patch = crops.get_subwindow_np(image, (15.0, 11.0), 17, 7)  # window 7..23 x 3..19
        xs, ys = _cv2_sample_positions(7, 17, 7), _cv2_sample_positions(3, 17, 7)
        np.testing.assert_allclose(patch[..., 0], a * xs[None, :] + b * ys[:, None] + c, atol=1e-5)

    def test_rejects_bad_inputs(self):
        with pytest.raises(ValueError, match="center_xy"):
            crops.get_subwindow_np(_random_image(), (np.nan, 1.0), 5, 5)
        with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
            crops.get_subwindow_np(np.zeros((5, 5)), (1.0, 1.0), 5, 5)


def _compare_with_reference(image, center, side, out):
    """Fast crop (exact mode) vs get_subwindow_np on the same frame; returns (diff, bound).

    Both outputs are bilinear interpolants of the same mean-extended pixel grid, sampled at
    slightly different points (crop_and_resize: align-corners grid over the real-valued box;
    reference: integer window + cv2 half-pixel grid). Where both samples lie inside the frame,
    |difference| <= Dx * |dx| + Dy * |dy|, with Dx, Dy the largest neighbouring-pixel
    differences of the frame along x and y. That per-pixel bound is the stated tolerance
    (+1e-5 for float32). Here |dx| <= 0.5 + 0.5 * |1 - side / out| frame pixels.
    """
    height, width = image.shape[:2]
    fast = crops.crop_and_resize(image, center, [side], out, official_quirks=False).numpy()[0]
    slow = crops.get_subwindow_np(image, center, side, out)
    ys_fast, xs_fast = _spec_grid(center, side, [side], out, height, width, quirks=False)
    size = int(round(side))
    x0 = math.floor(center[0] - (size - 1) / 2 + 0.5)
    y0 = math.floor(center[1] - (size - 1) / 2 + 0.5)
    xs_slow, ys_slow = _cv2_sample_positions(x0, size, out), _cv2_sample_positions(y0, size, out)
    dx_max = np.abs(np.diff(image, axis=1)).max()
    dy_max = np.abs(np.diff(image, axis=0)).max()
    bound = (dx_max * np.abs(xs_fast - xs_slow)[None, :]
             + dy_max * np.abs(ys_fast - ys_slow)[:, None] + 1e-5)
    inside = (((xs_fast >= 0) & (xs_fast <= width - 1) & (xs_slow >= 0)
               & (xs_slow <= width - 1))[None, :]
              & ((ys_fast >= 0) & (ys_fast <= height - 1) & (ys_slow >= 0)
                 & (ys_slow <= height - 1))[:, None])
    diff = np.abs(fast - slow).max(axis=-1)
    return diff, bound, inside, fast, slow


class TestFastVersusReference:
    def test_smooth_image_within_derived_bound(self):
        yy, xx = np.mgrid[0:60, 0:80].astype(np.float64)
        image = np.stack([0.5 + 0.3 * np.sin(0.09 * xx + 0.05 * yy + k) for k in range(3)],
                         axis=2).astype(np.float32)
        for center, side, out in [((40.3, 30.8), 37.0, 25), ((30.0, 22.0), 21.0, 31),
                                  ((50.2, 30.1), 48.0, 48)]:
            diff, bound, inside, _, _ = _compare_with_reference(image, center, side, out)
            assert inside.all()
            assert np.all(diff <= bound), (diff - bound).max()
            assert bound.max() < 0.05  # the bound is tight enough to mean something

    def test_real_frame_padding_and_interior(self):
        path = os.path.join(_shared_data_dir(), "otb_mini", "Couple", "img", "0001.jpg")
        if not os.path.exists(path):
            pytest.skip(f"shared data not found at {path} (set MEMNET_SHARED_DIR)")
        frame = cv2.imread(path, cv2.IMREAD_COLOR)
        if frame is None:
            raise ValueError(f"could not decode {path}")
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        # First-frame box (51, 47, 25, 62) -> centre (63.5, 78), search side ~170: the crop
        # sticks out past the top-left corner.
        center, side, out = (63.5, 78.0), 170.0, 127
        diff, bound, inside, fast, slow = _compare_with_reference(frame, center, side, out)
        assert np.all(diff[inside] <= bound[inside])
        # On the raw JPEG the bound is loose (neighbouring pixels differ by up to ~0.5); a
        # blurred copy makes it tight enough to catch a misplaced crop.
        blurred = cv2.GaussianBlur(frame, (0, 0), 2.0)
        diff_b, bound_b, inside_b, _, _ = _compare_with_reference(blurred, center, side, out)
        assert np.all(diff_b[inside_b] <= bound_b[inside_b]) and bound_b.max() < 0.15
        # Placement and padding exactly: output pixels whose samples are a pixel or more
        # outside the frame hold the frame mean in both implementations.
        ys, xs = _spec_grid(center, side, [side], out, *frame.shape[:2], quirks=False)
        outside = (xs[None, :] <= -1) | (ys[:, None] <= -1)
        assert outside.sum() > out
        mean = frame.mean(axis=(0, 1))
        np.testing.assert_allclose(fast[outside], np.broadcast_to(mean, fast[outside].shape),
                                   atol=1e-5)
        size = int(round(side))
        x0 = math.floor(center[0] - (size - 1) / 2 + 0.5)
        y0 = math.floor(center[1] - (size - 1) / 2 + 0.5)
        slow_outside = ((_cv2_sample_positions(x0, size, out) <= -1)[None, :]
                        | (_cv2_sample_positions(y0, size, out) <= -1)[:, None])
        np.testing.assert_allclose(slow[slow_outside],
                                   np.broadcast_to(mean, slow[slow_outside].shape), atol=1e-5)
