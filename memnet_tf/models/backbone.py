"""SiamFC-family AlexNet feature networks, selected by name.

`memtrack_alexnet` is the official MemTrack backbone (spec section 2): no channel groups, a bias on
every conv, BatchNorm after conv1-4, a linear conv5, valid padding, inputs in [0, 1].
`siamfc_alexnet` is SiamFC's topology: groups 2 on conv2/4/5, inputs 0-255, configurable BN
epsilon. Both take images in [0, 1] and scale them by `input_scale` themselves, so the rest of the
project has one image convention. Exemplar 127 -> 6x6xC, search 255 -> 22x22xC (total stride 8).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from memnet_tf.config import ModelConfig
from memnet_tf.layers.batch_norm import GlobalBatchNormalization

# (kernel, stride) of conv1..conv5; max-pools 3/2 follow conv1 and conv2.
_CONV_GEOMETRY = ((11, 2), (5, 1), (3, 1), (3, 1), (3, 1))
NUM_LAYERS = len(_CONV_GEOMETRY)


@keras.saving.register_keras_serializable(package="memnet_tf")
class AlexNetBackbone(keras.layers.Layer):
    """AlexNet embedding f(.) shared by the exemplar and search branches.

    Args:
      channels: output channels of conv1..conv5.
      groups: channel groups of conv1..conv5 (SiamFC: 1, 2, 1, 2, 2).
      bn_epsilon, bn_momentum: of the BatchNorms after conv1..conv4.
      input_scale: images in [0, 1] are multiplied by this (255 for SiamFC weights).
    """

    def __init__(self, channels=(96, 256, 384, 384, 256), groups=(1, 1, 1, 1, 1),
                 bn_epsilon: float = 1e-3, bn_momentum: float = 0.99, input_scale: float = 1.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.channels = tuple(channels)
        self.groups = tuple(groups)
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.input_scale = input_scale
        # Sub-layers are plain named attributes (conv1..conv5, conv1_bn..conv4_bn):
        # tf.train.Checkpoint does not see inside Keras 3's list wrappers.
        # Sub-layers take this layer's dtype policy (a mixed policy computes the convs in
        # bfloat16/float16 with float32 variables; the BatchNorms keep float32 statistics).
        policy = self.dtype_policy
        for i, (c, (k, s), g) in enumerate(zip(self.channels, _CONV_GEOMETRY, self.groups)):
            setattr(self, f"conv{i + 1}", keras.layers.Conv2D(
                c, k, strides=s, groups=g, padding="valid", dtype=policy, name=f"conv{i + 1}"))
        for i in range(4):
            # Statistics of the global batch over all replicas, two-pass, Bessel-corrected moving
            # variance: as the official fused BatchNorm on one device (layers/batch_norm.py).
            setattr(self, f"conv{i + 1}_bn", GlobalBatchNormalization(
                momentum=bn_momentum, epsilon=bn_epsilon, dtype=policy, name=f"conv{i + 1}_bn"))

    @property
    def convs(self):
        """conv1..conv5."""
        return [getattr(self, f"conv{i + 1}") for i in range(5)]

    @property
    def norms(self):
        """The BatchNorms after conv1..conv4."""
        return [getattr(self, f"conv{i + 1}_bn") for i in range(4)]

    def build(self, images_shape):
        shape = (None, None, None, images_shape[-1])
        for i, conv in enumerate(self.convs):
            conv.build(shape)
            shape = (None, None, None, self.channels[i])
            if i < 4:
                self.norms[i].build(shape)

    def call(self, images, training=False):
        """`[B, H, W, 3]` images in [0, 1] -> `[B, (H-87)/8+1, ..., C]` features."""
        return self.features_after(images, NUM_LAYERS, training=training)

    def features_after(self, images, layer: int, training=False):
        """Images in [0, 1] -> the output of conv`layer`'s block (its BatchNorm, ReLU, pool)."""
        x = tf.cast(images, self.compute_dtype)
        x = x * self.input_scale if self.input_scale != 1.0 else x
        return self.continue_from(x, 0, training=training, last=layer)

    def continue_from(self, features, layer: int, training=False, last: int = NUM_LAYERS):
        """The output of conv`layer`'s block (`layer` = 0: scaled images) -> that of conv`last`.

        Lets training on a partly frozen backbone start from cached conv`layer` features.
        """
        if not 0 <= layer <= last <= NUM_LAYERS:
            raise ValueError(f"layers {layer}..{last}: expected 0 <= first <= last <= "
                             f"{NUM_LAYERS}")
        x = tf.cast(features, self.compute_dtype)
        for i in range(layer, last):
            x = convolve(self.convs[i], x)
            if i < 4:
                x = tf.nn.relu(self.norms[i](x, training=training))
            if i < 2:
                x = tf.nn.max_pool2d(x, 3, strides=2, padding="VALID")
        return x

    def freeze_layers(self, frozen: int) -> None:
        """Fixes conv1..conv`frozen` and their BatchNorms, weights and statistics (a frozen
        BatchNorm normalises with its moving statistics); the later layers train."""
        if not 0 <= frozen <= NUM_LAYERS:
            raise ValueError(f"frozen layers {frozen}: expected 0..{NUM_LAYERS}")
        for i in range(NUM_LAYERS):
            self.convs[i].trainable = i >= frozen
            if i < 4:
                self.norms[i].trainable = i >= frozen

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, groups=self.groups, bn_epsilon=self.bn_epsilon,
                      bn_momentum=self.bn_momentum, input_scale=self.input_scale)
        return config


