"""TensorBoard summaries: scalars per run folder, and images/histograms of the memory's behaviour."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

# Gate-like diagnostics shown as histograms.
_HISTOGRAMS = ("control_gates", "write_decay", "residual_gate", "read_strength")


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
                tf.summary.scalar(name, value)

    def images(self, batch, outputs: dict, step: int) -> None:
        """Exemplar, search with label and response, attention, read/write weights over the clip."""
        features, targets = batch
        response = outputs["response"][0].numpy()  # [T, R, R] of the first clip
        with self._writers["train"].as_default(step=step):
            tf.summary.image("exemplar", features["exemplar"][0, :1], max_outputs=1)
            overlays = np.stack([
                _overlay(features["search"][0, t].numpy(), response[t],
                         targets["label"][0, t].numpy())
                for t in range(min(4, response.shape[0]))])
            tf.summary.image("search_label_response", overlays, max_outputs=4)
            if "attention" in outputs:
                attention = outputs["attention"][0].numpy()
                attention = attention / attention.max(axis=(1, 2), keepdims=True)
                tf.summary.image("attention", np.stack(
                    [_heatmap(a, cell=4) for a in attention[:4]]), max_outputs=4)
            for name in ("read_weights", "write_weights"):
                if name in outputs:
                    # rows = time steps, columns = slots
                    tf.summary.image(f"memory/{name}",
                                     _heatmap(outputs[name][0].numpy())[None], max_outputs=1)
            for name in _HISTOGRAMS:
                if name in outputs:
                    tf.summary.histogram(f"gates/{name}", outputs[name])
            if "control_gates" in outputs:
                gates = outputs["control_gates"].numpy().reshape(-1, 3).mean(0)
                for i, gate in enumerate(("skip", "overwrite", "allocate")):
                    tf.summary.scalar(f"gates/mean_{gate}", gates[i])

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()
