"""Imports a pretrained SiamFC-family state dict (.npz, or .pth with PyTorch) into a run folder.

    python tools/import_weights.py --flagfile=experiments/siamfc_fdsiamfc30.flags \
        --weights=../shared/weights/fdsiamfc30/FDSiamfc_30.npz --output=runs/fdsiamfc30

The flags must describe the weights' architecture (backbone, width, BN epsilon). The run folder
gets a checkpoint, `flags.txt`, `config.json` and `import.json` (source file, SHA-256, tensor
mapping), so `--checkpoint=runs/fdsiamfc30` of the other commands rebuilds the model. Any
missing, unused or mis-shaped tensor stops the import with a message naming it (exit status 2,
as for a bad flag or a missing file; see memnet_tf/cli.py).
"""

from __future__ import annotations

import os
import sys

from absl import flags

# Run from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from memnet_tf import cli  # noqa: E402
from memnet_tf import config as config_lib  # noqa: E402

FLAGS = flags.FLAGS
# Epsilon of the BatchNorms of siamfc-pytorch and FDSiamFC (PyTorch's own default is 1e-5).
SIAMFC_BN_EPSILON = 1e-6

# Tool-only flags: they describe this import, not the model, so they stay out of flags.txt.
flags.DEFINE_string("weights", None, "State dict to import: .npz (PyTorch names and layouts) or "
                    ".pth/.pt (needs PyTorch).")
flags.DEFINE_string("output", None, "Run folder to write (checkpoint + flags.txt).")
# = memnet_tf.models.weights.SIAMFC_PREFIX (siamfc-pytorch and FDSiamFC), spelled out so that
# --help does not import TensorFlow.
flags.DEFINE_string("weights_prefix", "backbone.",
                    "Name prefix of the backbone tensors in the state dict.")
flags.DEFINE_boolean("overwrite", False, "Replace an existing, non-empty --output folder.")


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    cli.import_tensorflow_quietly()
    # pylint: disable=import-outside-toplevel
    from memnet_tf.models import weights as weights_lib
    from memnet_tf.models.memtrack import build_model

    try:
        model_config = config_lib.model_config_from_flags(FLAGS)
        model = build_model(model_config)
        state_dict = weights_lib.load_state_dict(FLAGS.weights)
        summary = weights_lib.import_siamfc_weights(model, state_dict, FLAGS.weights_prefix,
                                                    source=FLAGS.weights)
        metadata = {
            "weights": os.path.abspath(FLAGS.weights),
            "sha256": weights_lib.file_sha256(FLAGS.weights),
            "prefix": FLAGS.weights_prefix,
            "assigned": summary.assigned,
            "ignored": list(summary.ignored),
            "response_head": summary.head,
        }
        checkpoint = weights_lib.write_run_folder(model, FLAGS.output, FLAGS, metadata,
                                                  overwrite=FLAGS.overwrite)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return cli.EXIT_USAGE
    print(f"backbone={model_config.backbone} channels={model_config.channels} "
          f"bn_epsilon={model_config.bn_epsilon} response_head={model_config.response_head} "
          f"use_memory={model_config.use_memory}")
    if model_config.bn_epsilon != SIAMFC_BN_EPSILON:
        print(f"note: bn_epsilon={model_config.bn_epsilon}, but SiamFC-family PyTorch weights "
              f"are trained with {SIAMFC_BN_EPSILON}", file=sys.stderr)
    print(f"imported {len(summary.assigned)} tensors, ignored {len(summary.ignored)} "
          f"({', '.join(summary.ignored) or 'none'}); {summary.head}")
    print(f"wrote {checkpoint} (load with --checkpoint={os.path.dirname(checkpoint)})")
    return cli.EXIT_OK


if __name__ == "__main__":
    flags.mark_flags_as_required(["weights", "output"])
    cli.run(main, "import_weights", tool=True)
