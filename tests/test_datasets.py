"""Tests of the benchmark readers on the shared OTB/VOT data and on fixture trees."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from fixtures_eval import (read_raw_boxes, shared_data, touch, write_boxes, write_image,
                           write_otb_sequence)
from memnet_tf.eval import datasets


def _area_preserving_box(polygon):
    """Loop reference of the got10k VOT rule, written from its definition."""
    xs, ys = polygon[0::2], polygon[1::2]
    side_a = np.hypot(polygon[0] - polygon[2], polygon[1] - polygon[3])
    side_b = np.hypot(polygon[2] - polygon[4], polygon[3] - polygon[5])
    bw, bh = max(xs) - min(xs), max(ys) - min(ys)
    s = np.sqrt(side_a * side_b / (bw * bh))
    w, h = s * bw + 1, s * bh + 1
    return [np.mean(xs) - w / 2, np.mean(ys) - h / 2, w, h]


class TestSharedOtbMini:
    def test_sequences_names_and_frame_counts(self):
        root = shared_data("otb_mini")
        sequences = datasets.load_dataset("otb100", root=str(root))
        counts = {s.name: s.num_frames for s in sequences}
        # Jogging's two targets get got10k's names; Football1 keeps its first 74 of 81 images.
        assert counts == {"Couple": 140, "Crossing": 120, "Dog1": 1350, "Football1": 74,
                          "Jogging.1": 307, "Jogging.2": 307}
        football = next(s for s in sequences if s.name == "Football1")
        assert len(os.listdir(root / "Football1" / "img")) == 81
        assert football.image_files[-1].endswith("0074.jpg")

    def test_ground_truth_is_file_minus_one(self):
        root = shared_data("otb_mini")
        for sequence in datasets.load_dataset("otb100", root=str(root)):
            raw = read_raw_boxes(sequence.annotation_file)
            expected = raw - [1, 1, 0, 0]
            np.testing.assert_array_equal(sequence.ground_truth, expected)
            assert sequence.one_based and sequence.pixel_offset == 1.0
            assert sequence.valid.all()

    def test_two_targets_differ_and_point_to_their_files(self):
        root = shared_data("otb_mini")
        jog = {s.name: s for s in datasets.load_dataset("otb100", root=str(root))
               if s.name.startswith("Jogging")}
        assert jog["Jogging.1"].annotation_file.endswith("groundtruth_rect.1.txt")
        assert jog["Jogging.2"].annotation_file.endswith("groundtruth_rect.2.txt")
        assert not np.allclose(jog["Jogging.1"].ground_truth, jog["Jogging.2"].ground_truth)
        assert jog["Jogging.1"].image_files == jog["Jogging.2"].image_files

    def test_greyscale_frame_is_three_equal_channels(self):
        root = shared_data("otb_mini")
        dog = next(s for s in datasets.load_dataset("otb100", root=str(root)) if s.name == "Dog1")
        frame = datasets.load_frame(dog.image_files[0])
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
        np.testing.assert_array_equal(frame[..., 0], frame[..., 1])
        np.testing.assert_array_equal(frame[..., 1], frame[..., 2])

    def test_attributes_read_from_attrs_file(self):
        root = shared_data("otb_mini")
        by_name = {s.name: s for s in datasets.load_dataset("otb100", root=str(root))}
        text = (root / "Football1" / "attrs.txt").read_text()
        assert by_name["Football1"].attributes == tuple(a.strip() for a in text.split(","))
        assert by_name["Dog1"].attributes == ()

    def test_otb2013_subset_of_shared_tree(self):
        # All five folders are OTB-2013 sequences; Jogging contributes two.
        root = shared_data("otb_mini")
        names = [s.name for s in datasets.load_dataset("otb2013", root=str(root))]
        assert names == ["Couple", "Crossing", "Dog1", "Football1", "Jogging.1", "Jogging.2"]


class TestSharedVot:
    def test_polygons_become_area_preserving_boxes(self):
        root = shared_data("vot_bag")
        (sequence,) = datasets.load_dataset("vot", root=str(root))
        assert sequence.num_frames == 196 and len(sequence.image_files) == 196
        raw = read_raw_boxes(root / "groundtruth.txt")
        np.testing.assert_array_equal(sequence.polygons, raw)
        expected = np.array([_area_preserving_box(p) for p in raw])
        np.testing.assert_allclose(sequence.ground_truth, expected, rtol=0, atol=1e-9)
        assert not sequence.one_based and sequence.valid.all()

    def test_matches_got10k_toolkit(self):
        got10k_vot = pytest.importorskip("got10k.datasets.vot")
        root = shared_data("vot_bag")
        (sequence,) = datasets.load_dataset("vot", root=str(root))
        reference = got10k_vot.VOT._corner2rect(None, sequence.polygons)
        np.testing.assert_allclose(sequence.ground_truth, reference, rtol=0, atol=1e-9)

    def test_frames_load(self):
        root = shared_data("vot_bag")
        (sequence,) = datasets.load_dataset("vot", root=str(root))
        assert datasets.load_frame(sequence.image_files[0]).shape == (360, 480, 3)


class TestOtbFixtures:
    def test_mixed_separators_and_blank_lines(self, tmp_path):
        seq = tmp_path / "Mixed"
        for i in range(1, 4):
            touch(seq / "img" / f"{i:04d}.jpg")
        (seq / "groundtruth_rect.txt").write_text(
            "11,12\t13 14\n\n21, 22, 23, 24\n31\t32\t33\t34\n")
        (sequence,) = datasets.read_otb(str(tmp_path))
        np.testing.assert_array_equal(sequence.ground_truth,
                                      [[10, 11, 13, 14], [20, 21, 23, 24], [30, 31, 33, 34]])
        # Line numbers skip the blank line, so messages point at the right line.
        assert sequence.where(1).endswith("groundtruth_rect.txt:3")

    def test_otb2013_keeps_only_benchmark_folders(self, tmp_path):
        write_otb_sequence(tmp_path, "Basketball", 3, real_images=False)
        write_otb_sequence(tmp_path, "Biker", 3, real_images=False)  # OTB-100 only
        write_otb_sequence(tmp_path, "Jogging", 3, targets=2, real_images=False)
        names = [s.name for s in datasets.load_dataset("otb2013", root=str(tmp_path))]
        assert names == ["Basketball", "Jogging.1", "Jogging.2"]
        all_names = [s.name for s in datasets.load_dataset("otb100", root=str(tmp_path))]
        assert all_names == ["Basketball", "Biker", "Jogging.1", "Jogging.2"]

    def test_otb2013_list_has_50_folders_51_sequences(self):
        assert len(set(datasets.OTB2013_FOLDERS)) == 50
        assert datasets.in_otb2013("Jogging-1") and datasets.in_otb2013("jogging_2")
        assert datasets.in_otb2013("carDark") and not datasets.in_otb2013("Skating2.1")

    def test_annotation_starting_late_uses_frame_range(self, tmp_path):
        # David: 770 images, 471 boxes for images 300..770 (the OTB table, as got10k cuts it).
        boxes = np.tile([[10, 10, 5, 5]], (471, 1))
        write_otb_sequence(tmp_path, "David", 471, boxes=boxes, real_images=False,
                           num_images=770)
        (sequence,) = datasets.read_otb(str(tmp_path))
        assert sequence.num_frames == 471
        assert sequence.image_files[0].endswith("0300.jpg")
        assert sequence.image_files[-1].endswith("0770.jpg")

    def test_custom_frame_range(self, tmp_path):
        write_otb_sequence(tmp_path, "Late", 4, real_images=False, num_images=10)
        (sequence,) = datasets.read_otb(str(tmp_path), frame_ranges={"Late": (5, 8)})
        assert [os.path.basename(f) for f in sequence.image_files] == [
            "0005.jpg", "0006.jpg", "0007.jpg", "0008.jpg"]

    def test_more_images_than_boxes_keeps_first_frames(self, tmp_path):
        write_otb_sequence(tmp_path, "Extra", 5, real_images=False, num_images=9)
        (sequence,) = datasets.read_otb(str(tmp_path))
        assert sequence.num_frames == 5 and sequence.image_files[-1].endswith("0005.jpg")

    def test_empty_annotation_file_is_dropped(self, tmp_path):
        # Human4 ships an empty groundtruth_rect.1.txt: the remaining target keeps the plain name.
        write_otb_sequence(tmp_path, "Human4", 3, targets=2, real_images=False)
        (tmp_path / "Human4" / "groundtruth_rect.1.txt").write_text("\n")
        (sequence,) = datasets.read_otb(str(tmp_path))
        assert sequence.name == "Human4"
        assert sequence.annotation_file.endswith("groundtruth_rect.2.txt")

    def test_zero_size_and_nan_boxes_are_invalid_frames(self, tmp_path):
        boxes = [[5, 5, 4, 4], [5, 5, 0, 4], [np.nan] * 4, [5, 5, 4, -1]]
        write_otb_sequence(tmp_path, "Gaps", 4, boxes=boxes, real_images=False)
        (sequence,) = datasets.read_otb(str(tmp_path))
        np.testing.assert_array_equal(sequence.valid, [True, False, False, False])


class TestBadInput:
    def test_wrong_value_count_names_file_and_line(self, tmp_path):
        write_otb_sequence(tmp_path, "Bad", 3, real_images=False)
        anno = tmp_path / "Bad" / "groundtruth_rect.txt"
        lines = anno.read_text().splitlines()
        lines[1] = "1,2,3"
        anno.write_text("\n".join(lines) + "\n")
        with pytest.raises(datasets.DatasetError, match=rf"{anno}:2: expected 4 values, found 3"):
            datasets.read_otb(str(tmp_path))

    def test_non_numeric_line_names_file_and_line(self, tmp_path):
        write_otb_sequence(tmp_path, "Bad", 3, real_images=False)
        anno = tmp_path / "Bad" / "groundtruth_rect.txt"
        anno.write_text(anno.read_text() + "a,b,c,d\n")
        with pytest.raises(datasets.DatasetError, match=rf"{anno}:4: not a list of numbers"):
            datasets.read_otb(str(tmp_path))

    def test_folder_without_ground_truth_is_reported_and_others_load(self, tmp_path):
        write_otb_sequence(tmp_path, "Good", 3, real_images=False)
        touch(tmp_path / "NoTruth" / "img" / "0001.jpg")
        errors = []
        sequences = datasets.read_otb(str(tmp_path), errors=errors)
        assert [s.name for s in sequences] == ["Good"]
        assert len(errors) == 1 and str(tmp_path / "NoTruth") in errors[0]
        assert "without ground truth" in errors[0]
        with pytest.raises(datasets.DatasetError, match="without ground truth"):
            datasets.read_otb(str(tmp_path))

    def test_missing_frame_file_is_named(self, tmp_path):
        write_otb_sequence(tmp_path, "Holes", 5, real_images=False)
        os.remove(tmp_path / "Holes" / "img" / "0003.jpg")
        errors = []
        assert datasets.read_otb(str(tmp_path), errors=errors) == []
        assert errors == [f"{tmp_path / 'Holes' / 'img' / '0003.jpg'}: missing frame file "
                          "(the images jump from 2 to 4)"]

    def test_fewer_images_than_boxes_names_first_unmatched_line(self, tmp_path):
        write_otb_sequence(tmp_path, "Short", 5, real_images=False, num_images=3)
        anno = tmp_path / "Short" / "groundtruth_rect.txt"
        with pytest.raises(datasets.DatasetError, match=rf"{anno}:4: 5 boxes but only 3 frames"):
            datasets.read_otb(str(tmp_path))

    def test_load_frame_missing_and_corrupt(self, tmp_path):
        missing = tmp_path / "0001.jpg"
        with pytest.raises(FileNotFoundError, match=str(missing)):
            datasets.load_frame(str(missing))
        corrupt = tmp_path / "0002.jpg"
        corrupt.write_bytes(b"not a jpeg at all")
        with pytest.raises(ValueError, match=rf"{corrupt}: not a readable image"):
            datasets.load_frame(str(corrupt))

    def test_unknown_dataset_and_missing_root(self, tmp_path):
        with pytest.raises(ValueError, match="dataset='tfrecord'"):
            datasets.load_dataset("tfrecord", root=str(tmp_path))
        with pytest.raises(ValueError, match="dataset root folder or an annotations JSON"):
            datasets.load_dataset("otb100")
        with pytest.raises(FileNotFoundError, match="not found"):
            datasets.load_dataset("otb100", root=str(tmp_path / "absent"))


class TestOtherLayouts:
    def test_vot_tree_with_list_tags_and_nan_polygon(self, tmp_path):
        polygons = np.array([[1, 1, 9, 1, 9, 7, 1, 7], [2, 1, 10, 2, 9, 8, 1, 7],
                             [np.nan] * 8], np.float64)
        for name in ("ball", "car"):
            for i in range(1, 4):
                touch(tmp_path / name / f"{i:08d}.jpg")
            write_boxes(tmp_path / name / "groundtruth.txt", polygons)
        (tmp_path / "ball" / "occlusion.tag").write_text("0\n1\n")  # shorter than the video
        (tmp_path / "list.txt").write_text("car\nball\n")
        sequences = datasets.read_vot(str(tmp_path))
        assert [s.name for s in sequences] == ["car", "ball"]
        ball = sequences[1]
        assert ball.attributes == ("occlusion",) and sequences[0].attributes == ()
        np.testing.assert_allclose(ball.ground_truth[:2],
                                   [_area_preserving_box(p) for p in polygons[:2]])
        np.testing.assert_array_equal(ball.valid, [True, True, False])

    def test_got10k_split(self, tmp_path):
        split = tmp_path / "val"
        boxes = np.array([[1, 2, 10, 10], [2, 3, 10, 10], [3, 4, 10, 10]], np.float64)
        for i in range(1, 4):
            touch(split / "GOT-10k_Val_000001" / f"{i:08d}.jpg")
        seq = split / "GOT-10k_Val_000001"
        write_boxes(seq / "groundtruth.txt", boxes)
        (seq / "cover.label").write_text("8\n0\n5\n")
        (seq / "meta_info.ini").write_text("[METAINFO]\nresolution: (1280, 720)\n")
        (split / "list.txt").write_text("GOT-10k_Val_000001\n")
        (sequence,) = datasets.load_dataset("got10k", root=str(tmp_path))
        np.testing.assert_array_equal(sequence.ground_truth, boxes)
        np.testing.assert_array_equal(sequence.valid, [True, False, True])
        assert sequence.resolution == (1280, 720) and not sequence.one_based

    def test_lasot_absent_frames(self, tmp_path):
        seq = tmp_path / "airplane" / "airplane-1"
        for i in range(1, 5):
            touch(seq / "img" / f"{i:08d}.jpg")
        write_boxes(seq / "groundtruth.txt", [[1, 1, 5, 5]] * 3 + [[0, 0, 0, 0]])
        (seq / "full_occlusion.txt").write_text("0,1,0,0")
        (seq / "out_of_view.txt").write_text("0,0,0,1")
        (sequence,) = datasets.load_dataset("lasot", root=str(tmp_path))
        assert sequence.name == "airplane-1"
        np.testing.assert_array_equal(sequence.valid, [True, False, True, False])

    def test_pysot_json_with_img_names_and_attributes(self, tmp_path):
        entries = {"Jogging-1": {"video_dir": "Jogging", "init_rect": [111, 98, 25, 101],
                                 "img_names": ["Jogging/img/0001.jpg", "Jogging/img/0002.jpg"],
                                 "gt_rect": [[111, 98, 25, 101], [112, 100, 23, 99]],
                                 "attr": ["OCC", "DEF"]}}
        path = tmp_path / "OTB100.json"
        path.write_text(json.dumps(entries))
        (sequence,) = datasets.load_dataset("otb100", annotations=str(path))
        assert sequence.name == "Jogging-1" and sequence.attributes == ("OCC", "DEF")
        assert sequence.image_files == [str(tmp_path / "Jogging/img/0001.jpg"),
                                        str(tmp_path / "Jogging/img/0002.jpg")]
        np.testing.assert_array_equal(sequence.ground_truth,
                                      [[110, 97, 25, 101], [111, 99, 23, 99]])
        assert [s.name for s in datasets.load_dataset("otb2013", annotations=str(path))] == [
            "Jogging-1"]

    def test_dasiamrpn_json_bare_file_names_and_polygons(self, tmp_path):
        polygon = [1, 1, 9, 1, 9, 7, 1, 7]
        entries = {"bag": {"name": "bag", "image_files": ["00000001.jpg", "00000002.jpg"],
                           "init_rect": polygon, "gt_rect": [polygon, []]}}
        path = tmp_path / "VOT2016.json"
        path.write_text(json.dumps(entries))
        (sequence,) = datasets.load_dataset("vot", root=str(tmp_path / "data"),
                                            annotations=str(path))
        assert sequence.image_files[0] == str(tmp_path / "data" / "bag" / "img" / "00000001.jpg")
        np.testing.assert_allclose(sequence.ground_truth[0], _area_preserving_box(polygon))
        np.testing.assert_array_equal(sequence.valid, [True, False])

    def test_json_entry_without_ground_truth_is_reported(self, tmp_path):
        path = tmp_path / "x.json"
        path.write_text(json.dumps({"a": {"img_names": []},
                                    "b": {"gt_rect": [[1, 1, 2, 2]], "img_names": ["b/1.jpg"]}}))
        errors = []
        sequences = datasets.read_pysot_json(str(path), errors=errors)
        assert [s.name for s in sequences] == ["b"]
        assert errors == [f"{path}: sequence 'a': no 'gt_rect' (sequence without ground truth)"]

    def test_real_frames_of_fixture_load(self, tmp_path):
        write_image(tmp_path / "grey.jpg", grey=True)
        assert datasets.load_frame(str(tmp_path / "grey.jpg")).shape == (24, 32, 3)

    def test_got10k_test_split_loads_but_cannot_be_scored(self, tmp_path):
        from memnet_tf.eval import report

        seq = tmp_path / "test" / "GOT-10k_Test_000001"
        for i in range(1, 4):
            touch(seq / f"{i:08d}.jpg")
        write_boxes(seq / "groundtruth.txt", [[1, 2, 10, 10]])  # first box only
        (tmp_path / "test" / "list.txt").write_text("GOT-10k_Test_000001\n")
        (sequence,) = datasets.load_dataset("got10k", root=str(tmp_path / "test"))
        assert sequence.num_frames == 3
        np.testing.assert_array_equal(sequence.valid, [True, False, False])
        write_boxes(tmp_path / "results" / "T" / "GOT-10k_Test_000001.txt", [[1, 2, 10, 10]] * 3)
        scores = report.score_results([sequence], str(tmp_path / "results"), ["T"], "got10k")
        assert scores["trackers"]["T"]["overall"] is None
        assert "no frame after the first has a visible target" in scores["trackers"]["T"][
            "errors"][0]

    def test_synthetic_is_otb_layout(self, tmp_path):
        written = write_otb_sequence(tmp_path, "synthetic_0001", 3, real_images=False)
        (sequence,) = datasets.load_dataset("synthetic", root=str(tmp_path))
        np.testing.assert_array_equal(sequence.ground_truth, written[0] - [1, 1, 0, 0])
        assert sequence.one_based
