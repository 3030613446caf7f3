"""TensorBoard summaries: described scalars per run folder, and images of the memory's behaviour.

Every summary carries a description (TensorBoard shows it under the chart). Runs:
`<model_dir>/train` (training scalars, the training-mode images) and `<model_dir>/validation`
(validation scalars and one memory panel per validation clip). Gate scalars come with the
training logs (`Trainer.compute_gradients`), so they follow the scalar schedule (`summary_every`);
images and histograms follow `image_summary_every`.
"""

from __future__ import annotations

import io
import os

import numpy as np
import tensorflow as tf

GATE_NAMES = ("skip", "overwrite", "allocate")
# Gate-like diagnostics shown as histograms.
_HISTOGRAMS = ("control_gates", "write_decay", "residual_gate", "read_strength")
# Clips of the validation batch that get a memory panel each (a panel is ~40 kB).
MAX_PANELS = 4

SCALAR_DESCRIPTIONS = {
    "loss/total": "Training objective: balanced logistic loss on the response maps plus the "
                  "weight decay term.",
    "loss/logistic": "Balanced logistic loss of the response maps against the label (positives "
                     "within the radius of the target centre, negatives elsewhere, each class "
                     "weighted to half). Lower is better.",
    "loss/regularization": "Weight decay wd * 1/2 * sum(w^2) over the trainable variables.",
    "gradient_norm": "Global norm of the gradient before clipping to --clip_norm.",
    "metrics/center_dist_error": "Mean distance in search-crop pixels between the response "
                                 "peak and the crop centre, where the target is. Lower is "
                                 "better.",
    "learning_rate": "Adam learning rate (staircase decay).",
    "perf/steps_per_sec": "Optimiser steps per second since the last progress line.",
    "perf/examples_per_sec": "Clips per second (steps/s x global batch).",
    "gates/mean_skip": "Mean control gate 'skip' over the batch's clips and steps: the share of "
                       "writes the controller skips (memory unchanged).",
    "gates/mean_overwrite": "Mean control gate 'overwrite': the share of the write that goes to "
                            "the slot last read (updating a stored template).",
    "gates/mean_allocate": "Mean control gate 'allocate': the share of the write that goes to "
                           "the least used slot (storing a new appearance).",
}
IMAGE_DESCRIPTIONS = {
    "exemplar": "The first exemplar (127x127 crop around the target) of the first validation "
                "clip: the template T_0 comes from it.",
    "search_label_response": "Search crops of the first validation clip, time steps left to "
                             "right. Red: sigmoid of the response (the model's belief where the "
                             "target is); green: the label's positive region (where it is).",
    "attention": "Spatial attention over the search features (rows x columns of the feature "
                 "map), first validation clip, one image per time step; black = 0, yellow = the "
                 "step's maximum.",
    "memory_panel": "Memory of one validation clip. Top: read weights, bottom: write weights, "
                    "as slots (rows) x time steps (columns), colour = weight in [0, 1]. Right "
                    "top: control gates (skip, overwrite, allocate) stacked per step, summing "
                    "to 1. Right bottom: residual share |r * T_retr| / |T_0|, how far the "
                    "memory moves the template away from the first frame's.",
}
HISTOGRAM_DESCRIPTIONS = {
    "control_gates": "Softmax control gates (skip, overwrite, allocate), all clips and steps.",
    "write_decay": "Erase factor of the write (convex blend of the old slot and the new "
                   "template).",
    "residual_gate": "Channel-wise residual gate r in T_final = T_0 + r * T_retr.",
    "read_strength": "Read key strength (sharpness of the cosine-similarity softmax).",
}


def scalar_description(name: str) -> str:
    """The description of a scalar; every name gets one."""
    if name in SCALAR_DESCRIPTIONS:
        return SCALAR_DESCRIPTIONS[name]
    return f"{name} (memnet_tf/training/summaries.py)."


def _heatmap(values: np.ndarray, cell: int = 12) -> np.ndarray:
    """`[rows, cols]` in [0, 1] -> `[rows*cell, cols*cell, 3]` uint8 (black -> yellow)."""
    v = np.clip(values, 0.0, 1.0)
    rgb = np.stack([v, v ** 0.5 * 0.9, np.zeros_like(v)], axis=-1)
    rgb = np.repeat(np.repeat(rgb, cell, axis=0), cell, axis=1)
    return (rgb * 255).astype(np.uint8)


