"""Readers for tracking benchmarks (OTB folders, VOT, GOT-10k, LaSOT, pysot JSON) and
`load_dataset`, the one place a dataset name becomes a list of `Sequence` records.

`Sequence` and the shared file helpers are in `sequence.py` (re-exported here); benchmarks with
their own module: `otb.py` (lists, attributes, the MATLAB toolkit's flat layout), `uav123.py`.
Nothing here decodes an image except `load_frame`; scoring needs only the annotations.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Callable

import numpy as np
from absl import logging

from memnet_tf.eval import otb, uav123
from memnet_tf.eval.otb import OTB2013_FOLDERS, OTB_FRAME_RANGES  # noqa: F401 - re-exported
from memnet_tf.eval.sequence import (  # noqa: F401 - re-exported: readers and callers use them
    IMAGE_EXTENSIONS, DatasetError, Sequence, boxes_valid, canonical_name, list_images, load_frame,
    polygons_to_boxes, read_box_file)

EVAL_DATASETS = ("otb100", "otb2013", "otb", "uav123", "vot", "vot2016", "vot2018", "vot2019",
                 "got10k", "lasot", "synthetic")
VOT_YEARS = ("vot2016", "vot2018", "vot2019")
# Per-frame tags of the VOT challenges (files `<tag>.tag` / `<tag>.label`, pysot JSON keys).
VOT_TAGS = ("camera_motion", "illum_change", "motion_change", "size_change", "occlusion")


def _report(errors: list[str] | None, error: Exception) -> None:
    """Collects a per-sequence problem, or raises it when the caller wants strict loading."""
    if errors is None:
        raise error
    logging.warning("%s", error)
    errors.append(str(error))


def _read_attributes(path: str) -> tuple[str, ...]:
    if not os.path.isfile(path):
        return ()
    with open(path, encoding="utf-8") as f:
        return tuple(a.strip() for a in re.split(r"[,\s]+", f.read()) if a.strip())


def _subdirectories(root: str) -> list[str]:
    return sorted(d for d in os.listdir(root)
                  if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))


def in_otb2013(name: str) -> bool:
    """True for the 51 OTB-2013 sequences under any of the usual spellings."""
    folders = {canonical_name(f) for f in OTB2013_FOLDERS}
    key = canonical_name(name)
    # A target suffix (`Jogging.1`) belongs to its folder's benchmark.
    return key in folders or re.sub(r"\.\d+$", "", key) in folders


def read_otb(root: str, subset: Callable[[str], bool] | None = None,
             frame_ranges: dict[str, tuple[int, int]] | None = None,
             errors: list[str] | None = None) -> list[Sequence]:
    """Reads an OTB-2013/OTB-100 tree: `<root>/<Seq>/img/*.jpg` + `groundtruth_rect*.txt`.

    Two-target folders (Jogging, Skating2: `groundtruth_rect.1.txt`, `.2.txt`) become
    `Jogging.1` and `Jogging.2`, the got10k toolkit's names; empty annotation files (Human4's
    `.1`) are dropped, as got10k does. Frames are cut to `frame_ranges`; a folder with more
    images than boxes otherwise keeps its first images (logged). Boxes are converted from 1-based
    to 0-based (`one_based=True`). `attrs.txt` beside the annotation gives the attributes.

    Args:
        root: The folder of sequence folders.
        subset: Keeps only folders for which `subset(folder_name)` is true.
        frame_ranges: `{folder: (first, last)}` 1-based inclusive image positions; defaults to
            `OTB_FRAME_RANGES`.
        errors: When a list, problems with a sequence are appended and the sequence skipped;
            when None, the first problem raises.

    Returns:
        The sequences, sorted by folder then target.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: OTB dataset root not found")
    frame_ranges = OTB_FRAME_RANGES if frame_ranges is None else frame_ranges
    sequences = []
    for folder in _subdirectories(root):
        if subset is not None and not subset(folder):
            continue
        seq_dir = os.path.join(root, folder)
        try:
            sequences.extend(_read_otb_folder(seq_dir, folder, frame_ranges))
        except (DatasetError, FileNotFoundError) as error:
            _report(errors, error)
    if subset is not None:
        # OTB-2013 names Jogging's targets; drop a target the subset rules out.
        sequences = [s for s in sequences if subset(s.name)]
    return sequences


