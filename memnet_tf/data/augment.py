"""Stretch-and-translate augmentation of exemplar and search crops (spec 7.3), stateless.

Every random draw is `tf.random.stateless_uniform` keyed by an explicit seed, so a clip's
augmentation depends only on (seed, clip index) and batches are reproducible whatever the
parallelism of the pipeline.
"""

from __future__ import annotations

import tensorflow as tf


def stretch_translate_windows(uniforms: tf.Tensor, out_size: int, patch_size: int,
                              max_stretch: float, max_shift: float) -> tf.Tensor:
    """Crop windows in patch pixels from U(-1, 1) draws (official `_translate_and_strech`).

    Per axis: side = round(min((1 + max_stretch * u) * out_size, patch_size)); the window is centred
    in the patch and its start is moved by max_range * u' with
    max_range = min(max_shift, (patch_size - side) / 2).

    Args:
        uniforms: `[num_crops, 4]` draws in [-1, 1]: stretch (y, x), then shift (y, x).
        out_size: side of the output crop (E or S).
        patch_size: side of the patch (P).
        max_stretch: relative stretch (0.1 exemplar, 0.05 search).
        max_shift: pixels of translation (8 exemplar, 4 search).

    Returns:
        float32 `[num_crops, 4]` windows `[y0, x0, side_h, side_w]`: the crop covers patch pixel
        centres y0 .. y0 + side_h - 1 (and likewise for x).
    """
    uniforms = tf.cast(uniforms, tf.float32)
    size = float(patch_size)
    side = tf.round(tf.minimum((1.0 + max_stretch * uniforms[:, 0:2]) * out_size, size))
    shift_range = tf.minimum(float(max_shift), (size - side) / 2.0)
    start = (size - side) / 2.0 + shift_range * uniforms[:, 2:4]
    return tf.concat([start, side], axis=1)


def crop_windows(patches: tf.Tensor, windows: tf.Tensor, out_size: int) -> tf.Tensor:
    """Bilinearly resamples each window of its patch to `out_size` (crop_and_resize).

    Args:
        patches: `[num_crops, P, P, 3]` uint8 or float patches.
        windows: float32 `[num_crops, 4]` from `stretch_translate_windows`.
        out_size: side of the output crop.

    Returns:
        float32 `[num_crops, out_size, out_size, 3]` in [0, 1] (uint8 input) or the input range.
    """
    size = tf.cast(tf.shape(patches)[1], tf.float32)
    start, side = windows[:, 0:2], windows[:, 2:4]
    # crop_and_resize maps normalised y in [y1, y2] to pixel centres y * (P - 1).
    normalised = tf.concat([start, start + side - 1.0], axis=1) / (size - 1.0)
    crops = tf.image.crop_and_resize(patches, normalised, tf.range(tf.shape(patches)[0]),
                                     [out_size, out_size], method="bilinear")
    if patches.dtype == tf.uint8:
        crops = crops / 255.0
    return crops


def transform_boxes(boxes: tf.Tensor, windows: tf.Tensor, out_size: int) -> tf.Tensor:
    """Maps `[x1, y1, x2, y2]` patch-pixel boxes into crop pixels of their windows.

    Crop pixel i samples patch pixel start + i * (side - 1) / (out - 1), so a patch coordinate p
    goes to (p - start) * (out - 1) / (side - 1). (The official code scales by out / side; the
    difference is below 0.1 px at the box edges and this one is exactly consistent with the image.)

    Args:
        boxes: `[num_crops, 4]` boxes in patch pixels.
        windows: `[num_crops, 4]` from `stretch_translate_windows`.
        out_size: side of the output crop.

    Returns:
        float32 `[num_crops, 4]` boxes in crop pixels.
    """
    start_yx, side_hw = windows[:, 0:2], windows[:, 2:4]
    start_xy = tf.reverse(start_yx, axis=[1])
    scale_xy = (out_size - 1.0) / (tf.reverse(side_hw, axis=[1]) - 1.0)
    boxes = tf.cast(boxes, tf.float32)
    return (boxes - tf.tile(start_xy, [1, 2])) * tf.tile(scale_xy, [1, 2])


def random_crops(patches: tf.Tensor, seed: tf.Tensor, out_size: int, max_stretch: float,
                 max_shift: float, boxes: tf.Tensor | None = None):
    """Stretch-and-translate crops of a batch of patches, keyed by a stateless seed.

    Args:
        patches: `[num_crops, P, P, 3]` uint8 patches.
        seed: int `[2]` stateless seed.
        out_size: side of the output crops.
        max_stretch: relative stretch.
        max_shift: pixels of translation.
        boxes: optional `[num_crops, 4]` target boxes in patch pixels (x1, y1, x2, y2).

    Returns:
        crops: float32 `[num_crops, out_size, out_size, 3]` in [0, 1], and when `boxes` is given
        also the float32 `[num_crops, 4]` boxes in crop pixels.
    """
    num_crops = tf.shape(patches)[0]
    uniforms = tf.random.stateless_uniform([num_crops, 4], seed=seed, minval=-1.0, maxval=1.0)
    windows = stretch_translate_windows(uniforms, out_size, int(patches.shape[1]), max_stretch,
                                        max_shift)
    crops = crop_windows(patches, windows, out_size)
    if boxes is None:
        return crops
    return crops, transform_boxes(boxes, windows, out_size)


