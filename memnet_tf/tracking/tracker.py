"""MemTracker: the MemTrack inference loop (spec section 8) behind the got10k tracker contract.

Contract (got10k `Tracker`): `init(image, box)` then `update(image) -> box` per frame, boxes
`[x, y, w, h]` 0-based top-left in frame pixels (`geometry/boxes.py`), images RGB uint8
`[height, width, 3]` numpy arrays or PIL images; greyscale `[height, width]` or
`[height, width, 1]` frames are expanded to 3 channels, and frames may change size. `track()`
and `name` make an instance usable directly in got10k experiments (`ExperimentOTB.run`).

One frame, as the code runs it:
1. numpy: the target centre `pos`, size `sz`, exemplar side s_z = sqrt((w + p)(h + p)) with
   p = context * (w + h), search side s_x = s_z * 255 / 127, and the pyramid sides
   round(s_x * 1.05^{-1, 0, 1}).
2. One `tf.function` with a fixed input signature (it traces once, whatever the frame size):
   the write exemplar cut from the *previous* frame at `pos` with side s_z and the search crops
   cut from the current frame (`geometry/crops.py`, mean padding); one backbone call for the
   single exemplar (encoded once, shared by the scales) and one for the search crops;
   `MemTrack.step_features` runs one controller/memory step per scale and the response head;
   the x16 TF1-legacy bicubic up-sampling of the responses, as two matrix products.
3. numpy (`tracking/postprocess.py`): scale penalty and choice, normalisation and cosine
   window, peak -> displacement, damped size update, then the clamps this tracker adds (size
   within [min_scale, max_scale] x the first size and at most the frame; centre inside the
   frame).
4. Only the winning scale's recurrent state is kept and tiled back to `num_scales` copies
   (a second small `tf.function`).

`TrackConfig.official_quirks` selects the official sub-pixel conventions (peak centre 136,
8/16 px per up-sampled pixel, s / n frame pixels per crop pixel, crops normalised by H') or the
exact ones; see WORKSPACE.md, "Tracking".
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from memnet_tf import config as config_lib
from memnet_tf.config import TOTAL_STRIDE
from memnet_tf.geometry import boxes as boxes_lib
from memnet_tf.geometry import crops
from memnet_tf.layers import states
from memnet_tf.tracking import confidence, postprocess


class TargetEstimate(NamedTuple):
    """The outcome of post-processing one frame's responses.

    Attributes:
        center_xy: `[2]` new target centre (cx, cy) in frame pixels, inside the frame.
        size_wh: `[2]` new target size (w, h), damped and clamped.
        best_scale: index of the winning scale.
        peak_xy: (px, py) peak in the up-sampled map of the winning scale.
        upsampled: `[U, U]` up-sampled response of the winning scale (for display).
    """

    center_xy: np.ndarray
    size_wh: np.ndarray
    best_scale: int
    peak_xy: tuple[int, int]
    upsampled: np.ndarray


def to_float_frame(image, name: str = "image") -> np.ndarray:
    """Converts a frame to float32 `[height, width, 3]` in [0, 1].

    Args:
        image: RGB uint8 `[height, width, 3]`, greyscale uint8 `[height, width]` or
            `[height, width, 1]`, a PIL image (any mode; converted to RGB), or a float array of
            those shapes with values in [0, 1].
        name: what the image is, for error messages (e.g. its file name).

    Returns:
        float32 `[height, width, 3]` frame in [0, 1].

    Raises:
        ValueError: naming `name`, for an empty image, a shape that is not a 1- or 3-channel
            image, an unsupported dtype, or float values that are not finite or not in [0, 1].
    """
    if hasattr(image, "convert") and hasattr(image, "mode"):  # a PIL image
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image = np.asarray(image)
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ValueError(f"{name}: expected an RGB [height, width, 3] or greyscale "
                         f"[height, width(, 1)] image, got shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name}: empty image, shape {array.shape}")
    if array.dtype == np.uint8:
        frame = array.astype(np.float32) * np.float32(1.0 / 255.0)
    elif np.issubdtype(array.dtype, np.floating):
        frame = array.astype(np.float32)
        if not np.all(np.isfinite(frame)):
            raise ValueError(f"{name}: image has NaN or Inf values")
        low, high = float(frame.min()), float(frame.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(f"{name}: float images must have values in [0, 1], got "
                             f"[{low:g}, {high:g}] (pass 0-255 images as uint8)")
    else:
        raise ValueError(f"{name}: expected a uint8 (0-255) or float (0-1) image, got dtype "
                         f"{array.dtype}")
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    return frame


def upsample_responses_tf(responses: tf.Tensor, matrix: tf.Tensor) -> tf.Tensor:
    """Up-samples square maps with an interpolation matrix, in TF: `M @ r @ M^T`.

    With `matrix = postprocess.bicubic_upsample_matrix(R, U)` this is TF1's
    `resize_bicubic(align_corners=True)`. It runs inside the tracker's frame step, so the
    up-sampling shares TF's thread pool instead of numpy's BLAS threads (which, on a busy
    machine, turned a 0.5 ms product into 5-30 ms).

    Args:
        responses: `[num_scales, R, R]` maps.
        matrix: `[U, R]` float32 interpolation matrix.

    Returns:
        `[num_scales, U, U]` float32 maps.
    """
    batch = tf.shape(responses)[0]
    rows = tf.broadcast_to(matrix, tf.stack([batch, tf.shape(matrix)[0], tf.shape(matrix)[1]]))
    return tf.matmul(tf.matmul(rows, responses), rows, transpose_b=True)


def target_from_peak(best_scale: int, peak_xy, center_xy, size_wh, initial_size_wh,
                     search_sides, frame_wh, track_config: config_lib.TrackConfig,
                     upsampled_size: int, search_size: int,
                     total_stride: int = TOTAL_STRIDE) -> tuple[np.ndarray, np.ndarray]:
    """The new target centre and size from the winning scale and its peak (numpy, float64).

    Peak -> displacement in frame pixels, then the damped size update and the clamps of this
    tracker (size within [min_scale, max_scale] x the first size and at most the frame; centre
    inside the frame).

    Returns:
        (`[2]` centre (cx, cy), `[2]` size (w, h)).
    """
    cfg = track_config
    px, py = peak_xy
    dx, dy = postprocess.peak_to_displacement(
        px, py, upsampled_size, cfg.upsample_factor, total_stride,
        float(search_sides[best_scale]), search_size, cfg.official_quirks)
    frame = np.asarray(frame_wh, np.float64)
    center = postprocess.clamp_center_to_frame(np.asarray(center_xy, np.float64) + [dx, dy],
                                               frame)
    scale = crops.scale_factors(cfg.num_scales, cfg.scale_step)[best_scale]
    size = postprocess.update_size(size_wh, scale, cfg.scale_damping)
    size = postprocess.clamp_size(size, initial_size_wh, cfg.min_scale, cfg.max_scale)
    # A target larger than the frame only widens the search region around the whole image.
    return center, np.minimum(size, frame)


def estimate_target(upsampled, center_xy, size_wh, initial_size_wh, search_sides, frame_wh,
                    track_config: config_lib.TrackConfig, search_size: int,
                    window: np.ndarray | None = None,
                    total_stride: int = TOTAL_STRIDE) -> TargetEstimate:
    """Post-processes one frame's up-sampled responses into the new target centre and size.

    The numpy statement of what the tracker's frame step does in TF
    (`postprocess.locate_peak_tf`, then `target_from_peak`): pick the scale with the highest
    peak after multiplying the non-centre maps by `scale_penalty`; normalise that map and blend
    it with the cosine window; convert its peak to a displacement in frame pixels; damp the
    size update; clamp the size and the centre.

    Args:
        upsampled: `[num_scales, U, U]` responses up-sampled x`upsample_factor` with the TF1
            legacy bicubic (`postprocess.upsample_responses`), scales in increasing order.
        center_xy: `[2]` current target centre (cx, cy), frame pixels.
        size_wh: `[2]` current target size (w, h).
        initial_size_wh: `[2]` first-frame target size (w, h).
        search_sides: `[num_scales]` side in frame pixels of each search crop
            (round(s_x * scale)).
        frame_wh: (W, H) of the current frame.
        track_config: the tracking hyper-parameters.
        search_size: n, side of a search crop in pixels (255).
        window: `[U, U]` cosine window (`postprocess.hann_window(U)`); built when None.
        total_stride: search-crop pixels per response cell (8).

    Returns:
        A `TargetEstimate`.

    Raises:
        ValueError: NaN in the responses.
    """
    cfg = track_config
    upsampled = np.asarray(upsampled)
    size_up = upsampled.shape[-1]
    if window is None:
        window = postprocess.hann_window(size_up)
    best = postprocess.select_scale(upsampled, cfg.scale_penalty)
    px, py = postprocess.locate_peak(upsampled[best], cfg.window_influence, window)
    center, size = target_from_peak(best, (px, py), center_xy, size_wh, initial_size_wh,
                                    search_sides, frame_wh, cfg, size_up, search_size,
                                    total_stride)
    return TargetEstimate(center, size, int(best), (px, py), upsampled[best])


def track_files(tracker, img_files, box):
    """got10k's `Tracker.track` loop: `tracker.init` on the first file, `update` on the rest.

    Frames are decoded as `evaluate` decodes them (OpenCV, `eval.sequence.load_frame`), and
    the decoding is not part of a frame's time.

    Returns:
        (`[num_frames, 4]` boxes, the first one `box`; `[num_frames]` seconds per frame).
    """
    from memnet_tf.eval.sequence import load_frame  # pylint: disable=import-outside-toplevel

    boxes = np.zeros((len(img_files), 4))
    times = np.zeros(len(img_files))
    boxes[0] = box
    for index, path in enumerate(img_files):
        image = load_frame(path)
        start = time.perf_counter()
        if index == 0:
            tracker.init(image, box)
        else:
            boxes[index] = tracker.update(image)
        times[index] = time.perf_counter() - start
    return boxes, times


class MemTracker:
    """The MemTrack tracker around an in-process `MemTrack` model, an export, or LiteRT models.

    Args:
        model: a built `MemTrack` (any configuration, including the SiamFC mode
            `use_memory=False`, whose state simply never changes), the `ExportedMemTrack` of
            `models.loading.load_saved_model(export_dir)`, or the `LiteRTMemTrack` of
            `models.litert.load_litert(litert_dir)` (same interface: `model_config`,
            `initialize`, `step`; a model whose `runs_in_graph` is False is called between two
            tf.functions instead of inside one).
        track_config: tracking hyper-parameters; `TrackConfig()` (the paper's) when None.
        name: the name got10k experiments store results under; None = what the model is
            (`default_tracker_name`: "MemTrack", or "SiamFC-mode" without memory).

    Attributes:
        name: as given.
        is_deterministic: True (got10k runs deterministic trackers once).
        state: the `MemTrackState` kept after the last frame, batch `num_scales`.
        last_score: after `update`, a `confidence.FrameScore` of that frame (`peak`: the
            winning scale's highest response value; `psr`: its peak-to-sidelobe ratio, which
            falls when the target is lost); None after `init`.
        debug: after `update`, a dict with `best_scale`, `peak` (px, py), `score` (the winning
            scale's unpenalised peak of the up-sampled response), `wrote_memory` (whether this
            frame wrote the memory: see `TrackConfig.memory_write_interval` and
            `memory_write_min_psr`; always False without memory), `responses`
            `[num_scales, R, R]`, `upsampled` `[U, U]` (winning scale), and, with memory,
            `read_weights` `[num_scales, N]` (before the state selection), and `diagnostics`:
            the winning scale's step diagnostics (`control_gates [3]`, `residual_gate [C]`,
            `read_weights [N]`, `attention [L, L]`, ...; empty without memory).
    """

    def __init__(self, model, track_config: config_lib.TrackConfig | None = None,
                 name: str | None = None):
        self.model = model
        self.track_config = track_config or config_lib.TrackConfig()
        self.name = name or default_tracker_name(model.model_config)
        self.last_score = None
        self.is_deterministic = True
        model_cfg = model.model_config
        cfg = self.track_config
        self._uses_memory = model_cfg.use_memory
        # Slots of the memory panel in an output video (0: the model has no memory).
        self.memory_slots = model_cfg.memory_size if model_cfg.use_memory else 0
        self._in_graph = getattr(model, "runs_in_graph", True)
        self._exemplar_size = model_cfg.exemplar_size
        self._search_size = model_cfg.search_size
        self._scales = crops.scale_factors(cfg.num_scales, cfg.scale_step)
        self._upsampled_size = model_cfg.response_size * cfg.upsample_factor
        self._window = tf.constant(postprocess.hann_window(self._upsampled_size), tf.float64)
        self._upsample_matrix = tf.constant(
            postprocess.bicubic_upsample_matrix(model_cfg.response_size, self._upsampled_size),
            tf.float32)
        image_spec = tf.TensorSpec([None, None, 3], tf.float32)
        mean_spec = tf.TensorSpec([3], tf.float32)
        geometry_specs = [tf.TensorSpec([2], tf.float32), tf.TensorSpec([1], tf.float32),
                          tf.TensorSpec([cfg.num_scales], tf.float32)]
        state_spec = states.state_specs(model_cfg.hidden_size, model_cfg.memory_size,
                                        model_cfg.template_size, model_cfg.feature_channels,
                                        batch_size=cfg.num_scales)
        response_spec = tf.TensorSpec([cfg.num_scales, model_cfg.response_size,
                                       model_cfg.response_size], tf.float32)
        # Fixed signatures: one trace each for every frame size (checked by the tests).
        if self._in_graph:
            self._initialize_fn = tf.function(self._initialize_graph, input_signature=[
                image_spec, geometry_specs[0], geometry_specs[1]])
            # The whole frame in one call: crops, network, up-sampling, peak, kept state.
            self._frame_step_fn = tf.function(self._frame_step_graph, input_signature=[
                image_spec, image_spec, mean_spec, *geometry_specs, state_spec])
        else:
            self._initialize_fn = tf.function(self._initial_crop_graph, input_signature=[
                image_spec, geometry_specs[0], geometry_specs[1]])
            # Out-of-graph networks: crops in one call, the network, the rest in another.
            self._frame_step_fn = tf.function(self._crop_graph, input_signature=[
                image_spec, image_spec, mean_spec, *geometry_specs])
            if getattr(model, "num_scales", cfg.num_scales) != cfg.num_scales:
                raise ValueError(f"the model was exported for {model.num_scales} scales; "
                                 f"the track config has num_scales={cfg.num_scales}")
            self._locate_fn = tf.function(
                lambda responses, state: self._locate_graph(responses, state, {}),
                input_signature=[response_spec, state_spec])
        self.state = None
        self.debug = {}
        self._previous = None
        self._previous_mean = None

    # ------------------------------------------------------------------ graph parts

    def _initial_crop_graph(self, image, center_xy, exemplar_side):
        """First frame -> (`[1, E, E, 3]` exemplar crop, `[3]` frame mean)."""
        mean = crops.frame_mean(image)
        exemplar = crops.crop_and_resize(image, center_xy, exemplar_side, self._exemplar_size,
                                         self.track_config.official_quirks, mean_colour=mean)
        return exemplar, mean

    def _initialize_graph(self, image, center_xy, exemplar_side):
        """`[H, W, 3]` first frame -> (the initial state tiled to `[num_scales, ...]`, mean)."""
        exemplar, mean = self._initial_crop_graph(image, center_xy, exemplar_side)
        return states.tile(self.model.initialize(exemplar), self.track_config.num_scales), mean

    def crop(self, previous, previous_mean, current, current_mean, center_xy, exemplar_side,
             search_sides):
        """The write exemplar and the search pyramid of one frame (TF).

        Args:
            previous: `[H0, W0, 3]` previous frame (the exemplar to write is cut from it).
            previous_mean: `[3]` its `crops.frame_mean`.
            current: `[H, W, 3]` current frame.
            current_mean: `[3]` its mean.
            center_xy: `[2]` target centre.
            exemplar_side: `[1]` s_z.
            search_sides: `[num_scales]` search crop sides.

        Returns:
            (`[1, E, E, 3]` exemplar crop, or None without memory (the SiamFC mode never
            writes one), `[num_scales, S, S, 3]` search crops).
        """
        quirks = self.track_config.official_quirks
        exemplar = None
        if self._uses_memory:
            exemplar = crops.crop_and_resize(previous, center_xy, exemplar_side,
                                             self._exemplar_size, quirks,
                                             mean_colour=previous_mean)
        search = crops.crop_and_resize(current, center_xy, search_sides, self._search_size,
                                       quirks, mean_colour=current_mean)
        return exemplar, search

    def network_step(self, exemplar, search, state):
        """The network part of a frame: backbone and one recurrent step per scale.

        The exemplar is encoded once and shared by all scales (the official code encodes it
        once per scale; the features are identical). Tests override this to replace the
        network by an oracle and check the tracking geometry alone.

        Args:
            exemplar: `[1, E, E, 3]` exemplar crop cut at the previous box, or None without
                memory.
            search: `[num_scales, S, S, 3]` search crops.
            state: `MemTrackState` with batch `num_scales`.

        Returns:
            (`[num_scales, R, R]` responses, new `MemTrackState`, diagnostics dict).
        """
        return self.model.step(exemplar, search, state)

    def _locate_graph(self, responses, new_state, diagnostics):
        """Up-sampling, scale choice, peak and the kept state of one frame's responses (TF)."""
        cfg = self.track_config
        upsampled = upsample_responses_tf(responses, self._upsample_matrix)
        best, peak_xy, score = postprocess.locate_peak_tf(
            upsampled, cfg.scale_penalty, cfg.window_influence, self._window)
        if self._uses_memory:
            # Keep only the winner's state (LSTM, memory, weights, gates, usage, T_0). Without
            # memory every scale's state is the unchanged initial one: nothing to select.
            new_state = states.tile(states.select(new_state, best), cfg.num_scales)
        return {"responses": responses, "upsampled": tf.gather(upsampled, best),
                "finite": tf.reduce_all(tf.math.is_finite(upsampled)),
                "best_scale": best, "peak_xy": peak_xy, "score": score, "state": new_state,
                "diagnostics": diagnostics}

    def _crop_graph(self, current, previous, previous_mean, center_xy, exemplar_side,
                    search_sides):
        """The crops of one frame and the current frame's mean (computed once per frame)."""
        current_mean = crops.frame_mean(current)
        exemplar, search = self.crop(previous, previous_mean, current, current_mean, center_xy,
                                     exemplar_side, search_sides)
        outputs = {"search": search, "mean": current_mean}
        if exemplar is not None:
            outputs["exemplar"] = exemplar
        return outputs

    def _frame_step_graph(self, current, previous, previous_mean, center_xy, exemplar_side,
                          search_sides, state):
        """One whole frame: crops, network, up-sampling, peak search and the kept state."""
        cropped = self._crop_graph(current, previous, previous_mean, center_xy, exemplar_side,
                                   search_sides)
        responses, new_state, diagnostics = self.network_step(cropped.get("exemplar"),
                                                              cropped["search"], state)
        outputs = self._locate_graph(responses, new_state, diagnostics)
        outputs["mean"] = cropped["mean"]
        return outputs

    @property
    def frame_step_tracing_count(self) -> int:
        """How many times the per-frame `tf.function` has been traced (1 after any frame)."""
        return self._frame_step_fn.experimental_get_tracing_count()

    # ------------------------------------------------------------------ got10k contract

    def init(self, image, box) -> None:
        """Starts a sequence.

        Args:
            image: first frame (see `to_float_frame` for the accepted forms).
            box: `[x, y, w, h]` target box, 0-based, top-left, frame pixels.

        Raises:
            ValueError: a bad image, or a box that is not 4 finite numbers, has zero or
                negative size, or lies completely outside the frame.
        """
        frame = to_float_frame(image, "init image")
        box = boxes_lib.validate_box(box, frame.shape, "init box")
        center = boxes_lib.xywh_to_center(box)
        self._center = np.array([center.cx, center.cy], np.float64)
        self._size = np.array([center.w, center.h], np.float64)
        self._initial_size = self._size.copy()
        self._update_sides()
        current = tf.constant(frame)
        geometry = (self._center.astype(np.float32),
                    np.array([self._exemplar_side], np.float32))
        if self._in_graph:
            self.state, self._previous_mean = self._initialize_fn(current, *geometry)
        else:
            exemplar, self._previous_mean = self._initialize_fn(current, *geometry)
            self.state = states.tile(self.model.initialize(exemplar.numpy()),
                                     self.track_config.num_scales)
        self._previous = current
        self._updates = 0
        self.debug = {}
        self.last_score = None

    def update(self, image) -> np.ndarray:
        """Tracks the target into the next frame.

        Args:
            image: the next frame (see `to_float_frame`); its size may differ from the last.

        Returns:
            float64 `[4]` box `[x, y, w, h]` (0-based), clipped to the frame.

        Raises:
            RuntimeError: called before `init`.
            ValueError: a bad image, or NaN/Inf responses from the network.
        """
        if self.state is None:
            raise RuntimeError(f"{self.name}: update() called before init()")
        frame = to_float_frame(image, "image")
        current = tf.constant(frame)
        search_sides = np.maximum(crops.search_sides(self._search_side, self._scales), 1.0)
        geometry = (self._center.astype(np.float32),
                    np.array([self._exemplar_side], np.float32),
                    search_sides.astype(np.float32))
        self._updates += 1
        writes = self._uses_memory and self._writes_memory()
        state = self.state
        if self._uses_memory and not writes:  # the read and the controller still step
            state = states.without_write(state)
        if self._in_graph:
            out = self._frame_step_fn(current, self._previous, self._previous_mean, *geometry,
                                      state)
        else:
            cropped = self._frame_step_fn(current, self._previous, self._previous_mean,
                                          *geometry)
            exemplar = cropped["exemplar"].numpy() if "exemplar" in cropped else None
            responses, new_state, diagnostics = self.network_step(
                exemplar, cropped["search"].numpy(), state)
            out = dict(self._locate_fn(responses, new_state), mean=cropped["mean"],
                       diagnostics=diagnostics)
        if not bool(out["finite"]):
            raise ValueError(f"{self.name}: the network produced NaN or Inf responses (broken "
                             "weights or a non-finite state)")
        best = int(out["best_scale"])
        peak_xy = tuple(int(v) for v in out["peak_xy"].numpy())
        self._center, self._size = target_from_peak(
            best, peak_xy, self._center, self._size, self._initial_size, search_sides,
            (frame.shape[1], frame.shape[0]), self.track_config, self._upsampled_size,
            self._search_size)
        self.state = out["state"]
        self._update_sides()
        self._previous, self._previous_mean = current, out["mean"]
        diagnostics = out["diagnostics"]
        responses = out["responses"].numpy()
        self.last_score = confidence.frame_score(responses[best])
        self.debug = {"best_scale": best, "peak": peak_xy, "score": float(out["score"]),
                      "responses": responses, "upsampled": out["upsampled"].numpy(),
                      "wrote_memory": writes}
        if "read_weights" in diagnostics:
            self.debug["read_weights"] = np.asarray(diagnostics["read_weights"])
        # The memory's behaviour at the winning scale (gates, residual gate, attention, ...).
        self.debug["diagnostics"] = {name: np.asarray(value)[best]
                                     for name, value in diagnostics.items()}
        return self.box(frame.shape)

    def _writes_memory(self) -> bool:
        """Whether this update writes the previous frame's template (TrackConfig's two rules).

        The first update always writes (T_0's crop: the memory is never read empty); later
        ones every `memory_write_interval`-th update, unless the previous frame, where the
        template is cut, scored a peak-to-sidelobe ratio below `memory_write_min_psr`.
        """
        cfg = self.track_config
        if (self._updates - 1) % cfg.memory_write_interval:
            return False
        return self.last_score is None or self.last_score.psr >= cfg.memory_write_min_psr

    def box(self, frame_shape=None) -> np.ndarray:
        """The current box `[x, y, w, h]`, clipped to a frame of `frame_shape` when given."""
        box = boxes_lib.center_to_xywh(np.concatenate([self._center, self._size]))
        return box if frame_shape is None else boxes_lib.clip_box_to_frame(box, frame_shape)

    def track(self, img_files, box, visualize: bool = False):
        """got10k's `Tracker.track`: runs over image files, timing every frame.

        Args:
            img_files: frame paths in order.
            box: `[x, y, w, h]` first-frame box (0-based).
            visualize: accepted for got10k compatibility and ignored (see
                `python -m memnet_tf.track --output_video`).

        Returns:
            (`[num_frames, 4]` boxes, `[num_frames]` seconds per frame).
        """
        del visualize
        return track_files(self, img_files, box)

    def _update_sides(self) -> None:
        """s_z and s_x from the current size (spec section 8)."""
        self._exemplar_side = float(boxes_lib.exemplar_side(self._size[0], self._size[1],
                                                        self.track_config.context))
        self._search_side = float(crops.search_side(self._exemplar_side, self._exemplar_size,
                                                    self._search_size))


