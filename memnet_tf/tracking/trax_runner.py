"""Our tracker as a TraX server, for the official VOT toolkit (`vot test`, `vot evaluate`).

    python -m memnet_tf.tracking.trax_runner --checkpoint=RUN_OR_EXPORT

The toolkit starts this process and talks TraX over its standard streams: an `initialize`
request (the frame's path and the ground-truth region, a rectangle or a polygon) starts the
tracker, each `frame` request asks for the next box; the toolkit itself decides failures and
re-initialisations. Polygons become boxes as our VOT reader makes them (the area-preserving
axis-aligned box, `datasets.polygons_to_boxes`); boxes go back as rectangles, 0-based pixels
like VOT's files. The checkpoint may also come from `$MEMNET_CHECKPOINT` (a `trackers.ini`
`env_MEMNET_CHECKPOINT` entry). A `trackers.ini` entry for the toolkit:

    [MemTrack]
    label = MemTrack
    protocol = traxpython
    command = memnet_tf.tracking.trax_runner
    python = /path/to/venv/bin/python      # the interpreter that has memnet_tf and TensorFlow
    paths = /path/to/memnet_tf_checkout    # the toolkit sets $PYTHONPATH to this
    env_MEMNET_CHECKPOINT = /path/to/runs/fdsiamfc30

(the section name is what the model is: `[SiamFC-mode]` for a model without memory).

`write_trackers_ini` writes it. Needs `vot-trax` (`pip install -e ".[trax]"`); the toolkit
(`vot-toolkit`) belongs in an environment of its own (its `opencv-python` clashes with our
`opencv-python-headless`), see WORKSPACE.md.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from memnet_tf.eval.sequence import load_frame, polygons_to_boxes


def region_to_box(values) -> np.ndarray:
    """`[x, y, w, h]` of a rectangle (4 values) or a polygon (2n values, n >= 3)."""
    values = np.asarray(values, np.float64).ravel()
    if values.size == 4:
        return values
    if values.size < 6 or values.size % 2:
        raise ValueError(f"region with {values.size} values: expected a rectangle or polygon")
    corners = values.reshape(-1, 2)
    if len(corners) != 4:  # the box rule is for 4 corners; use the bounding box of others
        low, high = corners.min(axis=0), corners.max(axis=0)
        return np.concatenate([low, high - low])
    return polygons_to_boxes(values.reshape(1, 8))[0]


def _region_values(region, trax) -> list[float]:
    if region.type == trax.Region.RECTANGLE:
        return list(region.bounds())
    return [coordinate for i in range(region.size()) for coordinate in region[i]]


def serve(tracker_factory, name: str | None = None) -> None:
    """Answers TraX requests until the client quits.

    Args:
        tracker_factory: zero-argument callable returning a got10k-style tracker (`init`,
            `update`, 0-based boxes); called once, on the first initialisation.
        name: the tracker name announced to the client; None = the tracker's own `name`
            (the tracker is then built before the handshake).
    """
    import trax  # vot-trax: only the TraX entry point needs it

    tracker = None
    if name is None:
        tracker = tracker_factory()
        name = getattr(tracker, "name", "MemTrack")
    with trax.Server([trax.Region.RECTANGLE, trax.Region.POLYGON], [trax.Image.PATH],
                     tracker_name=name) as server:
        while True:
            request = server.wait()
            if request.type in (trax.TraxStatus.QUIT, trax.TraxStatus.ERROR):
                break
            image = load_frame(request.image[trax.ImageChannel.COLOR].path())
            if request.type == trax.TraxStatus.INITIALIZE:
                if len(request.objects) != 1:
                    raise ValueError(f"{len(request.objects)} objects to track: this tracker "
                                     "follows one")
                region, _ = request.objects[0]
                box = region_to_box(_region_values(region, trax))
                tracker = tracker or tracker_factory()
                tracker.init(image, box)
            else:
                box = np.asarray(tracker.update(image), np.float64)
            server.status([(trax.Rectangle.create(*[float(v) for v in box]), {})])


def write_trackers_ini(path: str, checkpoint: str, name: str | None = None,
                       python: str | None = None) -> str:
    """Writes a VOT toolkit `trackers.ini` with one entry running this module; returns the
    entry's name (`name`, else what the model is: "MemTrack" or "SiamFC-mode").

    `paths` is this checkout (the toolkit replaces `$PYTHONPATH` with it), `python` the
    interpreter that has TensorFlow (default: this one).
    """
    if name is None:
        from memnet_tf.tracking.model_path import tracker_name_of

        name = tracker_name_of(checkpoint)
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    text = (f"[{name}]\nlabel = {name}\nprotocol = traxpython\n"
            f"command = memnet_tf.tracking.trax_runner\n"
            f"python = {python or sys.executable}\n"
            f"paths = {package_root}\n"
            f"env_MEMNET_CHECKPOINT = {os.path.abspath(checkpoint)}\n"
            "env_TF_CPP_MIN_LOG_LEVEL = 2\n"
            "timeout = 600\n")  # seconds for TensorFlow to start on a loaded machine
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return name


_STACKS = {
    # vot-toolkit 0.9.0 cannot run a single-object TraX tracker in a `supervised` experiment
    # (its SupervisedExperiment passes one object status where the runtime checks for a list
    # of one: "Tracker does not support multiple objects"); see WORKSPACE.md.
    "supervised": ("    type: supervised\n    repetitions: 1\n    skip_initialize: 5\n"
                   "    analyses:\n      - type: supervised_average_ar\n        sensitivity: 30\n"
                   "      - type: cumulative_failures\n"),
    "unsupervised": ("    type: unsupervised\n    repetitions: 1\n    analyses:\n"
                     "      - type: average_accuracy\n"),
}


def make_vot_workspace(workspace: str, sequence_dirs: list[str], checkpoint: str,
                       experiment: str = "unsupervised", python: str | None = None) -> str:
    """A VOT toolkit workspace that needs no download: local sequences, a local stack.

    `<workspace>/sequences/<name>` link to the given VOT-layout folders (frames `%08d.jpg` +
    `groundtruth.txt`, as `../shared/data/vot_bag`), `stack.yaml` has one `baseline`
    experiment of type `experiment` and no `dataset:` URL, `trackers.ini` runs this module.
    Then `vot evaluate --workspace <workspace> <name>` and `vot analysis` run offline, with
    the returned tracker name ("MemTrack", or "SiamFC-mode" for a model without memory).
    """
    if experiment not in _STACKS:
        raise ValueError(f"experiment={experiment!r}: expected one of {sorted(_STACKS)}")
    os.makedirs(os.path.join(workspace, "sequences"), exist_ok=True)
    names = []
    for folder in sequence_dirs:
        name = os.path.basename(os.path.normpath(folder))
        link = os.path.join(workspace, "sequences", name)
        if not os.path.exists(link):
            os.symlink(os.path.abspath(folder), link)
        names.append(name)
    with open(os.path.join(workspace, "sequences", "list.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(names) + "\n")
    with open(os.path.join(workspace, "stack.yaml"), "w", encoding="utf-8") as f:
        f.write(f"title: local {experiment} experiment\nexperiments:\n  baseline:\n"
                + _STACKS[experiment])
    with open(os.path.join(workspace, "config.yaml"), "w", encoding="utf-8") as f:
        f.write("registry:\n- ./trackers.ini\nstack: stack.yaml\nsequences: sequences\n")
    return write_trackers_ini(os.path.join(workspace, "trackers.ini"), checkpoint,
                              python=python)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    checkpoint = os.environ.get("MEMNET_CHECKPOINT", "")
    for arg in argv:
        if arg.startswith("--checkpoint="):
            checkpoint = arg.split("=", 1)[1]
    if not checkpoint:
        print("error: give --checkpoint=RUN_OR_EXPORT or set $MEMNET_CHECKPOINT",
              file=sys.stderr)
        return 2
    from memnet_tf.tracking.model_path import factory_for

    serve(factory_for(checkpoint))
    return 0


if __name__ == "__main__":
    sys.exit(main())
