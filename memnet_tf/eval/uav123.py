"""UAV123 (Mueller, Smith, Ghanem, ECCV 2016), UAV123@10fps and UAV20L as released.

Layout: `<root>/anno/<SET>/<seq>.txt` (one `x,y,w,h` per frame, 1-based like OTB; `NaN` rows
where the target is fully occluded or out of view), frames in `<root>/data_seq/<SET>/<folder>/`
(`000001.jpg` ...), and the toolkit's `configSeqs.m` giving each sequence's folder and frame
range. Several sequences are segments of one video (`group3_2` = `group3` frames 523-943 in
UAV123@10fps), so frames are cut by that range. `<SET>` is `UAV123` when present, else the only
subfolder of `anno/` (`UAV123_10fps`, `UAV20L`); `<root>` may also be the set folder's parent
in either tree. Attribute flags `anno/<SET>/att/<seq>.txt` (12 values 0/1) name the attributes.

Without `configSeqs.m` a sequence without a segment number, or segment `_1`, starts at frame 1;
any other segment is an error naming the sequence (its range cannot be known). Scoring needs no
frame: a tree without `data_seq/` loads for scoring only.
"""

from __future__ import annotations

import glob
import os
import re

from memnet_tf.eval.sequence import DatasetError, Sequence, list_images, read_box_file

# UAV123's attributes, in the order of its `att/` flag files.
UAV123_ATTRIBUTES = ("SV", "ARC", "LR", "FM", "FOC", "POC", "OV", "BC", "IV", "VC", "CM", "SOB")

_CONFIG_ENTRY = re.compile(
    r"'name'\s*,\s*'(?P<name>[^']+)'\s*,\s*'path'\s*,\s*'(?P<path>[^']*)'\s*,\s*"
    r"'startFrame'\s*,\s*(?P<start>\d+)\s*,\s*'endFrame'\s*,\s*(?P<end>\d+)")


def parse_config_seqs(path: str) -> dict[str, tuple[str, int, int]]:
    """`{sequence: (folder, first, last)}` from a toolkit `configSeqs.m` (frames 1-based,
    inclusive)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    ranges = {}
    for match in _CONFIG_ENTRY.finditer(text):
        folder = [p for p in re.split(r"[\\/]+", match.group("path")) if p][-1]
        ranges[match.group("name")] = (folder, int(match.group("start")), int(match.group("end")))
    if not ranges:
        raise DatasetError(f"{path}: no struct('name',...,'startFrame',...,'endFrame',...) "
                           "entries")
    return ranges


def _set_folder(anno_root: str) -> str:
    if glob.glob(os.path.join(glob.escape(anno_root), "*.txt")):
        return anno_root
    sets = sorted(d for d in os.listdir(anno_root)
                  if os.path.isdir(os.path.join(anno_root, d)) and d != "att")
    if "UAV123" in sets:
        return os.path.join(anno_root, "UAV123")
    if len(sets) == 1:
        return os.path.join(anno_root, sets[0])
    raise DatasetError(f"{anno_root}: expected annotation files or one set folder "
                       f"(UAV123, UAV123_10fps, UAV20L), found {sets}")


def _find_config(root: str, set_name: str) -> str | None:
    for folder in (root, os.path.join(root, "anno"), os.path.join(root, "anno", set_name)):
        for pattern in (f"configSeqs*{set_name}*.m", "configSeqs*.m"):
            found = sorted(glob.glob(os.path.join(glob.escape(folder), pattern)))
            if found:
                return found[0]
    return None


def _frame_range(name: str, ranges: dict | None) -> tuple[str, int, int | None]:
    if ranges is not None:
        if name not in ranges:
            raise DatasetError(f"{name}: not in configSeqs.m (no frame range)")
        return ranges[name]
    match = re.fullmatch(r"(.+)_(\d+)", name)
    if match and match.group(2) != "1":
        raise DatasetError(f"{name}: a segment of {match.group(1)} whose frame range is only "
                           "in the toolkit's configSeqs.m, which was not found")
    return (match.group(1) if match else name), 1, None


def read_uav123(root: str, errors: list[str] | None = None) -> list[Sequence]:
    """Reads a UAV123-layout tree (module docstring).

    Args:
        root: The folder holding `anno/` (and `data_seq/`, `configSeqs.m`).
        errors: When a list, problems with a sequence are appended and it is skipped; when
            None, the first problem raises.

    Returns:
        The sequences, sorted by name.
    """
    anno_root = os.path.join(root, "anno")
    if not os.path.isdir(anno_root):
        raise FileNotFoundError(f"{anno_root}: UAV123 annotation folder not found")
    set_dir = _set_folder(anno_root)
    set_name = os.path.basename(set_dir) if set_dir != anno_root else ""
    config = _find_config(root, set_name or "UAV123")
    ranges = parse_config_seqs(config) if config else None
    frames_root = os.path.join(root, "data_seq", set_name) if set_name else os.path.join(
        root, "data_seq")
    sequences = []
    for anno_file in sorted(glob.glob(os.path.join(glob.escape(set_dir), "*.txt"))):
        name = os.path.basename(anno_file)[:-4]
        try:
            sequences.append(_read_sequence(anno_file, name, ranges, frames_root, set_dir))
        except (DatasetError, FileNotFoundError) as error:
            if errors is None:
                raise
            errors.append(str(error))
    return sequences


def _read_sequence(anno_file, name, ranges, frames_root, set_dir) -> Sequence:
    boxes, lines = read_box_file(anno_file)
    folder, first, last = _frame_range(name, ranges)
    images = []
    image_dir = os.path.join(frames_root, folder)
    if os.path.isdir(image_dir):
        images = list_images(image_dir)
        if len(images) < first - 1 + len(boxes):
            raise DatasetError(f"{anno_file}: {len(boxes)} boxes from frame {first} but "
                               f"{image_dir} has {len(images)} frames")
        images = images[first - 1:first - 1 + len(boxes)]
    if last is not None and last - first + 1 != len(boxes):
        raise DatasetError(f"{anno_file}: {len(boxes)} boxes but configSeqs.m gives frames "
                           f"{first}-{last} ({last - first + 1})")
    attributes = ()
    att_file = os.path.join(set_dir, "att", f"{name}.txt")
    if os.path.isfile(att_file):
        attributes = _read_attribute_flags(att_file)
    boxes[:, :2] -= 1.0  # MATLAB 1-based, as OTB
    return Sequence(name=name, image_files=images, ground_truth=boxes, attributes=attributes,
                    one_based=True, annotation_file=anno_file, annotation_lines=lines)


def _read_attribute_flags(path: str) -> tuple[str, ...]:
    with open(path, encoding="utf-8") as f:
        fields = [v for v in re.split(r"[,;\s]+", f.read()) if v]
    if len(fields) != len(UAV123_ATTRIBUTES) or any(v not in ("0", "1") for v in fields):
        raise DatasetError(f"{path}: expected {len(UAV123_ATTRIBUTES)} flags 0/1 "
                           f"({' '.join(UAV123_ATTRIBUTES)}), found {fields}")
    return tuple(a for a, v in zip(UAV123_ATTRIBUTES, fields) if v == "1")
