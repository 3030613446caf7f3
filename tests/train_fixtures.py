"""Small in-memory training batches for trainer tests (no data pipeline needed)."""

import numpy as np
import tensorflow as tf


def centred_targets(batch, steps, size):
    """A plus-shaped positive label at the centre and balanced weights, as spec 7.4 gives."""
    label = np.zeros((size, size), np.float32)
    c = size // 2
    for dy, dx in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
        label[c + dy, c + dx] = 1
    weight = np.where(label > 0, 0.5 / label.sum(), 0.5 / (label.size - label.sum()))
    tile = lambda x: np.broadcast_to(x, (batch, steps, size, size)).astype(np.float32)
    return {"label": tile(label), "weight": tile(weight)}


def random_batch(model_cfg, batch, steps, seed=0):
    rng = np.random.default_rng(seed)
    e, s = model_cfg.exemplar_size, model_cfg.search_size
    features = {
        "exemplar": rng.uniform(size=(batch, steps, e, e, 3)).astype(np.float32),
        "search": rng.uniform(size=(batch, steps, s, s, 3)).astype(np.float32),
    }
    return features, centred_targets(batch, steps, model_cfg.response_size)


def repeating_dataset(model_cfg, batch, steps, seed=0):
    features, targets = random_batch(model_cfg, batch, steps, seed)
    return tf.data.Dataset.from_tensors((features, targets)).repeat()
