"""Shared test set-up: quiet TensorFlow, tiny shapes, the shared data folder, flags defined once."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# Tiny shapes used across the model tests.
B, T, N = 2, 3, 4


def shared_dir() -> pathlib.Path:
    """`../shared` beside the checkout, or $MEMNET_SHARED_DIR."""
    return pathlib.Path(os.environ.get("MEMNET_SHARED_DIR", REPO_ROOT.parent / "shared"))


def require_shared(*parts: str) -> pathlib.Path:
    """A path inside the shared folder, or skip the test with the reason."""
    path = shared_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (set MEMNET_SHARED_DIR)")
    return path


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end runs (seconds to minutes)")
    from memnet_tf import flags as memnet_flags

    memnet_flags.define_flags()


@pytest.fixture
def tiny_model_config():
    from memnet_tf.config import ModelConfig

    return ModelConfig(width_multiplier=0.125, hidden_size=16, memory_size=N,
                       controller_dropout=0.2)


def pytest_collection_modifyitems(config, items):
    # tf.test.TestCase inherits a `test_session` helper that pytest would collect and skip.
    items[:] = [item for item in items if item.name != "test_session"]