def _read_otb_folder(seq_dir, folder, frame_ranges) -> list[Sequence]:
    anno_files = sorted(glob.glob(os.path.join(seq_dir, "groundtruth*.txt")))
    anno_files = [f for f in anno_files if os.path.getsize(f) > 0 and _has_text(f)]
    if not anno_files:
        raise DatasetError(f"{seq_dir}: sequence folder without ground truth "
                           "(no non-empty groundtruth_rect*.txt)")
    images = list_images(os.path.join(seq_dir, "img"))
    if folder in frame_ranges:
        first, last = frame_ranges[folder]
        images = images[first - 1:last]
    attributes = _read_attributes(os.path.join(seq_dir, "attrs.txt"))
    sequences = []
    for index, anno_file in enumerate(anno_files, start=1):
        boxes, lines = read_box_file(anno_file)
        if len(images) < len(boxes):
            raise DatasetError(
                f"{anno_file}:{lines[len(images)]}: {len(boxes)} boxes but only {len(images)} "
                f"frames in {os.path.join(seq_dir, 'img')}")
        if len(images) > len(boxes):
            logging.info("%s: %d images, %d boxes; using the first %d frames", seq_dir,
                         len(images), len(boxes), len(boxes))
        boxes[:, :2] -= 1.0  # OTB files are 1-based (MATLAB); make them 0-based.
        # The target number comes from the file name (`groundtruth_rect.2.txt`): Human4's
        # `.1` is empty, so its one target is `Human4`, also known as `Human4.2`.
        number = re.search(r"\.(\d+)\.txt$", anno_file)
        target = f"{folder}.{number.group(1)}" if number else f"{folder}.{index}"
        name = folder if len(anno_files) == 1 else target
        sequences.append(Sequence(
            name=name, image_files=images[:len(boxes)], ground_truth=boxes,
            attributes=attributes, one_based=True, annotation_file=anno_file,
            annotation_lines=lines, aliases=(target,) if number else ()))
    return sequences


def _has_text(path: str) -> bool:
    with open(path, encoding="utf-8", errors="replace") as f:
        return bool(f.read().strip())


def _read_flags(path: str, num_frames: int, pad: bool = False) -> np.ndarray | None:
    """Per-frame 0/1 flags (one per line or comma separated on one line); None without the file.

    Args:
        path: the flag file.
        num_frames: frames of the sequence.
        pad: allow fewer flags than frames, the rest being 0 (VOT `.tag` files end at their
            last tagged frame); otherwise the count must match, so a truncated GOT-10k
            `cover.label` or LaSOT `full_occlusion.txt` is an error, not silently "visible".

    Raises:
        DatasetError: naming the file, for a non-number or a wrong number of flags.
    """
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        fields = [v for v in re.split(r"[,\s]+", f.read()) if v]
    try:
        flags = np.asarray([float(v) for v in fields], np.float64)
    except ValueError:
        raise DatasetError(f"{path}: expected one number per frame") from None
    if len(flags) > num_frames or (len(flags) < num_frames and not pad):
        raise DatasetError(f"{path}: {len(flags)} flags for {num_frames} frames")
    return np.pad(flags, (0, num_frames - len(flags)))


