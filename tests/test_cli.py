"""Tests of memnet_tf/cli.py: per-command help, nested flagfiles, exit status, quiet logging."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest
from absl import flags as absl_flags

from memnet_tf import cli
from memnet_tf import flags as memnet_flags

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _flag_values():
    flag_values = absl_flags.FlagValues()
    memnet_flags.define_flags(flag_values)
    return flag_values


def _names(command):
    return {flag.name for members in cli.command_flags(command, _flag_values()).values()
            for flag in members}


def test_each_command_lists_its_own_flags():
    train, track, evaluate, export = (_names(c) for c in ("train", "track", "evaluate", "export"))
    # train: architecture, data, optimisation, the tracking hyper-parameters it stores in the
    # run; nothing that only track, evaluate or export reads.
    assert {"model_dir", "hidden_size", "batch_size", "num_scales", "final_eval_sequences"} <= train
    assert not train & {"video", "output_video", "init_box", "export_dir", "checkpoint",
                        "results_dir", "saved_model", "start_frame"}
    assert {"checkpoint", "video", "sequence", "output_boxes", "start_frame", "target",
            "lost_threshold", "num_scales"} <= track
    assert not track & {"model_dir", "batch_size", "hidden_size", "export_dir", "results_dir"}
    assert {"checkpoint", "dataset", "dataset_root", "results_dir", "num_scales"} <= evaluate
    assert not evaluate & {"video", "output_video", "model_dir", "export_dir"}
    assert export >= {"checkpoint", "export_dir"} and not export & {"video", "model_dir",
                                                                    "saved_model", "litert"}
    # Every memnet_tf flag is shown by at least one command, in a group of its own kind.
    flags_defined = memnet_flags.this_module_flags(_flag_values())
    assert [f.name for f in flags_defined if cli.flag_group(f) == "other"] == []
    assert {f.name for f in flags_defined if cli.flag_group(f) == "load"} == {
        "checkpoint", "saved_model", "litert"}
    every = {f.name for f in flags_defined}
    assert every == train | track | evaluate | export


def test_help_text_groups_and_defaults():
    text = cli.command_help("track", "the doc", _flag_values())
    assert text.startswith("the doc")
    groups = re.findall(r"^(\S[^\n]*):$", text, re.MULTILINE)
    assert groups[:3] == [cli.GROUP_TITLES["load"], cli.GROUP_TITLES["track"],
                          cli.GROUP_TITLES["track_io"]]
    assert re.search(r"--scale_step: .*\n\s+\(default: 1.05\)", text)
    assert re.search(r"--start_frame: .*\n\s+\(default: 1\)", text)
    assert "exit status: 0 done, 1 failed while running, 2 bad command line" in text


def test_nested_flagfiles_resolve_beside_the_including_file(tmp_path, monkeypatch):
    experiments = tmp_path / "exp"
    (experiments / "sub").mkdir(parents=True)
    (experiments / "base.flags").write_text("# base\n--hidden_size=32\n--memory_size=4\n")
    (experiments / "sub" / "top.flags").write_text(
        "--flagfile=../base.flags\n// comment\n--memory_size=6\n\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    expanded = cli.expand_flagfiles([f"--flagfile={experiments / 'sub' / 'top.flags'}",
                                     "--seed=3"])
    assert expanded == ["--hidden_size=32", "--memory_size=4", "--memory_size=6", "--seed=3"]
    # A nested path that does not exist beside the file falls back to the working directory.
    (elsewhere / "cwd.flags").write_text("--seed=5\n")
    (experiments / "uses_cwd.flags").write_text("--flagfile=cwd.flags\n")
    assert cli.expand_flagfiles([f"--flagfile={experiments / 'uses_cwd.flags'}"]) == ["--seed=5"]
    (experiments / "missing.flags").write_text("--flagfile=nowhere.flags\n")
    with pytest.raises(cli.UsageError, match=r"nowhere.flags: file not found \(included by "):
        cli.expand_flagfiles([f"--flagfile={experiments / 'missing.flags'}"])
    (experiments / "loop.flags").write_text("--flagfile=loop.flags\n")
    with pytest.raises(cli.UsageError, match="includes itself"):
        cli.expand_flagfiles([f"--flagfile={experiments / 'loop.flags'}"])


def test_repository_experiments_expand_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expanded = cli.expand_flagfiles([f"--flagfile={REPO_ROOT / 'experiments' / 'quickstart.flags'}"])
    flag_values = _flag_values()
    flag_values(["train", *expanded])
    assert flag_values.hidden_size == 64 and flag_values.weight_decay == 0.0001  # from paper


def test_experiment_names_a_shipped_flagfile_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    by_name = cli.expand_flagfiles(["--experiment=quickstart", "--seed=3"])
    by_path = cli.expand_flagfiles(
        [f"--flagfile={REPO_ROOT / 'experiments' / 'quickstart.flags'}", "--seed=3"])
    assert by_name == by_path and "--seed=3" == by_name[-1] and len(by_name) > 2
    assert cli.expand_flagfiles(["--experiment=tiny.flags"]) == cli.expand_flagfiles(
        [f"--flagfile={REPO_ROOT / 'experiments' / 'tiny.flags'}"])
    shipped = sorted(p.stem for p in (REPO_ROOT / "experiments").glob("*.flags"))
    assert set(shipped) <= set(cli.experiment_names())
    for bad in ("no_such_recipe", "../experiments/tiny", ""):
        with pytest.raises(cli.UsageError, match=r"unknown experiment \(known: .*quickstart"):
            cli.expand_flagfiles([f"--experiment={bad}"])


def test_experiment_flag_on_the_command_line_and_in_help():
    result = _run("memnet_tf.train", "--experiment=no_such_recipe")
    assert result.returncode == cli.EXIT_USAGE and "unknown experiment" in result.stderr
    assert "Traceback" not in result.stderr
    result = _run("memnet_tf.train", "--help")
    assert "--experiment:" in result.stdout and "quickstart" in result.stdout


def _run(module, *args, env_extra=None, drop_log_level=False):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO_ROOT))
    if drop_log_level:
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_help_and_usage_errors_of_the_commands(tmp_path):
    result = _run("memnet_tf.train", "--help")
    assert result.returncode == 0 and "--model_dir:" in result.stdout
    assert "--output_video" not in result.stdout and "--export_dir" not in result.stdout
    result = _run("memnet_tf.train", "--helpfull")
    assert "--output_video" in result.stdout  # absl's full list keeps everything
    assert result.returncode == cli.EXIT_OK  # a help request, not a failure (absl says 1)
    # Unknown flags and bad values: one line, exit 2, for every command.
    for module in ("memnet_tf.train", "memnet_tf.track", "memnet_tf.export"):
        result = _run(module, "--no_such_flag=1")
        assert result.returncode == cli.EXIT_USAGE, (module, result.stderr)
        assert "error:" in result.stderr and "no_such_flag" in result.stderr
        assert "Traceback" not in result.stderr
    result = _run("memnet_tf.export", "--saved_model=exports/x", "--export_dir=exports/y")
    assert result.returncode == cli.EXIT_USAGE and "export converts a checkpoint" in result.stderr
    result = _run("memnet_tf.track", "--start_frame=0")
    assert result.returncode == cli.EXIT_USAGE and "start_frame" in result.stderr


_TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} |cuInit|PredictCost|InitializeLog", re.MULTILINE)


def test_quiet_by_default_and_verbosity_restores(tmp_path):
    from test_track_cli import write_otb_blob_sequence, write_tiny_run

    run = write_tiny_run(tmp_path / "run")
    write_otb_blob_sequence(tmp_path / "Blob", 3)
    args = (f"--checkpoint={run}", f"--sequence={tmp_path / 'Blob'}")
    quiet = _run("memnet_tf.track", *args, drop_log_level=True)
    assert quiet.returncode == 0, quiet.stderr
    assert not _TF_LOG_LINE.search(quiet.stderr), quiet.stderr
    loud = _run("memnet_tf.track", *args, "--verbosity=0", drop_log_level=True)
    assert loud.returncode == 0, loud.stderr
    # On a machine whose TensorFlow logs anything at import (the CUDA stub on a CPU machine).
    if _TF_LOG_LINE.search(loud.stderr) is None:
        pytest.skip("this TensorFlow logs nothing at import; nothing to silence")


def test_a_subset_is_not_labelled_as_the_benchmark():
    from memnet_tf import evaluate

    assert evaluate.dataset_title("otb100", "/data/otb_mini/", 6) == (
        "otb_mini (6 of OTB-100's 100 sequences)")
    assert evaluate.dataset_title("otb100", "/data/OTB100", 100) == "OTB-100"
    assert evaluate.dataset_title("otb2013", "/data/OTB100", 51) == "OTB-2013"
    assert evaluate.dataset_title("otb2013", "/data/x", 3) == "x (3 of OTB-2013's 51 sequences)"
    assert evaluate.dataset_title("otb", "/data/mine", 3) == "mine"
    # Plot titles: a subset folder is named with its count; a full folder with partial results
    # says which trackers' sets are partial.
    subset = evaluate.dataset_title("otb100", "/data/otb_mini/", 6)
    assert evaluate.plot_title("Success", "OTB-100", subset, ["partial (6/100)"]) == (
        "Success plots of OPE on otb_mini (6 of OTB-100's 100 sequences)")
    assert evaluate.plot_title("Precision", "OTB-100", "OTB-100", ["partial (98/100)"]) == (
        "Precision plots of OPE on OTB-100 - partial (98/100)")
    assert evaluate.plot_title("Success", "OTB-100", subset, [], "occlusion") == (
        "Success plots of OPE - occlusion on otb_mini (6 of OTB-100's 100 sequences)")


TOOLS = {  # tool -> (a flag of its own, a memnet_tf flag its help must not list or must list)
    "import_weights": ("--weights_prefix:", "--hidden_size:", True),
    "build_tfrecords": ("--exclude_sequences:", "--hidden_size:", False),
    "ablation": ("--common_flags:", "--hidden_size:", False),
    "real_video_experiment": ("--train_flags:", "--hidden_size:", False),
}


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_tools_share_the_commands_help_and_exit_status(tool):
    own, memnet_flag, listed = TOOLS[tool]
    script = [str(REPO_ROOT / "tools" / f"{tool}.py")]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO_ROOT))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)

    def run(*args):
        return subprocess.run([sys.executable, *script, *args], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=300)

    result = run("--help")
    assert result.returncode == cli.EXIT_OK, result.stderr
    assert result.stdout.splitlines()[0].strip(), "the tool's docstring comes first"
    assert f"{tool}:" in result.stdout and own in result.stdout
    assert (memnet_flag in result.stdout) == listed
    assert "exit status: 0 done, 1 failed while running, 2 bad command line" in result.stdout
    result = run("--no_such_flag=1")
    assert result.returncode == cli.EXIT_USAGE, result.stderr
    assert result.stderr.startswith("error:") and "no_such_flag" in result.stderr
    assert "Traceback" not in result.stderr


def test_tools_bad_input_is_one_quiet_error_line(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO_ROOT))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    missing = tmp_path / "missing.npz"
    for tool, args in (("import_weights", [f"--weights={missing}", f"--output={tmp_path / 'o'}"]),
                       ("build_tfrecords", ["--source=otb", f"--root={tmp_path / 'none'}",
                                            f"--output_dir={tmp_path / 'tfr'}"])):
        result = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / f"{tool}.py"), *args],
                                cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == cli.EXIT_USAGE, (tool, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (tool, result.stderr)
        assert not os.path.exists(tmp_path / "o")
    # A required flag left out is a usage error too.
    result = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "import_weights.py")],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == cli.EXIT_USAGE and "--weights" in result.stderr


def test_import_weights_prefix_default_is_the_library_constant():
    from memnet_tf.models import weights as weights_lib

    text = (REPO_ROOT / "tools" / "import_weights.py").read_text()
    assert f'flags.DEFINE_string("weights_prefix", "{weights_lib.SIAMFC_PREFIX}",' in text


@pytest.mark.parametrize("benchmark", ["siamfc_otb_mini", "memory_on_real_video"])
def test_benchmarks_import_tensorflow_quietly(benchmark):
    """A bad --sequences fails after TensorFlow is imported: its stderr is the error alone,
    without TensorFlow's import-time C++ lines."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO_ROOT))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)

    runs = [f"--runs=memtrack_seed0:{REPO_ROOT}"] if benchmark == "memory_on_real_video" else []
    result = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / f"{benchmark}.py"),
                             "--sequences=NoSuchSequence", *runs], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "NoSuchSequence" in result.stderr, result.stderr[-2000:]
    assert not any(noise in result.stderr for noise in cli.IMPORT_NOISE), result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_tracking_commands_run_tensorflow_with_onednn_unless_the_user_says_otherwise():
    for command in ("track", "evaluate", "track_speed"):
        environ = {}
        cli.tensorflow_environment(command, environ)
        assert environ == {"TF_ENABLE_ONEDNN_OPTS": "1"}
        environ = {"TF_ENABLE_ONEDNN_OPTS": "0"}
        cli.tensorflow_environment(command, environ)
        assert environ == {"TF_ENABLE_ONEDNN_OPTS": "0"}  # the user's choice is kept
    for command in ("train", "export"):
        environ = {}
        cli.tensorflow_environment(command, environ)
        assert environ == {}


def test_track_imports_tensorflow_with_onednn_on():
    """End to end: the variable is set before TensorFlow's import (it is read only then)."""
    code = ("import os, sys; from memnet_tf import cli; "
            "cli.run(lambda argv: print('onednn', os.environ.get('TF_ENABLE_ONEDNN_OPTS'), "
            "'tensorflow' in sys.modules), 'track', argv=['track'])")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert "onednn 1 False" in result.stdout, result.stderr[-2000:]
