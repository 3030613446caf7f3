"""The training input pipeline: clips of patches -> augmented exemplar/search crops + labels.

Both sources produce the same intermediate clip: T + 1 patches (uint8 `[T+1, P, P, 3]`, cut as in
spec 7.1) with their target boxes in patch pixels, plus a stateless key (seed, clip number).
- synthetic: `SyntheticVideo`s rendered on the fly (train: random video and frames per clip;
  val: the first `num_val_sequences` validation videos, evenly spaced frames);
- tfrecord: records written by `tools/build_tfrecords.py` in `data_cfg.data_dir`.
Decoding/rendering and augmentation run in parallel maps (`AUTOTUNE`); every random choice
depends only on (seed, clip number), so two runs with the same seed give identical batches.

Samples that cannot be read (a corrupt JPEG or record, a track too short for the clip) are
skipped, logged with their shard and counted; see `skipped_samples()`.
"""

from __future__ import annotations

import atexit
import functools
import os
import threading
import time

import numpy as np
import tensorflow as tf
from absl import logging

from memnet_tf.data import augment, labels, sampling, synthetic, tfrecord
from memnet_tf.data.patches import PatchGeometry, crop_patch
from memnet_tf.data.tracks import SkipReport

SPLITS = ("train", "val")
# Records (whole tracks) held by the training shuffle buffer; a VID track is ~1-5 MB of JPEGs.
TRACK_SHUFFLE_BUFFER = 32
# Shards read at once in training.
SHARD_CYCLE_LENGTH = 4

_SKIPS = SkipReport()
_LOG_FIRST = 5
_LOG_EVERY = 1000


def skipped_samples() -> dict[str, int]:
    """How many samples this process skipped so far, per reason (all datasets together)."""
    return {reason: entry["count"] for reason, entry in _SKIPS.as_dict().items()}


def _record_skip(reason: str, detail: str, count: int = 1) -> None:
    before = _SKIPS.counts[reason]
    total = _SKIPS.add(reason, detail, count)
    if before < _LOG_FIRST or total // _LOG_EVERY > before // _LOG_EVERY:
        logging.warning("data: skipped (%s): %s [%d so far]", reason, detail, total)


class _ExitGuard:
    """Lets the Python stages of the pipeline go quiet before the interpreter shuts down.

    If the process exits (or crashes) while a `numpy_function` of a live iterator is running,
    interpreter finalisation stops that thread in the middle of the call and the iterator's
    destructor then waits for it forever: the process hangs instead of exiting. At exit this
    guard makes every further call return placeholder data at once and waits until no call has
    been running for a moment, so the prefetch buffers fill and tf.data's threads are idle.
    """

    def __init__(self, quiet_seconds: float = 0.1, timeout_seconds: float = 10.0):
        self.quiet_seconds, self.timeout_seconds = quiet_seconds, timeout_seconds
        self.stopping = False
        self._lock = threading.Lock()
        self._active = 0
        self._last_call = 0.0
        atexit.register(self.drain)

    def __enter__(self):
        with self._lock:
            self._active += 1
            self._last_call = time.monotonic()
        return self

    def __exit__(self, *exc_info):
        with self._lock:
            self._active -= 1
            self._last_call = time.monotonic()

    def drain(self) -> None:
        self.stopping = True
        deadline = time.monotonic() + self.timeout_seconds
        while time.monotonic() < deadline:
            with self._lock:
                if self._active == 0 and time.monotonic() - self._last_call > self.quiet_seconds:
                    return
            time.sleep(0.01)


_EXIT_GUARD = _ExitGuard()


def _rng(seed: int, number: int, stream: int) -> np.random.Generator:
    """A numpy generator owned by one clip: a pure function of (seed, clip number, stream)."""
    return np.random.default_rng([seed & 0xFFFFFFFFFFFFFFFF, number, stream])


# ----------------------------------------------------------------------------------------------
# From a clip of patches to one training example (pure TF).


