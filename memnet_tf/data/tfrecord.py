"""The TFRecord schema of pre-cropped patches: encode, decode, shard names and the manifest.

One `tf.train.SequenceExample` per track, compatible with the official MemTrack shards:
- context: `seq_name` (bytes), `seq_len` (int64), `trackid` (int64), and our additions
  `patch_size` / `exemplar_size` (int64; absent in official shards, read as 0 = unknown);
- feature lists: `images` (one JPEG patch per frame), `bboxes` (4 floats per frame: the target
  in patch pixels, `[x1, y1, x2, y2]` inclusive corners).
Shards are `<split>-<i>-of-<n>.tfrecord`; `<split>-manifest.json` beside them lists every track
and its length so that the pipeline can check a dataset before reading it.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os

import numpy as np
import tensorflow as tf

from memnet_tf.data.patches import decode_jpeg

MANIFEST_FORMAT = "memnet_tf-patches-v1"
SPLITS = ("train", "val")


@dataclasses.dataclass(frozen=True)
class PatchTrack:
    """A decoded record: one track's JPEG patches and boxes.

    Attributes:
        name: track name (`seq_name`).
        trackid: object id inside its video.
        patch_size: P the patches were cut at (0 = not recorded, official shards).
        exemplar_size: E the exemplar region maps to (0 = not recorded).
        jpegs: one JPEG per frame.
        boxes: float32 `[num_frames, 4]` boxes in patch pixels, `[x1, y1, x2, y2]`.
    """

    name: str
    trackid: int
    patch_size: int
    exemplar_size: int
    jpegs: tuple[bytes, ...]
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.jpegs)


def encode_track(name: str, jpegs, boxes, patch_size: int, exemplar_size: int,
                 trackid: int = 0) -> bytes:
    """Serialises one track as a SequenceExample.

    Args:
        name: track name.
        jpegs: sequence of JPEG bytes, one per frame.
        boxes: `[num_frames, 4]` boxes in patch pixels, `[x1, y1, x2, y2]`.
        patch_size: P.
        exemplar_size: E.
        trackid: object id inside its video.

    Returns:
        The serialised `tf.train.SequenceExample`.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if len(jpegs) != len(boxes):
        raise ValueError(f"track {name}: {len(jpegs)} images but {len(boxes)} boxes")
    example = tf.train.SequenceExample()
    context = example.context.feature
    context["seq_name"].bytes_list.value.append(name.encode("utf-8"))
    context["seq_len"].int64_list.value.append(len(jpegs))
    context["trackid"].int64_list.value.append(int(trackid))
    context["patch_size"].int64_list.value.append(int(patch_size))
    context["exemplar_size"].int64_list.value.append(int(exemplar_size))
    images = example.feature_lists.feature_list["images"]
    bboxes = example.feature_lists.feature_list["bboxes"]
    for jpeg, box in zip(jpegs, boxes):
        images.feature.add().bytes_list.value.append(bytes(jpeg))
        bboxes.feature.add().float_list.value.extend(box.tolist())
    return example.SerializeToString()


def _context_int(context, key: str, default=None):
    if key in context and context[key].int64_list.value:
        return int(context[key].int64_list.value[0])
    if default is None:
        raise KeyError(key)
    return default


def decode_track(serialized: bytes, where: str = "record") -> PatchTrack:
    """Parses a record written by `encode_track` (or the official builder).

    Args:
        serialized: the record bytes.
        where: how the record is named in errors, e.g. "train-00001-of-00016.tfrecord #12".

    Returns:
        The PatchTrack (JPEGs are not decoded).

    Raises:
        ValueError: not a SequenceExample of this schema.
    """
    example = tf.train.SequenceExample()
    try:
        example.ParseFromString(serialized)
    except Exception as error:  # protobuf raises its own DecodeError
        raise ValueError(f"{where}: not a SequenceExample ({error})") from None
    context = example.context.feature
    lists = example.feature_lists.feature_list
    if "images" not in lists or "bboxes" not in lists:
        raise ValueError(f"{where}: missing the 'images' or 'bboxes' feature list")
    jpegs = tuple(f.bytes_list.value[0] if f.bytes_list.value else b""
                  for f in lists["images"].feature)
    box_values = [list(f.float_list.value) for f in lists["bboxes"].feature]
    if any(len(v) != 4 for v in box_values):
        raise ValueError(f"{where}: a box without 4 values")
    boxes = np.asarray(box_values, dtype=np.float32).reshape(-1, 4)
    if len(jpegs) != len(boxes):
        raise ValueError(f"{where}: {len(jpegs)} images but {len(boxes)} boxes")
    if not np.all(np.isfinite(boxes)):
        raise ValueError(f"{where}: boxes contain NaN or inf")
    name = context["seq_name"].bytes_list.value[0].decode("utf-8", "replace") \
        if "seq_name" in context and context["seq_name"].bytes_list.value else ""
    return PatchTrack(name=name, trackid=_context_int(context, "trackid", 0),
                      patch_size=_context_int(context, "patch_size", 0),
                      exemplar_size=_context_int(context, "exemplar_size", 0),
                      jpegs=jpegs, boxes=boxes)


