"""What every benchmark reader returns: `Sequence`, and the file helpers they share.

Pixel convention. `Sequence.ground_truth` is always `[x, y, w, h]`, 0-based, top-left, in frame
pixels (the got10k contract). OTB annotation files are 1-based (MATLAB): the OTB reader subtracts
1 from x and y and sets `Sequence.one_based = True`. Results files, on the other hand, are written
and read in the annotation files' own convention (`ope.py` adds the 1 back), exactly as the
DaSiamRPN and OTB toolkits do, so that published raw results of other trackers can be scored
unchanged. IoU and centre distance do not depend on a common shift, so scores are unaffected.

Invalid frames. A frame is valid when its box is finite with w > 0 and h > 0 and the dataset
does not flag the target as absent (GOT-10k `cover.label` = 0; LaSOT full occlusion or out of
view). How invalid frames are scored is the protocol's business (`report.py`).
"""

from __future__ import annotations

import dataclasses
import os
import re

import cv2
import numpy as np

from memnet_tf.geometry import boxes as boxes_lib

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

class DatasetError(ValueError):
    """A dataset file that cannot be read; the message names the file (and line)."""


@dataclasses.dataclass
class Sequence:
    """One annotated video.

    Attributes:
        name: Unique sequence name; results are stored as `<name>.txt`.
        image_files: Frame paths in order, `num_frames` of them (may be unchecked paths when
            read from a JSON file).
        ground_truth: `[num_frames, 4]` float64 boxes `[x, y, w, h]`, 0-based, top-left.
        attributes: Sequence-level attribute tags (OTB `attrs.txt`, pysot `attr`, VOT tags).
        valid: `[num_frames]` bool; computed from the boxes (and absence flags) when None.
        one_based: True when the annotation file was 1-based and 1 was subtracted from x, y.
            Results files keep the file convention: results = 0-based boxes + `pixel_offset`.
        annotation_file: The file the ground truth came from, for messages.
        annotation_lines: `[num_frames]` line number of each frame's box in `annotation_file`
            (1-based), or None when the source has no lines (JSON).
        polygons: `[num_frames, 8]` VOT rotated boxes `x1, y1, ..., x4, y4`, or None.
        resolution: `(width, height)` of the frames when the dataset states it (GOT-10k, a
            VOT JSON's `width`/`height`).
        aliases: other names results files may use for this sequence (a pysot JSON entry's
            `name`, the target file an OTB folder's single target came from); see
            `result_files.find_result_files`.
    """

    name: str
    image_files: list[str]
    ground_truth: np.ndarray
    attributes: tuple[str, ...] = ()
    valid: np.ndarray | None = None
    one_based: bool = False
    annotation_file: str = ""
    annotation_lines: np.ndarray | None = None
    polygons: np.ndarray | None = None
    resolution: tuple[int, int] | None = None
    aliases: tuple[str, ...] = ()

    def __post_init__(self):
        self.ground_truth = np.asarray(self.ground_truth, np.float64)
        if self.ground_truth.ndim != 2 or self.ground_truth.shape[1] != 4:
            raise DatasetError(f"{self.annotation_file or self.name}: ground truth must be "
                               f"[num_frames, 4], got shape {self.ground_truth.shape}")
        if self.image_files and len(self.image_files) != len(self.ground_truth):
            raise DatasetError(f"{self.name}: {len(self.image_files)} images but "
                               f"{len(self.ground_truth)} boxes")
        box_valid = boxes_valid(self.ground_truth)
        self.valid = box_valid if self.valid is None else np.asarray(self.valid, bool) & box_valid
        self.attributes = tuple(self.attributes)
        self.aliases = tuple(a for a in dict.fromkeys(self.aliases) if a != self.name)

    @property
    def num_frames(self) -> int:
        return len(self.ground_truth)

    @property
    def pixel_offset(self) -> float:
        """What results files add to 0-based x, y (1.0 for OTB's 1-based files)."""
        return 1.0 if self.one_based else 0.0

    def where(self, frame: int) -> str:
        """`file:line` of frame `frame`'s annotation, for error messages."""
        if self.annotation_lines is not None:
            return f"{self.annotation_file}:{int(self.annotation_lines[frame])}"
        return f"{self.annotation_file or '<memory>'}: sequence {self.name!r} box {frame}"


def boxes_valid(boxes: np.ndarray) -> np.ndarray:
    """True where a box is finite with positive width and height.

    Args:
        boxes: `[num_frames, 4]` boxes `[x, y, w, h]`.

    Returns:
        `[num_frames]` bool.
    """
    boxes = np.asarray(boxes, np.float64)
    with np.errstate(invalid="ignore"):
        return np.all(np.isfinite(boxes), axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)


