"""Tracks one target through a video, a folder of frames or an OTB/VOT sequence.

    python -m memnet_tf.track (--checkpoint=runs/x | --saved_model=exports/x | --litert=DIR)
        (--video=FILE | --images=DIR | --sequence=DIR) [--init_box=x,y,w,h] [--target=N]
        [--start_frame=K] [--lost_threshold=PSR]
        [--output_video=out.mp4 [--show_response]] [--output_boxes=out.txt]

Frames are numbered from 1 (the first frame of the file or folder); `--start_frame=K` starts
tracking at frame K (film clips often open on black frames), and the first box is then
`--init_box` or frame K's ground truth. A `--sequence` is an OTB folder (`img/` +
`groundtruth_rect.txt`, or `groundtruth_rect.N.txt` per target: `--target=N` picks one) or a
VOT folder (`groundtruth.txt`); a folder of frames without ground truth works with `--init_box`.

Output:
- `--output_boxes`: a `#` header stating the convention, then one line per tracked frame
  `x,y,w,h,peak,psr`: the box in the pixel convention of the sequence's ground truth (1-based
  for OTB and VOT, the convention of `evaluate`'s results files, so the file can be scored by
  `evaluate`), 0-based for `--video`/`--images`; `peak` is the winning response's highest value
  and `psr` its peak-to-sidelobe ratio (`tracking/confidence.py`); both `nan` on the first
  frame, which is given, not tracked. Readers that take the first four columns read it as a
  results file.
- `--output_video`: an mp4 at the input's frame rate: each frame with our box (green) and the
  ground truth (red) and a side panel with the legend, the confidence and, with
  `--show_response`, the labelled response map and read weights (`tracking/video.py`).
- stdout: what was tracked, the speed (frames after the first update: the first one traces
  the TensorFlow graph, reported separately), the frames under `--lost_threshold`
  ("probably lost on frames 33-210") and, with ground truth, `success_auc=... precision=...`.
- stderr: progress (a live bar on a terminal, a plain line every few seconds otherwise) and
  warnings (a blank first frame, an init box without texture, a video shorter than it says).

Exit status (every memnet_tf command, `memnet_tf/cli.py`): 0 done, 1 failed while running,
2 bad command line or input (one `error: ...` line naming the flag, file or box).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable, Iterator

import cv2
import numpy as np
from absl import flags

from memnet_tf import cli
from memnet_tf.tracking import confidence
from memnet_tf.tracking import video as video_lib

FLAGS = flags.FLAGS

EXIT_BAD_INPUT = cli.EXIT_USAGE
# A first frame whose grey values spread less than this (of 255) is blank; an init box whose
# content spreads less than this has no texture to match.
BLANK_STD = 2.0
TEXTURELESS_STD = 4.0
# Plain progress lines (not a terminal) at most this often.
PROGRESS_PERIOD_S = 5.0


class InputError(ValueError):
    """Bad command-line input; the message names the file, flag or box."""


def warn(message: str) -> None:
    """One `warning: ...` line on stderr."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class FrameSource:
    """Frames to track, read lazily.

    Attributes:
        description: what is tracked, for messages (a path).
        frames: a function returning an iterator of `(name, [H, W, 3] uint8 RGB frame)`; the
            name (a file, or `video (frame k)`) is used in error messages.
        num_frames: number of frames when known (for the progress line), else None.
        ground_truth: `[num_frames, 4]` 0-based boxes of a sequence, else None.
        ground_truth_where: where the first ground-truth box comes from (`file:line`).
        pixel_offset: what output box files add to 0-based x, y (1.0 for OTB and VOT, whose
            files are 1-based; 0.0 for videos and plain folders).
        fps: the input's frame rate when known (videos), else None.
        first_frame: the number of the first frame this source yields (1 = the first).
    """

    description: str
    frames: Callable[[], Iterator[tuple[str, np.ndarray]]]
    num_frames: int | None = None
    ground_truth: np.ndarray | None = None
    ground_truth_where: str = ""
    pixel_offset: float = 0.0
    fps: float | None = None
    first_frame: int = 1


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


