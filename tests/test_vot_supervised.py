"""VOT supervised protocol: region overlap, accuracy/robustness, EAO against explicit loops; the
published VOT2019 reference numbers; the reset runner end to end on vot_bag."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from memnet_tf.eval import datasets, vot_region, vot_supervised
from tests.conftest import require_shared


# ---------------------------------------------------------------------------------------------
# Region overlap.

def _c_round(v):
    return math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1)


def _raster_loop(polygon, width, height):
    """region.c's default scan-line fill, one pixel row and one edge at a time."""
    xs = [_c_round(float(x)) for x in polygon[:, 0]]
    ys = [_c_round(float(y)) for y in polygon[:, 1]]
    n = len(xs)
    mask = np.zeros((height, width), bool)
    for row in range(height):
        nodes = []
        j = n - 1
        for i in range(n):
            yi, yj = int(ys[i]), int(ys[j])
            if ((yi <= row < yj) or (yj <= row < yi) or (yi < row <= yj) or (yj < row <= yi)
                    or (yi == yj == row)):
                r, k = ys[j] - ys[i], xs[j] - xs[i]
                if r != 0:
                    nodes.append(int(xs[i] + (row - ys[i]) / r * k))
            j = i
        nodes.sort()
        i = 0
        while i < len(nodes) - 1:
            if nodes[i] == nodes[i + 1]:
                i += 1
                continue
            if nodes[i] >= width:
                break
            if nodes[i + 1] >= 0:
                for col in range(max(nodes[i], 0), min(nodes[i + 1], width - 1) + 1):
                    mask[row, col] = True
            i += 2
    return mask


def test_rasterize_matches_the_row_by_row_loop():
    rng = np.random.default_rng(0)
    filled = 0
    for _ in range(60):
        centre = rng.uniform(-5, 45, 2)
        size = rng.uniform(2, 30, 2)
        angle = rng.uniform(0, np.pi)
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * size / 2
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        polygon = (corners @ rotation.T + centre).astype(np.float32)
        expected = _raster_loop(polygon, 40, 35)
        np.testing.assert_array_equal(vot_region.rasterize(polygon, 40, 35), expected)
        filled += int(expected.any())
    assert filled > 40  # most random polygons overlap the raster


def test_integer_rectangles_overlap_as_inclusive_pixel_counts():
    rng = np.random.default_rng(1)
    for _ in range(100):
        a = rng.integers(0, 30, 4) + [0, 0, 1, 1]
        b = rng.integers(0, 30, 4) + [0, 0, 1, 1]
        # region.c fills pixels x .. x + w inclusive: (w + 1) * (h + 1) pixels.
        ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]) + 1)
        iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]) + 1)
        inter = ix * iy
        union = (a[2] + 1) * (a[3] + 1) + (b[2] + 1) * (b[3] + 1) - inter
        got = vot_region.region_overlap(a, b, (200, 200))
        touching = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]) <= 0 or min(
            a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]) <= 0
        if inter == 0 or touching:  # region.c: bounding boxes without common area give 0
            assert got == 0.0
        else:
            assert got == pytest.approx(inter / union, abs=1e-6), (a, b)


def test_image_bounds_clip_both_regions_and_codes_have_no_overlap():
    # Half of each box lies left of the image: inside it they coincide exactly.
    a, b = [-10, 0, 20, 10], [-10, 0, 20, 10]
    assert vot_region.region_overlap(a, [-15, 0, 25, 10], (100, 100)) == 1.0
    assert vot_region.region_overlap(a, [-15, 0, 25, 10]) < 1.0
    assert vot_region.region_overlap(a, b, (100, 100)) == 1.0
    assert math.isnan(vot_region.region_overlap([1.0], b, (100, 100)))
    assert vot_region.region_overlap([0, 0, 5, 5], [50, 50, 5, 5], (100, 100)) == 0.0


def test_rotated_polygons_approach_the_exact_iou_when_large():
    # 200-pixel squares rotated by 30 degrees, one shifted: pixel-grid vs exact area.
    def square(cx, cy, side, angle):
        c, s = np.cos(angle), np.sin(angle)
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * side / 2
        return (pts @ np.array([[c, -s], [s, c]]).T + [cx, cy]).ravel()

    a, b = square(300, 300, 200, np.pi / 6), square(340, 300, 200, np.pi / 6)
    # Exact: two congruent squares shifted by d along x, i.e. by d*cos, d*sin in their frame.
    d = 40.0
    u, v = d * np.cos(np.pi / 6), d * np.sin(np.pi / 6)
    inter = (200 - u) * (200 - v)
    exact = inter / (2 * 200 ** 2 - inter)
    assert vot_region.region_overlap(a, b, (1000, 1000)) == pytest.approx(exact, abs=0.01)


