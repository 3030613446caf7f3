"""Per-frame time of MemTracker on this CPU, split by stage, against the backbone-only floor.

    python benchmarks/track_speed.py [--frames=30] [--warmup=3] [--sequence=Couple]
        [--width_multiplier=1.0]

Paper configuration (AlexNet x1, 8 slots, 512 hidden units, 3 scales) with random weights,
which time like trained ones. Frames are a real OTB sequence from `../shared/data/otb_mini`
(or `$MEMNET_SHARED_DIR/data/otb_mini`); a synthetic 320 x 240 frame when that is absent.

For each frame the stages are timed on that frame's own inputs, then the full
`MemTracker.update` is timed; medians over the frames are reported:
- crop: the write exemplar and the 3 search crops (`MemTracker.crop`, a tf.function);
- backbone: 1 exemplar + 3 search crops through the backbone, two calls (the floor);
- recurrent step: attention, controller, memory, correlation and response head
  (`MemTrack.step_features`, a tf.function);
- post-processing: the x16 bicubic up-sampling (TF), scale choice, window, peak, size
  (numpy), and keeping the winner's state (TF);
- full step: `MemTracker.update` end to end (frame conversion included);
- full step, SavedModel: the same tracker on an export of the same weights
  (`memnet_tf/export.py`, `--saved_model`), fed the same frames; its boxes must equal the
  in-process ones (the largest difference is printed).
The last line is the headline: full step / backbone floor (target <= 1.25).
"""

from __future__ import annotations

import datetime
import os
import pathlib
import sys
import time

from absl import app, flags
from _machine import cpu_model

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_FRAMES = flags.DEFINE_integer("frames", 30, "Frames timed (after the warm-up).")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Frames tracked before timing (tracing, caches).")
_SEQUENCE = flags.DEFINE_string("sequence", "Couple", "otb_mini sequence to read frames from.")
_WIDTH = flags.DEFINE_float("width_multiplier", 1.0, "Backbone width (1.0 = paper).")
_EXPORT = flags.DEFINE_boolean("export", True, "Also time the tracker on a SavedModel export.")
TARGET_RATIO = 1.25




