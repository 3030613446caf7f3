"""Builds sharded TFRecords of training patches (spec 7.1) from VID, GOT-10k or OTB-layout data.

The per-track work (decode frames, cut patches, encode JPEGs) runs in worker processes and does
not import TensorFlow; only the main process writes records. Library entry point of
`tools/build_tfrecords.py`.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys
import time

import numpy as np

from memnet_tf.data import got10k, vid
from memnet_tf.data.patches import PatchGeometry, crop_patch, encode_jpeg
from memnet_tf.data.tracks import SkipReport, Track, load_image, read_otb_tracks

SOURCES = ("vid", "got10k", "otb")


@dataclasses.dataclass
class ProcessedTrack:
    """The patches of one track, ready to be written (or `jpegs` empty if it was dropped)."""

    name: str
    jpegs: list[bytes]
    boxes: np.ndarray  # float32 [num_frames, 4] in patch pixels
    skips: list[tuple[str, str]]  # (reason, detail) of every dropped frame or track


@dataclasses.dataclass
class BuildResult:
    """What `build_tfrecords` wrote and skipped."""

    shards: list[str]
    manifest: str
    num_tracks: int
    num_frames: int
    skips: SkipReport


def sequence_of(track_name: str) -> str:
    """The video a track belongs to: "Jogging" for OTB's "Jogging.1"; for VID's
    "<snippet folder>/<object id>" the snippet folder."""
    if "/" in track_name:
        video, _, last = track_name.rpartition("/")
        return video if last.isdigit() else track_name
    return track_name.split(".")[0]


def sequence_selector(available, sequences=(), exclude_sequences=()):
    """A predicate keeping whole sequences: those in `sequences` (all if empty), minus the excluded.

    Selection is by sequence, never by frame, so a train/val split made with the same names on
    both calls (`--sequences=a,b` for val, `--exclude_sequences=a,b` for train) never puts frames
    of one video in both splits. Names match case-insensitively.

    Args:
        available: the sequence names that exist (to reject typos).
        sequences, exclude_sequences: names.

    Returns:
        `keep(name) -> bool`.

    Raises:
        ValueError: a named sequence does not exist (a typo would silently change the split).
    """
    available = {name.lower() for name in available}
    for flag, names in (("sequences", sequences), ("exclude_sequences", exclude_sequences)):
        unknown = sorted(n for n in names if n.lower() not in available)
        if unknown:
            raise ValueError(f"--{flag}: no such sequence {', '.join(unknown)} (found: "
                             f"{', '.join(sorted(available))})")
    wanted = {n.lower() for n in sequences}
    dropped = {n.lower() for n in exclude_sequences}

    def keep(name: str) -> bool:
        name = name.lower()
        return (not wanted or name in wanted) and name not in dropped
    return keep


def read_tracks(source: str, root: str, split: str, min_frames: int, skips: SkipReport,
                strict: bool = False, sequences=(), exclude_sequences=()) -> list[Track]:
    """Tracks of a source ("vid", "got10k" or "otb") under `root`, optionally some sequences only.

    For OTB layouts unselected sequences are left out before reading (their absent frames are
    not counted); VID and GOT-10k tracks are selected by sequence after reading.

    Raises:
        FileNotFoundError: `root` or the expected layout is missing.
        ValueError: unknown source.
    """
    if source not in SOURCES:
        raise ValueError(f"source={source!r}: expected one of {SOURCES}")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"root={root!r}: folder not found")
    if source in ("vid", "got10k"):
        reader = vid.read_vid_tracks if source == "vid" else got10k.read_got10k_tracks
        tracks = reader(root, split, min_frames=min_frames, skips=skips, strict=strict)
        if not sequences and not exclude_sequences:
            return tracks
        keep = sequence_selector({sequence_of(t.name) for t in tracks}, sequences,
                                 exclude_sequences)
        return [t for t in tracks if keep(sequence_of(t.name))]
    if not sequences and not exclude_sequences:
        return read_otb_tracks(root, min_frames=min_frames, skips=skips, strict=strict)
    folders = [d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))]
    keep = sequence_selector(folders, sequences, exclude_sequences)
    return read_otb_tracks(root, min_frames=min_frames, skips=skips, strict=strict, keep=keep)


def process_track(track: Track, geometry: PatchGeometry, min_frames: int,
                  jpeg_quality: int = 95) -> ProcessedTrack:
    """Cuts and JPEG-encodes the patch of every frame of a track; bad frames are dropped.

    Args:
        track: the track.
        geometry: patch sizes.
        min_frames: a track left with fewer frames is dropped.
        jpeg_quality: JPEG quality of the stored patches.

    Returns:
        The encoded patches and boxes, and the reasons for every dropped frame.
    """
    jpegs, boxes, skips = [], [], []
    for path, box in zip(track.frame_paths, track.boxes):
        try:
            image = load_image(path)
            patch, patch_box = crop_patch(image, box, geometry, name=path)
        except FileNotFoundError as error:
            skips.append(("missing image", str(error)))
            continue
        except ValueError as error:
            reason = "box outside the frame" if "outside" in str(error) else "corrupt image"
            skips.append((reason, str(error)))
            continue
        jpegs.append(encode_jpeg(patch, jpeg_quality))
        boxes.append(patch_box)
    if len(jpegs) < max(min_frames, 1):
        skips.append((f"track shorter than {max(min_frames, 1)} frames after dropping bad "
                      "frames", f"{track.name} ({len(jpegs)} frames)"))
        return ProcessedTrack(track.name, [], np.zeros((0, 4), np.float32), skips)
    return ProcessedTrack(track.name, jpegs, np.stack(boxes).astype(np.float32), skips)


def _process_star(args) -> ProcessedTrack:
    return process_track(*args)


class ProgressBar:
    """A one-line progress bar on stderr (a line per 10 % when stderr is not a terminal)."""

    def __init__(self, total: int, label: str = "tracks", stream=None, width: int = 30):
        self.total, self.label, self.width = max(total, 1), label, width
        self.stream = stream or sys.stderr
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1

    def update(self, done: int, frames: int) -> None:
        now = time.monotonic()
        decile = 10 * done // self.total
        if self.interactive and now - self._last_draw < 0.2 and done < self.total:
            return
        if not self.interactive and decile == self._last_decile and done < self.total:
            return
        self._last_draw, self._last_decile = now, decile
        elapsed = max(now - self.start, 1e-6)
        filled = self.width * done // self.total
        eta = elapsed / max(done, 1) * (self.total - done)
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} "
                f"{self.label}, {frames} frames, {frames / elapsed:.1f} frames/s, "
                f"ETA {int(eta) // 60}:{int(eta) % 60:02d}")
        self.stream.write(("\r" + line) if self.interactive else (line + "\n"))
        if self.interactive and done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def _assign_shards(lengths: list[int], num_shards: int) -> list[int]:
    """Shard of each track: the one with the fewest frames so far (deterministic balancing)."""
    load = [0] * num_shards
    shards = []
    for length in lengths:
        shard = min(range(num_shards), key=lambda s: (load[s], s))
        load[shard] += length
        shards.append(shard)
    return shards


def _stale_shards(output_dir: str, split: str, keep: list[str]) -> list[str]:
    """Older `<split>-*.tfrecord` files in `output_dir` that this build does not write."""
    keep = {os.path.basename(p) for p in keep}
    return sorted(os.path.join(output_dir, f) for f in os.listdir(output_dir)
                  if f.startswith(f"{split}-") and f.endswith(".tfrecord") and f not in keep)


def build_tfrecords(source: str, root: str, output_dir: str, split: str = "train",
                    num_shards: int = 16, min_frames: int = vid.MIN_FRAMES, max_tracks: int = 0,
                    geometry: PatchGeometry = PatchGeometry(), num_workers: int = 1,
                    jpeg_quality: int = 95, strict: bool = False,
                    progress_stream=None, sequences=(), exclude_sequences=()) -> BuildResult:
    """Reads a source, cuts the patches of every track and writes sharded TFRecords + manifest.

    Tracks are assigned to shards in order, balancing frames. Shards are written to temporary
    files and renamed when all are complete; older shards of the same split are then removed.

    Args:
        source: "vid", "got10k" or "otb".
        root: the dataset folder.
        output_dir: where `<split>-*.tfrecord` and `<split>-manifest.json` go.
        split: "train" or "val" (also the shard prefix; for OTB only the prefix).
        num_shards: shards to write (fewer if there are fewer tracks).
        min_frames: fewest frames of a kept track.
        max_tracks: keep only the first this many tracks (0 = all).
        geometry: patch sizes (P = 271, E = 127 by default).
        num_workers: processes cutting patches (1 = in this process).
        jpeg_quality: JPEG quality of the stored patches.
        strict: stop at the first malformed annotation instead of skipping it.
        progress_stream: where the progress bar goes (stderr by default).
        sequences, exclude_sequences: keep only / drop these whole sequences
            (`sequence_selector`).

    Returns:
        The BuildResult.

    Raises:
        FileNotFoundError: a missing root.
        ValueError: bad arguments, or no usable track.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split={split!r}: expected 'train' or 'val'")
    if num_shards < 1:
        raise ValueError(f"num_shards={num_shards} must be positive")
    skips = SkipReport()
    tracks = read_tracks(source, root, split, min_frames, skips, strict, sequences,
                         exclude_sequences)
    if max_tracks > 0:
        tracks = tracks[:max_tracks]
    if not tracks:
        details = "; ".join(line.strip() for line in skips.summary_lines()) or "nothing found"
        raise ValueError(f"root={root!r}: no usable {source} track ({details})")
    num_shards = min(num_shards, len(tracks))
    os.makedirs(output_dir, exist_ok=True)

    jobs = [(track, geometry, min_frames, jpeg_quality) for track in tracks]
    processed: list[ProcessedTrack] = []
    bar = ProgressBar(len(tracks), stream=progress_stream)
    frames_done = 0
    if num_workers > 1:
        with multiprocessing.get_context("spawn").Pool(num_workers) as pool:
            for result in pool.imap(_process_star, jobs, chunksize=1):
                processed.append(result)
                frames_done += len(result.jpegs)
                bar.update(len(processed), frames_done)
    else:
        for job in jobs:
            processed.append(_process_star(job))
            frames_done += len(processed[-1].jpegs)
            bar.update(len(processed), frames_done)
    for result in processed:
        for reason, detail in result.skips:
            skips.add(reason, detail)
    kept = [p for p in processed if p.jpegs]
    if not kept:
        details = "; ".join(line.strip() for line in skips.summary_lines())
        raise ValueError(f"root={root!r}: no usable {source} track after cutting patches "
                         f"({details})")
    num_shards = min(num_shards, len(kept))
    # TensorFlow is only needed to write records (worker processes never import it), so bad
    # arguments and empty datasets are reported before paying for its import.
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from memnet_tf.data import tfrecord  # pylint: disable=import-outside-toplevel

    names = [tfrecord.shard_name(split, i, num_shards) for i in range(num_shards)]
    finals = [os.path.join(output_dir, name) for name in names]
    temps = [os.path.join(output_dir, f".{name}.tmp-{os.getpid()}") for name in names]
    assignment = _assign_shards([len(p.jpegs) for p in kept], num_shards)
    shard_tracks = [[] for _ in range(num_shards)]
    writers = [tf.io.TFRecordWriter(path) for path in temps]
    try:
        for result, shard in zip(kept, assignment):
            writers[shard].write(tfrecord.encode_track(
                result.name, result.jpegs, result.boxes, geometry.patch_size,
                geometry.exemplar_size))
            shard_tracks[shard].append([result.name, len(result.jpegs)])
        for writer in writers:
            writer.close()
        for tmp, final in zip(temps, finals):
            os.replace(tmp, final)
    except BaseException:
        for writer in writers:
            writer.close()
        for tmp in temps:
            if os.path.exists(tmp):
                os.remove(tmp)
        raise
    for stale in _stale_shards(output_dir, split, finals):
        os.remove(stale)
    num_frames = sum(len(p.jpegs) for p in kept)
    manifest = tfrecord.write_manifest(output_dir, split, {
        "split": split, "source": source, "root": os.path.abspath(root),
        "patch_size": geometry.patch_size, "exemplar_size": geometry.exemplar_size,
        "context": geometry.context, "num_tracks": len(kept), "num_frames": num_frames,
        "sequences": sorted({sequence_of(p.name) for p in kept}),
        "shards": [{"file": name, "tracks": tracks_of}
                   for name, tracks_of in zip(names, shard_tracks)],
        "skipped": skips.as_dict(),
    })
    return BuildResult(finals, manifest, len(kept), num_frames, skips)