def convolve(conv: keras.layers.Conv2D, x: tf.Tensor) -> tf.Tensor:
    """`conv(x)`, with a grouped convolution run as one plain convolution per group.

    Keras 3 runs every grouped convolution through its own XLA call on CPU, several times
    slower than the plain convolutions of the same layer (the FDSiamFC-30 search branch took
    ~2x longer with groups). The kernel variable keeps its grouped `[k, k, C_in / g, C_out]`
    shape, so checkpoints and imported weights are unchanged: group j's output channels
    `j * C_out / g ...` see input channels `j * C_in / g ...`, which is what slicing the kernel
    and the input along their last axes computes (Keras and PyTorch use that group order).
    """
    groups = conv.groups
    if groups == 1:
        return conv(x)
    kernel = tf.cast(conv.kernel, x.dtype)
    outputs = [tf.nn.conv2d(part, part_kernel, conv.strides, conv.padding.upper())
               for part, part_kernel in zip(tf.split(x, groups, axis=-1),
                                            tf.split(kernel, groups, axis=-1))]
    y = tf.concat(outputs, axis=-1)
    return tf.nn.bias_add(y, tf.cast(conv.bias, x.dtype)) if conv.use_bias else y


def memtrack_alexnet(cfg: ModelConfig, name: str = "feature_extraction",
                     dtype=None) -> AlexNetBackbone:
    return AlexNetBackbone(cfg.channels, (1, 1, 1, 1, 1), cfg.bn_epsilon, cfg.bn_momentum,
                           cfg.input_scale, name=name, dtype=dtype)


def siamfc_alexnet(cfg: ModelConfig, name: str = "feature_extraction",
                   dtype=None) -> AlexNetBackbone:
    return AlexNetBackbone(cfg.channels, (1, 2, 1, 2, 2), cfg.bn_epsilon, cfg.bn_momentum,
                           cfg.input_scale, name=name, dtype=dtype)


BACKBONE_BUILDERS = {
    "memtrack_alexnet": memtrack_alexnet,
    "siamfc_alexnet": siamfc_alexnet,
}


def build_backbone(cfg: ModelConfig, dtype=None) -> AlexNetBackbone:
    """The backbone named by `cfg.backbone`, with an optional Keras dtype policy (name)."""
    try:
        builder = BACKBONE_BUILDERS[cfg.backbone]
    except KeyError:
        raise ValueError(f"unknown backbone {cfg.backbone!r}; known: "
                         f"{sorted(BACKBONE_BUILDERS)}") from None
    return builder(cfg, dtype=dtype)
