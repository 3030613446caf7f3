"""Tests of MemTracker: geometry with oracle networks, state selection, tracing, inputs, got10k."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import tensorflow as tf

from memnet_tf import config as config_lib
from memnet_tf.models.memtrack import build_model
from memnet_tf.tracking import postprocess
from memnet_tf.tracking.tracker import (MemTracker, TrackerFactory, estimate_target,
                                        to_float_frame, upsample_responses_tf)
from test_track_cli import blob_frame, write_tiny_run

N = 4  # memory slots of the tiny model
TINY = dict(width_multiplier=0.125, hidden_size=16, memory_size=N)


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    return build_model(config_lib.ModelConfig(**TINY))


def _blob_box(centre, side=16.0):
    return np.array([centre[0] - side / 2, centre[1] - side / 2, side, side])


# ---------------------------------------------------------------- oracle networks


class BrightnessOracle(MemTracker):
    """Replaces the network by 'where is it bright': a map that peaks where the blob is.

    Response cell i of a search crop is the mean grey level of the 31 x 31 crop pixels
    centred on crop pixel 63 + 8 i (cell 8 = crop centre 127, one cell = 8 crop pixels, as
    for the real network). Each scale is divided by its own peak, so scales tie and the
    penalty keeps the centre scale: only the position is under test.
    """

    def network_step(self, exemplar, search, state):
        grey = tf.reduce_mean(search, axis=-1, keepdims=True)
        pooled = tf.nn.avg_pool2d(grey, 31, 8, "VALID")[:, 6:23, 6:23, 0]
        return pooled / tf.reduce_max(pooled, axis=[1, 2], keepdims=True), state, {}


class ScaleOracle(MemTracker):
    """A fixed response per scale: a bump at `peak_cell`, tallest for scale `winner`.

    It also writes one_hot(scale) into each scale's read weights, so the kept state shows
    which scale's state survived.
    """

    def __init__(self, model, track_config, winner, peak_cell=(8, 8)):
        self.winner = winner
        self.peak_cell = peak_cell
        super().__init__(model, track_config)

    def network_step(self, exemplar, search, state):
        num_scales = self.track_config.num_scales
        rows, cols = np.mgrid[0:17, 0:17]
        bump = np.exp(-((cols - self.peak_cell[0]) ** 2 + (rows - self.peak_cell[1]) ** 2) / 4.0)
        heights = np.full(num_scales, 0.5)
        heights[self.winner] = 1.5
        responses = tf.constant(heights[:, None, None] * bump[None], tf.float32)
        marked = state._replace(read_weights=tf.one_hot(tf.range(num_scales), N))
        return responses, marked, {"read_weights": marked.read_weights}


@pytest.mark.parametrize("quirks", [True, False])
def test_follows_a_moving_target(tiny_model, quirks):
    """With an oracle response, the tracker's box follows a blob moving 3.6 px per frame."""
    cfg = config_lib.TrackConfig(official_quirks=quirks)
    tracker = BrightnessOracle(tiny_model, cfg)
    centres = np.array([60.0, 50.0]) + np.arange(14)[:, None] * np.array([3.0, 2.0])
    tracker.init(blob_frame(centres[0], 140, 180), _blob_box(centres[0]))
    errors = []
    for centre in centres[1:]:
        box = tracker.update(blob_frame(centre, 140, 180))
        errors.append(np.hypot(*(box[:2] + box[2:] / 2 - centre)))
        np.testing.assert_allclose(box[2:], [16, 16])  # centre scale always wins
    # A tracker that did not move, or moved the wrong way, would be 47 px off at the end.
    assert max(errors) < 1.5, errors