def make_example(patches: tf.Tensor, boxes: tf.Tensor, key: tf.Tensor, geometry: PatchGeometry,
                 data_cfg) -> tuple[dict, dict]:
    """Turns T + 1 patches of one track into the (features, targets) of one clip (spec 7.2-7.4).

    Step t pairs the exemplar z_t (frames f_0 .. f_{T-1}) with the search crop x_{t+1} (frames
    f_1 .. f_T). z_0 is the plain centre crop; later exemplars and all search crops are
    stretched and translated (spec 7.3), keyed by `key`.

    Args:
        patches: uint8 `[T+1, P, P, 3]`.
        boxes: float32 `[T+1, 4]` target boxes in patch pixels, `[x1, y1, x2, y2]`.
        key: int64 `[2]` stateless seed of this clip.
        geometry: the patch geometry (E, S, P, R).
        data_cfg: DataConfig (augmentation ranges and the IoU threshold).

    Returns:
        features: {"exemplar": float32 `[T, E, E, 3]`, "search": float32 `[T, S, S, 3]`}, in [0, 1].
        targets: {"label": float32 `[T, R, R]`, "weight": float32 `[T, R, R]`,
            "search_box": float32 `[T, 4]` in search-crop pixels}.
    """
    time_steps = int(patches.shape[0]) - 1
    e, s, r = geometry.exemplar_size, geometry.search_size, geometry.response_size
    exemplar_seed, search_seed = tf.unstack(tf.random.experimental.stateless_split(key, 2))
    exemplar = augment.centre_crop(patches[:1], e)
    if time_steps > 1:
        jittered = augment.random_crops(patches[1:time_steps], exemplar_seed, e,
                                        data_cfg.exemplar_stretch, data_cfg.exemplar_shift)
        exemplar = tf.concat([exemplar, jittered], axis=0)
    search, search_box = augment.random_crops(patches[1:], search_seed, s,
                                              data_cfg.search_stretch, data_cfg.search_shift,
                                              boxes=boxes[1:])
    label, weight = labels.iou_labels(search_box, r, data_cfg.label_iou_threshold,
                                      geometry.stride)
    features = {"exemplar": tf.ensure_shape(exemplar, [time_steps, e, e, 3]),
                "search": tf.ensure_shape(search, [time_steps, s, s, 3])}
    targets = {"label": tf.ensure_shape(label, [time_steps, r, r]),
               "weight": tf.ensure_shape(weight, [time_steps, r, r]),
               "search_box": tf.ensure_shape(search_box, [time_steps, 4])}
    return features, targets


# ----------------------------------------------------------------------------------------------
# Synthetic clips.


def _placeholder_clip(geometry: PatchGeometry, num_frames: int):
    """(patches, boxes, ok): grey patches with a centred box; stands in for a skipped clip."""
    size, centre = geometry.patch_size, (geometry.patch_size - 1) / 2
    patches = np.full((num_frames, size, size, 3), 128, np.uint8)
    half = (geometry.exemplar_size / 2 - 1) / 2
    boxes = np.tile(np.array([[centre - half, centre - half, centre + half, centre + half]],
                             np.float32), (num_frames, 1))
    return patches, boxes, True


