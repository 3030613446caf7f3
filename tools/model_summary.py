"""Prints the trainable parameters of the configured model per component.

    python tools/model_summary.py --flagfile=experiments/paper.flags

The last line is `trainable parameters: N` (the paper's count); the line before it gives the
non-trainable BatchNorm statistics, which `model.count_params()` adds.
"""

from absl import app, flags

from memnet_tf import config as config_lib
from memnet_tf import flags as memnet_flags
from memnet_tf.models.memtrack import build_model
from memnet_tf.models.summary import (format_parameter_table, non_trainable_parameters,
                                      trainable_parameters_by_component)

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cfg = config_lib.model_config_from_flags(FLAGS)
    model = build_model(cfg)
    print(f"backbone={cfg.backbone} channels={cfg.channels} exemplar {cfg.exemplar_size} -> "
          f"{cfg.template_size}x{cfg.template_size}, search {cfg.search_size} -> "
          f"{cfg.search_feature_size}x{cfg.search_feature_size}, response {cfg.response_size}, "
          f"memory {cfg.memory_size} slots, hidden {cfg.hidden_size}")
    print(format_parameter_table(trainable_parameters_by_component(model),
                                 non_trainable_parameters(model), model.count_params()))


if __name__ == "__main__":
    from memnet_tf import cli

    cli.run(main, "model_summary")
