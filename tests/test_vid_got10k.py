"""Tests of the VID, GOT-10k and OTB readers on tiny trees of real XML/JPEG files and otb_mini."""

from __future__ import annotations

import os

import numpy as np
import pytest

from data_fixtures import make_got10k_sequence, make_vid_tree, shared_path
from memnet_tf.data import got10k, vid
from memnet_tf.data.tracks import SkipReport, Track, load_image, parse_box_lines, \
    read_otb_tracks

SNIPPET_A = "ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000"
SNIPPET_B = "ILSVRC2015_VID_train_0001/ILSVRC2015_train_00001000"


def _vid_fixture(root):
    """Snippet A: track 0 in 6 frames (frame 2 degenerate, frame 4 outside), track 1 in 3 frames,
    track 60 in 6 frames. Snippet B: track 3 in 5 frames and a corrupt XML file."""
    frames_a = []
    for k in range(6):
        objects = [(60, 1, 1, 20, 20)]
        if k == 2:
            objects.append((0, 30, 20, 29, 40))  # xmax < xmin: no area
        elif k == 4:
            objects.append((0, 120, 10, 130, 30))  # starts right of the 96-px frame
        else:
            objects.append((0, 10 + k, 12, 40 + k, 50))
        if k < 3:
            objects.append((1, 50, 5, 80, 25))
        frames_a.append(objects)
    frames_b = [[(3, 5, 6, 25, 30)] for _ in range(5)]
    paths = make_vid_tree(root, {SNIPPET_A: frames_a, SNIPPET_B: frames_b})
    corrupt = os.path.join(root, "Annotations", "VID", "train", SNIPPET_B, "000005.xml")
    with open(corrupt, "w", encoding="utf-8") as f:
        f.write("<annotation>\n<size><width>96</width>\n</annotation>\n")
    return paths, corrupt


def test_vid_tracks_boxes_and_skips(tmp_path):
    root = str(tmp_path / "ILSVRC2015")
    paths, corrupt = _vid_fixture(root)
    skips = SkipReport()
    tracks = vid.read_vid_tracks(root, "train", min_frames=4, skips=skips)
    assert [t.name for t in tracks] == [f"{SNIPPET_A}/0", f"{SNIPPET_B}/3"]
    first = tracks[0]
    # Frames 2 (no area) and 4 (outside) are dropped; VID corners are inclusive.
    assert first.frame_paths == tuple(paths[SNIPPET_A][k] for k in (0, 1, 3, 5))
    np.testing.assert_array_equal(first.boxes, [[10 + k, 12, 31, 39] for k in (0, 1, 3, 5)])
    assert all(os.path.isfile(p) for p in first.frame_paths)
    assert tracks[1].boxes.shape == (5, 4)
    counts = skips.counts
    assert counts["box with no area"] == 1
    assert counts["box outside the frame"] == 1
    assert counts["track shorter than 4 frames"] == 1  # track 1
    assert counts["trackid >= 50"] == 1  # track 60
    assert counts["corrupt annotation file"] == 1
    assert corrupt in skips.examples["corrupt annotation file"][0]


def test_vid_strict_mode_and_errors_name_the_file(tmp_path):
    root = str(tmp_path / "ILSVRC2015")
    _, corrupt = _vid_fixture(root)
    with pytest.raises(ValueError, match=r"000005\.xml line \d+.*corrupt XML"):
        vid.read_vid_tracks(root, "train", min_frames=4, strict=True)
    with pytest.raises(ValueError, match=r"bad\.xml: missing <height>"):
        vid.parse_vid_xml(_write(tmp_path / "bad.xml",
                                 "<annotation><size><width>5</width></size></annotation>"))
    with pytest.raises(FileNotFoundError, match="Annotations/VID/val"):
        vid.read_vid_tracks(root, "val")


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_vid_val_layout_is_not_nested(tmp_path):
    root = str(tmp_path / "ILSVRC2015")
    make_vid_tree(root, {"ILSVRC2015_val_00000000": [[(0, 2, 3, 12, 13)]] * 3}, split="val")
    tracks = vid.read_vid_tracks(root, "val", min_frames=3)
    assert [t.name for t in tracks] == ["ILSVRC2015_val_00000000/0"]
    assert tracks[0].frame_paths[0].endswith(
        os.path.join("Data", "VID", "val", "ILSVRC2015_val_00000000", "000000.JPEG"))


