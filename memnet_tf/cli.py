"""What every memnet_tf command does the same way: help, logging, flagfiles and exit status.

`run(main, command)` wraps `absl.app.run`:

- `--help` (`-h`, `--helpshort`) lists the command's own flags, grouped, with their defaults
  (`command_help`); `--helpfull` keeps absl's list of every flag.
- Quiet by default: TensorFlow's C++ log (CUDA `cuInit` errors on a CPU machine, grappler
  `PredictCost` warnings, oneDNN notices) is off (`TF_CPP_MIN_LOG_LEVEL=3`) and absl/Python
  logging shows warnings only. `--verbosity=N` (absl: -2 error, -1 warning, 0 info) sets both;
  an explicit `TF_CPP_MIN_LOG_LEVEL` in the environment is kept when `--verbosity` is not given.
- `--flagfile=` lines inside a flagfile are resolved relative to the including file (beside
  it, then the folders above it, then the working directory as absl does), so
  `--flagfile=/path/to/memnet_tf/experiments/quickstart.flags` works from any folder, and
  `--experiment=quickstart` names the same shipped file from anywhere (`experiment_flagfile`).
- One exit-status convention (`EXIT_*`): 0 done; 1 failed while running (a diverged training,
  nothing could be scored, a write failed); 2 bad command line or input (unknown or invalid
  flag, missing or unreadable file, bad box or checkpoint) reported as one `error: ...` line.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys

from absl import app, flags

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

UsageError = app.UsageError


class OutputError(Exception):
    """An output (boxes, video, results, export) could not be written: `EXIT_FAILURE`, one line.

    The inputs were fine, the work was done; the disk, a permission or a codec failed.
    """


HELP_ARGUMENTS = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort")

# Flag groups, in the order --help prints them. Membership: the config dataclass a flag fills
# (config.CONFIG_CLASSES), else the command its help starts with ("track: ..."), else below.
GROUP_TITLES = {
    "load": "the trained model",
    "model": "model architecture",
    "data": "training data",
    "train": "training",
    "track": "tracking hyper-parameters (default: the run's own)",
    "track_io": "track: input and output",
    "evaluate": "evaluate",
    "export": "export",
    "other": "other memnet_tf flags",
}
_LOAD_FLAGS = ("checkpoint", "saved_model", "litert")
_HELP_PREFIXES = {"track": "track_io", "evaluate": "evaluate", "export": "export",
                  "train": "train"}
# Flags serving a command outside their dataclass group.
_ALSO = {"dataset": ("evaluate",)}
# Flags of a group a command uses that the command itself refuses (export reads a checkpoint).
_NOT_FOR = {"export": ("saved_model", "litert")}

COMMAND_GROUPS = {
    # Training stores the tracking hyper-parameters in the run (flags.txt) and uses them for
    # its final held-out evaluation; the model to load and track/evaluate/export I/O it has not.
    "train": ("model", "data", "train", "track", "other"),
    "track": ("load", "track", "track_io", "other"),
    "evaluate": ("load", "track", "evaluate", "other"),
    "export": ("load", "export", "other"),
    "model_summary": ("model",),
    # Tools with flags of their own (`run(..., tool=True)`), listed first in their help.
    "import_weights": ("model",),
    "build_tfrecords": (),
    "ablation": (),
    "real_video_experiment": (),
    "read_selectivity": (),
    "memory_agreement": (),
    "track_speed": (),  # benchmarks/track_speed.py
}
GENERAL_FLAGS = ("flagfile", "verbosity", "helpfull")
# Commands that track frame by frame run TensorFlow with oneDNN: TF leaves it off on CPUs
# without AVX-512 (this project's 2-core EPYC has AVX2/FMA), where it tracks ~1.4x faster with
# the same boxes (otb_mini, FDSiamFC-30: all 2,298 boxes equal to 1e-4; WORKSPACE.md, "Tracking
# speed"). A `TF_ENABLE_ONEDNN_OPTS` the user sets is kept. Training keeps TF's default.
ONEDNN_COMMANDS = ("track", "evaluate", "track_speed")


def tensorflow_environment(command: str, environ) -> None:
    """Sets the environment TensorFlow reads at import for `command` (before it is imported)."""
    if command in ONEDNN_COMMANDS:
        environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def flag_group(flag) -> str:
    """The `GROUP_TITLES` key of a memnet_tf flag."""
    from memnet_tf import config as config_lib

    if flag.name in _LOAD_FLAGS:
        return "load"
    for group, cls in config_lib.CONFIG_CLASSES.items():
        if flag.name in {field.name for field in dataclasses.fields(cls)}:
            return group
    # absl puts an enum's values first: "<a|b>: evaluate: ...".
    text = re.sub(r"^<[^>]*>:\s*", "", flag.help or "")
    for prefix, group in _HELP_PREFIXES.items():
        if re.match(rf"{prefix}( \([^)]*\))?:", text):
            return group
    return "other"


def command_flags(command: str, flag_values: flags.FlagValues = flags.FLAGS) -> dict:
    """`{group: [flags]}` of `command`, groups in `COMMAND_GROUPS` order, flags by name."""
    from memnet_tf import flags as memnet_flags

    groups = COMMAND_GROUPS[command]
    found = {group: [] for group in groups}
    for flag in sorted(memnet_flags.this_module_flags(flag_values), key=lambda f: f.name):
        if flag.name in _NOT_FOR.get(command, ()):
            continue
        group = flag_group(flag)
        extra = [g for g in _ALSO.get(flag.name, ()) if g in found and g != group]
        for target in ([group] if group in found else []) + extra:
            found[target].append(flag)
    return {group: members for group, members in found.items() if members}


def _describe(flag) -> str:
    default = (flag.default_as_str or "none").strip("'")
    text = flag.help or ""
    return f"  --{flag.name}: {text}\n      (default: {default})"


def command_help(command: str, doc: str = "",
                 flag_values: flags.FlagValues = flags.FLAGS,
                 tool_flags: tuple[str, ...] = ()) -> str:
    """The `--help` text of `command`: its docstring, then its flags by group, with defaults.

    `tool_flags` (names) are the command's own flags, shown first under "<command>:".
    """
    lines = [doc.strip(), ""] if doc else []
    if tool_flags:
        lines.append(f"{command}:")
        lines.extend(_describe(flag_values[name]) for name in sorted(tool_flags))
        lines.append("")
    groups = command_flags(command, flag_values) if COMMAND_GROUPS[command] else {}
    for group, members in groups.items():
        lines.append(f"{GROUP_TITLES[group]}:")
        lines.extend(_describe(flag) for flag in members)
        lines.append("")
    lines.append("general:")
    lines.append("  --flagfile: a file of flags, one per line; nested --flagfile= lines are "
                 "relative to the including file")
    lines.append("  --experiment: a shipped experiment by name, the same as --flagfile=<its "
                 "experiments/NAME.flags>: " + ", ".join(experiment_names()))
    lines.append("  --verbosity: log level (-2 error, -1 warning, 0 info); default: quiet")
    lines.append("  --helpfull: every flag, including absl's and TensorFlow's")
    lines.append("")
    lines.append("exit status: 0 done, 1 failed while running, 2 bad command line or input")
    return "\n".join(lines) + "\n"


def experiment_folders() -> list[str]:
    """Where `--experiment=NAME` looks for `NAME.flags`: the checkout's `experiments/` (a
    source or editable install), then the copy `pip install` puts in `<prefix>/share`."""
    checkout = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "experiments")
    return [checkout, os.path.join(sys.prefix, "share", "memnet_tf", "experiments")]


def experiment_names() -> list[str]:
    """The experiments `--experiment=` accepts (every `*.flags` of `experiment_folders`)."""
    names = set()
    for folder in experiment_folders():
        if os.path.isdir(folder):
            names.update(n[:-len(".flags")] for n in os.listdir(folder) if n.endswith(".flags"))
    return sorted(names)


def experiment_flagfile(name: str) -> str:
    """The flagfile of a shipped experiment, e.g. "quickstart" -> `.../experiments/quickstart.flags`.

    Raises:
        UsageError: no such experiment (the message lists the known ones).
    """
    name = name[:-len(".flags")] if name.endswith(".flags") else name
    for folder in experiment_folders():
        path = os.path.join(folder, name + ".flags")
        if name and os.sep not in name and os.path.isfile(path):
            return path
    known = ", ".join(experiment_names()) or "none found in " + " or ".join(experiment_folders())
    raise UsageError(f"--experiment={name}: unknown experiment (known: {known}); "
                     "--flagfile=PATH takes a file of your own")


def _flagfile_argument(argument: str) -> str | None:
    for prefix in ("--flagfile=", "-flagfile="):
        if argument.startswith(prefix):
            return argument[len(prefix):]
    for prefix in ("--experiment=", "-experiment="):
        if argument.startswith(prefix):
            return experiment_flagfile(argument[len(prefix):])
    return None


def _resolve_nested(path: str, including: str) -> str:
    """A relative `--flagfile=` of `including`: beside it, else in the first folder above it
    that has it (`experiments/paper.flags` inside `<repo>/experiments/x.flags` is the repository's),
    else as given (the working directory)."""
    folder = os.path.dirname(os.path.abspath(including))
    while True:
        candidate = os.path.join(folder, path)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return path
        folder = parent


def expand_flagfiles(arguments: list[str], including: str | None = None,
                     stack: tuple[str, ...] = ()) -> list[str]:
    """Replaces every `--flagfile=PATH` by the flags it holds, recursively.

    Top-level paths are relative to the working directory; a relative `--flagfile=` line inside
    a file is looked for beside that file, then in the folders above it (so the repository's
    `--flagfile=experiments/paper.flags` lines work from any working directory), then in the
    working directory, as absl does.

    Raises:
        UsageError: a missing flagfile (named with the file that includes it) or a cycle.
    """
    expanded = []
    for argument in arguments:
        path = _flagfile_argument(argument)
        if path is None:
            expanded.append(argument)
            continue
        path = os.path.expanduser(path)
        if including is not None and not os.path.isabs(path):
            path = _resolve_nested(path, including)
        if not os.path.isfile(path):
            where = f" (included by {including})" if including else ""
            raise UsageError(f"--flagfile={path}: file not found{where}")
        real = os.path.realpath(path)
        if real in stack:
            raise UsageError(f"--flagfile={path}: includes itself (via {' -> '.join(stack)})")
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
        lines = [line for line in lines
                 if line and not line.startswith("#") and not line.startswith("//")]
        expanded.extend(expand_flagfiles(lines, path, stack + (real,)))
    return expanded


# Lines TensorFlow's import writes to the stderr file descriptor whatever TF_CPP_MIN_LOG_LEVEL
# says (C++ absl logging before it is initialised): dropped when quiet.
IMPORT_NOISE = ("All log messages before absl::InitializeLog()", "cudart_stub.cc",
                "cuda_platform.cc", "Unable to register cu", "oneDNN custom operations",
                "computation placer already registered", "This TensorFlow binary is optimized",
                "rebuild TensorFlow with the appropriate compiler flags")


_QUIET = {"on": False}


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow; when quiet (no `--verbosity`), its import-time C++ log lines
    (`IMPORT_NOISE`) are dropped.

    Commands call it where they first need TensorFlow (after checking their inputs, so a bad
    command line fails fast). The stderr file descriptor is captured during the import and every
    other line is written back, so a real import problem still shows.
    """
    if "tensorflow" in sys.modules:
        return
    if not _QUIET["on"]:
        import tensorflow  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines()
                    if line.strip() and not any(noise in line for noise in IMPORT_NOISE)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


def configure_logging(verbosity_given: bool, verbosity: int) -> None:
    """Quiet TensorFlow and absl unless `--verbosity` was given (see the module docstring).

    Args:
        verbosity_given: `--verbosity` was on the command line.
        verbosity: its value (absl: -2 error, -1 warning, 0 info, 1+ debug).
    """
    import logging as python_logging

    from absl import logging

    if verbosity_given:
        # absl -2/-1/0 = error/warning/info; TF's C++ 2/1/0 = the same levels.
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = str(min(max(-verbosity, 0), 3))
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.set_verbosity(logging.WARNING)
    python_logging.getLogger("tensorflow").setLevel(python_logging.ERROR)
    _QUIET["on"] = True


def parse_flags(arguments: list[str]) -> list[str]:
    """absl's flag parsing after `expand_flagfiles`; flag errors are one line and `EXIT_USAGE`.

    Then `configure_logging`.
    """
    try:
        argv = [arguments[0], *expand_flagfiles(arguments[1:])]
        remaining = flags.FLAGS(argv)
    except (flags.Error, UsageError) as error:
        message = str(error).replace("\n", " ")
        print(f"error: {message} (--help lists the flags)", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    configure_logging(flags.FLAGS["verbosity"].present, flags.FLAGS.verbosity)
    return remaining


def run(main, command: str, doc: str | None = None, argv: list[str] | None = None,
        tool: bool = False) -> None:
    """Defines the flags and runs `main` as the absl app `command` (see the module docstring).

    `main(argv)` returns an `EXIT_*` status (None = 0) and may raise `UsageError`, which is
    printed as one `error: ...` line with `EXIT_USAGE`, or `OutputError`: one line,
    `EXIT_FAILURE`. `tool=True`: a script under tools/ whose
    own flags (those its file `argv[0]` defined, as absl records them) --help lists first; the
    memnet_tf flags are defined only for commands whose
    `COMMAND_GROUPS` entry uses them, so a tool accepts no flag it ignores.
    """
    from memnet_tf import flags as memnet_flags

    argv = list(sys.argv if argv is None else argv)
    tensorflow_environment(command, os.environ)
    tool_flags = tuple(flag.name for flag in flags.FLAGS.flags_by_module_dict().get(argv[0], [])
                       ) if tool else ()
    if COMMAND_GROUPS[command]:
        memnet_flags.define_flags()
    options = argv[1:argv.index("--")] if "--" in argv else argv[1:]
    if any(argument in HELP_ARGUMENTS for argument in options):
        if doc is None:
            doc = getattr(sys.modules.get("__main__"), "__doc__", "") or ""
        sys.stdout.write(command_help(command, doc, tool_flags=tool_flags))
        sys.exit(EXIT_OK)
    if any(argument in ("--helpfull", "-helpfull") for argument in options):
        # absl's full list, but with the exit status of a help request (absl exits 1).
        app.usage(shorthelp=False, writeto_stdout=True)
        sys.exit(EXIT_OK)

    def checked_main(arguments):
        try:
            return main(arguments)
        except UsageError as error:
            print(f"error: {error} (--help lists the flags)", file=sys.stderr)
            return EXIT_USAGE
        except OutputError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_FAILURE

    app.run(checked_main, argv=argv, flags_parser=parse_flags)
