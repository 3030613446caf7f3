"""The OTB benchmarks (OTB-2013, OTB-100): their sequence lists, attributes, and the MATLAB
toolkit's flat layout.

Layouts read (the per-folder layout `<Seq>/img/ + groundtruth_rect*.txt` is
`datasets.read_otb`):
- The MATLAB toolkit's flat annotation folder: `<root>/anno/<Seq>.txt` (one target per file,
  `Jogging-1.txt`), optional `<root>/anno/att/<Seq>.txt` attribute flags (11 values 0/1 in
  `OTB_ATTRIBUTES` order, commas or one a line), frames in `<root>/<Seq>/img/` or
  `<root>/data_seq/<Seq>/img/` when present (scoring needs no frame).
- `att/` beside a per-folder tree: `<root>/att/<Seq>.txt` or `<root>/anno/att/<Seq>.txt`, read by
  `attach_attribute_flags`.

Completeness. `--dataset=otb100|otb2013` is scored as the benchmark only when every one of its
`benchmark_names` has a result; `missing_sequences` says which have none.
"""

from __future__ import annotations

import glob
import os
import re

import numpy as np

from memnet_tf.eval.sequence import (DatasetError, Sequence, canonical_name, list_images,
                                     read_box_file)

# The 50 folders of OTB-2013 (CVPR 2013 benchmark). Jogging holds two targets, hence the
# benchmark's 51 sequences. Same list as the got10k toolkit's `OTB.__otb13_seqs`.
OTB2013_FOLDERS = (
    "Basketball", "Bolt", "Boy", "Car4", "CarDark", "CarScale", "Coke", "Couple", "Crossing",
    "David", "David2", "David3", "Deer", "Dog1", "Doll", "Dudek", "FaceOcc1", "FaceOcc2", "Fish",
    "FleetFace", "Football", "Football1", "Freeman1", "Freeman3", "Freeman4", "Girl", "Ironman",
    "Jogging", "Jumping", "Lemming", "Liquor", "Matrix", "Mhyang", "MotorRolling", "MountainBike",
    "Shaking", "Singer1", "Singer2", "Skating1", "Skiing", "Soccer", "Subway", "Suv", "Sylvester",
    "Tiger1", "Tiger2", "Trellis", "Walking", "Walking2", "Woman",
)

# OTB sequences whose annotation covers only part of the image folder, as
# `(first, last)` 1-based positions in the sorted image list (inclusive). These are the cases
# the got10k toolkit special-cases; others whose numbering starts late (BlurCar1 at 0247.jpg,
# ...) ship only the annotated images, so the sorted list already lines up. Tiger1's OTB-2015
# config skips 5 initial frames ("initOmit"); like got10k we do not.
OTB_FRAME_RANGES = {
    "David": (300, 770),
    "Football1": (1, 74),
    "Freeman3": (1, 460),
    "Freeman4": (1, 283),
    "Diving": (1, 215),
}

# The 11 OTB attributes, in the order of the toolkit's `att/` flag files.
OTB_ATTRIBUTES = ("IV", "SV", "OCC", "DEF", "MB", "FM", "IPR", "OPR", "OV", "BC", "LR")
OTB_ATTRIBUTE_NAMES = {
    "IV": "illumination variation", "SV": "scale variation", "OCC": "occlusion",
    "DEF": "deformation", "MB": "motion blur", "FM": "fast motion",
    "IPR": "in-plane rotation", "OPR": "out-of-plane rotation", "OV": "out of view",
    "BC": "background clutters", "LR": "low resolution",
}

# The 100 targets of OTB-100 (98 folders; Jogging and Skating2 hold two targets each).
OTB100_SEQUENCES = (
    "Basketball", "Biker", "Bird1", "Bird2", "BlurBody", "BlurCar1", "BlurCar2", "BlurCar3",
    "BlurCar4", "BlurFace", "BlurOwl", "Board", "Bolt", "Bolt2", "Box", "Boy", "Car1", "Car2",
    "Car24", "Car4", "CarDark", "CarScale", "ClifBar", "Coke", "Couple", "Coupon", "Crossing",
    "Crowds", "Dancer", "Dancer2", "David", "David2", "David3", "Deer", "Diving", "Dog", "Dog1",
    "Doll", "DragonBaby", "Dudek", "FaceOcc1", "FaceOcc2", "Fish", "FleetFace", "Football",
    "Football1", "Freeman1", "Freeman3", "Freeman4", "Girl", "Girl2", "Gym", "Human2", "Human3",
    "Human4", "Human5", "Human6", "Human7", "Human8", "Human9", "Ironman", "Jogging.1",
    "Jogging.2", "Jump", "Jumping", "KiteSurf", "Lemming", "Liquor", "Man", "Matrix", "Mhyang",
    "MotorRolling", "MountainBike", "Panda", "RedTeam", "Rubik", "Shaking", "Singer1",
    "Singer2", "Skater", "Skater2", "Skating1", "Skating2.1", "Skating2.2", "Skiing", "Soccer",
    "Subway", "Surfer", "Suv", "Sylvester", "Tiger1", "Tiger2", "Toy", "Trans", "Trellis",
    "Twinnings", "Vase", "Walking", "Walking2", "Woman",
)


