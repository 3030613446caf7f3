"""The dataset-building crop of spec 7.1: a context patch around the target, mean-colour padded.

Pixel convention of this module only (the exception `geometry/boxes.py` names): a box
`[x, y, w, h]` is 0-based and top-left and covers the pixel columns `x .. x + w - 1` and rows
`y .. y + h - 1`; its corner form is `[x1, y1, x2, y2] = [x, y, x + w - 1, y + h - 1]`
(inclusive corners, the "+1" arithmetic of the official builder, so `w = x2 - x1 + 1`). It is
kept so that patches and their boxes equal the official TFRecords'; the frame boxes it is given
follow `geometry/boxes.py`, and what it returns is in patch pixels.

The context margin of the patches is the builder's fixed 0.5 (`PatchGeometry.context`);
`--context` changes tracking only.
"""

from __future__ import annotations

import dataclasses
import io

import cv2
import numpy as np
from PIL import Image

from memnet_tf.config import TOTAL_STRIDE
from memnet_tf.geometry.boxes import exemplar_side, validate_box


@dataclasses.dataclass(frozen=True)
class PatchGeometry:
    """Sizes shared by patch building, augmentation and labels.

    The stored patch has side `patch_size` (P); the exemplar region (side s_z = sqrt((w+p)(h+p)),
    p = context * (w + h)) maps to `exemplar_size` (E) patch pixels, and the search crop is the
    central `search_size` (S) pixels of the patch (P = S + 2 * margin; 271 = 255 + 2 * 8).
    """

    exemplar_size: int = 127
    search_size: int = 255
    patch_size: int = 271
    response_size: int = 17
    stride: int = TOTAL_STRIDE
    context: float = 0.5

    def __post_init__(self):
        if not 0 < self.exemplar_size <= self.search_size <= self.patch_size:
            raise ValueError(
                f"patch geometry needs 0 < exemplar_size ({self.exemplar_size}) <= search_size "
                f"({self.search_size}) <= patch_size ({self.patch_size})")
        if self.response_size < 1:
            raise ValueError(f"response_size={self.response_size} must be positive")

    @classmethod
    def from_configs(cls, data_cfg, model_cfg) -> "PatchGeometry":
        """Geometry of a `DataConfig` + `ModelConfig` pair: P = S + 2 * patch_margin."""
        return cls(exemplar_size=model_cfg.exemplar_size, search_size=model_cfg.search_size,
                   patch_size=model_cfg.search_size + 2 * data_cfg.patch_margin,
                   response_size=model_cfg.response_size)


def patch_roi(box_xywh, geometry: PatchGeometry) -> np.ndarray:
    """The frame region cut for a patch: `[x1, y1, x2, y2)` integers, right/bottom exclusive.

    Crop side x = s_z * P / E around the box centre c, corners floor(c -/+ (x - 1) / 2) as in the
    official `build_data_vid.py`; like its PIL `crop`, the right and bottom corners are excluded.
    """
    x, y, w, h = np.asarray(box_xywh, dtype=np.float64)
    centre = np.array([x + (w - 1) / 2, y + (h - 1) / 2])
    side = exemplar_side(w, h, geometry.context) * geometry.patch_size / geometry.exemplar_size
    return np.floor(np.concatenate([centre - (side - 1) / 2, centre + (side - 1) / 2])).astype(
        np.int64)


def box_in_patch(box_xywh, geometry: PatchGeometry) -> np.ndarray:
    """The target box in patch pixels, `[x1, y1, x2, y2]` inclusive corners (float32).

    Centred at (P - 1) / 2 (135 for 271) with size floor(w * E / s_z) x floor(h * E / s_z), exactly
    as the official builder stores it.
    """
    _, _, w, h = np.asarray(box_xywh, dtype=np.float64)
    scale = geometry.exemplar_size / exemplar_side(w, h, geometry.context)
    size = np.floor(np.array([w, h]) * scale)
    centre = (geometry.patch_size - 1) / 2
    return np.concatenate([centre - (size - 1) / 2, centre + (size - 1) / 2]).astype(np.float32)


def mean_colour(image: np.ndarray) -> np.ndarray:
    """Integer per-channel mean colour `[3]` (truncated like the official `astype(int)`).

    The channel sums are exact integers in float64 (cv2.sumElems, ~50x faster than numpy's
    strided mean on a uint8 frame), so this equals `mean(axis=(0, 1)).astype(int)`.
    """
    sums = np.asarray(cv2.sumElems(image)[:3], dtype=np.float64)
    return np.floor(sums / (image.shape[0] * image.shape[1])).astype(np.int64)


def crop_patch(image: np.ndarray, box_xywh, geometry: PatchGeometry,
               name: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """Cuts the spec 7.1 training patch around a target.

    Out-of-frame parts are filled with the image's integer per-channel mean colour, then the crop
    is resized to `patch_size` with cv2 INTER_LINEAR. The official code used PIL's default filter
    (NEAREST in the Pillow of 2018, BICUBIC since Pillow 7); we use bilinear because it is what
    the tracker's `crop_and_resize` does at test time, so training patches and tracking crops are
    resampled alike, and it avoids NEAREST's aliasing.

    Args:
        image: uint8 `[height, width, 3]` RGB frame.
        box_xywh: `[4]` target box `[x, y, w, h]`, 0-based.
        geometry: the patch sizes.
        name: how the image is named in error messages (usually its path).

    Returns:
        patch: uint8 `[patch_size, patch_size, 3]`.
        box: float32 `[4]` target box in patch pixels, `[x1, y1, x2, y2]` inclusive corners.

    Raises:
        ValueError: a malformed image or a box that is degenerate or outside the frame.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{name}: expected a uint8 [height, width, 3] image, got "
                         f"{image.dtype} {list(image.shape)}")
    box = validate_box(box_xywh, image.shape, name=f"{name}: target")
    x1, y1, x2, y2 = patch_roi(box, geometry)
    height, width = image.shape[:2]
    region = np.empty((y2 - y1, x2 - x1, 3), dtype=np.uint8)
    region[...] = mean_colour(image).astype(np.uint8)
    # Paste the part of the frame that the region overlaps; the rest stays mean-coloured.
    src_x1, src_y1 = max(x1, 0), max(y1, 0)
    src_x2, src_y2 = min(x2, width), min(y2, height)
    if src_x2 > src_x1 and src_y2 > src_y1:
        region[src_y1 - y1:src_y2 - y1, src_x1 - x1:src_x2 - x1] = \
            image[src_y1:src_y2, src_x1:src_x2]
    patch = cv2.resize(region, (geometry.patch_size, geometry.patch_size),
                       interpolation=cv2.INTER_LINEAR)
    return patch, box_in_patch(box, geometry)


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """JPEG bytes of a uint8 `[height, width, 3]` RGB image (95 = TF `encode_jpeg`'s default)."""
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                              [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {list(image.shape)}")
    return buffer.tobytes()


def decode_jpeg(data: bytes, name: str = "JPEG") -> np.ndarray:
    """Strictly decodes JPEG bytes (truncated data is an error) to uint8 `[height, width, 3]` RGB.

    Raises:
        ValueError: corrupt or truncated data, naming `name`.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{name}: corrupt JPEG ({error})") from None