def _got10k_fixture(root):
    train = os.path.join(root, "train")
    boxes = [[5 + k, 6, 20, 15.5] for k in range(6)]
    make_got10k_sequence(os.path.join(train, "GOT-10k_Train_000001"), boxes)
    make_got10k_sequence(os.path.join(train, "GOT-10k_Train_000002"), boxes,
                         absence=[0, 0, 1, 0, 0, 0], cover=[8, 8, 0, 0, 5, 8])
    make_got10k_sequence(os.path.join(train, "GOT-10k_Train_000003"), boxes, num_images=5)
    names = [f"GOT-10k_Train_00000{i}" for i in (1, 2, 3, 4)]  # 4 is listed but missing
    with open(os.path.join(train, "list.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(names) + "\n")
    return train


def test_got10k_tracks_absence_cover_and_skips(tmp_path):
    root = str(tmp_path / "GOT-10k")
    train = _got10k_fixture(root)
    skips = SkipReport()
    tracks = got10k.read_got10k_tracks(root, "train", min_frames=4, skips=skips)
    assert [t.name for t in tracks] == ["GOT-10k_Train_000001", "GOT-10k_Train_000002"]
    np.testing.assert_allclose(tracks[0].boxes, [[5 + k, 6, 20, 15.5] for k in range(6)])
    # Frame 3 absent, frames 3-4 fully covered -> frames 1, 2, 5, 6 stay.
    assert [os.path.basename(p) for p in tracks[1].frame_paths] == [
        "00000001.jpg", "00000002.jpg", "00000005.jpg", "00000006.jpg"]
    assert skips.counts["frame with the target absent or fully covered"] == 2
    assert skips.counts["malformed sequence"] == 2
    examples = " | ".join(skips.examples["malformed sequence"])
    assert "groundtruth.txt: 6 lines but 5 images" in examples
    assert "GOT-10k_Train_000004: sequence folder listed in list.txt not found" in examples
    # The split folder itself is accepted as root.
    assert len(got10k.read_got10k_tracks(train, "train", min_frames=4)) == 2
    with pytest.raises(ValueError, match="6 lines but 5 images"):
        got10k.read_got10k_tracks(root, "train", min_frames=4, strict=True)


def test_got10k_malformed_line_names_file_and_line(tmp_path):
    folder = str(tmp_path / "seq")
    make_got10k_sequence(folder, [[1, 2, 3, 4]] * 3)
    with open(os.path.join(folder, "groundtruth.txt"), "w", encoding="utf-8") as f:
        f.write("1,2,3,4\n1,2,x,4\n1,2,3,4\n")
    with pytest.raises(ValueError, match=r"groundtruth\.txt line 2: not numbers"):
        got10k.read_got10k_sequence(folder)
    with pytest.raises(FileNotFoundError, match="no list.txt"):
        got10k.read_got10k_tracks(str(tmp_path), "train")


def test_parse_box_lines_separators_and_invalid_boxes(tmp_path):
    path = _write(tmp_path / "gt.txt", "1,2,3,4\n5\t6\t7\t8\n9 10 11 12\nnan,1,2,3\n1,2,0,3\n\n")
    boxes = parse_box_lines(path)
    np.testing.assert_array_equal(boxes[0], [1, 2, 3, 4])
    np.testing.assert_array_equal(boxes[1], [5, 6, 7, 8])
    np.testing.assert_array_equal(boxes[2], [9, 10, 11, 12])
    assert boxes[3] is None and boxes[4] is None and len(boxes) == 5
    with pytest.raises(ValueError, match=r"gt2\.txt line 2: expected 4 numbers"):
        parse_box_lines(_write(tmp_path / "gt2.txt", "1,2,3,4\n1,2,3\n"))


def test_track_rejects_bad_boxes():
    with pytest.raises(ValueError, match="frame 1 .*NaN"):
        Track("t", ("a.jpg", "b.jpg"), np.array([[0, 0, 5, 5], [0, np.nan, 5, 5]]))
    with pytest.raises(ValueError, match="non-positive width or height"):
        Track("t", ("a.jpg",), np.array([[0, 0, 0, 5]]))
    with pytest.raises(ValueError, match="2 frames but 1 boxes"):
        Track("t", ("a.jpg", "b.jpg"), np.array([[0, 0, 5, 5]]))


def test_load_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jpg: image file not found"):
        load_image(str(tmp_path / "missing.jpg"))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match="bad.jpg: corrupt or unreadable image"):
        load_image(str(bad))


def test_otb_reader_on_otb_mini():
    root = shared_path("data", "otb_mini")
    skips = SkipReport()
    tracks = {t.name: t for t in read_otb_tracks(root, skips=skips)}
    assert sorted(tracks) == ["Couple", "Crossing", "Dog1", "Football1", "Jogging.1",
                              "Jogging.2"]
    # Couple's first line is "51 47 25 62" (1-based).
    np.testing.assert_array_equal(tracks["Couple"].boxes[0], [50, 46, 25, 62])
    assert len(tracks["Couple"]) == 140
    assert len(tracks["Football1"]) == 74  # 81 images, 74 boxes: the first 74 frames
    assert tracks["Football1"].frame_paths[-1].endswith("0074.jpg")
    assert len(tracks["Jogging.1"]) + skips.counts["frame without a valid box"] <= 307
    image = load_image(tracks["Dog1"].frame_paths[0])  # a greyscale JPEG
    assert image.shape == (240, 320, 3) and image.dtype == np.uint8
