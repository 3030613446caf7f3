"""The tracker as it was before the one-call frame step (issue 13), kept as a test reference.

Per frame: the write exemplar and the searches cropped in one tf.function (each crop computing
its own frame mean), the backbone through Keras' own `Conv2D` calls (grouped convolutions
included), the exemplar encoded even without memory, the x16 up-sampling in TF, then the
numpy post-processing (`tracker.estimate_target`) and a second tf.function keeping the winning
scale's state. `tests/test_tracker_speedups.py` checks the boxes of today's `MemTracker` against
these, so every speed-up has to keep the boxes.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from memnet_tf.geometry import boxes as boxes_lib
from memnet_tf.geometry import crops
from memnet_tf.layers import states
from memnet_tf.tracking import postprocess
from memnet_tf.tracking.tracker import estimate_target, to_float_frame, upsample_responses_tf


def keras_backbone(backbone, images):
    """`AlexNetBackbone.call` with every convolution run by its Keras layer (grouped ones too)."""
    x = images * backbone.input_scale if backbone.input_scale != 1.0 else images
    for i, conv in enumerate(backbone.convs):
        x = conv(x)
        if i < 4:
            x = tf.nn.relu(backbone.norms[i](x, training=False))
        if i < 2:
            x = tf.nn.max_pool2d(x, 3, strides=2, padding="VALID")
    return x


class ReferenceTracker:
    """The former `MemTracker` path on an in-process `MemTrack` (boxes only)."""

    def __init__(self, model, track_config):
        self.model, self.cfg = model, track_config
        mcfg = model.model_config
        self._e, self._s = mcfg.exemplar_size, mcfg.search_size
        self._scales = crops.scale_factors(track_config.num_scales, track_config.scale_step)
        size_up = mcfg.response_size * track_config.upsample_factor
        self._window = postprocess.hann_window(size_up)
        self._matrix = tf.constant(postprocess.bicubic_upsample_matrix(mcfg.response_size,
                                                                       size_up), tf.float32)
        self._frame_fn = tf.function(self._frame_graph, reduce_retracing=True)
        self._init_fn = tf.function(self._init_graph, reduce_retracing=True)
        self._keep_fn = tf.function(lambda state, index: states.tile(
            states.select(state, index), track_config.num_scales))

    def _init_graph(self, image, centre, side):
        exemplar = crops.crop_and_resize(image, centre, side, self._e, self.cfg.official_quirks)
        template = keras_backbone(self.model.backbone, exemplar)
        return states.tile(self.model.initial_state(template), self.cfg.num_scales)

    def _frame_graph(self, previous, current, centre, side, sides, state):
        quirks = self.cfg.official_quirks
        exemplar = crops.crop_and_resize(previous, centre, side, self._e, quirks)
        search = crops.crop_and_resize(current, centre, sides, self._s, quirks)
        backbone = self.model.backbone
        responses, new_state, _ = self.model.step_features(
            keras_backbone(backbone, exemplar), keras_backbone(backbone, search), state)
        return upsample_responses_tf(responses, self._matrix), new_state

    def _sides(self):
        self._side_z = float(boxes_lib.exemplar_side(self._size[0], self._size[1],
                                                     self.cfg.context))
        self._side_x = float(crops.search_side(self._side_z, self._e, self._s))

    def init(self, image, box):
        frame = tf.constant(to_float_frame(image))
        centre = boxes_lib.xywh_to_center(np.asarray(box, np.float64))
        self._centre = np.array([centre.cx, centre.cy])
        self._size = np.array([centre.w, centre.h])
        self._initial = self._size.copy()
        self._sides()
        self.state = self._init_fn(frame, self._centre.astype(np.float32),
                                   np.array([self._side_z], np.float32))
        self._previous = frame

    def update(self, image):
        array = to_float_frame(image)
        frame = tf.constant(array)
        sides = np.maximum(crops.search_sides(self._side_x, self._scales), 1.0)
        upsampled, new_state = self._frame_fn(
            self._previous, frame, self._centre.astype(np.float32),
            np.array([self._side_z], np.float32), sides.astype(np.float32), self.state)
        estimate = estimate_target(upsampled.numpy(), self._centre, self._size, self._initial,
                                   sides, (array.shape[1], array.shape[0]), self.cfg, self._s,
                                   window=self._window)
        self.state = self._keep_fn(new_state, tf.constant(estimate.best_scale, tf.int32))
        self._centre, self._size = estimate.center_xy, estimate.size_wh
        self._sides()
        self._previous = frame
        box = boxes_lib.center_to_xywh(np.concatenate([self._centre, self._size]))
        return boxes_lib.clip_box_to_frame(box, array.shape)
