"""Data test helpers: the shared data folder and tiny VID / GOT-10k trees with real files."""

from __future__ import annotations

import os
import pathlib

import cv2
import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def shared_path(*parts: str) -> str:
    """A path in the shared folder ($MEMNET_SHARED_DIR or ../shared); skips the test if absent."""
    root = pathlib.Path(os.environ.get("MEMNET_SHARED_DIR", REPO_ROOT.parent / "shared"))
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (set MEMNET_SHARED_DIR)")
    return str(path)


def tiny_configs(time_steps: int = 3, batch_size: int = 2, **data_overrides):
    """(DataConfig, ModelConfig) with the paper crop sizes and tiny T and B."""
    from memnet_tf.config import DataConfig, ModelConfig

    values = dict(time_steps=time_steps, batch_size=batch_size, num_train_sequences=50,
                  num_val_sequences=4, synthetic_frame_size=160, synthetic_sequence_length=12)
    values.update(data_overrides)
    return DataConfig(**values), ModelConfig()


def textured_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A uint8 `[height, width, 3]` image with structure (so JPEG and resizing matter)."""
    coarse = rng.integers(0, 256, size=(max(height // 8, 2), max(width // 8, 2), 3))
    image = cv2.resize(coarse.astype(np.uint8), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(image.astype(np.int16) + rng.integers(-20, 21, image.shape), 0,
                   255).astype(np.uint8)


def write_jpeg(path: str, image: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ok = cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                     [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok, path


def vid_xml(folder: str, filename: str, width: int, height: int, objects) -> str:
    """The text of an ILSVRC2015 VID annotation; objects are (trackid, xmin, ymin, xmax, ymax)."""
    parts = [f"<annotation>\n\t<folder>{folder}</folder>\n\t<filename>{filename}</filename>\n"
             "\t<source>\n\t\t<database>ILSVRC_2015</database>\n\t</source>\n"
             f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t</size>\n"]
    for trackid, xmin, ymin, xmax, ymax in objects:
        parts.append(f"\t<object>\n\t\t<trackid>{trackid}</trackid>\n\t\t<name>n02084071</name>\n"
                     f"\t\t<bndbox>\n\t\t\t<xmax>{xmax}</xmax>\n\t\t\t<xmin>{xmin}</xmin>\n"
                     f"\t\t\t<ymax>{ymax}</ymax>\n\t\t\t<ymin>{ymin}</ymin>\n\t\t</bndbox>\n"
                     "\t\t<occluded>0</occluded>\n\t\t<generated>0</generated>\n\t</object>\n")
    parts.append("</annotation>\n")
    return "".join(parts)


def make_vid_tree(root: str, snippets: dict, split: str = "train", size=(96, 64),
                  seed: int = 0) -> dict:
    """Writes `Annotations/VID/<split>/...xml` and `Data/VID/<split>/...JPEG` for some snippets.

    Args:
        root: the ILSVRC2015 folder to create.
        snippets: snippet path (e.g. "ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000") ->
            list over frames of lists of (trackid, xmin, ymin, xmax, ymax).
        split: "train" or "val".
        size: (width, height) of the frames.
        seed: image content seed.

    Returns:
        snippet -> list of frame JPEG paths.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    paths = {}
    for snippet, frames in snippets.items():
        ann_dir = os.path.join(root, "Annotations", "VID", split, snippet)
        data_dir = os.path.join(root, "Data", "VID", split, snippet)
        os.makedirs(ann_dir, exist_ok=True)
        paths[snippet] = []
        for k, objects in enumerate(frames):
            name = f"{k:06d}"
            with open(os.path.join(ann_dir, name + ".xml"), "w", encoding="utf-8") as f:
                f.write(vid_xml(snippet, name, width, height, objects))
            jpeg = os.path.join(data_dir, name + ".JPEG")
            write_jpeg(jpeg, textured_image(rng, height, width))
            paths[snippet].append(jpeg)
    return paths


def make_got10k_sequence(folder: str, boxes, absence=None, cover=None, num_images=None,
                         size=(80, 60), seed: int = 0) -> list[str]:
    """Writes one GOT-10k sequence folder (`00000001.jpg`..., groundtruth.txt, labels)."""
    rng = np.random.default_rng(seed)
    width, height = size
    os.makedirs(folder, exist_ok=True)
    num_images = len(boxes) if num_images is None else num_images
    frames = []
    for k in range(num_images):
        path = os.path.join(folder, f"{k + 1:08d}.jpg")
        write_jpeg(path, textured_image(rng, height, width))
        frames.append(path)
    with open(os.path.join(folder, "groundtruth.txt"), "w", encoding="utf-8") as f:
        f.write("".join(",".join(str(v) for v in box) + "\n" for box in boxes))
    for name, labels in (("absence.label", absence), ("cover.label", cover)):
        if labels is not None:
            with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
                f.write("".join(f"{v}\n" for v in labels))
    return frames
