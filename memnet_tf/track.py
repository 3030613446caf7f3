"""Tracks one target through a video, a folder of frames or an OTB/VOT sequence.

    python -m memnet_tf.track (--checkpoint=runs/x | --saved_model=exports/x)
        (--video=FILE | --images=DIR | --sequence=DIR)
        [--init_box=x,y,w,h] [--output_video=out.mp4] [--output_boxes=out.txt] [--show_response]

Shows a progress line with the speed on stderr. `--output_boxes` gets one `x,y,w,h` line per
frame (0-based pixels, the first line is the initial box); `--output_video` an mp4 with the box
drawn (and the ground truth, when known), plus with `--show_response` the response map and the
memory read weights as insets. A `--sequence` gives the first box from its ground truth unless
`--init_box` is set, and at the end `success_auc=... precision=...` against that ground truth.
Bad input (missing or unreadable frame, a box of zero size or outside the frame, a missing
checkpoint or export) ends with one `error: ...` line naming the file or box, and exit status 2.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterator

import cv2
import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS

BOX_COLOUR = (0, 255, 0)  # RGB: our box
GROUND_TRUTH_COLOUR = (255, 64, 64)  # RGB: the annotation, when known
EXIT_BAD_INPUT = 2


class InputError(ValueError):
    """Bad command-line input; the message names the file, flag or box."""


@dataclasses.dataclass
class FrameSource:
    """Frames to track, read lazily.

    Attributes:
        description: what is tracked, for messages (a path).
        frames: a function returning an iterator of `(name, [H, W, 3] uint8 RGB frame)`; the
            name (a file, or `video:frame k`) is used in error messages.
        num_frames: number of frames when known (for the progress line), else None.
        ground_truth: `[num_frames, 4]` 0-based boxes of a sequence, else None.
        ground_truth_where: where the first ground-truth box comes from (`file:line`).
    """

    description: str
    frames: Callable[[], Iterator[tuple[str, np.ndarray]]]
    num_frames: int | None = None
    ground_truth: np.ndarray | None = None
    ground_truth_where: str = ""


def parse_box(text: str, name: str = "--init_box") -> np.ndarray:
    """Parses `x,y,w,h` into a float64 `[4]` box (validated against a frame later).

    Raises:
        InputError: not four comma-separated numbers.
    """
    fields = [v.strip() for v in text.replace(" ", ",").split(",") if v.strip()]
    try:
        values = np.array([float(v) for v in fields], np.float64)
    except ValueError:
        raise InputError(f"{name}={text!r}: expected four numbers x,y,w,h") from None
    if values.shape != (4,):
        raise InputError(f"{name}={text!r}: expected four numbers x,y,w,h, got {len(values)}")
    return values


def video_source(path: str) -> FrameSource:
    """Frames of a video file (OpenCV), converted to RGB."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: video file not found")
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise InputError(f"{path}: not a readable video")
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()

    def frames():
        video = cv2.VideoCapture(path)
        try:
            index = 0
            while True:
                ok, frame = video.read()
                if not ok:
                    break
                index += 1
                yield f"{path} (frame {index})", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            if index == 0:
                raise InputError(f"{path}: no frame could be decoded")
        finally:
            video.release()

    return FrameSource(path, frames, count if count > 0 else None)


def _file_frames(paths: list[str]) -> Callable[[], Iterator[tuple[str, np.ndarray]]]:
    from memnet_tf.eval import datasets

    def frames():
        for path in paths:
            yield path, datasets.load_frame(path)

    return frames


def images_source(folder: str) -> FrameSource:
    """Frames of a folder, sorted by name (numeric names in numeric order, no gaps)."""
    from memnet_tf.eval import datasets

    paths = datasets.list_images(folder)
    return FrameSource(folder, _file_frames(paths), len(paths))


def sequence_source(folder: str) -> FrameSource:
    """An OTB (`img/` + `groundtruth_rect*.txt`) or VOT (`groundtruth.txt`) sequence folder.

    For OTB folders with several targets (Jogging) the first target is tracked.
    """
    from memnet_tf.eval import datasets

    folder = os.path.normpath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: sequence folder not found")
    name = os.path.basename(folder)
    if os.path.isfile(os.path.join(folder, "groundtruth.txt")):
        sequence = datasets.read_vot(folder)[0]
    elif os.path.isdir(os.path.join(folder, "img")):
        found = datasets.read_otb(os.path.dirname(folder) or ".",
                                  subset=lambda n: n == name or n.startswith(name + "."))
        if not found:
            raise InputError(f"{folder}: no OTB ground truth (groundtruth_rect*.txt) found")
        sequence = found[0]
    else:
        raise InputError(f"{folder}: neither an OTB sequence (img/ + groundtruth_rect.txt) "
                         "nor a VOT sequence (groundtruth.txt)")
    return FrameSource(folder, _file_frames(list(sequence.image_files)), sequence.num_frames,
                       sequence.ground_truth, sequence.where(0))