def video_source(path: str, start_frame: int = 1) -> FrameSource:
    """Frames of a video file (OpenCV), converted to RGB, from frame `start_frame` on.

    A video that ends before the frame count its header advertises ends with a warning saying
    how many frames decoded.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: video file not found")
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise InputError(f"{path}: not a readable video")
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    capture.release()
    advertised = count if count > 0 else None
    if advertised is not None and start_frame > advertised:
        raise InputError(f"--start_frame={start_frame}: {path} has {advertised} frames")

    def frames():
        video = cv2.VideoCapture(path)
        try:
            index = 0
            while True:
                ok, frame = video.read()
                if not ok:
                    break
                index += 1
                if index >= start_frame:
                    yield f"{path} (frame {index})", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            if index == 0:
                raise InputError(f"{path}: no frame could be decoded")
            if index < start_frame:
                raise InputError(f"--start_frame={start_frame}: only {index} frames of {path} "
                                 "decoded")
            if advertised is not None and index < advertised:
                warn(f"{path}: the video ended after {index} decoded frames, but its header "
                     f"says {advertised} (truncated or damaged file); tracked "
                     f"{index - start_frame + 1} frames")
        finally:
            video.release()

    total = None if advertised is None else advertised - start_frame + 1
    return FrameSource(path, frames, total, fps=fps if fps > 0 and math.isfinite(fps) else None,
                       first_frame=start_frame)


def _file_frames(paths: list[str]) -> Callable[[], Iterator[tuple[str, np.ndarray]]]:
    from memnet_tf.eval import datasets

    def frames():
        for path in paths:
            yield path, datasets.load_frame(path)

    return frames


def _start_at(paths: list[str], start_frame: int, where: str) -> list[str]:
    if start_frame > len(paths):
        raise InputError(f"--start_frame={start_frame}: {where} has {len(paths)} frames")
    return paths[start_frame - 1:]


def images_source(folder: str, start_frame: int = 1) -> FrameSource:
    """Frames of a folder, sorted by name (numeric names in numeric order, no gaps)."""
    from memnet_tf.eval import datasets

    paths = _start_at(datasets.list_images(folder), start_frame, folder)
    return FrameSource(folder, _file_frames(paths), len(paths), first_frame=start_frame)


def sequence_source(folder: str, target: int | None = None, start_frame: int = 1,
                    messages: list[str] | None = None) -> FrameSource:
    """An OTB (`img/` + `groundtruth_rect*.txt`) or VOT (`groundtruth.txt`) sequence folder.

    OTB folders with several targets (Jogging: `groundtruth_rect.1.txt`, `.2.txt`) track target
    `target` (default 1). A folder with frames (in `img/` or in the folder itself) and no
    ground truth gives frames only (the first box must then come from `--init_box`).

    Args:
        folder: the sequence folder.
        target: which OTB target (1-based), None = the first.
        start_frame: the first frame tracked (1-based).
        messages: when a list, what was chosen is appended (e.g. which annotation file).
    """
    from memnet_tf.eval import datasets

    folder = os.path.normpath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: sequence folder not found")
    name = os.path.basename(folder)
    say = messages.append if messages is not None else (lambda _: None)
    if os.path.isfile(os.path.join(folder, "groundtruth.txt")):
        if target not in (None, 1):
            raise InputError(f"--target={target}: {folder} is a VOT sequence with one target")
        sequence = datasets.read_vot(folder)[0]
    elif os.path.isdir(os.path.join(folder, "img")) and any(
            n.startswith("groundtruth") for n in os.listdir(folder)):
        found = datasets.read_otb(os.path.dirname(folder) or ".",
                                  subset=lambda n: n == name or n.startswith(name + "."))
        if not found:
            raise InputError(f"{folder}: no OTB ground truth (groundtruth_rect*.txt) found")
        choice = target or 1
        if choice < 1 or choice > len(found):
            raise InputError(f"--target={target}: {folder} has {len(found)} target(s) "
                             f"({', '.join(os.path.basename(s.annotation_file) for s in found)})")
        sequence = found[choice - 1]
        if len(found) > 1:
            others = ", ".join(f"--target={k}" for k in range(1, len(found) + 1) if k != choice)
            say(f"target {choice} of {len(found)}: {sequence.annotation_file} (the others: "
                f"{others})")
    else:
        frames_folder = os.path.join(folder, "img") if os.path.isdir(
            os.path.join(folder, "img")) else folder
        try:
            paths = datasets.list_images(frames_folder)
        except (FileNotFoundError, ValueError) as error:
            raise InputError(f"{folder}: neither an OTB sequence (img/ + groundtruth_rect.txt) "
                             f"nor a VOT sequence (groundtruth.txt) nor a folder of frames "
                             f"({error})") from None
        if not paths:
            raise InputError(f"{folder}: neither an OTB sequence (img/ + groundtruth_rect.txt) "
                             "nor a VOT sequence (groundtruth.txt) nor a folder of frames")
        say(f"{folder}: no ground truth; frames of {frames_folder}")
        paths = _start_at(paths, start_frame, folder)
        return FrameSource(folder, _file_frames(paths), len(paths), first_frame=start_frame)
    paths = _start_at(list(sequence.image_files), start_frame, folder)
    first = start_frame - 1
    return FrameSource(folder, _file_frames(paths), len(paths), sequence.ground_truth[first:],
                       sequence.where(first), pixel_offset=sequence.pixel_offset,
                       first_frame=start_frame)


def select_source(video: str, images: str, sequence: str, target: int | None = None,
                  start_frame: int = 1, messages: list[str] | None = None) -> FrameSource:
    """The one frame source the flags name."""
    given = [(flag, value) for flag, value in
             (("--video", video), ("--images", images), ("--sequence", sequence)) if value]
    if len(given) != 1:
        raise InputError("give exactly one of --video=FILE, --images=DIR, --sequence=DIR "
                         f"(got {', '.join(f for f, _ in given) or 'none'})")
    if start_frame < 1:
        raise InputError(f"--start_frame={start_frame}: frames are numbered from 1")
    flag, value = given[0]
    if target is not None and flag != "--sequence":
        raise InputError(f"--target={target} picks a ground-truth file of a --sequence folder")
    if flag == "--video":
        return video_source(value, start_frame)
    if flag == "--images":
        return images_source(value, start_frame)
    return sequence_source(value, target, start_frame, messages)


def boxes_header(source: FrameSource, tracker_name: str) -> str:
    """The `#` lines at the top of an `--output_boxes` file: what the columns are."""
    convention = ("1-based pixels (the OTB/VOT convention of the ground truth and of evaluate's "
                  "results files)" if source.pixel_offset == 1.0 else
                  "0-based pixels (x, y of the top-left corner; pixel i covers [i, i+1))")
    return (f"# memnet_tf track: {tracker_name} on {source.description}\n"
            f"# columns: x,y,w,h,peak,psr; boxes in {convention}\n"
            f"# one line per frame from frame {source.first_frame}; the first box is the given "
            "one (peak, psr nan)\n")


def write_boxes(path: str, boxes: np.ndarray, scores: np.ndarray | None = None,
                pixel_offset: float = 0.0, header: str = "") -> None:
    """Writes `header`, then `x,y,w,h[,peak,psr]` per frame, atomically.

    Args:
        path: the file.
        boxes: `[num_frames, 4]` 0-based boxes.
        scores: `[num_frames, 2]` (peak, psr) or None.
        pixel_offset: added to x and y (1.0 writes 1-based boxes).
        header: `#` lines written first.
    """
    from memnet_tf import config as config_lib

    boxes = np.asarray(boxes, np.float64).copy()
    boxes[:, :2] += pixel_offset
    rows = boxes if scores is None else np.concatenate([boxes, np.asarray(scores)], axis=1)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        config_lib.write_atomically(path, header + "".join(
            ",".join(f"{v:.4f}" for v in row) + "\n" for row in rows))
    except OSError as error:
        raise cli.OutputError(f"--output_boxes={path}: cannot write it ({error})") from None


class Progress:
    """Progress on a stream: a live `\\r` bar on a terminal, plain periodic lines otherwise.

    Args:
        stream: where to write (None = silent).
        total: frames expected, or None.
        is_tty: None = ask the stream.
        period: seconds between plain lines.
        clock: time source (tests pass a fake one).
    """

    def __init__(self, stream, total: int | None, is_tty: bool | None = None,
                 period: float = PROGRESS_PERIOD_S, clock=time.perf_counter):
        self.stream = stream
        self.total = total
        self.is_tty = (bool(getattr(stream, "isatty", lambda: False)())
                       if is_tty is None else is_tty)
        self.period = period
        self.clock = clock
        self.start = clock()
        self.last_line = None
        self.written = False

    def text(self, done: int, fps: float | None) -> str:
        """`frame 12/140  23.4 fps` with a bar on a terminal when the total is known."""
        count = f"{done}/{self.total}" if self.total else f"{done}"
        speed = f"{fps:.1f} fps" if fps else "starting (tracing the graph)"
        if self.is_tty and self.total:
            filled = int(round(20 * min(done / self.total, 1.0)))
            return f"[{'#' * filled}{'.' * (20 - filled)}] frame {count}  {speed}"
        return f"frame {count}  {speed}"

    def update(self, done: int, fps: float | None) -> None:
        if self.stream is None:
            return
        now = self.clock()
        if self.is_tty:
            self.stream.write("\r" + self.text(done, fps) + "\x1b[K")
        elif (self.last_line is None or now - self.last_line >= self.period
              or done == self.total):
            self.stream.write(self.text(done, fps) + "\n")
            self.last_line = now
        else:
            return
        self.written = True
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None and self.is_tty and self.written:
            self.stream.write("\n")
            self.stream.flush()


def progress_line(done: int, total: int | None, seconds: float) -> str:
    """`frame 12/140  23.4 fps` (the total is omitted when unknown)."""
    fps = done / seconds if seconds > 0 else 0.0
    return Progress(None, total, is_tty=False).text(done, fps)


def _initial_box(source: FrameSource, init_box) -> tuple[np.ndarray, str]:
    """The first box and, for messages, where it comes from."""
    if init_box is not None:
        return np.asarray(init_box, np.float64), "--init_box"
    if source.ground_truth is None:
        raise InputError(f"{source.description}: no ground truth; give --init_box=x,y,w,h")
    return source.ground_truth[0], f"{source.ground_truth_where}: first ground-truth box"


def first_frame_warnings(frame: np.ndarray, box, name: str) -> list[str]:
    """Why the first frame or box may make tracking fail: blank frame, textureless box.

    Args:
        frame: `[H, W, 3]` uint8 RGB first frame.
        box: `[x, y, w, h]` valid 0-based box.
        name: the frame, for messages.
    """
    grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY).astype(np.float64)
    found = []
    spread = float(grey.std())
    if spread < BLANK_STD:
        found.append(f"the first frame {name} is blank (grey level {grey.mean():.0f} +- "
                     f"{spread:.1f}): film clips often start black; --start_frame=K starts at "
                     "frame K")
        return found
    x, y, w, h = box
    height, width = grey.shape
    x0, y0 = int(max(math.floor(x), 0)), int(max(math.floor(y), 0))
    x1, y1 = int(min(math.ceil(x + w), width)), int(min(math.ceil(y + h), height))
    patch = grey[y0:y1, x0:x1]
    if patch.size and float(patch.std()) < TEXTURELESS_STD:
        found.append(f"the init box {x:g},{y:g},{w:g},{h:g} on {name} has no texture (grey "
                     f"level {patch.mean():.0f} +- {patch.std():.1f}): the tracker has nothing to "
                     "match; check the box (x,y,w,h, 0-based) or the start frame")
    return found


def check_first_frame(source: FrameSource, init_box=None) -> list[str]:
    """Reads the first frame and validates the first box against it.

    Returns:
        Warnings about the first frame and box (`first_frame_warnings`).

    Raises:
        InputError: no frames, no box, or a box that is not finite, has zero size or lies
            outside the first frame (the message names the box's origin and the frame file).
        FileNotFoundError, ValueError: a missing or unreadable first frame (names the file).
    """
    from memnet_tf.geometry import boxes as boxes_lib

    box, where = _initial_box(source, init_box)
    for name, frame in source.frames():
        try:
            box = boxes_lib.validate_box(box, frame.shape, f"{where} on first frame {name}")
        except ValueError as error:
            raise InputError(str(error)) from None
        return first_frame_warnings(frame, box, name)
    raise InputError(f"{source.description}: no frames")


@dataclasses.dataclass
class TrackingRun:
    """What `run_tracking` measured.

    Attributes:
        boxes: `[num_frames, 4]` 0-based boxes, the first being the initial box.
        scores: `[num_frames, 2]` (peak, psr) per frame; NaN on the first frame.
        update_seconds: `[num_frames - 1]` seconds of each `update`.
        first_seconds: seconds of `init` and the first `update` (graph tracing).
    """

    boxes: np.ndarray
    scores: np.ndarray
    update_seconds: np.ndarray
    first_seconds: float

    @property
    def fps(self) -> float | None:
        """Frames per second of the updates after the first one (which traces the graph)."""
        steady = self.update_seconds[1:]
        if len(steady) == 0 or steady.sum() <= 0:
            return None
        return len(steady) / float(steady.sum())

    def __len__(self):
        return len(self.boxes)


def _score_of(tracker) -> tuple[float, float]:
    score = getattr(tracker, "last_score", None)
    return (float(score.peak), float(score.psr)) if score is not None else (math.nan, math.nan)


def run_tracking(tracker, source: FrameSource, init_box=None, output_video: str = "",
                 show_response: bool = False, progress=sys.stderr,
                 lost_threshold: float | None = None) -> TrackingRun:
    """Tracks through `source`: init on the first frame, update on the others.

    Args:
        tracker: a got10k-style tracker (`MemTracker`); its `last_score` is recorded when it
            has one.
        source: the frames (and maybe ground truth).
        init_box: `[4]` first box (0-based); the ground truth's first box when None.
        output_video: write the annotated video here ("" = no video).
        show_response: draw the response map and read weights in the video's side panel.
        progress: stream for the progress (None = silent): a bar on a terminal, plain lines
            otherwise.
        lost_threshold: frames whose psr is below it are marked "probably lost" in the video.

    Returns:
        A `TrackingRun`.

    Raises:
        InputError, FileNotFoundError, ValueError: bad frames or boxes, naming the file.
    """
    from memnet_tf.geometry import boxes as boxes_lib

    init_box, where = _initial_box(source, init_box)
    video = video_lib.VideoOutput(output_video, source.fps or 25.0) if output_video else None
    # Any got10k-contract tracker (init / update) can be run; ours also say their name and slots.
    name = getattr(tracker, "name", "ours")
    memory_slots = getattr(tracker, "memory_slots", 0)
    boxes, scores, seconds = [], [], []
    bar = Progress(progress, source.num_frames)
    first_seconds = 0.0
    try:
        for index, (frame_name, frame) in enumerate(source.frames()):
            start = time.perf_counter()
            if index == 0:
                try:
                    box = boxes_lib.validate_box(init_box, frame.shape,
                                                 f"{where} on first frame {frame_name}")
                except ValueError as error:
                    raise InputError(str(error)) from None
                tracker.init(frame, box)
                score = (math.nan, math.nan)
            else:
                try:
                    box = tracker.update(frame)
                except ValueError as error:
                    raise InputError(f"{frame_name}: {error}") from None
                score = _score_of(tracker)
                seconds.append(time.perf_counter() - start)
            if index <= 1:
                first_seconds += time.perf_counter() - start
            boxes.append(np.asarray(box, np.float64))
            scores.append(score)
            if video is not None:
                truth = None
                if source.ground_truth is not None and index < len(source.ground_truth):
                    truth = source.ground_truth[index]
                number = source.first_frame + index
                last = (source.first_frame + source.num_frames - 1 if source.num_frames
                        else None)
                label = f"frame {number}" + (f"/{last}" if last else "")
                lost = (lost_threshold is not None and not math.isnan(score[1])
                        and score[1] < lost_threshold)
                video.write(video_lib.annotate(
                    frame, box, truth, getattr(tracker, "debug", None), show_response, label,
                    getattr(tracker, "last_score", None) if index else None, lost, name,
                    has_ground_truth=source.ground_truth is not None,
                    memory_slots=memory_slots))
            steady = seconds[1:]
            bar.update(index + 1, len(steady) / sum(steady) if steady and sum(steady) > 0
                       else None)
        if not boxes:
            raise InputError(f"{source.description}: no frames")
        if video is not None:
            video.close()
    except BaseException:
        if video is not None:
            video.abort()
        raise
    finally:
        bar.close()
    return TrackingRun(np.stack(boxes), np.asarray(scores, np.float64).reshape(-1, 2),
                       np.asarray(seconds, np.float64), first_seconds)


def score(boxes: np.ndarray, ground_truth: np.ndarray) -> dict:
    """OTB success AUC and precision at 20 px of `boxes` against `ground_truth` (0-based)."""
    from memnet_tf.eval import metrics

    count = min(len(boxes), len(ground_truth))
    overlaps = metrics.iou(boxes[:count], ground_truth[:count])
    errors = metrics.center_errors(boxes[:count], ground_truth[:count])
    return {"success_auc": metrics.auc(metrics.success_curve(overlaps)),
            "precision": metrics.precision_at(errors), "frames": count}


def lost_summary(run: TrackingRun, threshold: float, first_frame: int = 1) -> str:
    """`probably lost (psr < 4) on frames 33-210 (178 of 300 tracked frames)`, or never."""
    ranges = confidence.lost_ranges(run.scores[:, 1], threshold, first_frame)
    if not ranges:
        return f"never lost: psr >= {threshold:g} on every tracked frame"
    count = sum(b - a + 1 for a, b in ranges)
    return (f"probably lost (psr < {threshold:g}) on frames {confidence.format_ranges(ranges)} "
            f"({count} of {len(run) - 1} tracked frames)")


def is_input_error(error: Exception) -> bool:
    """True for errors caused by the inputs (files, boxes, checkpoint), reported in one line."""
    if isinstance(error, (InputError, FileNotFoundError, ValueError, OSError)):
        return True
    loading = sys.modules.get("memnet_tf.models.loading")  # imported once a model is loaded
    return loading is not None and loading.is_loading_error(error)


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if sum(bool(v) for v in (FLAGS.checkpoint, FLAGS.saved_model, FLAGS.litert)) != 1:
        # Checked here: absl's required-flag check cannot see an empty-string default.
        raise cli.UsageError("give --checkpoint (a run folder or a checkpoint prefix), "
                             "--saved_model (an export folder) or --litert (a LiteRT export "
                             "folder), exactly one")
    if FLAGS.show_response and not FLAGS.output_video:
        raise cli.UsageError("--show_response draws into the video: give --output_video=FILE")
    messages = []
    try:
        source = select_source(FLAGS.video, FLAGS.images, FLAGS.sequence, FLAGS.target,
                               FLAGS.start_frame, messages)
        init_box = parse_box(FLAGS.init_box) if FLAGS.init_box else None
        # Bad boxes and unreadable first frames fail before the model is loaded.
        for message in check_first_frame(source, init_box):
            warn(message)
        for message in messages:
            print(message)
        if not FLAGS.output_boxes and not FLAGS.output_video:
            print("note: no --output_boxes or --output_video: nothing will be saved (only this "
                  "summary is printed)")
        cli.import_tensorflow_quietly()
        from memnet_tf.tracking import tracker as tracker_lib

        tracker = tracker_lib.factory_from_flags(FLAGS)()
        run = run_tracking(tracker, source, init_box, FLAGS.output_video, FLAGS.show_response,
                           lost_threshold=FLAGS.lost_threshold)
        if FLAGS.output_boxes:
            write_boxes(FLAGS.output_boxes, run.boxes, run.scores, source.pixel_offset,
                        boxes_header(source, tracker.name))
    except Exception as error:  # noqa: BLE001 - bad input is reported in one line, bugs are not
        if not is_input_error(error):
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    last = source.first_frame + len(run) - 1
    print(f"tracked {len(run)} frames ({source.first_frame}-{last}) of {source.description} "
          f"with {tracker.name}")
    fps = run.fps
    print(f"speed: {fps:.1f} fps" if fps else "speed: too few frames to measure", end="")
    print(f" (frames after the first update; the first frame and graph tracing took "
          f"{run.first_seconds:.1f} s)")
    if FLAGS.lost_threshold is not None:
        print(lost_summary(run, FLAGS.lost_threshold, source.first_frame))
    if FLAGS.output_boxes:
        print(f"boxes: {FLAGS.output_boxes}")
    if FLAGS.output_video:
        print(f"video: {FLAGS.output_video} ({source.fps or 25.0:g} fps"
              f"{'' if source.fps else ', the input has no frame rate'})")
    if source.ground_truth is not None:
        scores = score(run.boxes, source.ground_truth)
        print(f"success_auc={scores['success_auc']:.3f} precision={scores['precision']:.3f}")
    return cli.EXIT_OK


if __name__ == "__main__":
    cli.run(main, "track")
