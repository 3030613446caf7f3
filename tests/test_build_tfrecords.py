"""Tests of the TFRecord builder (library and CLI): patches, boxes, manifest, skips, shards."""

from __future__ import annotations

import glob
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from data_fixtures import REPO_ROOT, make_got10k_sequence, make_vid_tree, shared_path
from memnet_tf.data import building, tfrecord
from memnet_tf.data.patches import PatchGeometry, box_in_patch, crop_patch, decode_jpeg
from memnet_tf.data.tracks import load_image

SNIPPET = "ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000"
SNIPPET_2 = "ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000001"
GEOMETRY = PatchGeometry()


def _vid_root(tmp_path, frames=6):
    root = str(tmp_path / "ILSVRC2015")
    paths = make_vid_tree(root, {
        SNIPPET: [[(0, 10 + k, 8, 45 + k, 40), (1, 50, 20, 70, 50)] for k in range(frames)],
        SNIPPET_2: [[(2, 5, 5, 30, 25)] for _ in range(frames)],
    })
    return root, paths


def _records(path):
    return [tfrecord.decode_track(r.numpy(), path) for r in tf.data.TFRecordDataset(path)]


def test_vid_build_writes_the_spec_patches(tmp_path):
    root, paths = _vid_root(tmp_path)
    out = str(tmp_path / "tfr")
    result = building.build_tfrecords("vid", root, out, num_shards=2, min_frames=4,
                                      progress_stream=io.StringIO())
    assert result.num_tracks == 3 and result.num_frames == 18
    assert [os.path.basename(p) for p in result.shards] == [
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert sorted(os.listdir(out)) == sorted(
        [os.path.basename(p) for p in result.shards] + ["train-manifest.json"])  # no temp files
    records = {t.name: t for shard in result.shards for t in _records(shard)}
    assert sorted(records) == [f"{SNIPPET}/0", f"{SNIPPET}/1", f"{SNIPPET_2}/2"]
    track = records[f"{SNIPPET}/0"]
    assert (track.patch_size, track.exemplar_size, len(track)) == (271, 127, 6)
    for k in (0, 5):
        box = [10 + k, 8, 36, 33]  # VID xmin..xmax inclusive -> w = xmax - xmin + 1
        expected_patch, expected_box = crop_patch(load_image(paths[SNIPPET][k]), box, GEOMETRY)
        np.testing.assert_array_equal(track.boxes[k], expected_box)
        np.testing.assert_array_equal(track.boxes[k], box_in_patch(box, GEOMETRY))
        patch = decode_jpeg(track.jpegs[k])
        assert patch.shape == (271, 271, 3)
        assert np.abs(patch.astype(float) - expected_patch).mean() < 3  # JPEG q95
    with open(result.manifest, encoding="utf-8") as f:
        manifest = json.load(f)
    assert manifest["patch_size"] == 271 and manifest["exemplar_size"] == 127
    listed = {name: length for shard in manifest["shards"] for name, length in shard["tracks"]}
    assert listed == {name: 6 for name in records}


def test_graph_parse_agrees_with_the_python_decoder(tmp_path):
    root, _ = _vid_root(tmp_path)
    result = building.build_tfrecords("vid", root, str(tmp_path / "tfr"), num_shards=1,
                                      min_frames=4, progress_stream=io.StringIO())
    serialized = next(iter(tf.data.TFRecordDataset(result.shards[0])))
    context, sequence = tfrecord.parse_sequence_example(serialized)
    track = tfrecord.decode_track(serialized.numpy())
    assert context["seq_name"].numpy().decode() == track.name
    assert int(context["seq_len"]) == len(track) and int(context["patch_size"]) == 271
    np.testing.assert_array_equal(sequence["bboxes"].numpy(), track.boxes)
    assert list(sequence["images"].numpy()) == list(track.jpegs)


def test_bad_source_images_are_skipped_and_counted(tmp_path):
    root, paths = _vid_root(tmp_path)
    with open(paths[SNIPPET][2], "r+b") as f:  # truncate one JPEG
        data = f.read()
        f.seek(0)
        f.truncate()
        f.write(data[:len(data) // 2])
    os.remove(paths[SNIPPET][3])
    result = building.build_tfrecords("vid", root, str(tmp_path / "tfr"), num_shards=1,
                                      min_frames=5, progress_stream=io.StringIO())
    counts = result.skips.counts
    # Tracks 0 and 1 of the first snippet each lose frames 2 and 3 and drop below 5 frames.
    assert counts["corrupt image"] == 2 and counts["missing image"] == 2
    assert counts["track shorter than 5 frames after dropping bad frames"] == 2
    assert result.num_tracks == 1
    with open(result.manifest, encoding="utf-8") as f:
        assert json.load(f)["skipped"]["corrupt image"]["count"] == 2


def test_rebuild_replaces_stale_shards(tmp_path):
    root, _ = _vid_root(tmp_path)
    out = str(tmp_path / "tfr")
    quiet = io.StringIO()
    building.build_tfrecords("vid", root, out, num_shards=3, min_frames=4, progress_stream=quiet)
    assert len(glob.glob(os.path.join(out, "train-*.tfrecord"))) == 3
    building.build_tfrecords("vid", root, out, num_shards=1, min_frames=4, progress_stream=quiet)
    assert [os.path.basename(p) for p in glob.glob(os.path.join(out, "train-*.tfrecord"))] == [
        "train-00000-of-00001.tfrecord"]
    assert tfrecord.list_shards(out, "train") == [os.path.join(out,
                                                               "train-00000-of-00001.tfrecord")]


def test_no_usable_track_is_a_clear_error(tmp_path):
    root, _ = _vid_root(tmp_path)
    with pytest.raises(ValueError, match=r"no usable vid track \(.*track shorter than 50"):
        building.build_tfrecords("vid", root, str(tmp_path / "tfr"), min_frames=50)
    with pytest.raises(FileNotFoundError, match="folder not found"):
        building.build_tfrecords("vid", str(tmp_path / "nowhere"), str(tmp_path / "tfr"))
    assert not os.path.exists(tmp_path / "tfr")


def test_got10k_build(tmp_path):
    train = tmp_path / "GOT-10k" / "train"
    make_got10k_sequence(str(train / "GOT-10k_Train_000001"), [[4, 5, 30, 20]] * 6,
                         absence=[0, 1, 0, 0, 0, 0])
    (train / "list.txt").write_text("GOT-10k_Train_000001\n", encoding="utf-8")
    result = building.build_tfrecords("got10k", str(tmp_path / "GOT-10k"),
                                      str(tmp_path / "tfr"), min_frames=5,
                                      progress_stream=io.StringIO())
    assert result.num_tracks == 1 and result.num_frames == 5
    assert result.skips.counts["frame with the target absent or fully covered"] == 1


def test_otb_mini_build(tmp_path):
    root = shared_path("data", "otb_mini")
    result = building.build_tfrecords("otb", root, str(tmp_path), num_shards=4, min_frames=50,
                                      max_tracks=1, progress_stream=io.StringIO())
    assert result.num_tracks == 1 and len(result.shards) == 1
    track = _records(result.shards[0])[0]
    assert track.name == "Couple" and len(track) == 140
    # Couple's first OTB box "51 47 25 62" is 1-based.
    np.testing.assert_array_equal(track.boxes[0], box_in_patch([50, 46, 25, 62], GEOMETRY))


def _run_cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "build_tfrecords.py"),
                           *args], capture_output=True, text=True, env=env, timeout=240,
                          cwd=str(REPO_ROOT))


def test_cli_error_is_one_line(tmp_path):
    run = _run_cli("--source=got10k", f"--root={tmp_path / 'missing'}",
                   f"--output_dir={tmp_path / 'out'}")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"error: root='{tmp_path / 'missing'}': folder not found"]


def test_cli_builds_with_worker_processes(tmp_path):
    root, _ = _vid_root(tmp_path)
    out = tmp_path / "tfr"
    run = _run_cli("--source=vid", f"--root={root}", f"--output_dir={out}", "--min_frames=4",
                   "--num_shards=2", "--num_workers=2")
    assert run.returncode == 0, run.stderr
    assert "Wrote 3 tracks (18 frames) into 2 shard(s)" in run.stdout
    assert "3/3 tracks, 18 frames" in run.stderr  # the progress bar
    assert len(tfrecord.list_shards(str(out), "train")) == 2