def read_vot(root: str, errors: list[str] | None = None) -> list[Sequence]:
    """Reads a VOT tree (`list.txt` + `<seq>/groundtruth.txt` + frames) or one sequence folder.

    Frames are the images directly in the sequence folder (VOT2013-2019) or in `color/`.
    Polygons become area-preserving axis-aligned boxes (`polygons_to_boxes`); 4-value lines are
    taken as boxes. Per-frame `*.tag` / `*.label` files name the attributes a sequence has.

    Args:
        root: The VOT root or a single sequence folder (containing `groundtruth.txt`).
        errors: As in `read_otb`.

    Returns:
        The sequences in `list.txt` order (or sorted folder order).
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: VOT dataset root not found")
    if os.path.isfile(os.path.join(root, "groundtruth.txt")):
        return [_read_vot_folder(os.path.normpath(root), os.path.basename(os.path.normpath(root)))]
    names = _read_list(os.path.join(root, "list.txt")) or _subdirectories(root)
    sequences = []
    for name in names:
        try:
            sequences.append(_read_vot_folder(os.path.join(root, name), name))
        except (DatasetError, FileNotFoundError) as error:
            _report(errors, error)
    return sequences


def _read_list(path: str) -> list[str]:
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def _ground_truth_file(seq_dir: str) -> str:
    """`<seq_dir>/groundtruth.txt` (VOT, GOT-10k, LaSOT), or a DatasetError naming the folder."""
    path = os.path.join(seq_dir, "groundtruth.txt")
    if not os.path.isfile(path):
        raise DatasetError(f"{seq_dir}: sequence folder without ground truth (no groundtruth.txt)")
    return path


def _check_frame_count(anno_file: str, num_boxes: int, images: list[str]) -> None:
    """One box per frame, or a DatasetError naming the annotation file and the frame folder."""
    if len(images) != num_boxes:
        raise DatasetError(f"{anno_file}: {num_boxes} boxes but {len(images)} frames in "
                           f"{os.path.dirname(images[0])}")


def _read_vot_folder(seq_dir: str, name: str) -> Sequence:
    anno_file = _ground_truth_file(seq_dir)
    values, lines = read_box_file(anno_file, widths=(4, 8))
    image_dir = os.path.join(seq_dir, "color")
    images = list_images(image_dir if os.path.isdir(image_dir) else seq_dir)
    _check_frame_count(anno_file, len(values), images)
    polygons = values if values.shape[1] == 8 else None
    boxes = polygons_to_boxes(values) if polygons is not None else values
    attributes = []
    for tag_file in sorted(glob.glob(os.path.join(seq_dir, "*.tag")) +
                           glob.glob(os.path.join(seq_dir, "*.label"))):
        flags = _read_flags(tag_file, len(boxes), pad=True)
        if flags is not None and np.any(flags > 0):
            attributes.append(os.path.splitext(os.path.basename(tag_file))[0])
    return Sequence(name=name, image_files=images, ground_truth=boxes,
                    attributes=tuple(attributes), annotation_file=anno_file,
                    annotation_lines=lines, polygons=polygons)


def read_got10k(root: str, errors: list[str] | None = None) -> list[Sequence]:
    """Reads a GOT-10k split: `<root>/list.txt`, `<seq>/groundtruth.txt`, `<seq>/*.jpg`.

    `root` may be the split folder or the dataset root (then `val/` is used). Frames whose
    `cover.label` is 0 (target invisible) are invalid; `meta_info.ini` gives the resolution that
    GOT-10k's IoU clips boxes to. The test split has only a first-frame box: such sequences load
    (to run a tracker) but cannot be scored.

    Args:
        root: The split folder (with `list.txt`) or the GOT-10k root.
        errors: As in `read_otb`.
    """
    if not os.path.isfile(os.path.join(root, "list.txt")) and os.path.isfile(
            os.path.join(root, "val", "list.txt")):
        root = os.path.join(root, "val")
    list_file = os.path.join(root, "list.txt")
    if not os.path.isfile(list_file):
        raise FileNotFoundError(f"{list_file}: GOT-10k split list not found")
    sequences = []
    for name in _read_list(list_file):
        seq_dir = os.path.join(root, name)
        try:
            sequences.append(_read_got10k_folder(seq_dir, name))
        except (DatasetError, FileNotFoundError) as error:
            _report(errors, error)
    return sequences


def _read_got10k_folder(seq_dir: str, name: str) -> Sequence:
    anno_file = _ground_truth_file(seq_dir)
    boxes, lines = read_box_file(anno_file)
    images = list_images(seq_dir)
    if len(boxes) == 1 and len(images) > 1:
        # Test split: only the first box is public. Pad with NaN so the sequence can be run.
        boxes = np.concatenate([boxes, np.full((len(images) - 1, 4), np.nan)])
        lines = np.concatenate([lines, np.zeros(len(images) - 1, np.int64)])
    _check_frame_count(anno_file, len(boxes), images)
    cover = _read_flags(os.path.join(seq_dir, "cover.label"), len(boxes))
    absence = _read_flags(os.path.join(seq_dir, "absence.label"), len(boxes))
    valid = None
    if cover is not None:
        valid = cover > 0
    elif absence is not None:
        valid = absence == 0
    return Sequence(name=name, image_files=images, ground_truth=boxes, valid=valid,
                    annotation_file=anno_file, annotation_lines=lines,
                    resolution=_read_resolution(os.path.join(seq_dir, "meta_info.ini")))


def _read_resolution(path: str) -> tuple[int, int] | None:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        match = re.search(r"resolution:\s*\(?\s*(\d+)\s*,\s*(\d+)", f.read())
    return (int(match.group(1)), int(match.group(2))) if match else None


def read_lasot(root: str, errors: list[str] | None = None) -> list[Sequence]:
    """Reads LaSOT: `<root>/<class>/<class>-<n>/{img/, groundtruth.txt, full_occlusion.txt, ...}`.

    The sequences are those of `<root>/testing_set.txt` when it exists, else every
    `<class>-<n>` folder. Frames flagged in `full_occlusion.txt` or `out_of_view.txt` are
    invalid (the target is absent).

    Args:
        root: The LaSOT root (class folders), or a folder of sequence folders.
        errors: As in `read_otb`.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: LaSOT dataset root not found")
    names = _read_list(os.path.join(root, "testing_set.txt"))
    if not names:
        for first in _subdirectories(root):
            inner = os.path.join(root, first)
            if os.path.isfile(os.path.join(inner, "groundtruth.txt")):
                names.append(first)
            else:
                names.extend(_subdirectories(inner))
    sequences = []
    for name in names:
        seq_dir = os.path.join(root, name.rsplit("-", 1)[0], name)
        if not os.path.isdir(seq_dir):
            seq_dir = os.path.join(root, name)
        try:
            sequences.append(_read_lasot_folder(seq_dir, name))
        except (DatasetError, FileNotFoundError) as error:
            _report(errors, error)
    return sequences