def select_source(video: str, images: str, sequence: str) -> FrameSource:
    """The one frame source the flags name."""
    given = [(flag, value) for flag, value in
             (("--video", video), ("--images", images), ("--sequence", sequence)) if value]
    if len(given) != 1:
        raise InputError("give exactly one of --video=FILE, --images=DIR, --sequence=DIR "
                         f"(got {', '.join(f for f, _ in given) or 'none'})")
    flag, value = given[0]
    if flag == "--video":
        return video_source(value)
    if flag == "--images":
        return images_source(value)
    return sequence_source(value)


def colour_map(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A JET heat map of a 2-D array, min-max normalised, resized to `size` (w, h); RGB uint8."""
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    grey = cv2.resize((scaled * 255).astype(np.uint8), size, interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def weights_bar(weights: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A bar chart of memory read weights in [0, 1], `size` (w, h), RGB uint8."""
    width, height = size
    panel = np.full((height, width, 3), 32, np.uint8)
    count = len(weights)
    bar = max(width // max(count, 1), 1)
    for i, weight in enumerate(np.clip(weights, 0.0, 1.0)):
        top = int(round((1.0 - weight) * (height - 1)))
        cv2.rectangle(panel, (i * bar + 1, top), ((i + 1) * bar - 2, height - 1),
                      (255, 200, 0), -1)
    return panel


def annotate(frame: np.ndarray, box, ground_truth=None, debug: dict | None = None,
             show_response: bool = False, label: str = "") -> np.ndarray:
    """Draws the box (and ground truth, insets, label) on a copy of an RGB frame."""
    canvas = np.ascontiguousarray(frame.copy())

    def rectangle(b, colour):
        if b is None or not np.all(np.isfinite(b)):
            return
        x, y, w, h = (int(round(v)) for v in b)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, 2)

    rectangle(ground_truth, GROUND_TRUTH_COLOUR)
    rectangle(box, BOX_COLOUR)
    if show_response and debug:
        side = max(min(canvas.shape[0], canvas.shape[1]) // 4, 16)
        inset = colour_map(debug["upsampled"], (side, side))
        canvas[:side, :side] = inset[:canvas.shape[0], :canvas.shape[1]]
        if "read_weights" in debug and canvas.shape[1] >= 2 * side:
            weights = debug["read_weights"][debug["best_scale"]]
            canvas[:side, side:2 * side] = weights_bar(weights, (side, side))
    if label:
        cv2.putText(canvas, label, (4, canvas.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


class VideoOutput:
    """An mp4 written to a temporary name and renamed into place by `close()`."""

    def __init__(self, path: str, fps: float = 25.0):
        self.path = path
        self.fps = fps
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        stem, extension = os.path.splitext(os.path.basename(path))
        # The extension stays last: OpenCV picks the container from it.
        self.tmp = os.path.join(folder, f".{stem}.tmp-{os.getpid()}{extension or '.mp4'}")
        self.writer = None
        self.size = None

    def write(self, frame: np.ndarray) -> None:
        """Appends an RGB frame; frames of another size are resized to the first one's."""
        if self.writer is None:
            self.size = (frame.shape[1], frame.shape[0])
            self.writer = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                          self.size)
            if not self.writer.isOpened():
                raise OSError(f"{self.path}: cannot open a video writer (mp4v)")
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)
        self.writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            os.replace(self.tmp, self.path)
            self.writer = None

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


def write_boxes(path: str, boxes: np.ndarray) -> None:
    """One `x,y,w,h` line per frame, written atomically."""
    from memnet_tf import config as config_lib

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    config_lib.write_atomically(path, "".join(
        ",".join(f"{v:.4f}" for v in box) + "\n" for box in boxes))


def progress_line(done: int, total: int | None, seconds: float) -> str:
    """`frame 12/140  23.4 fps` (the total is omitted when unknown)."""
    fps = done / seconds if seconds > 0 else 0.0
    count = f"{done}/{total}" if total else f"{done}"
    return f"\rframe {count}  {fps:.1f} fps"


def _initial_box(source: FrameSource, init_box) -> tuple[np.ndarray, str]:
    """The first box and, for messages, where it comes from."""
    if init_box is not None:
        return np.asarray(init_box, np.float64), "--init_box"
    if source.ground_truth is None:
        raise InputError(f"{source.description}: no ground truth; give --init_box=x,y,w,h")
    return source.ground_truth[0], f"{source.ground_truth_where}: first ground-truth box"


def check_first_frame(source: FrameSource, init_box=None) -> None:
    """Reads the first frame and validates the first box against it.

    Raises:
        InputError: no frames, no box, or a box that is not finite, has zero size or lies
            outside the first frame (the message names the box's origin and the frame file).
        FileNotFoundError, ValueError: a missing or unreadable first frame (names the file).
    """
    from memnet_tf.geometry import boxes as boxes_lib

    box, where = _initial_box(source, init_box)
    for name, frame in source.frames():
        try:
            boxes_lib.validate_box(box, frame.shape, f"{where} on first frame {name}")
        except ValueError as error:
            raise InputError(str(error)) from None
        return
    raise InputError(f"{source.description}: no frames")


def run_tracking(tracker, source: FrameSource, init_box=None, output_video: str = "",
                 show_response: bool = False, progress=sys.stderr) -> np.ndarray:
    """Tracks through `source`: init on the first frame, update on the others.

    Args:
        tracker: a got10k-style tracker (`MemTracker`).
        source: the frames (and maybe ground truth).
        init_box: `[4]` first box (0-based); the ground truth's first box when None.
        output_video: write the annotated video here ("" = no video).
        show_response: inset the response map and read weights in the video.
        progress: stream for the progress line (None = silent).

    Returns:
        `[num_frames, 4]` boxes, the first being the initial box.

    Raises:
        InputError, FileNotFoundError, ValueError: bad frames or boxes, naming the file.
    """
    from memnet_tf.geometry import boxes as boxes_lib

    init_box, where = _initial_box(source, init_box)
    video = VideoOutput(output_video) if output_video else None
    results = []
    start = time.perf_counter()
    try:
        for index, (name, frame) in enumerate(source.frames()):
            if index == 0:
                try:
                    box = boxes_lib.validate_box(init_box, frame.shape,
                                                 f"{where} on first frame {name}")
                except ValueError as error:
                    raise InputError(str(error)) from None
                tracker.init(frame, box)
            else:
                try:
                    box = tracker.update(frame)
                except ValueError as error:
                    raise InputError(f"{name}: {error}") from None
            results.append(np.asarray(box, np.float64))
            if video is not None:
                truth = None
                if source.ground_truth is not None and index < len(source.ground_truth):
                    truth = source.ground_truth[index]
                video.write(annotate(frame, box, truth, getattr(tracker, "debug", None),
                                     show_response, f"#{index + 1}"))
            if progress is not None:
                progress.write(progress_line(index + 1, source.num_frames,
                                             time.perf_counter() - start))
                progress.flush()
        if not results:
            raise InputError(f"{source.description}: no frames")
        if video is not None:
            video.close()
    except BaseException:
        if video is not None:
            video.abort()
        raise
    finally:
        if progress is not None:
            progress.write("\n")
    return np.stack(results)


def score(boxes: np.ndarray, ground_truth: np.ndarray) -> dict:
    """OTB success AUC and precision at 20 px of `boxes` against `ground_truth` (0-based)."""
    from memnet_tf.eval import metrics

    count = min(len(boxes), len(ground_truth))
    overlaps = metrics.iou(boxes[:count], ground_truth[:count])
    errors = metrics.center_errors(boxes[:count], ground_truth[:count])
    return {"success_auc": metrics.auc(metrics.success_curve(overlaps)),
            "precision": metrics.precision_at(errors), "frames": count}


def is_input_error(error: Exception) -> bool:
    """True for errors caused by the inputs (files, boxes, checkpoint), reported in one line."""
    if isinstance(error, (InputError, FileNotFoundError, ValueError, OSError)):
        return True
    loading = sys.modules.get("memnet_tf.models.loading")  # imported once a model is loaded
    return loading is not None and loading.is_loading_error(error)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if sum(bool(v) for v in (FLAGS.checkpoint, FLAGS.saved_model, FLAGS.litert)) != 1:
        # Checked here: absl's required-flag check cannot see an empty-string default.
        print("error: give --checkpoint (a run folder or a checkpoint prefix), --saved_model "
              "(an export folder) or --litert (a LiteRT export folder), exactly one",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        source = select_source(FLAGS.video, FLAGS.images, FLAGS.sequence)
        init_box = parse_box(FLAGS.init_box) if FLAGS.init_box else None
        # Bad boxes and unreadable first frames fail before the model is loaded.
        check_first_frame(source, init_box)
        from memnet_tf.tracking import tracker as tracker_lib

        tracker = tracker_lib.factory_from_flags(FLAGS)()
        boxes = run_tracking(tracker, source, init_box, FLAGS.output_video,
                             FLAGS.show_response)
        if FLAGS.output_boxes:
            write_boxes(FLAGS.output_boxes, boxes)
    except Exception as error:  # noqa: BLE001 - bad input is reported in one line, bugs are not
        if not is_input_error(error):
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"tracked {len(boxes)} frames of {source.description}")
    if FLAGS.output_boxes:
        print(f"boxes: {FLAGS.output_boxes}")
    if FLAGS.output_video:
        print(f"video: {FLAGS.output_video}")
    if source.ground_truth is not None:
        scores = score(boxes, source.ground_truth)
        print(f"success_auc={scores['success_auc']:.3f} precision={scores['precision']:.3f}")
    return 0


if __name__ == "__main__":
    from memnet_tf import flags as memnet_flags

    memnet_flags.define_flags()
    app.run(main)
