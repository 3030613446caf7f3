"""Backbone features of the training patches, computed once, for training on a frozen backbone.

With `--freeze_backbone` the backbone is a fixed function (weights and BatchNorm statistics), so
the features of a crop never change during training and only the crops' augmentation varies. This
module cuts, for every frame of every stored track, the centre exemplar z_0 and `augmentations`
(K) stretched/translated exemplar and search crops exactly as `pipeline.make_example` does, runs the
backbone on them once, and stores the features (float16) with the labels of each search crop.
With `--frozen_backbone_layers=L` < 5 only conv1..convL are fixed: the cache holds convL's
features and the model runs the trainable rest of the backbone on them in every step.
Training then draws clips as the TFRecord pipeline does (a track, T + 1 frames by
`sampling.sample_train_frames`) and picks one of the K stored augmentations per frame, so a step
costs the memory side only.

What it changes, compared with live augmentation: each frame is seen under K fixed augmentations
instead of a fresh one per clip (frame sampling stays as random as before), and the features are
stored in float16 (relative error ~5e-4, far below the augmentations' own effect).

Layout of a cache folder: `<split>-conv<L>-<array>.npy` arrays (memory-mapped when read) and
`<split>-conv<L>-cache.json` with the fingerprint of what made them (backbone weights, geometry,
augmentation, K, seed, shards); a cache whose fingerprint differs is refused, never reused.
Caches of several layers share a folder. A split is written into a hidden staging folder and renamed into place when complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time

import numpy as np
import tensorflow as tf

from memnet_tf.config import TOTAL_STRIDE
from memnet_tf.data import augment, labels, sampling, tfrecord
# The clip generator of the live pipeline: cached clips draw frames exactly as live ones do.
from memnet_tf.data.pipeline import _rng
from memnet_tf.data.patches import PatchGeometry
from memnet_tf.models.backbone import NUM_LAYERS
from memnet_tf.models.memtrack import cached_feature_key

CACHE_VERSION = 2  # 2: caches of any backbone layer, named by it
# The K augmentations of every frame are one fixed set, whatever the run's --seed: runs with other
# seeds (which change clip sampling, the choice among the K, initial weights and dropout) share
# one cache.
AUGMENTATION_SEED = 1234
ARRAYS = ("centre_exemplar", "exemplar", "search", "label", "weight", "search_box")
# Frames encoded per backbone call while building (fixed, so the encoder traces once).
_CHUNK = 32


@dataclasses.dataclass
class FeatureCache:
    """The cached features of one split.

    Attributes:
      track_names: name of each track.
      track_starts: int64 `[num_tracks + 1]`; the frames of track i are rows
        `track_starts[i]:track_starts[i + 1]` of every array.
      layer: the backbone layer whose output the features are (5: the backbone's output).
      centre_exemplar: float16 `[F, h, h, C]` features of the plain centre exemplar crop (z_0).
      exemplar: float16 `[F, K, h, h, C]` features of the K augmented exemplar crops.
      search: float16 `[F, K, H, H, C]` features of the K augmented search crops.
      label, weight: float32 `[F, K, R, R]` IoU labels and balanced weights of each search crop.
      search_box: float32 `[F, K, 4]` target box in search-crop pixels.
    """

    track_names: list
    track_starts: np.ndarray
    layer: int
    centre_exemplar: np.ndarray
    exemplar: np.ndarray
    search: np.ndarray
    label: np.ndarray
    weight: np.ndarray
    search_box: np.ndarray

    @property
    def num_tracks(self) -> int:
        return len(self.track_names)

    @property
    def augmentations(self) -> int:
        return int(self.search.shape[1])

    def track_length(self, index: int) -> int:
        return int(self.track_starts[index + 1] - self.track_starts[index])


def backbone_digest(model) -> str:
    """SHA-256 of the backbone's weights and BatchNorm statistics: what its features depend on."""
    digest = hashlib.sha256()
    for variable in model.backbone.weights:
        digest.update(variable.path.encode())
        digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
    return digest.hexdigest()


def fingerprint(model_cfg, data_cfg, backbone_sha256: str, augmentations: int, seed: int,
                split: str, layer: int = NUM_LAYERS) -> dict:
    """What the cached features of `split` depend on; a cache is reused only when it matches.

    The data are identified by their shard manifest (files, tracks and frame counts), the backbone
    by the digest of its weights, so a copied or re-imported run folder reuses the cache.
    """
    manifest = tfrecord.read_manifest(data_cfg.data_dir, split) or {}
    return {
        "version": CACHE_VERSION,
        "backbone_sha256": backbone_sha256,
        "layer": int(layer),
        "backbone": model_cfg.backbone,
        "channels": list(model_cfg.channels),
        "bn_epsilon": model_cfg.bn_epsilon,
        "input_scale": model_cfg.input_scale,
        "exemplar_size": model_cfg.exemplar_size,
        "search_size": model_cfg.search_size,
        "patch_margin": data_cfg.patch_margin,
        "exemplar_stretch": data_cfg.exemplar_stretch,
        "exemplar_shift": data_cfg.exemplar_shift,
        "search_stretch": data_cfg.search_stretch,
        "search_shift": data_cfg.search_shift,
        "label_iou_threshold": data_cfg.label_iou_threshold,
        "augmentations": int(augmentations),
        "seed": int(seed),
        "split": split,
        "shards": [[s["file"], s["tracks"]] for s in manifest.get("shards", [])],
    }


def _prefix(split: str, layer: int) -> str:
    return f"{split}-conv{layer}"


def _manifest_path(cache_dir: str, split: str, layer: int) -> str:
    return os.path.join(cache_dir, f"{_prefix(split, layer)}-cache.json")


def read_cache(cache_dir: str, split: str, expected: dict | None = None,
               layer: int = NUM_LAYERS) -> FeatureCache | None:
    """The conv`layer` cache of `split` in `cache_dir` (arrays memory-mapped), or None.

    Raises:
        ValueError: the cache was made from something else than `expected` describes.
    """
    path = _manifest_path(cache_dir, split, layer)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if expected is not None and manifest["fingerprint"] != expected:
        differences = [f"{k}: {manifest['fingerprint'].get(k)!r} cached, {v!r} now"
                       for k, v in expected.items() if manifest["fingerprint"].get(k) != v]
        raise ValueError(f"feature_cache={cache_dir!r}: its conv{layer} {split} features were "
                         f"made from "
                         f"other settings ({'; '.join(differences)[:600]}); delete it or choose "
                         "another --feature_cache folder")
    arrays = {name: np.load(os.path.join(cache_dir, f"{_prefix(split, layer)}-{name}.npy"),
                            mmap_mode="r") for name in ARRAYS}
    return FeatureCache(track_names=manifest["track_names"],
                        track_starts=np.asarray(manifest["track_starts"], np.int64),
                        layer=layer, **arrays)


def _encoder(model, geometry: PatchGeometry, data_cfg, augmentations: int, layer: int):
    """A tf.function: (patches [_CHUNK, P, P, 3] uint8, boxes, seed) -> features and labels."""
    e, s, r = geometry.exemplar_size, geometry.search_size, geometry.response_size

    def features(images):
        return model.backbone.features_after(images, layer, training=False)

    @tf.function(input_signature=[
        tf.TensorSpec([_CHUNK, geometry.patch_size, geometry.patch_size, 3], tf.uint8),
        tf.TensorSpec([_CHUNK, 4], tf.float32), tf.TensorSpec([2], tf.int64)])
    def encode(patches, boxes, seed):
        centre = features(augment.centre_crop(patches, e))
        seeds = tf.random.experimental.stateless_split(seed, 2 * augmentations)
        exemplars, searches, label_maps, weight_maps, search_boxes = [], [], [], [], []
        for k in range(augmentations):
            exemplar = augment.random_crops(patches, seeds[2 * k], e, data_cfg.exemplar_stretch,
                                            data_cfg.exemplar_shift)
            search, search_box = augment.random_crops(
                patches, seeds[2 * k + 1], s, data_cfg.search_stretch, data_cfg.search_shift,
                boxes=boxes)
            label, weight = labels.iou_labels(search_box, r, data_cfg.label_iou_threshold,
                                              geometry.stride)
            exemplars.append(features(exemplar))
            searches.append(features(search))
            label_maps.append(label)
            weight_maps.append(weight)
            search_boxes.append(search_box)
        return {"centre_exemplar": tf.cast(centre, tf.float16),
                "exemplar": tf.cast(tf.stack(exemplars, 1), tf.float16),
                "search": tf.cast(tf.stack(searches, 1), tf.float16),
                "label": tf.stack(label_maps, 1), "weight": tf.stack(weight_maps, 1),
                "search_box": tf.stack(search_boxes, 1)}
    return encode


def build_cache(model, model_cfg, data_cfg, cache_dir: str, split: str, augmentations: int,
                seed: int, expected: dict, progress=None,
                layer: int = NUM_LAYERS) -> FeatureCache:
    """Encodes every frame of the `split` shards of `data_cfg.data_dir` and stores the features.

    Args:
      model: a MemTrack whose (frozen) backbone gives the features.
      model_cfg, data_cfg: configs (geometry, augmentation ranges, label threshold).
      cache_dir: the cache folder.
      split: "train" or "val".
      augmentations: K, augmented crops per frame.
      seed: augmentation seed.
      expected: `fingerprint(...)`, stored with the cache.
      progress: optional callable receiving progress lines.
      layer: cache the output of conv`layer`'s block (5: the backbone's features).

    Returns:
      The FeatureCache as read back from disk.
    """
    if augmentations < 1:
        raise ValueError(f"feature_cache_augmentations={augmentations} must be positive")
    geometry = PatchGeometry.from_configs(data_cfg, model_cfg)
    shards = tfrecord.list_shards(data_cfg.data_dir, split)
    if not shards:
        raise FileNotFoundError(f"data_dir={data_cfg.data_dir!r}: no '{split}-*.tfrecord' shards")
    encode = _encoder(model, geometry, data_cfg, augmentations, layer)
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in ARRAYS}
    names, starts = [], [0]
    tic = time.time()
    track_number = 0
    for shard in shards:
        for index, serialized in enumerate(tf.data.TFRecordDataset(shard).as_numpy_iterator()):
            where = f"{os.path.basename(shard)} record {index}"
            track = tfrecord.decode_track(serialized, where)
            if track.patch_size not in (0, geometry.patch_size):
                raise ValueError(f"{where}: {track.patch_size} px patches, the model needs "
                                 f"{geometry.patch_size}")
            num_frames = len(track)
            for begin in range(0, num_frames, _CHUNK):
                frames = np.arange(begin, min(begin + _CHUNK, num_frames))
                patches = tfrecord.decode_patches(track, frames, geometry.patch_size, where)
                boxes = track.boxes[frames].astype(np.float32)
                pad = _CHUNK - len(frames)
                if pad:
                    patches = np.concatenate([patches, np.repeat(patches[-1:], pad, 0)])
                    boxes = np.concatenate([boxes, np.repeat(boxes[-1:], pad, 0)])
                key = tf.constant([seed * 1_000_003 + track_number, begin], tf.int64)
                out = encode(patches, boxes, key)
                for name in ARRAYS:
                    chunks[name].append(out[name].numpy()[:len(frames)])
            names.append(track.name)
            starts.append(starts[-1] + num_frames)
            track_number += 1
            if progress is not None:
                progress(f"feature cache (conv{layer}, {split}): {track.name}, {num_frames} frames "
                         f"[{starts[-1]} frames in {time.time() - tic:.0f} s]")
    if not names:
        raise ValueError(f"data_dir={data_cfg.data_dir!r}: the {split} shards hold no track")
    os.makedirs(cache_dir, exist_ok=True)
    prefix = _prefix(split, layer)
    staging = os.path.join(cache_dir, f".{prefix}-staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        for name in ARRAYS:
            np.save(os.path.join(staging, f"{prefix}-{name}.npy"), np.concatenate(chunks[name]))
        manifest = {"fingerprint": expected, "track_names": names, "track_starts": starts,
                    "augmentations": augmentations, "num_frames": starts[-1],
                    "seconds": round(time.time() - tic, 1)}
        with open(_manifest_path(staging, split, layer), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)
        # Arrays first, the manifest last: a reader never sees a manifest without its arrays.
        for name in ARRAYS:
            os.replace(os.path.join(staging, f"{prefix}-{name}.npy"),
                       os.path.join(cache_dir, f"{prefix}-{name}.npy"))
        os.replace(_manifest_path(staging, split, layer), _manifest_path(cache_dir, split, layer))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return read_cache(cache_dir, split, expected, layer)


def ensure_cache(model, model_cfg, data_cfg, cache_dir: str, split: str, augmentations: int,
                 seed: int, progress=None, layer: int = NUM_LAYERS) -> FeatureCache:
    """The conv`layer` cache of `split` for `model`'s backbone, built first if missing."""
    expected = fingerprint(model_cfg, data_cfg, backbone_digest(model), augmentations, seed,
                           split, layer)
    cache = read_cache(cache_dir, split, expected, layer)
    if cache is not None:
        return cache
    return build_cache(model, model_cfg, data_cfg, cache_dir, split, augmentations, seed,
                       expected, progress or (lambda line: print(line, file=sys.stderr)), layer)


# ----------------------------------------------------------------------------------------------
# Clips of cached features.


def clip_rows(cache: FeatureCache, time_steps: int, split: str, seed: int, number: int,
              max_frame_gap: int = 0):
    """Which cached rows make clip `number`: (track, frame rows [T+1], augmentation [T+1]).

    Train: a uniformly drawn usable track (as the shuffled record stream gives every track
    equally often) and `sampling.sample_train_frames` (gaps up to `max_frame_gap`); val: track
    `number % num_tracks` with a fixed generator per clip number, so validation clips are the same
    in every run.
    """
    need = sampling.min_track_frames(time_steps)
    usable = [i for i in range(cache.num_tracks) if cache.track_length(i) >= need]
    if not usable:
        raise ValueError(f"no cached {split} track has the {need} frames that time_steps="
                         f"{time_steps} needs")
    rng = _rng(seed, number, 1 if split == "train" else 2)
    track = usable[int(rng.integers(len(usable)))] if split == "train" else usable[
        number % len(usable)]
    frames = sampling.sample_train_frames(cache.track_length(track), time_steps + 1, rng,
                                          max_frame_gap)
    augmentation = rng.integers(cache.augmentations, size=time_steps + 1)
    return track, cache.track_starts[track] + frames, augmentation


def gather_clip(cache: FeatureCache, rows: np.ndarray, augmentation: np.ndarray):
    """The (features, targets) arrays of one clip from its rows (see `pipeline.make_example`).

    Step t pairs the exemplar of frame f_t (the centre crop at t = 0, an augmented one after)
    with the augmented search crop of frame f_{t+1}.
    """
    ex_rows, ex_aug = rows[1:-1], augmentation[1:-1]
    exemplar = np.concatenate([cache.centre_exemplar[rows[:1]],
                               cache.exemplar[ex_rows, ex_aug]]).astype(np.float32)
    s_rows, s_aug = rows[1:], augmentation[1:]
    return (exemplar, cache.search[s_rows, s_aug].astype(np.float32),
            np.asarray(cache.label[s_rows, s_aug], np.float32),
            np.asarray(cache.weight[s_rows, s_aug], np.float32),
            np.asarray(cache.search_box[s_rows, s_aug], np.float32))


def make_dataset(cache: FeatureCache, time_steps: int, split: str, seed: int, batch_size: int,
                 num_val_clips: int = 0, max_frame_gap: int = 0,
                 corrupt_write_prob: float = 0.0, shifted_write_prob: float = 0.0,
                 exemplar_pixels: int = 127, shifted_write_burst: int = 0) -> tf.data.Dataset:
    """Batches of cached clips with the structure of `pipeline.make_dataset`, features replaced.

    Returns:
      (features, targets): features = {"exemplar_features": float32 `[B, T, h, h, C]`,
      "search_features": float32 `[B, T, H, H, C]`} (`exemplar_conv<L>` / `search_conv<L>` for
      a cache of layer L < 5); targets as `pipeline.make_dataset`. Train
      repeats forever, its written exemplars corrupted with probability `corrupt_write_prob`
      (`augment.corrupt_writes`) or replaced by a window of the search features at a wrong box
      with probability `shifted_write_prob` (`augment.shifted_writes`; `exemplar_pixels` is the
      exemplar crop's size, `shifted_write_burst` its runs); val is `num_val_clips` fixed clips
      (at least one batch), never corrupted.
    """
    h, c = cache.exemplar.shape[2], cache.exemplar.shape[-1]
    big, r = cache.search.shape[2], cache.label.shape[-1]
    clip_rows(cache, time_steps, split, seed, 0, max_frame_gap)  # fails here, not in tf.data

    def load(number):
        _, rows, augmentation = clip_rows(cache, time_steps, split, seed, int(number),
                                          max_frame_gap)
        return gather_clip(cache, rows, augmentation)

    def to_example(number):
        exemplar, search, label, weight, box = tf.numpy_function(
            load, [number], (tf.float32,) * 5, stateful=False)
        features = {cached_feature_key("exemplar", cache.layer):
                    tf.ensure_shape(exemplar, [time_steps, h, h, c]),
                    cached_feature_key("search", cache.layer):
                    tf.ensure_shape(search, [time_steps, big, big, c])}
        targets = {"label": tf.ensure_shape(label, [time_steps, r, r]),
                   "weight": tf.ensure_shape(weight, [time_steps, r, r]),
                   "search_box": tf.ensure_shape(box, [time_steps, 4])}
        return features, targets

    if split == "train":
        numbers = tf.data.Dataset.counter()
    else:
        numbers = tf.data.Dataset.range(max(num_val_clips, batch_size))
    batches = numbers.map(to_example, num_parallel_calls=tf.data.AUTOTUNE).batch(
        batch_size, drop_remainder=True)
    if split == "train":
        batches = augment.corrupt_batch_writes(batches, corrupt_write_prob, seed,
                                               cached_feature_key("exemplar", cache.layer))
        batches = augment.shift_batch_writes(
            batches, shifted_write_prob, seed + 1, cached_feature_key("exemplar", cache.layer),
            cached_feature_key("search", cache.layer), cell=1, stride=TOTAL_STRIDE,
            exemplar_pixels=exemplar_pixels, burst=shifted_write_burst)
    return batches.prefetch(tf.data.AUTOTUNE)