def _read_lasot_folder(seq_dir: str, name: str) -> Sequence:
    anno_file = _ground_truth_file(seq_dir)
    boxes, lines = read_box_file(anno_file)
    images = list_images(os.path.join(seq_dir, "img"))
    _check_frame_count(anno_file, len(boxes), images)
    absent = np.zeros(len(boxes), bool)
    for flag_name in ("full_occlusion.txt", "out_of_view.txt"):
        flags = _read_flags(os.path.join(seq_dir, flag_name), len(boxes))
        if flags is not None:
            absent |= flags > 0
    return Sequence(name=name, image_files=images, ground_truth=boxes, valid=~absent,
                    annotation_file=anno_file, annotation_lines=lines)


def read_pysot_json(path: str, root: str | None = None, one_based: bool = False,
                    errors: list[str] | None = None) -> list[Sequence]:
    """Reads a pysot / DaSiamRPN dataset JSON `{seq: {..., init_rect, gt_rect}}`.

    Image paths: pysot's `img_names` are relative to `root`; DaSiamRPN's `image_files` are bare
    file names inside `<root>/<name>/img/` (names with a folder part are relative to `root`).
    The image files are not opened, so scoring needs only the JSON. `gt_rect` rows have 4 values
    (boxes) or 8 (VOT polygons); an empty row means no annotation (invalid frame). pysot's
    `attr` list becomes the attributes.

    Args:
        path: The JSON file.
        root: The folder image paths are relative to; default the JSON's folder.
        one_based: The boxes are 1-based (DaSiamRPN's OTB JSON holds the raw OTB numbers).
        errors: As in `read_otb`.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: annotation JSON not found")
    try:
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}:{error.lineno}: invalid JSON: {error.msg}") from None
    if not isinstance(entries, dict):
        raise DatasetError(f"{path}: expected an object {{sequence: {{...}}}}")
    root = os.path.dirname(os.path.abspath(path)) if root is None else root
    # An entry's `name` is an alias only when no other entry has it (`jogging_1` and
    # `jogging_2` are both named `Jogging`; `human4_2` alone is `Human4`).
    names = [str(e.get("name", "")).lower() for e in entries.values() if isinstance(e, dict)]
    sequences = []
    for key, entry in entries.items():
        try:
            sequence = _read_json_entry(path, root, key, entry, one_based)
            alias = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(alias, str) and alias and names.count(alias.lower()) == 1:
                sequence.aliases = tuple(dict.fromkeys((*sequence.aliases, alias)))
            sequences.append(sequence)
        except DatasetError as error:
            _report(errors, error)
    return sequences


def _read_json_entry(path, root, key, entry, one_based) -> Sequence:
    where = f"{path}: sequence {key!r}"
    if not isinstance(entry, dict) or "gt_rect" not in entry:
        raise DatasetError(f"{where}: no 'gt_rect' (sequence without ground truth)")
    rows = entry["gt_rect"]
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise DatasetError(f"{where}: 'gt_rect' must be a list of boxes (lists of 4 or 8 "
                           "numbers)")
    widths = {len(r) for r in rows if len(r)}
    if not rows or len(widths) != 1 or not widths <= {4, 8}:
        raise DatasetError(f"{where}: 'gt_rect' rows must all have 4 or 8 values, found "
                           f"lengths {sorted(widths) or [0]}")
    width = widths.pop()
    try:
        values = np.asarray([r if len(r) else [np.nan] * width for r in rows], np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: 'gt_rect' holds non-numeric values") from None
    polygons = values if width == 8 else None
    boxes = polygons_to_boxes(values) if polygons is not None else values.copy()
    if one_based:
        boxes[:, :2] -= 1.0
        if polygons is not None:
            polygons = polygons - 1.0
    if "img_names" in entry:
        images = [os.path.join(root, f) for f in entry["img_names"]]
    else:
        folder = entry.get("name", entry.get("video_dir", key))
        images = [os.path.join(root, f) if os.path.dirname(f)
                  else os.path.join(root, folder, "img", f) for f in entry.get("image_files", [])]
    if images and len(images) != len(boxes):
        raise DatasetError(f"{where}: {len(images)} image names but {len(boxes)} boxes")
    valid = None
    if "absent" in entry:
        flags = entry["absent"]
        if not isinstance(flags, list) or len(flags) != len(boxes):
            count = len(flags) if isinstance(flags, list) else type(flags).__name__
            raise DatasetError(f"{where}: 'absent' must hold one flag per box, found {count} for "
                               f"{len(boxes)} boxes")
        try:
            valid = np.asarray(flags, np.float64) == 1  # pysot: 1 = target present
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: 'absent' holds non-numeric values") from None
    attributes = list(entry.get("attr", ()))
    for tag in VOT_TAGS:  # pysot's VOT JSON: one 0/1 list per tag, empty when untagged
        flags = entry.get(tag)
        if isinstance(flags, list) and any(bool(f) for f in flags):
            attributes.append(tag)
    resolution = None
    if "width" in entry and "height" in entry:
        try:
            resolution = (int(entry["width"]), int(entry["height"]))
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: 'width'/'height' are not integers") from None
    return Sequence(name=key, image_files=images, ground_truth=boxes,
                    attributes=tuple(attributes), valid=valid, one_based=one_based,
                    annotation_file=path, polygons=polygons, resolution=resolution)


def load_dataset(name: str, root: str | None = None, annotations: str | None = None,
                 errors: list[str] | None = None) -> list[Sequence]:
    """Loads an evaluation dataset by name.

    Args:
        name: One of `EVAL_DATASETS`. `otb2013` is the 51-sequence subset of the OTB-100 tree
            or JSON; `otb` is any folder of OTB-layout sequences (no completeness rule);
            `synthetic` is plain OTB layout (held-out clips written by the data module);
            `uav123` is UAV123's `anno/` + `data_seq/` layout; `vot2016|vot2018|vot2019` read
            like `vot` (their protocol differs).
        root: The dataset's root folder (required unless `annotations` is given; with a JSON it
            is the folder image paths are relative to). An OTB root holding the MATLAB
            toolkit's flat `anno/` folder is read as that layout.
        annotations: A pysot-style JSON file instead of the folder layout.
        errors: When a list, per-sequence problems are appended and those sequences skipped;
            when None, the first problem raises.

    Returns:
        The sequences.
    """
    if name not in EVAL_DATASETS:
        raise ValueError(f"dataset={name!r}: expected one of {EVAL_DATASETS}")
    otb_like = name in ("otb100", "otb2013", "otb", "synthetic", "uav123")
    if annotations:
        sequences = read_pysot_json(annotations, root=root or None, one_based=otb_like,
                                    errors=errors)
        return [s for s in sequences if in_otb2013(s.name)] if name == "otb2013" else sequences
    if not root:
        raise ValueError(f"dataset={name!r}: give a dataset root folder or an annotations JSON")
    if name == "uav123":
        return uav123.read_uav123(root, errors=errors)
    if otb_like:
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{root}: OTB dataset root not found")
        subset = in_otb2013 if name == "otb2013" else None
        if otb.has_flat_annotations(root):
            sequences = otb.read_flat(root, errors=errors)
            return [s for s in sequences if subset is None or subset(s.name)]
        sequences = read_otb(root, subset=subset, errors=errors)
        otb.attach_attribute_flags(root, sequences)
        return sequences
    readers = {"got10k": read_got10k, "lasot": read_lasot}
    return readers.get(name, read_vot)(root, errors=errors)