# ---------------------------------------------------------------------------------------------
# Accuracy, robustness, EAO against explicit loops.

def _random_trajectory(rng, truth, fail_rate=0.03):
    lines, frame = [np.array([1.0])], 1
    while frame < len(truth):
        if rng.random() < fail_rate:
            lines.append(np.array([2.0]))
            skip = min(4, len(truth) - frame - 1)
            lines += [np.array([0.0])] * skip
            frame += skip + 1
            if frame < len(truth):
                lines.append(np.array([1.0]))
                frame += 1
            continue
        lines.append(truth[frame] + rng.normal(0, 3, 4))
        frame += 1
    return lines[:len(truth)]


def _expected_overlaps_loop(fragments, weights):
    length = fragments.shape[1]
    curve = np.zeros(length, np.float32)
    curve[0] = 1
    for i in range(1, length):
        rows = [r for r in range(len(fragments)) if not np.isnan(fragments[r, i])]
        if rows:
            means = [sum(fragments[r, 1:i + 1]) / i for r in rows]
            curve[i] = sum(m * weights[r] for m, r in zip(means, rows)) / sum(
                weights[r] for r in rows)
    return curve


def test_expected_overlap_curve_equals_the_loop():
    rng = np.random.default_rng(2)
    fragments = rng.uniform(0, 1, (9, 40))
    for row, end in enumerate(rng.integers(3, 40, 9)):
        fragments[row, end:] = np.nan
    fragments[2, 5] = np.nan  # a hole propagates, as in pysot
    fragments[2, 6:] = 0.3
    weights = rng.uniform(0.5, 1, 9)
    got = vot_supervised.expected_overlaps(fragments, weights)
    expected = _expected_overlaps_loop(fragments, weights)
    np.testing.assert_allclose(got, expected, rtol=1e-6, equal_nan=True)
    assert np.isnan(got[6:]).any() and not np.isnan(got[1:5]).any()