def centre_crop(patches: tf.Tensor, out_size: int) -> tf.Tensor:
    """The un-augmented central `out_size` crop (z_0), offset (P - out) // 2, in [0, 1].

    Args:
        patches: uint8 `[num_crops, P, P, 3]`.
        out_size: side of the crop.

    Returns:
        float32 `[num_crops, out_size, out_size, 3]`.
    """
    offset = (int(patches.shape[1]) - out_size) // 2
    crop = patches[:, offset:offset + out_size, offset:offset + out_size, :]
    return tf.cast(crop, tf.float32) / 255.0


def corrupt_writes(exemplars: tf.Tensor, probability: float, seed: tf.Tensor) -> tf.Tensor:
    """Replaces some written exemplars of a batch of clips with another clip's (wrong writes).

    At tracking time the template written at step t is cut at the tracker's own box, which is
    sometimes on a distractor or an occluder; in training it is always cut at the ground truth, so
    the memory never learns that a slot can hold the wrong object. With `probability` q, step
    t >= 1 of clip b writes step t of clip (b + k) mod B instead, k uniform in 1..B-1 (another
    clip of the batch, i.e. another object or another part of the same video). Step 0 (z_0, which
    also gives T_0) is never replaced; the searches and labels are untouched, so the loss still
    asks for the true target.

    Args:
        exemplars: `[B, T, ...]` exemplar crops or their features (any trailing shape).
        probability: q in [0, 1]; 0 returns `exemplars` unchanged.
        seed: int `[2]` stateless seed (one per batch).

    Returns:
        `exemplars` with the chosen (b, t) entries replaced, same shape and dtype.
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"corrupt_write_prob={probability} must be in [0, 1]")
    if probability == 0.0:
        return exemplars
    shape = tf.shape(exemplars)
    batch, steps = shape[0], shape[1]
    draws = tf.random.stateless_uniform([2, batch, steps], seed=seed)
    replace = (draws[0] < probability) & (tf.range(steps)[None, :] > 0)
    # k in 1..B-1; with B = 1, (b + k) mod B = b: a batch of one has no other clip.
    offset = 1 + tf.cast(draws[1] * tf.cast(batch - 1, tf.float32), tf.int32)
    clip = tf.range(batch)[:, None]
    source = tf.where(replace, (clip + offset) % batch, clip + tf.zeros_like(offset))
    index = tf.stack([source, tf.broadcast_to(tf.range(steps)[None, :], [batch, steps])], -1)
    return tf.gather_nd(exemplars, index)


# A written template this far from the target's (half the 64-px target of a 127-px exemplar with
# its context) is centred off the object: a clearly wrong box, not box jitter.
SHIFTED_WRITE_MIN_PIXELS = 32.0


def shifted_writes(exemplars: tf.Tensor, searches: tf.Tensor, search_boxes: tf.Tensor,
                   probability: float, seed: tf.Tensor, cell: int, stride: int = 8,
                   exemplar_pixels: int = 127,
                   min_shift_pixels: float = SHIFTED_WRITE_MIN_PIXELS,
                   burst: int = 0) -> tf.Tensor:
    """Replaces some written exemplars with a window of the same frame cut at a wrong box (drift).

    The tracker's wrong writes are mostly of its own scene: the box slid onto background, a
    neighbour or an occluder. The search crop of step t - 1 is frame f_t, the frame whose exemplar
    step t writes, at the exemplar's scale, so a window of it at offset k * stride pixels (k on the
    grid of window positions) is the exemplar a box k * stride pixels off would have cut; on a
    backbone without padding, the window of the search *features* at cell k is exactly that
    exemplar's features. With `probability` q, step t >= 1 writes such a window whose position
    is at least `min_shift_pixels` from the target's (Chebyshev, in each axis' grid units),
    uniform over the allowed positions; step 0 (z_0 and T_0), the searches and the labels are
    untouched.

    With `burst` K > 0 the wrong writes come as a tracker makes them through an occlusion: with
    probability q a clip loses the target for K consecutive steps (min(K, T - 1); the first one
    uniform over 1 .. T - K), every one of them written at a wrong box, and the rest of the clip
    is written right. K >= the memory size fills every slot with wrong writes, which independent
    draws almost never do.

    Args:
        exemplars: `[B, T, h, h, C]` exemplar crops or features.
        searches: `[B, T, H, H, C]` search crops or features of the same clips.
        search_boxes: float32 `[B, T, 4]` target `[x1, y1, x2, y2]` in search-crop pixels.
        probability: q in [0, 1]; 0 returns `exemplars` unchanged.
        seed: int `[2]` stateless seed (one per batch).
        cell: elements of `searches` per stride pixels: 1 for features, `stride` for image crops.
        stride: pixels between window positions (the backbone's total stride).
        exemplar_pixels: the exemplar crop's size in pixels (127).
        min_shift_pixels: how far from the target's window a wrong window is at least.
        burst: 0 = each step t >= 1 independently with probability q; K > 0 = runs of K steps.

    Returns:
        `exemplars` with the chosen (b, t) entries replaced, same shape and dtype.
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"shifted_write_prob={probability} must be in [0, 1]")
    if burst < 0:
        raise ValueError(f"shifted_write_burst={burst} must be >= 0")
    if probability == 0.0:
        return exemplars
    h, big = int(exemplars.shape[2]), int(searches.shape[2])
    if (big - h) % cell:
        raise ValueError(f"search size {big} - exemplar size {h} is not a multiple of cell={cell}")
    positions = (big - h) // cell + 1
    shape = tf.shape(exemplars)
    batch, steps = shape[0], shape[1]
    # Step t's wrong exemplar comes from search t - 1 (frame f_t); step 0 is never replaced.
    previous = tf.concat([searches[:, :1], searches[:, :-1]], axis=1)
    previous_box = tf.concat([search_boxes[:, :1], search_boxes[:, :-1]], axis=1)
    centre = (previous_box[..., :2] + previous_box[..., 2:]) / 2.0  # [B, T, (x, y)]
    target = (centre - (exemplar_pixels - 1) / 2.0) / stride  # the target's window, in positions
    grid = tf.cast(tf.range(positions), tf.float32)
    min_shift = min_shift_pixels / stride
    far_x = tf.abs(grid - target[..., 0:1]) >= min_shift  # [B, T, P]
    far_y = tf.abs(grid - target[..., 1:2]) >= min_shift
    # Allowed (y, x): far in x or far in y (Chebyshev distance >= min_shift).
    allowed = far_y[..., :, None] | far_x[..., None, :]  # [B, T, P, P]
    logits = tf.where(tf.reshape(allowed, [-1, positions * positions]), 0.0, -1e9)
    draw_seed, choice_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    choice = tf.reshape(tf.random.stateless_categorical(logits, 1, seed=choice_seed,
                                                        dtype=tf.int32), [batch, steps])
    rows = cell * (choice // positions)[..., None] + tf.range(h)  # [B, T, h]
    cols = cell * (choice % positions)[..., None] + tf.range(h)
    windows = tf.gather(tf.gather(previous, rows, axis=2, batch_dims=2), cols, axis=3,
                        batch_dims=2)
    step = tf.range(steps)[None, :]
    if burst:
        length = tf.minimum(burst, steps - 1)
        lost = tf.random.stateless_uniform([batch, 1], seed=draw_seed) < probability
        start_seed = tf.random.experimental.stateless_fold_in(draw_seed, 1)
        start = tf.random.stateless_uniform([batch, 1], seed=start_seed, minval=1,
                                            maxval=steps - length + 1, dtype=tf.int32)
        chosen = lost & (step >= start) & (step < start + length)
    else:
        chosen = ((tf.random.stateless_uniform([batch, steps], seed=draw_seed) < probability)
                  & (step > 0))
    replace = chosen & tf.reduce_any(allowed, axis=[2, 3])
    return tf.where(replace[:, :, None, None, None], tf.cast(windows, exemplars.dtype), exemplars)


def corrupt_batch_writes(dataset: tf.data.Dataset, probability: float, seed: int,
                         key: str) -> tf.data.Dataset:
    """`corrupt_writes` on `features[key]` of every (features, targets) batch of `dataset`.

    Batch i uses the stateless seed (seed, i), so the corruption is reproducible and independent
    of the pipeline's parallelism; q = 0 returns `dataset` itself.
    """
    if probability == 0.0:
        return dataset
    return _map_batch_exemplars(dataset, seed, key, lambda features, targets, batch_seed:
                                corrupt_writes(features[key], probability, batch_seed))


def shift_batch_writes(dataset: tf.data.Dataset, probability: float, seed: int, key: str,
                       search_key: str, cell: int, stride: int = 8,
                       exemplar_pixels: int = 127, burst: int = 0) -> tf.data.Dataset:
    """`shifted_writes` on `features[key]` of every batch (windows of `features[search_key]` at
    wrong boxes; `targets["search_box"]` says where the target is); seeded per batch as
    `corrupt_batch_writes`. q = 0 returns `dataset` itself."""
    if probability == 0.0:
        return dataset
    return _map_batch_exemplars(dataset, seed, key, lambda features, targets, batch_seed:
                                shifted_writes(features[key], features[search_key],
                                               targets["search_box"], probability, batch_seed,
                                               cell, stride, exemplar_pixels, burst=burst))


def _map_batch_exemplars(dataset: tf.data.Dataset, seed: int, key: str, rewrite):
    """Replaces `features[key]` of batch i by `rewrite(features, targets, seed (seed, i))`."""

    def apply(index, batch):
        features, targets = batch
        features = dict(features)
        features[key] = rewrite(features, targets, tf.stack([tf.constant(seed, tf.int64), index]))
        return features, targets

    return dataset.enumerate().map(apply, num_parallel_calls=tf.data.AUTOTUNE)