def polygons_to_boxes(polygons: np.ndarray) -> np.ndarray:
    """Area-preserving axis-aligned boxes of VOT polygons, NaN where a polygon is unusable.

    `geometry.boxes.polygon_to_xywh` (the got10k toolkit's rule) on every finite polygon with
    a non-zero extent; the other rows (VOT marks absent targets with NaN) become NaN boxes,
    i.e. invalid frames, instead of an error.

    Args:
        polygons: `[num_frames, 8]` corners `x1, y1, x2, y2, x3, y3, x4, y4`.

    Returns:
        `[num_frames, 4]` boxes `[x, y, w, h]`.
    """
    polygons = np.asarray(polygons, np.float64).reshape(-1, 8)
    xs, ys = polygons[:, 0::2], polygons[:, 1::2]
    with np.errstate(invalid="ignore"):
        usable = (np.all(np.isfinite(polygons), axis=1)
                  & (xs.max(axis=1) > xs.min(axis=1)) & (ys.max(axis=1) > ys.min(axis=1)))
    boxes = np.full((len(polygons), 4), np.nan)
    if usable.any():
        boxes[usable] = boxes_lib.polygon_to_xywh(polygons[usable], method="got10k")
    return boxes


def load_frame(path: str) -> np.ndarray:
    """Reads one frame as RGB.

    Args:
        path: An image file (greyscale images are expanded to 3 channels).

    Returns:
        `[height, width, 3]` uint8 RGB.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` exists but is not a readable image.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: frame file not found")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image (corrupt or unsupported format)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_box_file(path: str, widths: tuple[int, ...] = (4,)) -> tuple[np.ndarray, np.ndarray]:
    """Reads one box per line, values separated by commas, tabs and/or spaces (OTB mixes them).

    Blank lines and `#` comment lines (the header of `track --output_boxes`) are skipped (like
    `np.loadtxt`). `nan` is accepted: it marks an invalid frame.

    Args:
        path: The text file.
        widths: Accepted numbers of values per line; all lines must have the same one.

    Returns:
        `([num_lines, width] float64 values, [num_lines] 1-based line numbers)`.

    Raises:
        FileNotFoundError: `path` does not exist.
        DatasetError: a line is not numeric or has the wrong number of values; the message
            names `path:line`.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: file not found")
    rows, line_numbers = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = [v for v in re.split(r"[,;\s]+", text) if v]
            try:
                values = [float(v) for v in fields]
            except ValueError:
                raise DatasetError(f"{path}:{number}: not a list of numbers: {text!r}") from None
            expected = len(rows[0]) if rows else None
            if len(values) not in widths or (expected and len(values) != expected):
                want = expected or " or ".join(str(w) for w in widths)
                raise DatasetError(f"{path}:{number}: expected {want} values, found "
                                   f"{len(values)}: {text!r}")
            rows.append(values)
            line_numbers.append(number)
    if not rows:
        raise DatasetError(f"{path}: empty file, no boxes")
    return np.asarray(rows, np.float64), np.asarray(line_numbers, np.int64)


def list_images(folder: str) -> list[str]:
    """Sorted image files of `folder`; raises when a numbered frame is missing.

    Args:
        folder: A folder of frames named by number (`0001.jpg` ...) or by anything sortable.

    Returns:
        Full paths, sorted by name.

    Raises:
        FileNotFoundError: `folder` does not exist.
        DatasetError: no images, or the numbering has a gap (names the missing file).
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: image folder not found")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise DatasetError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    if all(os.path.splitext(n)[0].isdigit() for n in names):
        # Numeric order, so `10.jpg` follows `9.jpg` when names are not zero-padded.
        names.sort(key=lambda n: int(os.path.splitext(n)[0]))
        stems = [os.path.splitext(n)[0] for n in names]
        numbers = [int(stem) for stem in stems]
        for previous, current, name in zip(numbers, numbers[1:], names[1:]):
            if current != previous + 1:
                width = len(stems[0])
                missing = f"{previous + 1:0{width}d}{os.path.splitext(name)[1]}"
                raise DatasetError(f"{os.path.join(folder, missing)}: missing frame file (the "
                                   f"images jump from {previous} to {current})")
    return [os.path.join(folder, n) for n in names]


def canonical_name(name: str) -> str:
    """Case- and separator-insensitive sequence key: `Jogging-1`, `jogging_1` -> `jogging.1`."""
    return re.sub(r"[-_.]", ".", name.lower())