def benchmark_names(dataset: str) -> tuple[str, ...] | None:
    """The sequences a complete `dataset` has (OTB-100: 100, OTB-2013: 51), or None (no rule)."""
    if dataset == "otb100":
        return OTB100_SEQUENCES
    if dataset == "otb2013":
        folders = {canonical_name(f) for f in OTB2013_FOLDERS}
        return tuple(n for n in OTB100_SEQUENCES
                     if canonical_name(re.sub(r"\.\d+$", "", n)) in folders)
    return None


def _keys(sequence: Sequence) -> set[str]:
    return {canonical_name(n) for n in (sequence.name, *sequence.aliases)}


def missing_sequences(expected: tuple[str, ...], scored: list[Sequence]) -> list[str]:
    """Names of `expected` that none of the `scored` sequences is (by name or alias)."""
    have = set().union(*(_keys(s) for s in scored)) if scored else set()
    return [name for name in expected if canonical_name(name) not in have]


def read_attribute_flags(path: str) -> tuple[str, ...]:
    """The attributes whose flag is 1 in an OTB toolkit `att/<Seq>.txt` file.

    Raises:
        DatasetError: not 11 flags of 0/1, naming the file.
    """
    with open(path, encoding="utf-8") as f:
        fields = [v for v in re.split(r"[,;\s]+", f.read()) if v]
    try:
        flags = [float(v) for v in fields]
    except ValueError:
        raise DatasetError(f"{path}: attribute flags must be numbers 0/1") from None
    if len(flags) != len(OTB_ATTRIBUTES) or any(v not in (0.0, 1.0) for v in flags):
        raise DatasetError(f"{path}: expected {len(OTB_ATTRIBUTES)} flags 0/1 "
                           f"({' '.join(OTB_ATTRIBUTES)}), found {fields}")
    return tuple(a for a, v in zip(OTB_ATTRIBUTES, flags) if v)


def _attribute_file(att_dirs: list[str], sequence: Sequence) -> str | None:
    keys = _keys(sequence) | {canonical_name(re.sub(r"\.\d+$", "", sequence.name))}
    for folder in att_dirs:
        for path in sorted(glob.glob(os.path.join(glob.escape(folder), "*.txt"))):
            if canonical_name(os.path.basename(path)[:-4]) in keys:
                return path
    return None


def attach_attribute_flags(root: str, sequences: list[Sequence]) -> None:
    """Adds the attributes of `<root>/att/` or `<root>/anno/att/` flag files to `sequences`.

    A two-target folder's file (`Jogging.txt`) applies to both targets; a target's own file
    (`Jogging-1.txt`) wins.
    """
    att_dirs = [d for d in (os.path.join(root, "att"), os.path.join(root, "anno", "att"))
                if os.path.isdir(d)]
    if not att_dirs:
        return
    for sequence in sequences:
        path = _attribute_file(att_dirs, sequence)
        if path is not None:
            sequence.attributes = tuple(dict.fromkeys(
                (*sequence.attributes, *read_attribute_flags(path))))


def has_flat_annotations(root: str) -> bool:
    """True for the MATLAB toolkit layout: `<root>/anno/*.txt` ground-truth files."""
    return bool(glob.glob(os.path.join(glob.escape(os.path.join(root, "anno")), "*.txt")))


def _frames_of(root: str, folder: str) -> list[str]:
    for candidate in (os.path.join(root, folder, "img"),
                      os.path.join(root, "data_seq", folder, "img"),
                      os.path.join(root, "data_seq", folder)):
        if os.path.isdir(candidate):
            return list_images(candidate)
    return []


def read_flat(root: str, errors: list[str] | None = None) -> list[Sequence]:
    """Reads the MATLAB toolkit layout (module docstring): one sequence per `anno/*.txt`.

    Two-target names (`Jogging-1`) become `Jogging.1` (got10k's, with the file's spelling as an
    alias); boxes are 1-based and become 0-based (`one_based=True`). Frames, when found, are cut
    to `datasets.OTB_FRAME_RANGES` and then to the number of boxes.
    """
    sequences = []
    for path in sorted(glob.glob(os.path.join(glob.escape(os.path.join(root, "anno")), "*.txt"))):
        stem = os.path.basename(path)[:-4]
        match = re.fullmatch(r"(.+?)[.\-_](\d+)", stem)
        folder, name = (match.group(1), f"{match.group(1)}.{match.group(2)}") if match else (
            stem, stem)
        try:
            boxes, lines = read_box_file(path)
            images = _frames_of(root, folder)
            if images and folder in OTB_FRAME_RANGES:
                first, last = OTB_FRAME_RANGES[folder]
                images = images[first - 1:last]
            if images and len(images) < len(boxes):
                raise DatasetError(f"{path}: {len(boxes)} boxes but only {len(images)} frames "
                                   f"for {folder}")
            boxes[:, :2] -= 1.0
            sequences.append(Sequence(name=name, image_files=images[:len(boxes)],
                                      ground_truth=boxes, one_based=True, annotation_file=path,
                                      annotation_lines=lines, aliases=(stem,)))
        except (DatasetError, FileNotFoundError) as error:
            if errors is None:
                raise
            errors.append(str(error))
    attach_attribute_flags(root, sequences)
    return sequences


def attribute_counts(sequences: list[Sequence]) -> dict[str, int]:
    """Sequences per attribute, in the toolkit's order first, then any other tag sorted."""
    tags = [a for a in OTB_ATTRIBUTES if any(a in s.attributes for s in sequences)]
    tags += sorted({a for s in sequences for a in s.attributes} - set(OTB_ATTRIBUTES))
    return {a: int(np.sum([a in s.attributes for s in sequences])) for a in tags}