class _SyntheticClips:
    """Renders the T + 1 patches of clip number i (numpy; called from `tf.numpy_function`)."""

    def __init__(self, data_cfg, geometry: PatchGeometry, split: str, seed: int):
        self.data_cfg, self.geometry, self.split, self.seed = data_cfg, geometry, split, seed
        self.num_frames = data_cfg.time_steps + 1

    def _cut(self, video: synthetic.SyntheticVideo, frames) -> tuple[np.ndarray, np.ndarray]:
        size = self.geometry.patch_size
        patches = np.empty((len(frames), size, size, 3), dtype=np.uint8)
        boxes = np.empty((len(frames), 4), dtype=np.float32)
        for i, k in enumerate(frames):
            patches[i], boxes[i] = crop_patch(video.render(int(k)), video.boxes[k], self.geometry,
                                              name=f"synthetic video {video.index} frame {k}")
        return patches, boxes

    def __call__(self, number) -> tuple[np.ndarray, np.ndarray]:
        with _EXIT_GUARD:
            if _EXIT_GUARD.stopping:
                return _placeholder_clip(self.geometry, self.num_frames)[:2]
            return self._clip(int(number))

    def _clip(self, number: int) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.data_cfg
        if self.split == "train":
            rng = _rng(self.seed, number, 0)
            video_number = int(rng.integers(cfg.num_train_sequences))
            frames = None
        else:
            rng, video_number = None, number
        # The videos themselves depend on data_cfg.seed only: `seed` changes sampling, not data.
        video = synthetic.SyntheticVideo(cfg.seed, synthetic.sequence_index(self.split,
                                                                            video_number),
                                         cfg.synthetic_frame_size, cfg.synthetic_sequence_length)
        if rng is not None:
            frames = sampling.sample_train_frames(video.length, self.num_frames, rng,
                                                  cfg.max_frame_gap)
        else:
            frames = sampling.sample_val_frames(video.length, self.num_frames, cfg.max_frame_gap)
        return self._cut(video, frames)