def test_fragments_follow_the_reset_points():
    overlaps = [np.array([np.nan, .9, .8, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, .7,
                          .6, .5])]
    # Failure at frame 3 (0-based), re-initialised at 3 + 5 = 8.
    fragments, weights = vot_supervised.eao_fragments(overlaps, [[3]], [12])
    np.testing.assert_allclose(fragments[0], [0, .9, .8, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(fragments[1][:4], [0, .7, .6, .5])
    assert np.isnan(fragments[1][4:]).all()
    np.testing.assert_allclose(weights, [1.0, 4 / 4])


def test_eao_averages_the_curve_over_the_interval():
    curve = np.linspace(1, 0, 400).astype(np.float32)
    assert vot_supervised.eao_score(curve, (100, 356)) == pytest.approx(
        float(np.mean(curve[99:356])), abs=1e-7)


def test_accuracy_robustness_equal_the_definitions():
    rng = np.random.default_rng(3)
    overlaps = {"a": [rng.uniform(0, 1, 50)], "b": [rng.uniform(0, 1, 30)]}
    overlaps["a"][0][:10] = np.nan
    failures = {"a": [3], "b": [1]}
    got = vot_supervised.accuracy_robustness(overlaps, failures)
    values = [v for r in overlaps.values() for v in r[0] if not np.isnan(v)]
    assert got["accuracy"] == pytest.approx(np.mean(values))
    assert got["robustness"] == pytest.approx(4 / 80 * 100)
    assert got["failures"] == 4 and got["frames"] == 80


def test_burn_in_hides_ten_frames_from_each_initialisation():
    truth = [np.array([10.0, 10, 20, 20])] * 30
    trajectory = [np.array([1.0])] + [truth[0]] * 14 + [np.array([2.0])] + [np.array([0.0])] * 4 \
        + [np.array([1.0])] + [truth[0]] * 9
    overlaps = vot_supervised.trajectory_overlaps(trajectory, truth, (100, 100), burn_in=10)
    assert np.isnan(overlaps[:10]).all() and (overlaps[10:15] == 1).all()
    assert np.isnan(overlaps[15:30]).all()


# ---------------------------------------------------------------------------------------------
# Published VOT2019 results (../shared/data/published/vot2019): the README's reference numbers.

@pytest.mark.slow
def test_published_vot2019_ocean_reproduces_the_reference_numbers():
    root = require_shared("data", "published", "vot2019")
    sequences = datasets.load_dataset("vot2019", annotations=str(root / "VOT2019.json"))
    assert len(sequences) == 60 and sum(s.num_frames for s in sequences) == 19935
    scores = vot_supervised.score_results(sequences, str(root / "results"),
                                          ["Ocean_VOT2019_0.323"], year="vot2019")
    t = scores["trackers"]["Ocean_VOT2019_0.323"]
    assert t["errors"] == []
    # README: EAO 0.3229, accuracy 0.5984, robustness 0.4013, 80 failures.
    assert round(t["eao"], 4) == 0.3229
    assert round(t["accuracy"], 4) == 0.5984
    assert round(t["robustness"], 4) == 0.4013
    assert t["failures"] == 80


# ---------------------------------------------------------------------------------------------
# Running our tracker with resets, end to end.

class _JumpingTracker:
    """Returns the ground truth, except that its 40th update after each (re-)initialisation
    jumps far off the target (a failure)."""

    name = "Jumping"

    def __init__(self, truth):
        self.truth, self.frame = np.asarray(truth), -1

    def init(self, image, box):
        later = np.flatnonzero(np.all(np.isclose(self.truth, box), axis=1))
        self.frame, self.count = int(later[later > self.frame][0]), 0

    def update(self, image):
        self.frame += 1
        self.count += 1
        box = self.truth[self.frame].copy()
        return box + [1000, 1000, 0, 0] if self.count == 40 else box


def test_reset_runner_writes_vot_files_that_score(tmp_path):
    root = require_shared("data", "vot_bag")
    (sequence,) = datasets.load_dataset("vot2019", root=str(root))
    sequence.image_files = sequence.image_files[:90]
    sequence.ground_truth, sequence.polygons = sequence.ground_truth[:90], sequence.polygons[:90]
    sequence.valid = sequence.valid[:90]
    lines, _ = vot_supervised.track_supervised(_JumpingTracker(sequence.ground_truth), sequence)
    codes = [line for line in lines if "," not in line]
    assert lines[0] == "1" and lines[40] == "2" and lines[41:45] == ["0"] * 4
    assert lines[45] == "1" and lines[85] == "2"
    assert len(lines) == 90 and codes.count("2") == 2
    run = vot_supervised.run_supervised(lambda: _JumpingTracker(sequence.ground_truth), [sequence], str(tmp_path),
                                        "Jumping", progress=False)
    assert run["completed"] == [sequence.name]
    path = tmp_path / "Jumping" / "baseline" / sequence.name / f"{sequence.name}_001.txt"
    assert path.read_text().split() == lines
    scores = vot_supervised.score_results([sequence], str(tmp_path), ["Jumping"], "vot2019")
    assert scores["trackers"]["Jumping"]["failures"] == 2
    # Resume: a complete file is kept.
    again = vot_supervised.run_supervised(lambda: _JumpingTracker(sequence.ground_truth), [sequence], str(tmp_path),
                                          "Jumping", progress=False)
    assert again["skipped"] == [sequence.name]


@pytest.mark.slow
def test_evaluate_runs_our_tracker_with_resets_on_vot_bag(tmp_path):
    from test_track_cli import write_tiny_run

    root = require_shared("data", "vot_bag")
    tiny_run_dir = write_tiny_run(tmp_path / "run")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run(
        [sys.executable, "-m", "memnet_tf.evaluate", "--dataset=vot2016",
         "--protocol=supervised", f"--dataset_root={root}", f"--results_dir={tmp_path}",
         f"--checkpoint={tiny_run_dir}", "--tracker_name=Ours",
         f"--report_dir={tmp_path / 'report'}"],
        capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(l for l in run.stdout.splitlines() if l.startswith("Ours: eao="))
    eao = float(line.split("eao=")[1].split()[0])
    assert 0 <= eao <= 1
    name = os.path.basename(str(root))
    written = (tmp_path / "Ours" / "baseline" / name / f"{name}_001.txt").read_text().split()
    assert written[0] == "1" and len(written) == 196
    assert (tmp_path / "report" / "eao_curve.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "report" / "scores.json").read_text())
    failures = written.count("2")
    assert saved["trackers"]["Ours"]["failures"] == failures
    assert f"failures={failures}" in line
    # Every failure is followed by 4 skipped frames and a re-initialisation (unless the
    # sequence ends first).
    for index in [i for i, v in enumerate(written) if v == "2" and i + 5 < len(written)]:
        assert written[index + 1:index + 6] == ["0"] * 4 + ["1"]