def _overlay(search: np.ndarray, response_map: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Search crop with sigmoid(response) in red and the label's positives in green."""
    size = search.shape[0]

    def up(x):
        return tf.image.resize(x[..., None], [size, size], method="bilinear").numpy()[..., 0]

    out = search.astype(np.float32).copy()
    prob = up(1.0 / (1.0 + np.exp(-response_map)))
    out[..., 0] = 0.5 * out[..., 0] + 0.5 * prob
    out[..., 1] = np.maximum(out[..., 1] * 0.8, 0.6 * up(label))
    return np.clip(out, 0.0, 1.0)


def memory_panel(read_weights: np.ndarray, write_weights: np.ndarray,
                 control_gates: np.ndarray | None = None,
                 residual_share: np.ndarray | None = None, title: str = "") -> np.ndarray:
    """A labelled figure of one clip's memory, as a `[H, W, 3]` uint8 RGB image.

    Args:
        read_weights: `[T, N]` read weights per time step.
        write_weights: `[T, N]` write weights per time step.
        control_gates: `[T, 3]` (skip, overwrite, allocate), or None.
        residual_share: `[T]` |r * T_retr| / |T_0|, or None.
        title: figure title (e.g. the clip).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    steps, slots = read_weights.shape
    figure, axes = plt.subplots(2, 2, figsize=(8, 5), dpi=80,
                                gridspec_kw={"width_ratios": [1.3, 1]})
    for axis, weights, name in ((axes[0, 0], read_weights, "read weights"),
                                (axes[1, 0], write_weights, "write weights")):
        image = axis.imshow(np.asarray(weights).T, aspect="auto", origin="lower", vmin=0.0,
                            vmax=1.0, cmap="viridis",
                            extent=(0.5, steps + 0.5, 0.5, slots + 0.5))
        axis.set_title(name)
        axis.set_xlabel("time step")
        axis.set_ylabel("slot")
        figure.colorbar(image, ax=axis, fraction=0.05)
    axis = axes[0, 1]
    if control_gates is not None:
        gates = np.asarray(control_gates)
        axis.stackplot(np.arange(1, steps + 1), gates.T, labels=GATE_NAMES)
        axis.set_ylim(0, 1)
        axis.legend(loc="upper right", fontsize=7)
    axis.set_title("control gates (stacked)")
    axis.set_xlabel("time step")
    axis = axes[1, 1]
    if residual_share is not None:
        axis.plot(np.arange(1, steps + 1), np.asarray(residual_share), marker="o")
        axis.set_ylim(bottom=0)
    axis.set_title("residual share |r T_retr| / |T_0|")
    axis.set_xlabel("time step")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return tf.image.decode_png(buffer.getvalue(), channels=3).numpy()


class Writers:
    """One summary writer per run folder: `<model_dir>/train` and `<model_dir>/validation`."""

    def __init__(self, model_dir: str):
        self._writers = {
            name: tf.summary.create_file_writer(os.path.join(model_dir, name))
            for name in ("train", "validation")
        }

    def scalars(self, run: str, logs: dict, step: int) -> None:
        with self._writers[run].as_default(step=step):
            for name, value in logs.items():
                tf.summary.scalar(name, value, description=scalar_description(name))

    def images(self, batch, outputs: dict, step: int) -> None:
        """Exemplar, search with label and response, attention, a memory panel per clip.

        A batch of cached backbone features (no `exemplar` crops to show) gets the memory
        diagnostics alone (`diagnostics`).
        """
        features, targets = batch
        if "exemplar" not in features:
            self.diagnostics(outputs, step)
            return
        response = outputs["response"][0].numpy()  # [T, R, R] of the first clip
        with self._writers["train"].as_default(step=step):
            tf.summary.image("exemplar", features["exemplar"][0, :1], max_outputs=1,
                             description=IMAGE_DESCRIPTIONS["exemplar"])
            overlays = np.stack([
                _overlay(features["search"][0, t].numpy(), response[t],
                         targets["label"][0, t].numpy())
                for t in range(min(4, response.shape[0]))])
            tf.summary.image("search_label_response", overlays, max_outputs=4,
                             description=IMAGE_DESCRIPTIONS["search_label_response"])
            if "attention" in outputs:
                attention = outputs["attention"][0].numpy()
                attention = attention / attention.max(axis=(1, 2), keepdims=True)
                tf.summary.image("attention", np.stack(
                    [_heatmap(a, cell=4) for a in attention[:4]]), max_outputs=4,
                    description=IMAGE_DESCRIPTIONS["attention"])
        self.diagnostics(outputs, step)

    def diagnostics(self, outputs: dict, step: int) -> None:
        """The gate histograms and the memory panels of a batch's outputs (no images needed)."""
        with self._writers["train"].as_default(step=step):
            for name in _HISTOGRAMS:
                if name in outputs:
                    tf.summary.histogram(f"gates/{name}", outputs[name],
                                         description=HISTOGRAM_DESCRIPTIONS[name])
        if "read_weights" in outputs and "write_weights" in outputs:
            self.memory_panels(outputs, step)

    def memory_panels(self, outputs: dict, step: int) -> None:
        """`memory_panel/clip_k` in the validation run, one per clip (at most `MAX_PANELS`)."""
        read = outputs["read_weights"].numpy()
        write = outputs["write_weights"].numpy()
        gates = outputs["control_gates"].numpy() if "control_gates" in outputs else None
        share = outputs["residual_share"].numpy() if "residual_share" in outputs else None
        with self._writers["validation"].as_default(step=step):
            for clip in range(min(MAX_PANELS, read.shape[0])):
                panel = memory_panel(read[clip], write[clip],
                                     None if gates is None else gates[clip],
                                     None if share is None else share[clip],
                                     f"validation clip {clip + 1}, step {step}")
                tf.summary.image(f"memory_panel/clip_{clip + 1}", panel[None], max_outputs=1,
                                 description=IMAGE_DESCRIPTIONS["memory_panel"])

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()
