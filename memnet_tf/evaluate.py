"""Scores tracking results on a benchmark (and, with a model, first runs our tracker on it).

    python -m memnet_tf.evaluate --dataset=otb100 --dataset_root=/data/OTB100 \
        --results_dir=results [--trackers=MemTrack,SiamFC] [--report_dir=DIR] [--attributes]
    python -m memnet_tf.evaluate --dataset=otb2013 --annotations=/data/OTB100.json ...
    python -m memnet_tf.evaluate --dataset=otb100 --dataset_root=... --checkpoint=runs/x
    python -m memnet_tf.evaluate --dataset=otb --dataset_root=my_sequences ...
    python -m memnet_tf.evaluate --dataset=vot2019 --protocol=supervised \
        --annotations=VOT2019.json --results_dir=results [--checkpoint=RUN | --saved_model=DIR]

One-pass (OPE): prints a table and one `name: success_auc=0.xxx precision=0.xxx ...` line per
tracker, and writes `scores.json`, `success_plot.png` and `precision_plot.png` (and with
`--attributes` a table and `attributes/success_<ATTR>.png`) to `--report_dir` (default
`<results_dir>/report`). OTB-100 and OTB-2013 are scored as such only when complete: a tracker
lacking sequences is listed with `k/N sequences` and what is missing, and the exit status is 1
unless `--allow_partial`, which labels it "partial (k/N)" everywhere.
Supervised (VOT reset experiment, `eval/vot_supervised.py`): one
`name: eao=0.xxx accuracy=0.xxx robustness=0.xxx failures=N` line per tracker and `eao_curve.png`.
Problems with single sequences or results files are printed and skipped; the exit status is
also non-zero when nothing could be scored.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from memnet_tf.eval import datasets, ope, otb, report, vot_supervised

FLAGS = flags.FLAGS


def dataset_title(dataset: str, source: str, num_sequences: int | None = None) -> str:
    """The benchmark's name for tables and plots (`otb`: the folder's name).

    A folder holding fewer sequences than the benchmark is never labelled as the benchmark:
    `otb_mini (6 of OTB-100's 100 sequences)`.
    """
    if dataset == "otb":
        return os.path.basename(os.path.normpath(source)) or source
    title = _TITLES[dataset]
    expected = otb.benchmark_names(dataset)
    if expected and num_sequences is not None and num_sequences < len(expected):
        folder = os.path.basename(os.path.normpath(source)) or source
        return f"{folder} ({num_sequences} of {title}'s {len(expected)} sequences)"
    return title


def plot_title(kind: str, title: str, heading: str, labels: list[str],
               attribute: str = "") -> str:
    """A plot's title: the sequences it shows, never a subset named as the whole benchmark.

    `title` is the benchmark's name, `heading` its `dataset_title` with the sequence count
    (`otb_mini (6 of OTB-100's 100 sequences)` for a subset folder), `labels` the distinct
    "partial (k/N)" labels of trackers scored on part of it (`--allow_partial`), `attribute`
    the OTB attribute a plot is restricted to, if any.
    """
    what = f"{kind} plots of OPE" + (f" - {attribute}" if attribute else "")
    if heading != title:  # a subset folder: the heading says how much of the benchmark it is
        return f"{what} on {heading}"
    suffix = f" - {', '.join(labels)}" if labels else ""
    return f"{what} on {title}{suffix}"


_TITLES = {"otb100": "OTB-100", "otb2013": "OTB-2013", "uav123": "UAV123", "vot": "VOT (one pass)",
           "vot2016": "VOT2016", "vot2018": "VOT2018", "vot2019": "VOT2019",
           "got10k": "GOT-10k", "lasot": "LaSOT", "synthetic": "synthetic"}


def _protocol(dataset: str, protocol: str) -> str:
    if protocol:
        return protocol
    return "supervised" if dataset in datasets.VOT_YEARS else "ope"


def _run_our_tracker(sequences, protocol, problems):
    """Runs our tracker first when a model is given; returns its tracker name or None.

    Raises:
        _Failure: a bad checkpoint/export, or a results folder of another tracker.
    """
    if not (FLAGS.checkpoint or FLAGS.saved_model or FLAGS.litert):
        return None
    # Imported here only: scoring existing results must not pull in TensorFlow.
    from memnet_tf import cli

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
        raise _Failure(str(error), bad_input=True) from None
    try:
        if protocol == "supervised":
            run = vot_supervised.run_supervised(
                factory, sequences, FLAGS.results_dir, tracker_name,
                num_workers=FLAGS.num_workers, provenance=factory.provenance())
        else:
            run = ope.run_ope(factory, sequences, FLAGS.results_dir, tracker_name,
                              num_workers=FLAGS.num_workers, provenance=factory.provenance())
    except ValueError as error:  # the results folder belongs to another tracker
        raise _Failure(str(error), bad_input=True) from None
    problems.extend(run["failed"].values())
    return tracker_name


class _Failure(Exception):
    """An error that ends the command with one line on stderr: exit status 1, or 2 when the
    input is bad (`bad_input`: a missing checkpoint, a results folder of another tracker)."""

    def __init__(self, message: str, bad_input: bool = False):
        super().__init__(message)
        self.bad_input = bad_input


def _print_problems(problems):
    if problems:
        print(f"{len(problems)} problem(s); the affected sequences were skipped:",
              file=sys.stderr)
        for message in problems:
            print(f"  {message}", file=sys.stderr)


def _evaluate_ope(dataset, title, sequences, trackers, problems, report_dir) -> int:
    scores = report.score_results(sequences, FLAGS.results_dir, trackers or None,
                                  protocol=report.DATASET_PROTOCOLS[dataset],
                                  invalid_frames=FLAGS.invalid_frames,
                                  replace_first_box=FLAGS.replace_first_box)
    if not scores["trackers"]:
        raise _Failure(f"no tracker results found in {FLAGS.results_dir} (expected "
                       "<results_dir>/<tracker>/<sequence>.txt)")
    expected = otb.benchmark_names(dataset)
    report.mark_completeness(scores, expected, sequences)
    partial = {n: t for n, t in scores["trackers"].items() if t["label"]}
    for name, t in partial.items():
        print(f"{name}: {t['benchmark_size'] - len(t['missing'])}/{t['benchmark_size']} "
              f"sequences of {title}; missing: {', '.join(t['missing'])}", file=sys.stderr)
    if partial and not FLAGS.allow_partial:
        for name in partial:
            del scores["trackers"][name]
        problems.append(f"{len(partial)} tracker(s) with a partial {title} result set not scored "
                        f"as {title}: {', '.join(partial)} (--allow_partial scores them, "
                        "labelled 'partial (k/N)')")
    for tracker_scores in scores["trackers"].values():
        problems.extend(tracker_scores["errors"])
    scored = any(t["overall"] is not None for t in scores["trackers"].values())
    labels = sorted({t["label"] for t in partial.values()}) if FLAGS.allow_partial else []
    heading = dataset_title(dataset, FLAGS.dataset_root or FLAGS.annotations, len(sequences))
    report.write_json(scores, os.path.join(report_dir, "scores.json"))
    if scored:
        report.plot_success(scores, os.path.join(report_dir, "success_plot.png"),
                            plot_title("Success", title, heading, labels))
        report.plot_precision(scores, os.path.join(report_dir, "precision_plot.png"),
                              plot_title("Precision", title, heading, labels))
    _print_problems(problems)
    if scores["trackers"]:
        print(report.format_table(scores))
    for name, tracker_scores in scores["trackers"].items():
        print(report.summary_line(name, tracker_scores))
        for message in tracker_scores["adjusted"]:
            print(f"  warning: {message}")
        if tracker_scores["invalid_frames"]:
            print(f"  {tracker_scores['invalid_frames']} frames without a ground-truth box "
                  f"(0,0,0,0 or NaN): {tracker_scores['invalid_frames_rule']}")
    if FLAGS.attributes and scored:
        print(report.format_attribute_table(scores))
        for attribute in report.attributes_of(scores):
            name = otb.OTB_ATTRIBUTE_NAMES.get(attribute, attribute)
            report.plot_success(report.attribute_scores(scores, attribute),
                                os.path.join(report_dir, "attributes",
                                             f"success_{attribute}.png"),
                                plot_title("Success", title, heading, labels, name))
    print(f"report: {report_dir}")
    return 0 if scored and not (partial and not FLAGS.allow_partial) else 1


def _evaluate_supervised(dataset, title, sequences, trackers, problems, report_dir) -> int:
    scores = vot_supervised.score_results(sequences, FLAGS.results_dir, trackers or None,
                                          year=dataset)
    if not scores["trackers"]:
        raise _Failure(f"no tracker results found in {FLAGS.results_dir} (expected "
                       "<results_dir>/<tracker>/baseline/<sequence>/<sequence>_001.txt)")
    for tracker_scores in scores["trackers"].values():
        problems.extend(tracker_scores["errors"])
    scored = any(t["eao"] is not None for t in scores["trackers"].values())
    report.write_json(scores, os.path.join(report_dir, "scores.json"))
    if scored:
        vot_supervised.plot_eao_curves(scores, os.path.join(report_dir, "eao_curve.png"),
                                       f"Expected overlap curves, {title} (baseline)")
    _print_problems(problems)
    print(vot_supervised.format_table(scores))
    for name, tracker_scores in scores["trackers"].items():
        print(vot_supervised.summary_line(name, tracker_scores))
        for message in tracker_scores["warnings"]:
            print(f"  warning: {message}")
    print(f"report: {report_dir}")
    return 0 if scored else 1


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    dataset = FLAGS.dataset
    if dataset not in datasets.EVAL_DATASETS:
        raise app.UsageError(f"--dataset={dataset}: evaluate reads one of "
                             f"{', '.join(datasets.EVAL_DATASETS)}")
    if not FLAGS.dataset_root and not FLAGS.annotations:
        raise app.UsageError("give --dataset_root=DIR or --annotations=FILE.json")
    if sum(bool(v) for v in (FLAGS.checkpoint, FLAGS.saved_model, FLAGS.litert)) > 1:
        raise app.UsageError("give one of --checkpoint, --saved_model and --litert")
    protocol = _protocol(dataset, FLAGS.protocol)
    if protocol == "supervised" and dataset not in (*datasets.VOT_YEARS, "vot"):
        raise app.UsageError(f"--protocol=supervised is VOT's: give --dataset=vot2016, vot2018 "
                             f"or vot2019, not {dataset}")

    problems = []
    try:
        sequences = datasets.load_dataset(dataset, root=FLAGS.dataset_root or None,
                                          annotations=FLAGS.annotations or None, errors=problems)
        if not sequences:
            raise _Failure(f"no sequence could be loaded from "
                           f"{FLAGS.annotations or FLAGS.dataset_root}", bad_input=True)
        # The header names a subset as such; tables and plots of a subset say "partial (k/N)".
        title = dataset_title(dataset, FLAGS.dataset_root or FLAGS.annotations)
        print(f"{dataset_title(dataset, FLAGS.dataset_root or FLAGS.annotations, len(sequences))}"
              f": {len(sequences)} sequences")
        trackers = list(FLAGS.trackers)
        ours = _run_our_tracker(sequences, protocol, problems)
        if ours and trackers and ours not in trackers:
            trackers.append(ours)
        report_dir = FLAGS.report_dir or os.path.join(FLAGS.results_dir, "report")
        evaluate = _evaluate_supervised if protocol == "supervised" else _evaluate_ope
        return evaluate(dataset, title, sequences, trackers, problems, report_dir)
    except (_Failure, FileNotFoundError, ValueError) as error:
        # Exit status (memnet_tf/cli.py): 2 for bad input (missing files, another tracker's
        # results folder), 1 when the run itself failed.
        print(f"error: {error}", file=sys.stderr)
        bad_input = not isinstance(error, _Failure) or error.bad_input
        return 2 if bad_input else 1
    except OSError as error:  # writing results or the report failed: the run failed
        print(f"error: cannot write the results or the report ({error})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    from memnet_tf import cli

    cli.run(main, "evaluate")