def _synthetic_clips(data_cfg, geometry: PatchGeometry, split: str, seed: int,
                     shard: tuple[int, int] = (0, 1)) -> tf.data.Dataset:
    need = sampling.min_track_frames(data_cfg.time_steps)
    if data_cfg.synthetic_sequence_length < need:
        raise ValueError(f"synthetic_sequence_length={data_cfg.synthetic_sequence_length} is too "
                         f"short for time_steps={data_cfg.time_steps}: it needs >= {need} frames")
    render = _SyntheticClips(data_cfg, geometry, split, seed)
    if split == "train":
        if data_cfg.num_train_sequences < 1:
            raise ValueError("num_train_sequences must be positive for synthetic training")
        # Shard i of n draws clips i, i + n, i + 2n, ...: disjoint keys, so no worker repeats
        # another's clip.
        numbers = tf.data.Dataset.counter(start=shard[0], step=shard[1])
    else:
        numbers = tf.data.Dataset.range(data_cfg.num_val_sequences)
    size, num_frames = geometry.patch_size, data_cfg.time_steps + 1

    def load(number):
        patches, boxes = tf.numpy_function(render, [number], (tf.uint8, tf.float32),
                                           stateful=False)
        patches.set_shape([num_frames, size, size, 3])
        boxes.set_shape([num_frames, 4])
        return patches, boxes, tf.stack([tf.constant(seed, tf.int64), number])

    return numbers.map(load, num_parallel_calls=tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------------------------
# TFRecord clips.


class _RecordClips:
    """Decodes the T + 1 sampled patches of one record; flags unusable records instead of failing.

    Also receives one end-of-shard marker per shard pass (`is_end`, with `index` = records read)
    and reports shards that ended early because of a corrupt record.
    """

    def __init__(self, geometry: PatchGeometry, time_steps: int, split: str, seed: int,
                 shard_sizes: dict[str, int], max_frame_gap: int = 0):
        self.geometry, self.split, self.seed = geometry, split, seed
        self.max_frame_gap = max_frame_gap
        self.num_frames = time_steps + 1
        self.need = sampling.min_track_frames(time_steps)
        self.shard_sizes = shard_sizes

    def _failed(self):
        patches, boxes, _ = _placeholder_clip(self.geometry, self.num_frames)
        return patches, boxes, False

    def __call__(self, record, shard, record_index, is_end, number):
        with _EXIT_GUARD:
            if _EXIT_GUARD.stopping:
                return _placeholder_clip(self.geometry, self.num_frames)
            shard = os.path.basename(shard.decode())
            if is_end:
                self._check_shard_end(shard, int(record_index))
                return self._failed()
            return self._clip(record, f"{shard} record {int(record_index)}", int(number))

    def _check_shard_end(self, shard: str, num_read: int) -> None:
        expected = self.shard_sizes.get(shard)
        if expected is not None and num_read < expected:
            _record_skip("record unreadable (corrupt shard)",
                         f"{shard}: only {num_read} of {expected} records could be read; a "
                         "corrupt record made the rest of the shard unreadable",
                         count=expected - num_read)

    def _clip(self, record: bytes, where: str, number: int):
        size = self.geometry.patch_size
        try:
            track = tfrecord.decode_track(record, where)
        except ValueError as error:
            _record_skip("corrupt record", str(error))
            return self._failed()
        if track.patch_size not in (0, size) or track.exemplar_size not in (
                0, self.geometry.exemplar_size):
            _record_skip("patch geometry differs from the model's",
                         f"{where}: patch {track.patch_size}/exemplar {track.exemplar_size}, "
                         f"expected {size}/{self.geometry.exemplar_size}")
            return self._failed()
        if len(track) < self.need:
            _record_skip(f"track shorter than {self.need} frames",
                         f"{where} ({track.name}, {len(track)} frames)")
            return self._failed()
        if self.split == "train":
            frames = sampling.sample_train_frames(len(track), self.num_frames,
                                                  _rng(self.seed, number, 1), self.max_frame_gap)
        else:
            frames = sampling.sample_val_frames(len(track), self.num_frames, self.max_frame_gap)
        try:
            patches = tfrecord.decode_patches(track, frames, size, where)
        except ValueError as error:
            _record_skip("corrupt JPEG patch", str(error))
            return self._failed()
        return patches, track.boxes[frames].astype(np.float32), True


def _shard_records(path: tf.Tensor) -> tf.data.Dataset:
    """(record, shard, index, is_end) of one shard, then one end marker carrying the count read.

    A corrupt record stops the TFRecord reader for the rest of the shard; `ignore_errors` keeps
    the run going and the end marker lets `_RecordClips` report how much was lost.
    """
    records = tf.data.TFRecordDataset(path).ignore_errors(log_warning=False)
    records = records.map(lambda r: (r, tf.constant(False)))
    end = tf.data.Dataset.from_tensors((tf.constant(b"", tf.string), tf.constant(True)))

    def count(num_read, item):
        record, is_end = item
        return num_read + tf.cast(tf.logical_not(is_end), tf.int64), (record, path, num_read,
                                                                        is_end)

    return records.concatenate(end).scan(tf.constant(0, tf.int64), count)


def check_tfrecord_dir(data_dir: str, split: str, geometry: PatchGeometry,
                       time_steps: int) -> list[str]:
    """Validates a folder of shards before reading it; returns the shard paths.

    Raises:
        FileNotFoundError: missing folder, no shards, or a shard named by the manifest is missing.
        ValueError: a manifest whose patch geometry differs from the model's, or no track long
            enough for `time_steps`.
    """
    if not data_dir or not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data_dir={data_dir!r}: folder not found (dataset=tfrecord "
                                "reads shards made by tools/build_tfrecords.py)")
    shards = tfrecord.list_shards(data_dir, split)
    if not shards:
        raise FileNotFoundError(f"data_dir={data_dir!r}: no '{split}-*.tfrecord' shards (build "
                                f"them with tools/build_tfrecords.py --split={split})")
    missing = [p for p in shards if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"{tfrecord.manifest_path(data_dir, split)} lists "
                                f"{len(missing)} missing shard(s), e.g. {missing[0]}")
    manifest = tfrecord.read_manifest(data_dir, split)
    if manifest is None:
        logging.warning("data: %s has no %s; shards are read unchecked", data_dir,
                        os.path.basename(tfrecord.manifest_path(data_dir, split)))
        return shards
    if (manifest.get("patch_size"), manifest.get("exemplar_size")) != (
            geometry.patch_size, geometry.exemplar_size):
        raise ValueError(
            f"{tfrecord.manifest_path(data_dir, split)}: shards hold {manifest.get('patch_size')}"
            f" px patches with a {manifest.get('exemplar_size')} px exemplar, but the model needs "
            f"{geometry.patch_size} (search_size + 2 * patch_margin) and "
            f"{geometry.exemplar_size}; rebuild with --patch_size/--exemplar_size")
    need = sampling.min_track_frames(time_steps)
    lengths = [int(length) for shard in manifest["shards"] for _, length in shard["tracks"]]
    usable = sum(length >= need for length in lengths)
    if usable == 0:
        raise ValueError(f"data_dir={data_dir!r}: no usable {split} track: all {len(lengths)} "
                         f"tracks have fewer than {need} frames (time_steps={time_steps} + 2)")
    return shards


def _tfrecord_clips(data_cfg, geometry: PatchGeometry, split: str, seed: int,
                    shard: tuple[int, int] = (0, 1)) -> tf.data.Dataset:
    shards = check_tfrecord_dir(data_cfg.data_dir, split, geometry, data_cfg.time_steps)
    manifest = tfrecord.read_manifest(data_cfg.data_dir, split) or {"shards": []}
    shard_sizes = {shard["file"]: len(shard["tracks"]) for shard in manifest["shards"]}
    files = tf.data.Dataset.from_tensor_slices(shards)
    index, count = shard
    if count > 1 and len(shards) >= count:
        files = files.shard(count, index)  # each worker reads its own files
        shards = shards[index::count]
    if split == "train":
        files = files.shuffle(len(shards), seed=seed, reshuffle_each_iteration=True).repeat()
        records = files.interleave(_shard_records,
                                   cycle_length=min(len(shards), SHARD_CYCLE_LENGTH),
                                   block_length=1, num_parallel_calls=tf.data.AUTOTUNE,
                                   deterministic=True)
        if count > 1 and len(shards) < count:
            records = records.shard(count, index)  # fewer files than workers: every n-th track
        records = records.shuffle(TRACK_SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    else:
        records = files.flat_map(_shard_records)
    decode = _RecordClips(geometry, data_cfg.time_steps, split, seed, shard_sizes,
                          data_cfg.max_frame_gap)
    size, num_frames = geometry.patch_size, data_cfg.time_steps + 1

    def load(number, record):
        serialized, shard, index, is_end = record
        patches, boxes, ok = tf.numpy_function(
            decode, [serialized, shard, index, is_end, number], (tf.uint8, tf.float32, tf.bool),
            stateful=False)
        patches.set_shape([num_frames, size, size, 3])
        boxes.set_shape([num_frames, 4])
        ok.set_shape([])
        return patches, boxes, tf.stack([tf.constant(seed, tf.int64), number]), ok

    def usable(patches, boxes, key, ok):
        del patches, boxes, key
        return ok

    def without_flag(patches, boxes, key, ok):
        del ok
        return patches, boxes, key

    clips = records.enumerate().map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return clips.filter(usable).map(without_flag)


# ----------------------------------------------------------------------------------------------


def make_dataset(data_cfg, model_cfg, split: str, seed: int | None = None,
                 batch_size: int | None = None,
                 shard: tuple[int, int] | None = None) -> tf.data.Dataset:
    """The training or validation dataset of batched clips.

    Args:
        data_cfg: DataConfig (source, sizes, augmentation, synthetic settings, seed).
        model_cfg: ModelConfig (exemplar/search sizes and the response size).
        split: "train" (random clips, repeats forever) or "val" (one deterministic pass: the
            first num_val_sequences synthetic validation videos, or every val record, with
            evenly spaced frames; still augmented as in the official code, with fixed keys).
        seed: sampling/augmentation seed; defaults to data_cfg.seed. (Synthetic videos
            themselves always come from data_cfg.seed, so the data set does not change with it.)
        batch_size: clips per batch; defaults to data_cfg.batch_size.
        shard: `(index, count)`: this worker's part of the training data (multi-worker runs):
            synthetic clip numbers index, index + count, ...; TFRecord files index::count (or
            every count-th track when there are fewer files than workers). Train split only.

    Returns:
        A dataset of (features, targets), batches of B = batch_size clips, drop_remainder:
        features = {"exemplar": float32 `[B, T, E, E, 3]`, "search": float32 `[B, T, S, S, 3]`}
        in [0, 1]; targets = {"label": float32 `[B, T, R, R]`, "weight": float32 `[B, T, R, R]`,
        "search_box": float32 `[B, T, 4]` (x1, y1, x2, y2 in search-crop pixels)}.
        Train batches have their written exemplars corrupted with probability
        `data_cfg.corrupt_write_prob` (`augment.corrupt_writes`) and cut at wrong boxes with
        probability `data_cfg.shifted_write_prob` (`augment.shifted_writes`, in runs of
        `data_cfg.shifted_write_burst` steps when it is > 0); val batches never.

    Raises:
        ValueError: an unknown split or source, or settings that cannot make a clip.
        FileNotFoundError: dataset=tfrecord with a missing folder or no shards.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: expected one of {SPLITS}")
    geometry = PatchGeometry.from_configs(data_cfg, model_cfg)
    seed = data_cfg.seed if seed is None else int(seed)
    batch_size = batch_size or data_cfg.batch_size
    shard = (0, 1) if shard is None else (int(shard[0]), int(shard[1]))
    if not 0 <= shard[0] < shard[1]:
        raise ValueError(f"shard={shard}: expected (index, count) with 0 <= index < count")
    if shard[1] > 1 and split != "train":
        raise ValueError(f"shard={shard}: only the train split is sharded (validation runs on "
                         "the chief)")
    if data_cfg.dataset == "synthetic":
        if split == "val" and data_cfg.num_val_sequences < batch_size:
            raise ValueError(f"num_val_sequences={data_cfg.num_val_sequences} is smaller than "
                             f"the batch size {batch_size}: validation would have no batch")
        clips = _synthetic_clips(data_cfg, geometry, split, seed, shard)
    elif data_cfg.dataset == "tfrecord":
        clips = _tfrecord_clips(data_cfg, geometry, split, seed, shard)
    else:
        raise ValueError(f"dataset={data_cfg.dataset!r}: expected 'synthetic' or 'tfrecord'")
    to_example = functools.partial(make_example, geometry=geometry, data_cfg=data_cfg)
    examples = clips.map(lambda p, b, k: to_example(p, b, k), num_parallel_calls=tf.data.AUTOTUNE)
    if split == "val" and data_cfg.dataset == "tfrecord":
        # One clip per val track: a val split of fewer tracks than the batch (3 whole videos,
        # say) is repeated until it fills one batch instead of giving no batch at all.
        manifest = tfrecord.read_manifest(data_cfg.data_dir, split) or {"shards": []}
        num_tracks = sum(len(shard["tracks"]) for shard in manifest["shards"])
        if 0 < num_tracks < batch_size:
            examples = examples.repeat(-(-batch_size // num_tracks))
    batches = examples.batch(batch_size, drop_remainder=True, num_parallel_calls=tf.data.AUTOTUNE)
    if split == "train":
        # Workers share `seed`: an offset per worker index keeps their corruptions independent.
        batches = augment.corrupt_batch_writes(batches, data_cfg.corrupt_write_prob,
                                               seed + 7919 * shard[0], "exemplar")
        batches = augment.shift_batch_writes(batches, data_cfg.shifted_write_prob,
                                             seed + 7919 * shard[0] + 1, "exemplar", "search",
                                             cell=geometry.stride, stride=geometry.stride,
                                             exemplar_pixels=geometry.exemplar_size,
                                             burst=data_cfg.shifted_write_burst)
    return batches.prefetch(tf.data.AUTOTUNE)