def default_tracker_name(model_config: config_lib.ModelConfig) -> str:
    """What a tracker of this model is: "MemTrack", or "SiamFC-mode" (first-frame template only)."""
    return "MemTrack" if model_config.use_memory else "SiamFC-mode"


# One model per process, shared by every tracker the factory makes (OPE workers reuse it).
_MODEL_CACHE: dict[tuple[str, str], tuple] = {}
_MODEL_CACHE_LOCK = threading.Lock()
# One tracker (and so one traced graph) per model, track config and name, per process.
_TRACKER_CACHE: dict[tuple, "MemTracker"] = {}


def _load_cached(checkpoint: str | None, saved_model: str | None, litert: str | None = None):
    """`(model, run TrackConfig)` of a checkpoint or an export, loaded once per process."""
    from memnet_tf.models import loading  # imported lazily: factories are built without TF work

    if litert:
        key = ("litert", os.path.abspath(litert))
    else:
        key = ("saved_model", os.path.abspath(saved_model)) if saved_model else (
            "checkpoint", os.path.abspath(checkpoint))
    with _MODEL_CACHE_LOCK:
        if key not in _MODEL_CACHE:
            if litert:
                from memnet_tf.models import litert as litert_lib

                _MODEL_CACHE[key] = litert_lib.load_litert(litert)
            elif saved_model:
                _MODEL_CACHE[key] = loading.load_saved_model(saved_model)
            else:
                model, run_flag_values = loading.load_model(checkpoint)
                _MODEL_CACHE[key] = (model, config_lib.track_config_from_flags(run_flag_values))
        return _MODEL_CACHE[key]


