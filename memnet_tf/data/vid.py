"""ILSVRC2015 VID reader: per-frame XML annotations into one Track per (snippet, trackid)."""

from __future__ import annotations

import collections
import os
import xml.etree.ElementTree as ET

import numpy as np

from memnet_tf.data.tracks import SkipReport, Track

# The official builder keeps trackid < 50 and tracks with >= 50 annotated frames.
MAX_TRACKID = 50
MIN_FRAMES = 50


def _int_field(node, path: str, xml_path: str) -> int:
    text = node.findtext(path)
    if text is None:
        raise ValueError(f"{xml_path}: missing <{path}>")
    try:
        return int(float(text))
    except ValueError:
        raise ValueError(f"{xml_path}: <{path}> is not a number: {text!r}") from None


def parse_vid_xml(xml_path: str) -> tuple[tuple[int, int], list[tuple[int, np.ndarray]]]:
    """Parses one VID frame annotation.

    Args:
        xml_path: an `Annotations/VID/<split>/.../<frame>.xml` file.

    Returns:
        (width, height) of the frame and a list of (trackid, box) with box float64 `[4]`
        `[x, y, w, h]` 0-based, w = xmax - xmin + 1 (VID corners are inclusive pixels).

    Raises:
        ValueError: unreadable XML or missing fields, naming the file (and line for XML errors).
    """
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as error:
        line, column = error.position
        raise ValueError(f"{xml_path} line {line}, column {column}: corrupt XML ({error})") \
            from None
    size = root.find("size")
    if size is None:
        raise ValueError(f"{xml_path}: missing <size>")
    width, height = _int_field(size, "width", xml_path), _int_field(size, "height", xml_path)
    objects = []
    for obj in root.findall("object"):
        trackid = _int_field(obj, "trackid", xml_path)
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise ValueError(f"{xml_path}: object {trackid} has no <bndbox>")
        xmin, xmax = _int_field(bndbox, "xmin", xml_path), _int_field(bndbox, "xmax", xml_path)
        ymin, ymax = _int_field(bndbox, "ymin", xml_path), _int_field(bndbox, "ymax", xml_path)
        box = np.array([xmin, ymin, xmax - xmin + 1, ymax - ymin + 1], dtype=np.float64)
        objects.append((trackid, box))
    return (width, height), objects


def _snippet_folders(annotation_root: str) -> list[str]:
    """Folders under `annotation_root` that contain XML files (the snippets), sorted."""
    folders = []
    for folder, subfolders, files in os.walk(annotation_root):
        subfolders.sort()
        if any(f.endswith(".xml") for f in files):
            folders.append(folder)
    return sorted(folders)


def read_vid_tracks(root: str, split: str = "train", min_frames: int = MIN_FRAMES,
                    max_trackid: int = MAX_TRACKID, skips: SkipReport | None = None,
                    strict: bool = False) -> list[Track]:
    """Reads ILSVRC2015 VID tracks: one per (snippet, trackid), over the frames it appears in.

    Frames are `Data/VID/<split>/<snippet>/<frame>.JPEG` next to
    `Annotations/VID/<split>/<snippet>/<frame>.xml` (train snippets are nested one level deeper,
    in `ILSVRC2015_VID_train_000x/`). A frame's box is dropped when it has no area or lies
    outside the frame; a track is kept when it has `min_frames` or more frames left and
    `trackid < max_trackid`. Image files are not opened here (the builder reports missing or
    corrupt ones).

    Args:
        root: the ILSVRC2015 folder (containing `Annotations/` and `Data/`).
        split: "train" or "val".
        min_frames: fewest frames of a kept track (50 in the official builder).
        max_trackid: tracks with this id or more are skipped (50).
        skips: where to count what was skipped (a new report if None).
        strict: raise on a corrupt XML file instead of skipping it.

    Returns:
        Tracks named "<snippet path>/<trackid>", by snippet then trackid.

    Raises:
        FileNotFoundError: no `Annotations/VID/<split>` under `root`.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split={split!r}: VID has 'train' and 'val'")
    annotation_root = os.path.join(root, "Annotations", "VID", split)
    data_root = os.path.join(root, "Data", "VID", split)
    if not os.path.isdir(annotation_root):
        raise FileNotFoundError(f"{annotation_root}: not found (is --root the ILSVRC2015 folder "
                                "with Annotations/VID and Data/VID?)")
    skips = skips if skips is not None else SkipReport()
    tracks = []
    for folder in _snippet_folders(annotation_root):
        snippet = os.path.relpath(folder, annotation_root)
        per_track = collections.defaultdict(lambda: ([], []))
        for xml_name in sorted(f for f in os.listdir(folder) if f.endswith(".xml")):
            xml_path = os.path.join(folder, xml_name)
            try:
                (width, height), objects = parse_vid_xml(xml_path)
            except ValueError as error:
                if strict:
                    raise
                skips.add("corrupt annotation file", str(error))
                continue
            frame_path = os.path.join(data_root, snippet, xml_name[:-len(".xml")] + ".JPEG")
            for trackid, box in objects:
                x, y, w, h = box
                where = f"{xml_path} trackid {trackid}"
                if w <= 0 or h <= 0:
                    skips.add("box with no area", where)
                    continue
                if x >= width or y >= height or x + w <= 0 or y + h <= 0:
                    skips.add("box outside the frame", where)
                    continue
                paths, boxes = per_track[trackid]
                paths.append(frame_path)
                boxes.append(box)
        for trackid in sorted(per_track):
            paths, boxes = per_track[trackid]
            name = f"{snippet}/{trackid}"
            if trackid >= max_trackid:
                skips.add(f"trackid >= {max_trackid}", name)
            elif len(paths) < max(min_frames, 1):
                skips.add(f"track shorter than {max(min_frames, 1)} frames",
                          f"{name} ({len(paths)} frames)")
            else:
                tracks.append(Track(name, tuple(paths), np.stack(boxes)))
    return tracks