@pytest.mark.parametrize("winner,expected_factor", [(2, 1.05), (0, 1 / 1.05)])
def test_size_damping_clamp_and_kept_state(tiny_model, winner, expected_factor):
    cfg = config_lib.TrackConfig(min_scale=0.9, max_scale=1.1)
    tracker = ScaleOracle(tiny_model, cfg, winner)
    frame = blob_frame((100, 80), 200, 240)
    tracker.init(frame, [80, 60, 40, 30])
    size = np.array([40.0, 30.0])
    for _ in range(8):
        box = tracker.update(frame)
        # Independent re-statement of the damped update and the clamp to [0.9, 1.1] x first size.
        size = np.clip(0.4 * size + 0.6 * size * expected_factor, [36, 27], [44, 33])
        np.testing.assert_allclose(box[2:], size, rtol=1e-12)
        assert tracker.debug["best_scale"] == winner
        # Every copy of the kept state is the winner's (its read weights are one_hot(winner)).
        np.testing.assert_array_equal(tracker.state.read_weights.numpy(),
                                      np.tile(np.eye(N)[winner], (3, 1)))
    np.testing.assert_allclose(size, [44, 33] if winner == 2 else [36, 27])


def test_centre_stays_in_frame_and_size_within_frame(tiny_model):
    """Pushed to the bottom-right and growing: centre clamps to (W, H), size to the frame."""
    height, width = 64, 80
    cfg = config_lib.TrackConfig(max_scale=5.0)
    tracker = ScaleOracle(tiny_model, cfg, winner=2, peak_cell=(16, 16))
    frame = blob_frame((30, 30), height, width)
    tracker.init(frame, [20, 20, 30, 30])
    size = np.array([30.0, 30.0])
    for _ in range(60):
        box = tracker.update(frame)
        size = np.minimum(0.4 * size + 0.6 * size * 1.05, [width, height])
        assert box[0] >= 0 and box[1] >= 0 and box[2] > 0 and box[3] > 0
        assert box[0] + box[2] <= width + 1e-9 and box[1] + box[3] <= height + 1e-9
        np.testing.assert_allclose(tracker.box()[2:], size, rtol=1e-12)
    unclipped = tracker.box()
    np.testing.assert_allclose(unclipped[:2] + unclipped[2:] / 2, [width, height])
    np.testing.assert_allclose(unclipped[2:], [width, height])


# ---------------------------------------------------------------- post-processing chain