def load_frames(num_frames: int, sequence: str):
    """`(frames, first box, description)`: RGB uint8 frames of an otb_mini sequence or synthetic."""
    import numpy as np

    from memnet_tf.eval import datasets

    shared = pathlib.Path(os.environ.get("MEMNET_SHARED_DIR", REPO_ROOT.parent / "shared"))
    root = shared / "data" / "otb_mini"
    if root.is_dir():
        found = datasets.read_otb(str(root), subset=lambda n: n.split(".")[0] == sequence)
        if found:
            seq = found[0]
            count = min(num_frames, seq.num_frames)
            frames = [datasets.load_frame(p) for p in seq.image_files[:count]]
            return frames, seq.ground_truth[0], f"otb_mini/{seq.name} ({count} frames)"
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    return [frame] * num_frames, np.array([140.0, 100.0, 40.0, 40.0]), "synthetic 320x240 frame"


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    import tempfile

    from memnet_tf import config as config_lib
    from memnet_tf import export
    from memnet_tf.eval import report
    from memnet_tf.models import loading
    from memnet_tf.models.memtrack import build_model
    from memnet_tf.tracking.tracker import (MemTracker, estimate_target, to_float_frame,
                                            upsample_responses_tf)

    tf.keras.utils.set_random_seed(0)
    model_cfg = config_lib.ModelConfig(width_multiplier=_WIDTH.value)
    track_cfg = config_lib.TrackConfig()
    model = build_model(model_cfg)
    tracker = MemTracker(model, track_cfg)
    exported_tracker = None
    export_root = tempfile.TemporaryDirectory(prefix="track_speed_")
    if _EXPORT.value:
        export_dir = os.path.join(export_root.name, "export")
        export.export_saved_model(model, export_dir)
        exported_tracker = MemTracker(loading.load_saved_model(export_dir)[0], track_cfg)
    frames, first_box, description = load_frames(_FRAMES.value + _WARMUP.value + 1,
                                                 _SEQUENCE.value)
    e, s = model_cfg.exemplar_size, model_cfg.search_size
    num_scales = track_cfg.num_scales

    crop_fn = tf.function(tracker.crop, input_signature=[
        tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([None, None, 3], tf.float32),
        tf.TensorSpec([2], tf.float32), tf.TensorSpec([1], tf.float32),
        tf.TensorSpec([num_scales], tf.float32)])

    @tf.function(input_signature=[tf.TensorSpec([1, e, e, 3], tf.float32),
                                  tf.TensorSpec([num_scales, s, s, 3], tf.float32)])
    def backbone_fn(exemplar, search):
        return model.encode(exemplar), model.encode(search)

    step_fn = tf.function(model.step_features)
    upsample_fn = tf.function(upsample_responses_tf)

    def timed(fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
        return out, time.perf_counter() - start

    names = ("crop", "backbone (floor)", "recurrent step", "post-processing", "full step")
    times = {name: [] for name in names}
    export_times, box_differences = [], [0.0]
    tracker.init(frames[0], first_box)
    if exported_tracker is not None:
        exported_tracker.init(frames[0], first_box)
    for index, image in enumerate(frames[1:]):
        # The stages on this frame's own inputs (the tracker's state before the update).
        previous = tracker._previous
        current = tf.constant(to_float_frame(image))
        centre = tracker._center.astype(np.float32)
        exemplar_side = np.array([tracker._exemplar_side], np.float32)
        sides = np.maximum(np.round(tracker._search_side * tracker._scales), 1.0)
        (exemplar, search), t_crop = timed(crop_fn, previous, current, centre, exemplar_side,
                                           sides.astype(np.float32))
        (template, features), t_backbone = timed(backbone_fn, exemplar, search)
        (responses, new_state, _), t_step = timed(step_fn, template, features, tracker.state)
        start = time.perf_counter()
        upsampled = upsample_fn(responses, tracker._upsample_matrix).numpy()
        estimate = estimate_target(upsampled, tracker._center, tracker._size,
                                   tracker._initial_size, sides,
                                   (image.shape[1], image.shape[0]), track_cfg, s,
                                   window=tracker._window)
        kept = tracker._keep_fn(new_state, tf.constant(estimate.best_scale, tf.int32))
        tf.nest.map_structure(lambda t: t.numpy(), kept)
        t_post = time.perf_counter() - start
        start = time.perf_counter()
        box = tracker.update(image)
        t_full = time.perf_counter() - start
        if exported_tracker is not None:
            start = time.perf_counter()
            exported_box = exported_tracker.update(image)
            t_export = time.perf_counter() - start
            box_differences.append(float(np.max(np.abs(exported_box - box))))
        if index >= _WARMUP.value:
            for name, value in zip(names, (t_crop, t_backbone, t_step, t_post, t_full)):
                times[name].append(value * 1e3)
            if exported_tracker is not None:
                export_times.append(t_export * 1e3)

    export_root.cleanup()
    median = {name: float(np.median(values)) for name, values in times.items()}
    full, floor = median["full step"], median["backbone (floor)"]
    ratio = full / floor
    machine = f"{os.cpu_count()} x {cpu_model()}"
    today = datetime.date.today().isoformat()
    print(f"MemTracker speed, paper configuration (AlexNet x{_WIDTH.value:g}, "
          f"{model_cfg.memory_size} slots, hidden {model_cfg.hidden_size}, {num_scales} scales)")
    print(f"frames: {description}; {len(times['full step'])} timed after {_WARMUP.value} "
          f"warm-up; machine: nproc={os.cpu_count()}, {cpu_model()}; date: {today}; "
          f"TF {tf.__version__}")
    rows = [(name, f"{median[name]:.1f}", f"{median[name] / full * 100:.0f}%") for name in names]
    rows.append(("sum of stages", f"{sum(median[n] for n in names[:-1]):.1f}", ""))
    if export_times:
        exported = float(np.median(export_times))
        rows.append(("full step, SavedModel", f"{exported:.1f}", f"{exported / full * 100:.0f}%"))
    print(report.text_table(("stage", "median ms/frame", "of full"), rows))
    if export_times:
        print(f"SavedModel boxes vs in-process boxes: largest difference "
              f"{max(box_differences):.2g} px over {len(box_differences) - 1} frames")
    print(f"full step / backbone floor = {ratio:.3f} (target <= {TARGET_RATIO}; "
          f"{1e3 / full:.1f} fps; {machine}; {today})")


if __name__ == "__main__":
    app.run(main)
