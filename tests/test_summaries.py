"""TensorBoard summaries: every summary is described, one memory panel per validation clip."""

from __future__ import annotations

import glob

import numpy as np
import tensorflow as tf

from memnet_tf.training import summaries


def _events(folder):
    """`{tag: (description, [values])}` of every event file in `folder`."""
    found = {}
    for path in glob.glob(f"{folder}/events.out.tfevents*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                entry = found.setdefault(value.tag, [value.metadata.summary_description, []])
                entry[0] = entry[0] or value.metadata.summary_description
                entry[1].append(value)
    return found


def _fake_outputs(rng, batch=3, steps=4, slots=5, size=17):
    gates = rng.dirichlet(np.ones(3), size=(batch, steps)).astype(np.float32)
    read = rng.dirichlet(np.ones(slots), size=(batch, steps)).astype(np.float32)
    write = rng.dirichlet(np.ones(slots), size=(batch, steps)).astype(np.float32)
    return {
        "response": tf.constant(rng.normal(size=(batch, steps, size, size)), tf.float32),
        "attention": tf.constant(rng.uniform(size=(batch, steps, 6, 6)), tf.float32),
        "read_weights": tf.constant(read), "write_weights": tf.constant(write),
        "control_gates": tf.constant(gates),
        "write_decay": tf.constant(rng.uniform(size=(batch, steps, 1)), tf.float32),
        "residual_gate": tf.constant(rng.uniform(size=(batch, steps, 8)), tf.float32),
        "read_strength": tf.constant(rng.uniform(size=(batch, steps, 1)), tf.float32),
        "residual_share": tf.constant(rng.uniform(size=(batch, steps)), tf.float32),
    }


def test_every_summary_has_a_description_and_each_clip_a_memory_panel(tmp_path):
    rng = np.random.default_rng(0)
    batch, steps = 3, 4
    features = {"exemplar": tf.constant(rng.uniform(size=(batch, steps, 16, 16, 3)), tf.float32),
                "search": tf.constant(rng.uniform(size=(batch, steps, 32, 32, 3)), tf.float32)}
    targets = {"label": tf.constant(rng.uniform(size=(batch, steps, 17, 17)) > 0.8, tf.float32)}
    writers = summaries.Writers(str(tmp_path))
    logs = {"loss/total": 1.0, "loss/logistic": 0.5, "gates/mean_skip": 0.2,
            "gates/mean_overwrite": 0.3, "gates/mean_allocate": 0.5, "learning_rate": 1e-3,
            "something/new": 3.0}
    writers.scalars("train", logs, step=5)
    writers.scalars("validation", {"loss/logistic": 0.4}, step=5)
    writers.images((features, targets), _fake_outputs(rng, batch, steps), step=5)
    writers.flush()
    train, validation = _events(tmp_path / "train"), _events(tmp_path / "validation")
    for name in logs:
        assert name in train
    for tag, (description, _) in {**train, **validation}.items():
        assert description.strip(), f"{tag} has no description"
    # The gate scalars' descriptions say what the gate does, not a fallback.
    assert "least used slot" in train["gates/mean_allocate"][0]
    assert "red" in train["search_label_response"][0].lower()
    panels = sorted(tag for tag in validation if tag.startswith("memory_panel/"))
    assert panels == [f"memory_panel/clip_{k}" for k in range(1, batch + 1)]
    assert "slots (rows) x time steps" in validation[panels[0]][0]
    assert not [tag for tag in train if tag.startswith("memory")]  # panels are per validation clip


def test_memory_panel_is_an_image_with_content():
    rng = np.random.default_rng(1)
    read = rng.dirichlet(np.ones(4), size=6)
    panel = summaries.memory_panel(read, read[::-1], rng.dirichlet(np.ones(3), size=6),
                                   rng.uniform(size=6), "clip 1")
    assert panel.dtype == np.uint8 and panel.ndim == 3 and panel.shape[2] == 3
    assert panel.shape[0] > 200 and panel.shape[1] > 300
    assert panel.std() > 10  # not a blank figure
