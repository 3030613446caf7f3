"""tools/model_summary.py reproduces the official parameter count."""

import re

import subprocess
import sys

from conftest import REPO_ROOT


def _summary(flagfile):
    out = subprocess.run([sys.executable, "tools/model_summary.py", f"--flagfile={flagfile}"],
                         cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()


def test_paper_configuration_matches_official_count():
    lines = _summary("experiments/paper.flags")
    assert lines[-1] == f"trainable parameters: {3_749_440 + 2_303_495}"
    table = "\n".join(lines)
    assert "3,749,440" in table  # the backbone row
    assert "1,577,984" in table  # LSTM kernel 768x2048 + 5 layer norms


def test_tiny_configuration_is_small():
    count = int(_summary("experiments/tiny.flags")[-1].split(":")[1])
    assert 10_000 < count < 200_000


def test_non_trainable_count_is_what_count_params_adds():
    from memnet_tf import config as config_lib
    from memnet_tf.models.memtrack import build_model

    lines = _summary("experiments/tiny.flags")
    trainable = int(lines[-1].split(":")[1])
    line = lines[-2]
    found = re.match(r"non-trainable: ([0-9,]+) BatchNorm moving mean/variance \+ ([0-9,]+) "
                     r"other \(random-seed state\); model.count_params\(\) = ([0-9,]+)", line)
    assert found, line
    moving, other, total = (int(g.replace(",", "")) for g in found.groups())
    from absl import flags

    from memnet_tf import cli
    from memnet_tf import flags as memnet_flags

    flag_values = flags.FlagValues()
    memnet_flags.define_flags(flag_values)
    flag_values(["test", *cli.expand_flagfiles([f"--flagfile={REPO_ROOT}/experiments/tiny.flags"])])
    model = build_model(config_lib.model_config_from_flags(flag_values))
    # Independently: BatchNorm keeps a moving mean and variance per channel it normalises.
    bn_channels = sum(int(v.shape.num_elements()) for v in model.trainable_variables
                      if v.path.endswith("/gamma") or v.path.endswith("/beta")) // 2
    assert moving == 2 * bn_channels > 0
    # count_params() of the same configuration, and what it is made of: the trainable weights,
    # the BatchNorm statistics and at most the random-seed state.
    assert total == model.count_params()
    assert trainable + moving <= total <= trainable + moving + other
