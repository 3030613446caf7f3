"""Scores tracking results on a benchmark (and, with a model, first runs our tracker on it).

    python -m memnet_tf.evaluate --dataset=otb100 --dataset_root=/data/OTB100 \
        --results_dir=results [--trackers=MemTrack,SiamFC] [--report_dir=DIR]
    python -m memnet_tf.evaluate --dataset=otb2013 --annotations=/data/OTB100.json ...
    python -m memnet_tf.evaluate --dataset=otb100 --dataset_root=... --checkpoint=runs/x

Prints a table and one `name: success_auc=0.xxx precision=0.xxx ...` line per tracker, and
writes `scores.json`, `success_plot.png` and `precision_plot.png` to `--report_dir` (default
`<results_dir>/report`). Problems with single sequences or results files are printed and
skipped. Exit status (`memnet_tf/cli.py`): 0 scored; 1 nothing could be scored; 2 bad command
line or input (a missing dataset, checkpoint or export, a results folder of another tracker).
"""

from __future__ import annotations

import os
import sys

from absl import flags

from memnet_tf import cli
from memnet_tf.eval import datasets, ope, report

FLAGS = flags.FLAGS

_TITLES = {"otb100": "OTB-100", "otb2013": "OTB-2013", "vot": "VOT (one pass)",
           "got10k": "GOT-10k", "lasot": "LaSOT", "synthetic": "synthetic"}


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    dataset = FLAGS.dataset
    if dataset not in datasets.EVAL_DATASETS:
        raise cli.UsageError(f"--dataset={dataset}: evaluate reads one of "
                             f"{', '.join(datasets.EVAL_DATASETS)}")
    if not FLAGS.dataset_root and not FLAGS.annotations:
        raise cli.UsageError("give --dataset_root=DIR or --annotations=FILE.json")
    if FLAGS.checkpoint and FLAGS.saved_model:
        raise cli.UsageError("give either --checkpoint or --saved_model, not both")

    problems = []
    try:
        sequences = datasets.load_dataset(dataset, root=FLAGS.dataset_root or None,
                                          annotations=FLAGS.annotations or None, errors=problems)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return cli.EXIT_USAGE
    if not sequences:
        print(f"error: no sequence could be loaded from "
              f"{FLAGS.annotations or FLAGS.dataset_root}", file=sys.stderr)
        return cli.EXIT_USAGE
    print(f"{_TITLES[dataset]}: {len(sequences)} sequences")

    trackers = list(FLAGS.trackers)
    if FLAGS.checkpoint or FLAGS.saved_model:
        # Imported here only: scoring existing results must not pull in TensorFlow.
        cli.import_tensorflow_quietly()
        from memnet_tf.models import loading
        from memnet_tf.tracking import tracker as tracker_lib

        try:
            factory = tracker_lib.factory_from_flags(FLAGS, FLAGS.tracker_name or None)
            # Loaded once here (and cached for in-process tracking): a bad checkpoint or export
            # is one clear line, not a traceback in every sequence or worker.
            tracker_name = factory().name  # MemTrack or SiamFC-mode unless --tracker_name
        except Exception as error:  # noqa: BLE001 - bad files are reported, bugs are not
            if not loading.is_loading_error(error):
                raise
            print(f"error: {error}", file=sys.stderr)
            return cli.EXIT_USAGE
        try:
            run = ope.run_ope(factory, sequences, FLAGS.results_dir, tracker_name,
                              num_workers=FLAGS.num_workers, provenance=factory.provenance())
        except ValueError as error:  # the results folder belongs to another tracker
            print(f"error: {error}", file=sys.stderr)
            return cli.EXIT_USAGE
        problems.extend(run["failed"].values())
        if trackers and tracker_name not in trackers:
            trackers.append(tracker_name)

    try:
        scores = report.score_results(sequences, FLAGS.results_dir, trackers or None,
                                      protocol=report.DATASET_PROTOCOLS[dataset])
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return cli.EXIT_USAGE
    if not scores["trackers"]:
        print(f"error: no tracker results found in {FLAGS.results_dir} (expected "
              "<results_dir>/<tracker>/<sequence>.txt)", file=sys.stderr)
        return 1
    report_dir = FLAGS.report_dir or os.path.join(FLAGS.results_dir, "report")
    report.write_json(scores, os.path.join(report_dir, "scores.json"))
    if any(t["overall"] is not None for t in scores["trackers"].values()):
        report.plot_success(scores, os.path.join(report_dir, "success_plot.png"),
                            f"Success plots of OPE on {_TITLES[dataset]}")
        report.plot_precision(scores, os.path.join(report_dir, "precision_plot.png"),
                              f"Precision plots of OPE on {_TITLES[dataset]}")

    for tracker_scores in scores["trackers"].values():
        problems.extend(tracker_scores["errors"])
    if problems:
        print(f"{len(problems)} problem(s); the affected sequences were skipped:",
              file=sys.stderr)
        for message in problems:
            print(f"  {message}", file=sys.stderr)
    print(report.format_table(scores))
    for name, tracker_scores in scores["trackers"].items():
        print(report.summary_line(name, tracker_scores))
    print(f"report: {report_dir}")
    scored = any(t["overall"] is not None for t in scores["trackers"].values())
    return cli.EXIT_OK if scored else cli.EXIT_FAILURE


if __name__ == "__main__":
    cli.run(main, "evaluate")
