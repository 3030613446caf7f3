"""Machine description shared by the benchmark scripts (each prints it with its table)."""

import os
import platform


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the platform's guess)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def import_tensorflow(verbose: bool = False):
    """TensorFlow, imported as the memnet_tf commands do: without its import-time C++ log lines
    and absl INFO noise unless `verbose` (the benchmarks' `--verbose`)."""
    from memnet_tf import cli  # pylint: disable=import-outside-toplevel

    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
    else:
        cli.configure_logging(verbosity_given=False, verbosity=0)
    cli.import_tensorflow_quietly()
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    return tf
