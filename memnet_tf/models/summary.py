"""Trainable-parameter counts of a model, grouped by component."""

from __future__ import annotations

import collections

import numpy as np

# Path fragment -> component name, first match wins (most specific first).
_COMPONENTS = (
    ("feature_extraction", "backbone"),
    ("memory_cell/attention", "attention"),
    ("memory_cell/controller_initial_state", "controller initial state (c_0, h_0)"),
    ("memory_cell/controller", "LSTM controller"),
    ("memory_heads/control_factors", "head: control gates"),
    ("memory_heads/write_decay", "head: write decay"),
    ("memory_heads/add_vector", "head: residual gate"),
    ("memory_heads/read_key", "head: read key"),
    ("memory_heads/write_strengths", "head: read strength"),
    ("response_head", "response head"),
)


def trainable_parameters_by_component(model) -> "collections.OrderedDict[str, int]":
    """Ordered `{component: trainable parameter count}`; unknown variables go under 'other'."""
    counts = collections.OrderedDict((name, 0) for _, name in _COMPONENTS)
    for variable in model.trainable_variables:
        size = int(np.prod(variable.shape))
        name = next((n for fragment, n in _COMPONENTS if fragment in variable.path), "other")
        counts[name] = counts.get(name, 0) + size
    return collections.OrderedDict((k, v) for k, v in counts.items() if v)


def format_parameter_table(counts) -> str:
    """A text table whose last line is `trainable parameters: N`."""
    width = max(len(k) for k in counts) + 2
    lines = [f"{'component':<{width}}{'parameters':>12}", "-" * (width + 12)]
    lines += [f"{name:<{width}}{count:>12,}" for name, count in counts.items()]
    lines.append("-" * (width + 12))
    lines.append(f"trainable parameters: {sum(counts.values())}")
    return "\n".join(lines)
