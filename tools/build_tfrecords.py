"""Builds TFRecord shards of 271x271 training patches from ILSVRC VID, GOT-10k or OTB folders.

Usage:
  python tools/build_tfrecords.py --source=vid --root=/data/ILSVRC2015 --output_dir=/data/vid_tfr
  python tools/build_tfrecords.py --source=vid --split=val --num_shards=2 ...
  python tools/build_tfrecords.py --source=got10k --root=/data/GOT-10k --output_dir=... \
      --min_frames=20
  python tools/build_tfrecords.py --source=otb --root=../shared/data/otb_mini --output_dir=...
  # A split by whole sequences (real drone video): the same names on both calls.
  python tools/build_tfrecords.py --source=otb --root=../shared/data/aerial_half \
      --output_dir=data/aerial --split=val --sequences=boat1,person11,wakeboard10
  python tools/build_tfrecords.py --source=otb --root=../shared/data/aerial_half \
      --output_dir=data/aerial --exclude_sequences=boat1,person11,wakeboard10

Then train with `--dataset=tfrecord --data_dir=<output_dir>`. Patches follow spec 7.1 (context
0.5, integer mean-colour padding); `--patch_size` must equal search_size + 2 * patch_margin of
the model that reads them. A progress bar runs on stderr and a summary of what was written and
skipped (and why) is printed at the end and stored in `<split>-manifest.json`. A missing
folder or a malformed dataset is one `error: ...` line and exit status 2 (memnet_tf/cli.py).
"""

from __future__ import annotations

import os
import sys

from absl import flags

# Run from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from memnet_tf import cli  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This tool's own flags (defined only when it runs as a program)."""
    flags.DEFINE_enum("source", None, ["vid", "got10k", "otb"],
                      "Dataset layout: ILSVRC2015 VID, GOT-10k, or a folder of OTB sequences.")
    flags.DEFINE_string("root", None, "The dataset folder (VID: the ILSVRC2015 folder with "
                        "Annotations/ and Data/; GOT-10k: the folder with train/ and val/).")
    flags.DEFINE_string("output_dir", None, "Where the shards and the manifest are written.")
    flags.DEFINE_enum("split", "train", ["train", "val"], "Split to read; also the shard prefix.")
    flags.DEFINE_integer("num_shards", 16, "Number of shards (the official code: 16 train, 2 "
                         "val).")
    flags.DEFINE_integer("min_frames", 50, "Tracks with fewer annotated frames are skipped.")
    flags.DEFINE_integer("max_tracks", 0, "Keep only the first N tracks (0 = all); for quick "
                         "builds.")
    flags.DEFINE_integer("patch_size", 271, "Side of the stored patches: search_size + 2 * "
                         "patch_margin.")
    flags.DEFINE_integer("exemplar_size", 127, "Pixels of the patch the exemplar region maps to.")
    flags.DEFINE_integer("num_workers", min(4, os.cpu_count() or 1),
                         "Processes cutting patches (1 = none).")
    flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality of the stored patches.")
    flags.DEFINE_list("sequences", [], "Keep only these whole sequences (comma-separated names; "
                      "e.g. the validation split).")
    flags.DEFINE_list("exclude_sequences", [], "Drop these whole sequences (e.g. the validation "
                      "sequences when building the train split).")
    flags.DEFINE_boolean("strict", False, "Stop at the first malformed annotation file instead "
                         "of skipping it.")


def main(argv) -> int:
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    cli.import_tensorflow_quietly()
    from memnet_tf.data import building  # pylint: disable=import-outside-toplevel
    from memnet_tf.data.patches import PatchGeometry  # pylint: disable=import-outside-toplevel

    try:
        # Search crops are cut from the patches at training time: only P and E matter here.
        geometry = PatchGeometry(exemplar_size=FLAGS.exemplar_size,
                                 search_size=FLAGS.patch_size, patch_size=FLAGS.patch_size)
        result = building.build_tfrecords(
            FLAGS.source, FLAGS.root, FLAGS.output_dir, split=FLAGS.split,
            num_shards=FLAGS.num_shards, min_frames=FLAGS.min_frames,
            max_tracks=FLAGS.max_tracks, geometry=geometry, num_workers=FLAGS.num_workers,
            jpeg_quality=FLAGS.jpeg_quality, strict=FLAGS.strict, sequences=FLAGS.sequences,
            exclude_sequences=FLAGS.exclude_sequences)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return cli.EXIT_USAGE
    print(f"Wrote {result.num_tracks} tracks ({result.num_frames} frames) into "
          f"{len(result.shards)} shard(s) in {FLAGS.output_dir}; manifest {result.manifest}")
    if result.skips.total():
        print(f"Skipped ({result.skips.total()} in total):")
        print("\n".join(result.skips.summary_lines()))
    else:
        print("Nothing was skipped.")
    return cli.EXIT_OK


if __name__ == "__main__":
    define_flags()
    flags.mark_flags_as_required(["source", "root", "output_dir"])
    cli.run(main, "build_tfrecords", tool=True)