class TrackerFactory:
    """A picklable zero-argument callable that returns a fresh `MemTracker`.

    It holds only paths and the track config; the model is loaded lazily, once per process,
    in the process that calls it (OPE workers started with 'spawn'). Calls in one process
    return the same `MemTracker` (each `init` starts a sequence afresh), so its graph is traced
    once per process, not once per sequence; to follow two targets at the same time, build a
    second `MemTracker(model, track_config)` directly.

    Args:
        checkpoint: run folder or checkpoint prefix (`models.loading.load_model`), or None.
        saved_model: an export (`models.loading.load_saved_model`), or None.
        litert: a LiteRT export (`models.litert.load_litert`), or None; exactly one of the
            three is given.
        track_config: tracking hyper-parameters; None = those of the run (its flags.txt, or
            the copy inside the export).
        name: tracker name; None = what the model is (`default_tracker_name`).
    """

    def __init__(self, checkpoint: str | None = None, saved_model: str | None = None,
                 track_config: config_lib.TrackConfig | None = None, name: str | None = None,
                 litert: str | None = None):
        if sum(bool(source) for source in (checkpoint, saved_model, litert)) != 1:
            raise ValueError("give exactly one of checkpoint (a run folder or checkpoint "
                             "prefix), saved_model (an export folder) and litert (a LiteRT "
                             "export folder)")
        self.checkpoint = checkpoint
        self.saved_model = saved_model
        self.litert = litert
        self.track_config = track_config
        self.name = name

    def __call__(self) -> MemTracker:
        model, run_track_config = _load_cached(self.checkpoint, self.saved_model, self.litert)
        track_config = self.track_config or run_track_config
        key = (id(model), track_config, self.name)
        with _MODEL_CACHE_LOCK:
            if key not in _TRACKER_CACHE:
                _TRACKER_CACHE[key] = MemTracker(model, track_config, name=self.name)
            return _TRACKER_CACHE[key]

    def provenance(self) -> dict:
        """What trackers of this factory are, for `ope.run_ope(..., provenance=...)`.

        The resolved checkpoint (a run folder's latest, so a newer checkpoint is another tracker)
        or the export and its creation time, and the tracking configuration.
        """
        from memnet_tf.models import loading

        if self.litert:
            from memnet_tf.models import litert as litert_lib

            metadata = litert_lib.read_metadata(self.litert)
            track_config = self.track_config or run_litert_track_config(self.litert)
            return {"litert": os.path.abspath(self.litert), "created": metadata.get("created"),
                    "track_config": dataclasses.asdict(track_config)}
        track_config = self.track_config or loading.run_track_config(self.checkpoint,
                                                                      self.saved_model)
        if self.saved_model:
            from memnet_tf import export

            source = {"saved_model": os.path.abspath(self.saved_model),
                      "created": export.read_metadata(self.saved_model).get("created")}
        else:
            source = {"checkpoint": os.path.abspath(loading.resolve_checkpoint(self.checkpoint))}
        return {**source, "track_config": dataclasses.asdict(track_config)}

    def __repr__(self):
        if self.litert:
            return f"TrackerFactory(litert={self.litert!r})"
        if self.saved_model:
            return f"TrackerFactory(saved_model={self.saved_model!r})"
        return f"TrackerFactory(checkpoint={self.checkpoint!r})"