def _reference_estimate(responses, centre, size, initial, sides, frame_wh, cfg):
    """The official `Tracker.estimate_bbox` loop re-stated, plus this tracker's clamps."""
    num_scales, r = responses.shape[0], responses.shape[1]
    u = r * cfg.upsample_factor
    up = tf.compat.v1.image.resize_bicubic(responses[..., None], [u, u],
                                           align_corners=True)[..., 0].numpy()
    best, best_peak = num_scales // 2, -np.inf
    for s in range(num_scales):
        peak = up[s].max() * (cfg.scale_penalty if s != num_scales // 2 else 1.0)
        if peak > best_peak:
            best, best_peak = s, peak
    response = up[best].astype(np.float64) - up[best].min()
    response /= response.sum()
    window = np.outer(np.hanning(u), np.hanning(u))
    response = (1 - cfg.window_influence) * response + cfg.window_influence * window / window.sum()
    py, px = divmod(int(np.argmax(response)), u)
    if cfg.official_quirks:
        shift = (np.array([px, py]) - u / 2) * 8 / cfg.upsample_factor * sides[best] / 255
    else:
        shift = (np.array([px, py]) - (u - 1) / 2) * (r - 1) / (u - 1) * 8 * (sides[best] - 1) / 254
    new_centre = np.clip(centre + shift, 0, frame_wh)
    scale = cfg.scale_step ** (best - num_scales // 2)
    new_size = (1 - cfg.scale_damping) * size + cfg.scale_damping * size * scale
    new_size = np.clip(new_size, cfg.min_scale * initial, cfg.max_scale * initial)
    return new_centre, np.minimum(new_size, frame_wh), best


@pytest.mark.parametrize("quirks", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimate_target_matches_official_loop(quirks, seed):
    rng = np.random.default_rng(seed)
    cfg = config_lib.TrackConfig(official_quirks=quirks)
    responses = rng.normal(size=(3, 17, 17)).astype(np.float32)
    centre, size = rng.uniform(50, 150, 2), rng.uniform(20, 60, 2)
    initial = size * rng.uniform(0.8, 1.2, 2)
    sides = np.round(rng.uniform(100, 200) * 1.05 ** np.arange(-1, 2))
    estimate = estimate_target(postprocess.upsample_responses(responses, 16), centre, size, initial, sides,
                               (200, 180), cfg, 255)
    want_centre, want_size, want_best = _reference_estimate(responses, centre, size, initial,
                                                            sides, np.array([200, 180]), cfg)
    assert estimate.best_scale == want_best
    np.testing.assert_allclose(estimate.center_xy, want_centre, rtol=0, atol=1e-9)
    np.testing.assert_allclose(estimate.size_wh, want_size, rtol=1e-12)


def test_in_graph_upsampling_equals_postprocess_and_tf1_bicubic():
    responses = np.random.default_rng(3).normal(size=(3, 17, 17)).astype(np.float32)
    ours = postprocess.upsample_responses(responses, 16)
    assert ours.shape == (3, 272, 272) and ours.dtype == np.float32
    tf1 = tf.compat.v1.image.resize_bicubic(responses[..., None], [272, 272],
                                            align_corners=True)[..., 0].numpy()
    np.testing.assert_allclose(ours, tf1, atol=2e-5)
    matrix = tf.constant(postprocess.bicubic_upsample_matrix(17, 272), tf.float32)
    in_graph = tf.function(upsample_responses_tf)(tf.constant(responses), matrix).numpy()
    np.testing.assert_allclose(in_graph, tf1, atol=2e-5)
    with pytest.raises(ValueError, match="NaN"):
        postprocess.upsample_responses(np.full((3, 17, 17), np.nan), 16)


# ---------------------------------------------------------------- the real (tiny) network


def _reference_best_scale(responses, penalty):
    up = tf.compat.v1.image.resize_bicubic(responses[..., None], [272, 272],
                                           align_corners=True)[..., 0].numpy()
    peaks = [up[s].max() * (1.0 if s == 1 else penalty) for s in range(3)]
    return int(np.argmax(peaks))


def test_real_model_greyscale_varying_sizes_no_retrace_and_kept_state(tiny_model):
    from PIL import Image

    tracker = MemTracker(tiny_model)
    first = blob_frame((50, 40), 96, 128)[..., 0]  # greyscale [H, W]
    tracker.init(first, [42, 32, 16, 16])
    frames = [blob_frame((52, 41), 110, 150)[..., :1],  # [H, W, 1]
              blob_frame((54, 42), 80, 100),  # RGB, smaller
              Image.fromarray(blob_frame((56, 43), 90, 120)),  # PIL RGB
              Image.fromarray(blob_frame((58, 44), 100, 140)[..., 0])]  # PIL greyscale
    for frame in frames:
        box = tracker.update(frame)
        height, width = np.asarray(frame).shape[:2]
        assert np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0
        assert box[0] >= 0 and box[1] >= 0
        assert box[0] + box[2] <= width + 1e-9 and box[1] + box[3] <= height + 1e-9
        debug = tracker.debug
        assert debug["responses"].shape == (3, 17, 17)
        assert debug["best_scale"] == _reference_best_scale(debug["responses"], 0.97)
        # The kept state is the winner's, tiled to the three scales.
        np.testing.assert_array_equal(
            tracker.state.read_weights.numpy(),
            np.tile(debug["read_weights"][debug["best_scale"]], (3, 1)))
    # One compiled call per frame (crops, network, up-sampling, peak, kept state), traced once.
    assert tracker.frame_step_tracing_count == 1
    assert tracker._initialize_fn.experimental_get_tracing_count() == 1


def test_one_backbone_call_for_the_searches_and_one_for_the_exemplar(tiny_model, monkeypatch):
    tracker = MemTracker(tiny_model)
    frame = blob_frame((50, 40), 96, 128)
    tracker.init(frame, [42, 32, 16, 16])
    encoded = []
    original = tiny_model.encode

    def recording_encode(images, training=False):
        encoded.append(tuple(images.shape))
        return original(images, training=training)

    monkeypatch.setattr(tiny_model, "encode", recording_encode)
    tracker.update(frame)  # traces the frame step
    tracker.update(frame)
    assert encoded == [(1, 127, 127, 3), (3, 255, 255, 3)]


def test_siamfc_mode_encodes_no_exemplar(monkeypatch):
    """Without memory nothing is written: only the searches are cropped and encoded."""
    import keras

    keras.utils.set_random_seed(1)
    model = build_model(config_lib.ModelConfig(**TINY, use_memory=False, response_head="scale"))
    tracker = MemTracker(model)
    frame = blob_frame((50, 40), 96, 128)
    tracker.init(frame, [42, 32, 16, 16])
    encoded = []
    original = model.encode

    def recording_encode(images, training=False):
        encoded.append(tuple(images.shape))
        return original(images, training=training)

    monkeypatch.setattr(model, "encode", recording_encode)
    tracker.update(frame)
    tracker.update(frame)
    assert encoded == [(3, 255, 255, 3)]
    assert tracker.frame_step_tracing_count == 1


def test_score_is_the_winning_peak(tiny_model):
    tracker = MemTracker(tiny_model)
    frame = blob_frame((50, 40), 96, 128)
    tracker.init(frame, [42, 32, 16, 16])
    tracker.update(blob_frame((52, 41), 96, 128))
    up = postprocess.upsample_responses(tracker.debug["responses"], 16)
    assert tracker.debug["score"] == pytest.approx(up[tracker.debug["best_scale"]].max(),
                                                   abs=1e-5)


def test_siamfc_mode_state_never_changes():
    import keras

    keras.utils.set_random_seed(1)
    model = build_model(config_lib.ModelConfig(**TINY, use_memory=False, response_head="scale"))
    tracker = MemTracker(model)
    frame = blob_frame((50, 40), 96, 128)
    tracker.init(frame, [42, 32, 16, 16])
    initial = [x.numpy() for x in tracker.state]
    for _ in range(3):
        box = tracker.update(frame)
        assert np.all(np.isfinite(box))
    for before, after in zip(initial, tracker.state):
        np.testing.assert_array_equal(before, after.numpy())
    assert "read_weights" not in tracker.debug


def _track_memory(model, track_config, updates=7):
    """(wrote_memory flags, [updates + 1] memory and hidden snapshots) over a moving blob."""
    tracker = MemTracker(model, track_config)
    tracker.init(blob_frame((50, 40), 96, 128), [42, 32, 16, 16])
    memories, hiddens, wrote = [tracker.state.memory.numpy()], [tracker.state.hidden.numpy()], []
    for step in range(updates):
        tracker.update(blob_frame((50 + 2 * step, 40 + step), 96, 128))
        wrote.append(tracker.debug["wrote_memory"])
        memories.append(tracker.state.memory.numpy())
        hiddens.append(tracker.state.hidden.numpy())
    assert tracker.frame_step_tracing_count == 1
    return wrote, memories, hiddens


@pytest.mark.parametrize("interval, min_psr, expected", [
    (1, 0.0, [True] * 7),
    (3, 0.0, [True, False, False, True, False, False, True]),
    (1, 1e9, [True] + [False] * 6),  # no frame is that sure: only T_0's crop is written
])
def test_memory_writes_follow_interval_and_psr(tiny_model, interval, min_psr, expected):
    cfg = config_lib.TrackConfig(memory_write_interval=interval, memory_write_min_psr=min_psr)
    wrote, memories, hiddens = _track_memory(tiny_model, cfg)
    assert wrote == expected
    for step, writes in enumerate(wrote):
        changed = not np.array_equal(memories[step], memories[step + 1])
        assert changed == writes, f"update {step + 1}: memory changed={changed}, wrote={writes}"
        # The controller steps (and reads) on every frame, written or not.
        assert not np.array_equal(hiddens[step], hiddens[step + 1])


def test_min_psr_refuses_the_writes_of_unsure_frames(tiny_model):
    """A threshold between the frames' ratios writes exactly after the frames above it."""
    tracker = MemTracker(tiny_model)
    tracker.init(blob_frame((50, 40), 96, 128), [42, 32, 16, 16])
    ratios = []
    for step in range(6):
        tracker.update(blob_frame((50 + 2 * step, 40 + step), 96, 128))
        ratios.append(tracker.last_score.psr)
    threshold = float(np.median(ratios))
    cfg = config_lib.TrackConfig(memory_write_min_psr=threshold)
    wrote, _, _ = _track_memory(tiny_model, cfg, updates=6)
    # Update k writes the template cut in frame k-1; frame 0 (the given box) always writes.
    # Until the first refused write both runs track identically, so compare up to there.
    expected = [True] + [psr >= threshold for psr in ratios[:-1]]
    first_refusal = expected.index(False)
    assert wrote[:first_refusal + 1] == expected[:first_refusal + 1]
    assert not all(wrote)


def test_siamfc_mode_never_writes():
    import keras

    keras.utils.set_random_seed(1)
    model = build_model(config_lib.ModelConfig(**TINY, use_memory=False, response_head="scale"))
    tracker = MemTracker(model, config_lib.TrackConfig(memory_write_interval=2))
    tracker.init(blob_frame((50, 40), 96, 128), [42, 32, 16, 16])
    tracker.update(blob_frame((52, 41), 96, 128))
    assert tracker.debug["wrote_memory"] is False


@pytest.mark.parametrize("field, value", [("memory_write_interval", 0),
                                          ("memory_write_min_psr", -1.0),
                                          ("memory_write_min_psr", float("nan"))])
def test_bad_memory_write_settings_raise(field, value):
    with pytest.raises(ValueError, match=field):
        config_lib.TrackConfig(**{field: value})


# ---------------------------------------------------------------- inputs


def test_to_float_frame_forms():
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_allclose(to_float_frame(rgb), rgb / 255.0, atol=1e-7)
    grey = rgb[..., 0]
    for form in (grey, grey[..., None], Image.fromarray(grey)):
        out = to_float_frame(form)
        assert out.shape == (5, 7, 3) and out.dtype == np.float32
        for c in range(3):
            np.testing.assert_allclose(out[..., c], grey / 255.0, atol=1e-7)
    np.testing.assert_allclose(to_float_frame(Image.fromarray(rgb).convert("RGBA")),
                               rgb / 255.0, atol=1e-7)
    np.testing.assert_array_equal(to_float_frame(rgb / 255.0), (rgb / 255.0).astype(np.float32))


@pytest.mark.parametrize("bad,match", [
    (np.zeros((4, 5, 2), np.uint8), "shape"),
    (np.zeros((2, 4, 5, 3), np.uint8), "shape"),
    (np.zeros((0, 5, 3), np.uint8), "empty"),
    (np.zeros((4, 5, 3), np.int16), "dtype"),
    (np.full((4, 5, 3), 2.0), r"\[0, 1\]"),
    (np.full((4, 5, 3), np.nan), "NaN"),
])
def test_bad_images_raise_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        to_float_frame(bad, "frame.jpg")
    with pytest.raises(ValueError, match="frame.jpg"):
        to_float_frame(bad, "frame.jpg")


@pytest.mark.parametrize("box,match", [
    ([10, 10, 0, 5], "non-positive"),
    ([10, 10, 5, -1], "non-positive"),
    ([200, 10, 5, 5], "outside"),
    ([10, np.nan, 5, 5], "NaN"),
    ([10, 10, 5], "4 values"),
])
def test_bad_init_boxes_raise(tiny_model, box, match):
    tracker = MemTracker(tiny_model)
    with pytest.raises(ValueError, match=f"init box.*{match}"):
        tracker.init(np.zeros((40, 60, 3), np.uint8), box)


def test_update_before_init_raises(tiny_model):
    with pytest.raises(RuntimeError, match="before init"):
        MemTracker(tiny_model).update(np.zeros((40, 60, 3), np.uint8))


# ---------------------------------------------------------------- factory and got10k


def test_factory_is_picklable_and_uses_the_run_config(tmp_path):
    run = write_tiny_run(tmp_path / "run", extra_flags=("--noofficial_quirks",
                                                         "--scale_step=1.1"))
    factory = pickle.loads(pickle.dumps(TrackerFactory(checkpoint=run)))
    assert isinstance(factory, TrackerFactory)
    first, second = factory(), factory()
    assert first.track_config == config_lib.TrackConfig(official_quirks=False, scale_step=1.1)
    assert first.model is second.model  # one model per process
    assert first.model.model_config == config_lib.ModelConfig(**TINY)
    given = config_lib.TrackConfig(window_influence=0.3)
    assert TrackerFactory(checkpoint=run, track_config=given)().track_config == given
    with pytest.raises(ValueError, match="exactly one"):
        TrackerFactory()
    with pytest.raises(ValueError, match="exactly one"):
        TrackerFactory(checkpoint=run, saved_model=str(tmp_path))


def test_runs_inside_a_got10k_experiment(tiny_model, tmp_path, monkeypatch):
    got10k = pytest.importorskip("got10k")
    del got10k
    import cv2
    from got10k.datasets import OTB
    from got10k.experiments import ExperimentOTB

    # "Crossing" is an OTB-2015 name, so got10k picks the folder up; nothing is downloaded.
    monkeypatch.setattr(OTB, "_download", lambda self, root_dir, version: None)
    sequence = tmp_path / "otb" / "Crossing"
    (sequence / "img").mkdir(parents=True)
    centres = np.array([40.0, 36.0]) + np.arange(10)[:, None] * np.array([4.0, 3.0])
    boxes = np.stack([_blob_box(c) for c in centres])
    for k, centre in enumerate(centres):
        cv2.imwrite(str(sequence / "img" / f"{k + 1:04d}.jpg"),
                    cv2.cvtColor(blob_frame(centre, 120, 160), cv2.COLOR_RGB2BGR))
    np.savetxt(sequence / "groundtruth_rect.txt", boxes, fmt="%g", delimiter=",")

    tracker = BrightnessOracle(tiny_model, config_lib.TrackConfig())
    experiment = ExperimentOTB(str(tmp_path / "otb"), version=2015,
                               result_dir=str(tmp_path / "results"),
                               report_dir=str(tmp_path / "reports"))
    experiment.run(tracker)
    performance = experiment.report([tracker.name])[tracker.name]["overall"]
    recorded = np.loadtxt(tmp_path / "results" / "OTB2015" / "MemTrack" / "Crossing.txt",
                          delimiter=",")
    assert recorded.shape == (10, 4)
    np.testing.assert_allclose(recorded[0], boxes[0], atol=1e-3)
    # A box that never moves scores about 0.4 here; following the blob scores far higher.
    static_overlap = [max(0.0, 16 - abs(dx)) * max(0.0, 16 - abs(dy)) for dx, dy in
                      centres - centres[0]]
    static_iou = np.array([o / (512 - o) for o in static_overlap])
    static_auc = np.mean([np.mean(static_iou > t) for t in np.linspace(0, 1, 21)])
    assert performance["success_score"] > static_auc + 0.3
    assert performance["precision_score"] == 1.0
    assert os.path.isfile(tmp_path / "results" / "OTB2015" / "MemTrack" / "times" /
                          "Crossing_time.txt")


def test_nan_responses_raise_a_clear_error(tiny_model):
    class Broken(MemTracker):
        def network_step(self, exemplar, search, state):
            return tf.fill([3, 17, 17], np.float32(np.nan)), state, {}

    tracker = Broken(tiny_model)
    tracker.init(blob_frame((50, 40), 96, 128), [42, 32, 16, 16])
    with pytest.raises(ValueError, match="NaN or Inf responses"):
        tracker.update(blob_frame((50, 40), 96, 128))
