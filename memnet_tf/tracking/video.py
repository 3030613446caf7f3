"""The annotated output video of `python -m memnet_tf.track`: frame, boxes and a side panel.

Layout of every output frame: the input frame, untouched except for the two box outlines, and
to its right a dark side panel (so nothing is ever drawn over the target) holding

- the legend: which outline is ours and which is the ground truth (when known);
- the frame number and the tracker's confidence (response peak and peak-to-sidelobe ratio),
  with "probably lost" under `--lost_threshold`;
- with `--show_response`: the winning scale's up-sampled response map (labelled, JET colours:
  blue = low, red = high; the cross marks the chosen peak) and, with memory, the read weights
  as one bar per slot (labelled slots 1..N, height = weight in [0, 1]).

Pure numpy/OpenCV, RGB uint8 in and out.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from memnet_tf.cli import OutputError

BOX_COLOUR = (0, 255, 0)  # RGB: our box
GROUND_TRUTH_COLOUR = (255, 64, 64)  # RGB: the annotation, when known
LOST_COLOUR = (255, 160, 0)  # RGB: "probably lost" text
PANEL_BACKGROUND = 24
TEXT_COLOUR = (235, 235, 235)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def panel_width(frame_height: int) -> int:
    """Side panel width for a frame of `frame_height` rows (readable at any resolution)."""
    return max(200, frame_height // 3)


def colour_map(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A JET heat map of a 2-D array, min-max normalised, resized to `size` (w, h); RGB uint8."""
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    grey = cv2.resize((scaled * 255).astype(np.uint8), size, interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def weights_bar(weights: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A bar chart of memory read weights in [0, 1], one bar per slot, `size` (w, h), RGB."""
    width, height = size
    panel = np.full((height, width, 3), 48, np.uint8)
    count = len(weights)
    bar = max(width // max(count, 1), 1)
    for i, weight in enumerate(np.clip(weights, 0.0, 1.0)):
        top = int(round((1.0 - weight) * (height - 1)))
        cv2.rectangle(panel, (i * bar + 1, top), ((i + 1) * bar - 2, height - 1),
                      (255, 200, 0), -1)
    return panel


class _Panel:
    """Writes lines and images top to bottom into a side panel."""

    def __init__(self, width: int, scale: float):
        self.width = width
        self.scale = scale
        self.line_height = int(round(22 * scale / 0.5))
        self.margin = max(6, width // 30)
        self.parts: list[tuple[str, object]] = []
        self.height = self.margin

    def text(self, text: str, colour=TEXT_COLOUR, swatch=None) -> None:
        self.parts.append(("text", (self.height, text, colour, swatch)))
        self.height += self.line_height

    def image(self, image: np.ndarray) -> None:
        self.parts.append(("image", (self.height, image)))
        self.height += image.shape[0] + self.margin // 2

    def render(self, height: int) -> np.ndarray:
        panel = np.full((max(height, self.height), self.width, 3), PANEL_BACKGROUND, np.uint8)
        for kind, part in self.parts:
            if kind == "text":
                top, text, colour, swatch = part
                x = self.margin
                baseline = top + int(self.line_height * 0.75)
                if swatch is not None:
                    side = int(self.line_height * 0.6)
                    cv2.rectangle(panel, (x, baseline - side), (x + 2 * side, baseline),
                                  swatch, 2)
                    x += 2 * side + self.margin
                cv2.putText(panel, text, (x, baseline), _FONT, self.scale, colour, 1,
                            cv2.LINE_AA)
            else:
                top, image = part
                panel[top:top + image.shape[0], self.margin:self.margin + image.shape[1]] = image
        return panel


def annotate(frame: np.ndarray, box, ground_truth=None, debug: dict | None = None,
             show_response: bool = False, frame_label: str = "", score=None,
             lost: bool = False, tracker_name: str = "ours",
             has_ground_truth: bool | None = None, memory_slots: int | None = None) -> np.ndarray:
    """The frame with our box (and the ground truth) and the side panel, RGB uint8.

    The panel's layout depends only on the frame height, `has_ground_truth`, `show_response`
    and `memory_slots`, never on what this frame has (the first frame has no response, a
    frame may lack its annotation, "probably lost" comes and goes): every frame of a video
    has the same size, so no frame is ever rescaled to fit the first one.

    Args:
        frame: `[H, W, 3]` RGB uint8 input frame (not modified).
        box: our `[x, y, w, h]` box (0-based).
        ground_truth: the annotated box, or None.
        debug: the tracker's `debug` dict after `update` (`upsampled`, `best_scale`, `peak`,
            `read_weights`), or None/empty on the first frame.
        show_response: draw the response map and read weights in the panel.
        frame_label: e.g. `frame 12/140`.
        score: a `FrameScore` (peak, psr), or None on the first frame.
        lost: the score is below `--lost_threshold`.
        tracker_name: the legend's name of our box.
        has_ground_truth: the sequence is annotated (its legend line is always shown);
            None = whether `ground_truth` is given.
        memory_slots: N of a memory tracker (its read-weight bars are always laid out with
            `show_response`), 0 without memory; None = from `debug["read_weights"]`.

    Returns:
        `[max(H, panel height), W + panel_width(H), 3]` uint8.
    """
    canvas = np.ascontiguousarray(frame.copy())

    def rectangle(b, colour):
        if b is None or not np.all(np.isfinite(b)):
            return
        x, y, w, h = (int(round(v)) for v in b)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, 2)

    rectangle(ground_truth, GROUND_TRUTH_COLOUR)
    rectangle(box, BOX_COLOUR)

    debug = debug or {}
    if has_ground_truth is None:
        has_ground_truth = ground_truth is not None
    if memory_slots is None:
        memory_slots = (np.asarray(debug["read_weights"]).shape[-1]
                        if "read_weights" in debug else 0)
    width = panel_width(frame.shape[0])
    panel = _Panel(width, scale=0.45 * width / 200)
    panel.text(f"{tracker_name} (ours)", swatch=BOX_COLOUR)
    if has_ground_truth:
        panel.text("ground truth" if ground_truth is not None and np.all(np.isfinite(
            ground_truth)) else "ground truth: none here", swatch=GROUND_TRUTH_COLOUR)
    panel.text(frame_label)
    panel.text(f"peak {score.peak:.3g}  psr {score.psr:.1f}" if score is not None
               else "first frame: the given box")
    panel.text("probably lost" if lost else "", colour=LOST_COLOUR)
    if show_response:
        side = width - 2 * panel.margin
        best = debug.get("best_scale", 0)
        if "upsampled" in debug:
            scales = len(debug.get("responses", [None]))
            panel.text(f"response, scale {best + 1}/{scales}")
            inset = colour_map(np.asarray(debug["upsampled"]), (side, side))
            if "peak" in debug:
                size = np.asarray(debug["upsampled"]).shape[-1]
                px, py = (int(round((v + 0.5) * side / size)) for v in debug["peak"])
                cv2.drawMarker(inset, (px, py), (255, 255, 255), cv2.MARKER_CROSS,
                               max(side // 12, 6), 1)
        else:
            panel.text("response: from frame 2")
            inset = np.full((side, side, 3), 48, np.uint8)
        panel.image(inset)
        panel.text("blue low, red high; + peak")
        if memory_slots:
            panel.text(f"read weights, slots 1-{memory_slots}")
            weights = (np.asarray(debug["read_weights"])[best] if "read_weights" in debug
                       else np.zeros(memory_slots))
            panel.image(weights_bar(weights, (side, max(side // 3, 24))))
    rendered = panel.render(frame.shape[0])
    out = np.full((rendered.shape[0], frame.shape[1] + width, 3), PANEL_BACKGROUND, np.uint8)
    out[:frame.shape[0], :frame.shape[1]] = canvas
    out[:, frame.shape[1]:] = rendered
    return out


class VideoOutput:
    """An mp4 written to a temporary name and renamed into place by `close()`."""

    def __init__(self, path: str, fps: float = 25.0):
        if not fps or not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"{path}: frame rate must be positive, got {fps}")
        self.path = path
        self.fps = float(fps)
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as error:
            raise OutputError(f"{path}: cannot create its folder ({error})") from None
        stem, extension = os.path.splitext(os.path.basename(path))
        # The extension stays last: OpenCV picks the container from it.
        self.tmp = os.path.join(folder, f".{stem}.tmp-{os.getpid()}{extension or '.mp4'}")
        self.writer = None
        self.size = None

    def write(self, frame: np.ndarray) -> None:
        """Appends an RGB frame; frames of another size are fitted into the first one's."""
        if self.writer is None:
            self.size = (frame.shape[1], frame.shape[0])
            self.writer = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                          self.size)
            if not self.writer.isOpened():
                raise OutputError(f"{self.path}: cannot open a video writer (mp4v) on "
                                  f"{self.tmp}")
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)
        self.writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            try:
                os.replace(self.tmp, self.path)
            except OSError as error:
                raise OutputError(f"{self.path}: cannot move the video into place "
                                  f"({error})") from None

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if os.path.exists(self.tmp):
            os.remove(self.tmp)
