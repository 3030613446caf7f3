"""Opt-in check: our scores of other trackers' published raw results equal their published scores.

Published raw results and full benchmark annotations are not in `../shared` and cannot be
downloaded here, so this test runs only when `$MEMNET_PUBLISHED_RESULTS` names a folder with a
`published.json` manifest (see WORKSPACE.md, "Checking against published results"):

    {"dataset": "otb100", "dataset_root": "OTB100" | "annotations": "OTB100.json",
     "results_dir": "results",          # <tracker>/<seq>.txt, as the toolkits publish them
     "expected": {"SiamFC": {"success_auc": 0.582, "precision": 0.771}},
     "source": "where the numbers were published"}

Relative paths are read from the manifest's folder. Published numbers are rounded to three
decimals, so ours must be within half a unit of the third.
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest

from memnet_tf.eval import datasets, report, vot_supervised

ENV = "MEMNET_PUBLISHED_RESULTS"
ROUNDING = 0.0005 + 1e-9


def _manifest():
    folder = os.environ.get(ENV)
    if not folder:
        pytest.skip(f"${ENV} is not set: no published raw results on this machine")
    path = pathlib.Path(folder) / "published.json"
    if not path.is_file():
        pytest.fail(f"{path}: missing (${ENV} must name a folder with published.json)")
    manifest = json.loads(path.read_text(encoding="utf-8"))

    def resolve(key):
        value = manifest.get(key)
        return str(path.parent / value) if value else None

    return manifest, resolve


def test_published_scores_are_reproduced():
    manifest, resolve = _manifest()
    dataset = manifest["dataset"]
    sequences = datasets.load_dataset(dataset, root=resolve("dataset_root"),
                                      annotations=resolve("annotations"))
    expected = manifest["expected"]
    if dataset in datasets.VOT_YEARS:  # supervised: eao, accuracy, robustness, failures
        scores = vot_supervised.score_results(sequences, resolve("results_dir"), list(expected),
                                              year=dataset)
        overall = {name: t for name, t in scores["trackers"].items()}
    else:
        scores = report.score_results(sequences, resolve("results_dir"), list(expected),
                                      protocol=report.DATASET_PROTOCOLS[dataset])
        overall = {name: t["overall"] for name, t in scores["trackers"].items()}
    mismatches = []
    for tracker, published in expected.items():
        ours = scores["trackers"][tracker]
        assert not ours["errors"], f"{tracker}: {ours['errors'][:3]}"
        for key, value in published.items():
            if abs(overall[tracker][key] - value) > ROUNDING:
                mismatches.append(f"{tracker} {key}: ours {overall[tracker][key]:.4f}, "
                                  f"published {value:.3f}")
    assert not mismatches, "; ".join(mismatches)
