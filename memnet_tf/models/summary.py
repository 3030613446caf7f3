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


def non_trainable_parameters(model) -> tuple[int, int]:
    """`(BatchNorm moving means and variances, other)` values outside the gradient.

    "Other" is state such as the dropout layers' random seeds, which `count_params()` counts.
    """
    moving = other = 0
    for variable in model.non_trainable_variables:
        size = int(np.prod(variable.shape))
        if "moving_mean" in variable.path or "moving_variance" in variable.path:
            moving += size
        else:
            other += size
    return moving, other


def format_parameter_table(counts, non_trainable: tuple[int, int] | None = None,
                           count_params: int | None = None) -> str:
    """A text table whose last line is `trainable parameters: N`.

    With `non_trainable`, a line before it says how `model.count_params()` (which counts
    both) relates to the trainable count quoted by the paper and the README.
    """
    width = max(len(k) for k in counts) + 2
    lines = [f"{'component':<{width}}{'parameters':>12}", "-" * (width + 12)]
    lines += [f"{name:<{width}}{count:>12,}" for name, count in counts.items()]
    lines.append("-" * (width + 12))
    trainable = sum(counts.values())
    if non_trainable is not None:
        moving, other = non_trainable
        total = trainable + moving + other if count_params is None else count_params
        lines.append(f"non-trainable: {moving:,} BatchNorm moving mean/variance + {other:,} "
                     f"other (random-seed state); model.count_params() = {total:,}")
    lines.append(f"trainable parameters: {trainable}")
    return "\n".join(lines)
