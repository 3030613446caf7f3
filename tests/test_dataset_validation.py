"""Malformed annotation files: one clear error naming the file, never silent padding."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from memnet_tf.eval import datasets
from test_track_cli import write_otb_blob_sequence


def _write_json(tmp_path, entry):
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"Blob": entry}), encoding="utf-8")
    return str(path)


GOOD = {"img_names": [f"Blob/img/{k:04d}.jpg" for k in range(1, 4)],
        "gt_rect": [[1, 2, 10, 10], [2, 3, 10, 10], [3, 4, 10, 10]]}


@pytest.mark.parametrize("change,message", [
    (dict(absent=[1, 1]), "'absent' must hold one flag per box, found 2 for 3 boxes"),
    (dict(absent=[1]), "'absent' must hold one flag per box, found 1 for 3 boxes"),
    (dict(absent=1), "'absent' must hold one flag per box, found int for 3 boxes"),
    (dict(absent=[1, "x", 1]), "'absent' holds non-numeric values"),
    (dict(gt_rect=[1, 2, 3, 4]), "'gt_rect' must be a list of boxes"),
    (dict(gt_rect=[[1, 2, 3, 4], [1, 2, 3]]), "'gt_rect' rows must all have 4 or 8 values"),
])
def test_bad_pysot_entries_name_the_file_and_sequence(tmp_path, change, message):
    path = _write_json(tmp_path, {**GOOD, **change})
    with pytest.raises(datasets.DatasetError, match=re.escape(f"{path}: sequence 'Blob': "
                                                              f"{message}")):
        datasets.read_pysot_json(path)
    problems = []
    assert datasets.read_pysot_json(path, errors=problems) == [] and len(problems) == 1


def test_good_pysot_absent_flags_mark_frames(tmp_path):
    (sequence,) = datasets.read_pysot_json(_write_json(tmp_path, {**GOOD, "absent": [1, 0, 1]}))
    np.testing.assert_array_equal(sequence.valid, [True, False, True])


def _got10k_sequence(tmp_path, labels: str):
    folder = tmp_path / "GOT-10k_Val_000001"
    write_otb_blob_sequence(str(tmp_path / "blob"), 5)
    folder.mkdir()
    for k, image in enumerate(sorted((tmp_path / "blob" / "img").iterdir()), start=1):
        (folder / f"{k:08d}.jpg").write_bytes(image.read_bytes())
    (folder / "groundtruth.txt").write_text("1,2,10,10\n" * 5)
    (folder / "cover.label").write_text(labels)
    return folder


def test_a_truncated_cover_label_is_an_error_not_padding(tmp_path):
    folder = _got10k_sequence(tmp_path, "8\n8\n")
    with pytest.raises(datasets.DatasetError,
                       match=re.escape(f"{folder / 'cover.label'}: 2 flags for 5 frames")):
        datasets._read_got10k_folder(str(folder), folder.name)


def test_vot_tags_may_end_at_their_last_tagged_frame(tmp_path):
    tag = tmp_path / "occlusion.tag"
    tag.write_text("0\n1\n")
    np.testing.assert_array_equal(datasets._read_flags(str(tag), 4, pad=True), [0, 1, 0, 0])
    with pytest.raises(datasets.DatasetError, match="2 flags for 4 frames"):
        datasets._read_flags(str(tag), 4)