def decode_patches(track: PatchTrack, frames, patch_size: int, where: str = "record"
                   ) -> np.ndarray:
    """Decodes the JPEG patches of some frames of a track.

    Args:
        track: the decoded record.
        frames: int `[num]` frame indices.
        patch_size: the expected P.
        where: how the record is named in errors.

    Returns:
        uint8 `[num, patch_size, patch_size, 3]`.

    Raises:
        ValueError: a corrupt JPEG or a patch of the wrong size, naming the frame.
    """
    patches = np.empty((len(frames), patch_size, patch_size, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        image = decode_jpeg(track.jpegs[frame], name=f"{where} frame {frame}")
        if image.shape != (patch_size, patch_size, 3):
            raise ValueError(f"{where} frame {frame}: patch is {image.shape[1]}x"
                             f"{image.shape[0]}, expected {patch_size}x{patch_size}")
        patches[i] = image
    return patches


def feature_spec() -> tuple[dict, dict]:
    """(context, sequence) feature specs for `tf.io.parse_single_sequence_example`."""
    context = {
        "seq_name": tf.io.FixedLenFeature([], tf.string),
        "seq_len": tf.io.FixedLenFeature([], tf.int64),
        "trackid": tf.io.FixedLenFeature([], tf.int64, default_value=0),
        "patch_size": tf.io.FixedLenFeature([], tf.int64, default_value=0),
        "exemplar_size": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    }
    sequence = {
        "images": tf.io.FixedLenSequenceFeature([], tf.string),
        "bboxes": tf.io.FixedLenSequenceFeature([4], tf.float32),
    }
    return context, sequence


def parse_sequence_example(serialized: tf.Tensor) -> tuple[dict, dict]:
    """Graph-mode parse of one record: context dict and {'images': [n], 'bboxes': [n, 4]}."""
    context, sequence = feature_spec()
    return tf.io.parse_single_sequence_example(serialized, context, sequence)


def shard_name(split: str, index: int, num_shards: int) -> str:
    """`<split>-00003-of-00016.tfrecord`."""
    return f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord"


def manifest_path(data_dir: str, split: str) -> str:
    return os.path.join(data_dir, f"{split}-manifest.json")


def read_manifest(data_dir: str, split: str) -> dict | None:
    """The manifest of a split, or None when there is none (e.g. official shards)."""
    path = manifest_path(data_dir, split)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: unreadable manifest ({error})") from None
    if manifest.get("format") != MANIFEST_FORMAT or "shards" not in manifest:
        raise ValueError(f"{path}: not a {MANIFEST_FORMAT} manifest")
    return manifest


def write_manifest(data_dir: str, split: str, manifest: dict) -> str:
    """Writes a manifest atomically; returns its path."""
    path = manifest_path(data_dir, split)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(dict(manifest, format=MANIFEST_FORMAT), f, indent=1)
    os.replace(tmp, path)
    return path


def list_shards(data_dir: str, split: str) -> list[str]:
    """The shard files of a split: those of the manifest if there is one, else by name.

    Names matched are `<split>-*.tfrecord` and the official `<split>-*.tfrecords`.
    """
    manifest = read_manifest(data_dir, split)
    if manifest is not None:
        return [os.path.join(data_dir, shard["file"]) for shard in manifest["shards"]]
    found = glob.glob(os.path.join(data_dir, f"{split}-*.tfrecord")) + glob.glob(
        os.path.join(data_dir, f"{split}-*.tfrecords"))
    return sorted(found)