def factory_from_flags(flag_values, name: str | None = None) -> TrackerFactory:
    """The factory of `--checkpoint`, `--saved_model` or `--litert` for `track` and `evaluate`.

    Tracking hyper-parameters are the run's own (its flags.txt, or the copy in the export),
    overridden only by tracking flags given explicitly on this command line.

    Raises:
        FileNotFoundError, ValueError: a missing or unreadable run or export, or neither or
            both of the two flags.
    """
    from memnet_tf.models import loading  # imported lazily: no TF work to build a factory

    checkpoint = flag_values.checkpoint or None
    saved_model = flag_values.saved_model or None
    litert = flag_values.litert or None
    if litert:
        if checkpoint or saved_model:
            raise ValueError("give one of --checkpoint, --saved_model and --litert")
        run_config = run_litert_track_config(litert)
    else:
        run_config = loading.run_track_config(checkpoint, saved_model)
    track_config = config_lib.override_from_flags(run_config, flag_values)
    return TrackerFactory(checkpoint, saved_model, track_config, name, litert=litert)


def run_litert_track_config(litert: str) -> config_lib.TrackConfig:
    """The tracking configuration stored with a LiteRT export."""
    from memnet_tf.models import litert as litert_lib

    return config_lib.config_from_dict(config_lib.TrackConfig,
                                       litert_lib.read_metadata(litert).get("track_config", {}))


__all__ = ["MemTracker", "TargetEstimate", "TrackerFactory", "default_tracker_name",
           "estimate_target", "factory_from_flags", "target_from_peak", "to_float_frame",
           "upsample_responses_tf"]
