"""The recurrent state of MemTrack as an explicit namedtuple, with batch helpers.

Layers never keep per-sequence state in attributes: the state travels through `call` and through
the tracker, and the exported SavedModel takes and returns it as a dict of tensors.
"""

from __future__ import annotations

import collections

import tensorflow as tf

MemTrackState = collections.namedtuple(
    "MemTrackState",
    (
        "cell",              # [B, hidden] LSTM cell state c (layer-normalised)
        "hidden",            # [B, hidden] LSTM output h
        "initial_template",  # [B, h, w, C] T_0, the conservative anchor (constant per sequence)
        "memory",            # [B, N, h, w, C] slot contents M
        "read_weights",      # [B, N] w^r of the last step
        "write_weights",     # [B, N] pending w^w, applied at the start of the next step
        "control_gates",     # [B, 3] (skip, overwrite-read-slot, allocate) of the last step
        "write_decay",       # [B, 1] decay rate d of the last step
        "usage",             # [B, N] slot usage u
    ),
)


def state_specs(hidden_size: int, memory_size: int, template_size: int,
                channels: int, batch_size: int | None = None) -> MemTrackState:
    """`tf.TensorSpec` of every state field (for `tf.function` signatures and export)."""
    b = batch_size
    t = template_size
    return MemTrackState(
        cell=tf.TensorSpec([b, hidden_size], tf.float32, name="cell"),
        hidden=tf.TensorSpec([b, hidden_size], tf.float32, name="hidden"),
        initial_template=tf.TensorSpec([b, t, t, channels], tf.float32, name="initial_template"),
        memory=tf.TensorSpec([b, memory_size, t, t, channels], tf.float32, name="memory"),
        read_weights=tf.TensorSpec([b, memory_size], tf.float32, name="read_weights"),
        write_weights=tf.TensorSpec([b, memory_size], tf.float32, name="write_weights"),
        control_gates=tf.TensorSpec([b, 3], tf.float32, name="control_gates"),
        write_decay=tf.TensorSpec([b, 1], tf.float32, name="write_decay"),
        usage=tf.TensorSpec([b, memory_size], tf.float32, name="usage"),
    )


def tile(state: MemTrackState, multiples: int) -> MemTrackState:
    """Repeats every sequence of a state `multiples` times along the batch (e.g. one per scale)."""
    return tf.nest.map_structure(lambda x: tf.repeat(x, multiples, axis=0), state)


def select(state: MemTrackState, index) -> MemTrackState:
    """Keeps batch element `index` of every field, as a batch of one."""
    return tf.nest.map_structure(lambda x: tf.gather(x, [index], axis=0), state)


def without_write(state: MemTrackState) -> MemTrackState:
    """The state with its pending write cancelled: the next step reads but leaves M unchanged.

    The next step writes `M * (1 - w e) + w e W` with these pending weights w; zero weights make
    it the identity (the controller still steps, and addresses a fresh pending write).
    """
    return state._replace(write_weights=tf.zeros_like(state.write_weights))


def to_dict(state: MemTrackState) -> dict:
    return dict(state._asdict())


def from_dict(values: dict) -> MemTrackState:
    missing = set(MemTrackState._fields) - set(values)
    if missing:
        raise ValueError(f"state is missing fields {sorted(missing)}")
    return MemTrackState(**{name: values[name] for name in MemTrackState._fields})
