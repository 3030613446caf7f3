"""Tests of the config dataclasses: bad values fail at construction, naming the field."""

from __future__ import annotations

import pytest

from memnet_tf import config as config_lib


@pytest.mark.parametrize("field,value", [
    ("log_every", 0), ("summary_every", 0), ("image_summary_every", 0), ("checkpoint_every", 0),
    ("validate_every", 0), ("validation_steps", 0), ("lr_decay_steps", 0),
    ("keep_checkpoints", 0), ("learning_rate", 0.0), ("clip_norm", -1.0),
    ("lr_decay_rate", 1.5), ("weight_decay", -1e-4), ("train_steps", -1),
    ("strategy", "tpu"), ("frozen_backbone_layers", 6), ("frozen_backbone_layers", -1),
    ("backbone_learning_rate_scale", 0.0),
])
def test_bad_train_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        config_lib.TrainConfig(**{field: value})


def test_partly_frozen_backbone_settings():
    assert config_lib.TrainConfig(freeze_backbone=True).frozen_layers == 5
    assert config_lib.TrainConfig(frozen_backbone_layers=4).frozen_layers == 4
    assert config_lib.TrainConfig(freeze_backbone=True, frozen_backbone_layers=5).frozen_layers == 5
    with pytest.raises(ValueError, match="freeze_backbone freezes all 5"):
        config_lib.TrainConfig(freeze_backbone=True, frozen_backbone_layers=4)
    with pytest.raises(ValueError, match="backbone_learning_rate_scale needs a second"):
        config_lib.TrainConfig(backbone_learning_rate_scale=0.1, precision="mixed_float16")


@pytest.mark.parametrize("overrides,field", [
    (dict(num_scales=2), "num_scales"), (dict(window_influence=1.5), "window_influence"),
    (dict(scale_damping=-0.1), "scale_damping"), (dict(scale_penalty=0.0), "scale_penalty"),
    (dict(scale_step=0.0), "scale_step"), (dict(upsample_factor=0), "upsample_factor"),
    (dict(context=-0.5), "context"), (dict(min_scale=2.0, max_scale=5.0), "min_scale"),
    (dict(min_scale=0.2, max_scale=0.5), "max_scale"),
])
def test_bad_track_config_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        config_lib.TrackConfig(**overrides)


def test_defaults_and_paper_values_are_valid():
    config_lib.TrainConfig()
    config_lib.TrackConfig(scale_step=1.0375, scale_penalty=1.0, scale_damping=1.0,
                           window_influence=0.0, min_scale=1.0, max_scale=1.0)


def test_config_from_dict_ignores_unknown_keys():
    track = config_lib.config_from_dict(config_lib.TrackConfig,
                                        {"scale_step": 1.1, "from_a_later_version": True})
    assert track == config_lib.TrackConfig(scale_step=1.1)


def test_override_from_flags_takes_only_flags_given():
    from absl import flags

    from memnet_tf import flags as memnet_flags

    flag_values = flags.FlagValues()
    memnet_flags.define_flags(flag_values)
    flag_values(["x", "--window_influence=0.3"])
    base = config_lib.TrackConfig(scale_step=1.2)
    assert config_lib.override_from_flags(base, flag_values) == config_lib.TrackConfig(
        scale_step=1.2, window_influence=0.3)


def test_replace_atomically_leaves_the_old_file_and_no_temporary_on_failure(tmp_path):
    target = tmp_path / "scores.json"
    config_lib.write_atomically(str(target), "old")

    def failing_writer(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        config_lib.replace_atomically(str(target), failing_writer, suffix=".png")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.json"]
    config_lib.write_atomically(str(target), "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.json"]
