"""Real-video training: sequence splits, the frozen backbone's feature cache, the residual ablation
and the experiment report's arithmetic."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO_ROOT
from data_fixtures import textured_image, write_jpeg

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))


def make_otb_tree(root, sequences: dict, size=(96, 72), seed=0):
    """OTB-layout sequences: {name: list of 1-based "x,y,w,h" lines or raw text lines}."""
    rng = np.random.default_rng(seed)
    for name, lines in sequences.items():
        folder = os.path.join(root, name, "img")
        os.makedirs(folder)
        for i in range(len(lines)):
            write_jpeg(os.path.join(folder, f"{i + 1:04d}.jpg"),
                       textured_image(rng, size[1], size[0]))
        with open(os.path.join(root, name, "groundtruth_rect.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")


def boxes(count, x=30, y=20):
    return [f"{x + k},{y + k % 3},24,20" for k in range(count)]


@pytest.fixture
def otb_tree(tmp_path):
    root = str(tmp_path / "aerial")
    make_otb_tree(root, {
        "alpha": boxes(14),
        "beta": boxes(6) + ["NaN,NaN,NaN,NaN"] * 3 + boxes(6),
        "gamma": boxes(14),
        "allnan": ["NaN,NaN,NaN,NaN"] * 8,
        "broken": boxes(5) + ["1,2,3"] + boxes(5),
    })
    return root


# ---------------------------------------------------------------------------------------------
# Splits by whole sequences.


def test_split_by_sequence_is_disjoint_and_counts_only_selected_absent_frames(otb_tree, tmp_path):
    from memnet_tf.data import building

    out = str(tmp_path / "tfr")
    val = building.build_tfrecords("otb", otb_tree, out, split="val", num_shards=1, min_frames=4,
                                   sequences=["Gamma"], progress_stream=io.StringIO())
    train = building.build_tfrecords("otb", otb_tree, out, split="train", num_shards=2,
                                     min_frames=4, exclude_sequences=["gamma"],
                                     progress_stream=io.StringIO())
    val_names = {t for s in json.load(open(val.manifest))["shards"] for t, _ in s["tracks"]}
    train_names = {t for s in json.load(open(train.manifest))["shards"] for t, _ in s["tracks"]}
    assert val_names == {"gamma"}
    assert train_names == {"alpha", "beta"} and not val_names & train_names
    # gamma has no absent frame: the val build counts none; train counts beta's 3 and allnan's 8
    # NaN rows, drops allnan as too short and names the malformed ground-truth file.
    assert val.skips.total() == 0
    counts = train.skips.counts
    assert counts["frame without a valid box"] == 3 + 8
    assert any("shorter" in reason for reason in counts)
    malformed = train.skips.as_dict()["malformed sequence"]
    assert malformed["count"] == 1 and "broken" in malformed["examples"][0]
    assert "groundtruth_rect.txt:6" in malformed["examples"][0]
    assert train.num_frames == 14 + 12


def test_unknown_sequence_name_is_an_error_naming_it(otb_tree, tmp_path):
    from memnet_tf.data import building

    with pytest.raises(ValueError, match="--sequences: no such sequence delta"):
        building.build_tfrecords("otb", otb_tree, str(tmp_path / "tfr"), sequences=["delta"],
                                 progress_stream=io.StringIO())


def test_sequence_of_names_the_video():
    from memnet_tf.data.building import sequence_of

    assert sequence_of("Jogging.1") == "Jogging"
    assert sequence_of("ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000/3") == \
        "ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000"
    assert sequence_of("GOT-10k_Train_000001") == "GOT-10k_Train_000001"


# ---------------------------------------------------------------------------------------------
# Feature cache.


def _configs(tfr, **data):
    from memnet_tf.config import DataConfig, ModelConfig

    model_cfg = ModelConfig(width_multiplier=0.125, hidden_size=16, memory_size=4,
                            controller_dropout=0.0)
    data_cfg = DataConfig(dataset="tfrecord", data_dir=tfr, time_steps=3, batch_size=2,
                          feature_cache=os.path.join(tfr, "features"), **data)
    return model_cfg, data_cfg


@pytest.fixture
def shards(otb_tree, tmp_path):
    from memnet_tf.data import building

    out = str(tmp_path / "tfr")
    building.build_tfrecords("otb", otb_tree, out, split="val", num_shards=1, min_frames=4,
                             sequences=["gamma"], progress_stream=io.StringIO())
    building.build_tfrecords("otb", otb_tree, out, split="train", num_shards=1, min_frames=4,
                             sequences=["alpha", "beta"], progress_stream=io.StringIO())
    return out


def _cache(shards, augmentations=2, **data):
    from memnet_tf.data import feature_cache
    from memnet_tf.models.memtrack import build_model

    model_cfg, data_cfg = _configs(shards, **data)
    model = build_model(model_cfg, seed=0)
    cache = feature_cache.ensure_cache(model, model_cfg, data_cfg, data_cfg.feature_cache,
                                       "train", augmentations, 7, progress=lambda _: None)
    return model, model_cfg, data_cfg, cache


def _patches(shards, model_cfg, data_cfg):
    from memnet_tf.data import tfrecord

    (path,) = tfrecord.list_shards(shards, "train")
    out = []
    for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
        track = tfrecord.decode_track(serialized)
        out.append(tfrecord.decode_patches(track, np.arange(len(track)),
                                           model_cfg.search_size + 2 * data_cfg.patch_margin))
    return out


def test_centre_exemplars_are_the_backbone_features_of_the_centre_crops(shards):
    model, model_cfg, data_cfg, cache = _cache(shards)
    patches = np.concatenate(_patches(shards, model_cfg, data_cfg))
    offset = (patches.shape[1] - model_cfg.exemplar_size) // 2
    crops = patches[:, offset:offset + model_cfg.exemplar_size,
                    offset:offset + model_cfg.exemplar_size].astype(np.float32) / 255.0
    expected = model.encode(crops, training=False).numpy()
    np.testing.assert_allclose(cache.centre_exemplar, expected, rtol=2e-3,
                               atol=2e-3 * np.abs(expected).max())
    assert cache.num_tracks == 2 and cache.search.shape[:2] == (26, 2)


def test_without_augmentation_every_cached_search_is_the_centre_search_crop(shards):
    model, model_cfg, data_cfg, cache = _cache(
        shards, augmentations=3, search_stretch=0.0, search_shift=0.0, exemplar_stretch=0.0,
        exemplar_shift=0.0)
    patches = np.concatenate(_patches(shards, model_cfg, data_cfg))
    s, e = model_cfg.search_size, model_cfg.exemplar_size
    off_s, off_e = (patches.shape[1] - s) // 2, (patches.shape[1] - e) // 2
    search = model.encode(patches[:, off_s:off_s + s, off_s:off_s + s] / 255.0,
                          training=False).numpy()
    exemplar = model.encode(patches[:, off_e:off_e + e, off_e:off_e + e] / 255.0,
                            training=False).numpy()
    scale = np.abs(search).max()
    for k in range(3):
        np.testing.assert_allclose(cache.search[:, k], search, atol=3e-3 * scale)
        np.testing.assert_allclose(cache.exemplar[:, k], exemplar, atol=3e-3 * scale)


def test_cached_labels_are_those_of_the_cached_search_boxes(shards):
    from memnet_tf.data import labels

    _, model_cfg, data_cfg, cache = _cache(shards)
    flat_boxes = np.asarray(cache.search_box).reshape(-1, 4)
    label, weight = labels.iou_labels(tf.constant(flat_boxes), model_cfg.response_size,
                                      data_cfg.label_iou_threshold)
    np.testing.assert_array_equal(np.asarray(cache.label).reshape(label.shape), label.numpy())
    np.testing.assert_allclose(np.asarray(cache.weight).reshape(weight.shape), weight.numpy())
    # The K augmentations differ (else the cache would hold one augmentation K times).
    assert not np.allclose(cache.search_box[:, 0], cache.search_box[:, 1])


def test_cache_is_reused_and_refused_for_other_settings(shards):
    from memnet_tf.data import feature_cache

    model, model_cfg, data_cfg, _ = _cache(shards)
    manifest = os.path.join(data_cfg.feature_cache, "train-conv5-cache.json")
    stamp = os.path.getmtime(manifest)
    feature_cache.ensure_cache(model, model_cfg, data_cfg, data_cfg.feature_cache, "train", 2, 7)
    assert os.path.getmtime(manifest) == stamp  # reused, not rebuilt
    with pytest.raises(ValueError, match="augmentations: 2 cached, 3 now"):
        feature_cache.ensure_cache(model, model_cfg, data_cfg, data_cfg.feature_cache, "train",
                                   3, 7)
    model.backbone.conv1.kernel.assign(model.backbone.conv1.kernel * 2.0)
    with pytest.raises(ValueError, match="backbone_sha256"):
        feature_cache.ensure_cache(model, model_cfg, data_cfg, data_cfg.feature_cache, "train",
                                   2, 7)
    assert not [f for f in os.listdir(data_cfg.feature_cache) if f.startswith(".")]


def test_clips_stay_inside_one_track_in_temporal_order(shards):
    from memnet_tf.data import feature_cache

    _, _, _, cache = _cache(shards)
    for number in range(40):
        track, rows, augmentation = feature_cache.clip_rows(cache, 3, "train", 5, number)
        start, end = cache.track_starts[track], cache.track_starts[track + 1]
        assert np.all((rows >= start) & (rows < end - 1))  # the last frame is never used
        assert np.all(np.diff(rows) > 0) and rows.shape == (4,)
        assert np.all((augmentation >= 0) & (augmentation < 2))
    first = feature_cache.clip_rows(cache, 3, "val", 5, 3)
    again = feature_cache.clip_rows(cache, 3, "val", 5, 3)
    np.testing.assert_array_equal(first[1], again[1])
    for number in range(20):  # --max_frame_gap: successive rows at most 2 frames apart
        track, rows, _ = feature_cache.clip_rows(cache, 3, "train", 5, number, max_frame_gap=2)
        assert np.all(np.diff(rows) >= 1) and np.all(np.diff(rows) <= 2)
        assert rows[0] >= cache.track_starts[track] and rows[-1] < cache.track_starts[track + 1] - 1


def test_gathered_clip_pairs_exemplar_t_with_search_t_plus_1(shards):
    from memnet_tf.data import feature_cache

    _, _, _, cache = _cache(shards)
    _, rows, augmentation = feature_cache.clip_rows(cache, 3, "train", 1, 0)
    exemplar, search, label, _, box = feature_cache.gather_clip(cache, rows, augmentation)
    np.testing.assert_array_equal(exemplar[0], cache.centre_exemplar[rows[0]])
    for t in range(1, 3):
        np.testing.assert_array_equal(exemplar[t], cache.exemplar[rows[t], augmentation[t]])
    for t in range(3):
        np.testing.assert_array_equal(search[t], cache.search[rows[t + 1], augmentation[t + 1]])
        np.testing.assert_array_equal(label[t], cache.label[rows[t + 1], augmentation[t + 1]])
        np.testing.assert_array_equal(box[t], cache.search_box[rows[t + 1], augmentation[t + 1]])


def _model_and_random_clips(model_cfg, seed):
    """A tiny model and random image clips `{exemplar, search}` of `[B=2, T=3, side, side, 3]`."""
    from memnet_tf.models.memtrack import build_model

    rng = np.random.default_rng(seed)
    images = {kind: tf.constant(rng.uniform(size=(2, 3, side, side, 3)), tf.float32)
              for kind, side in (("exemplar", model_cfg.exemplar_size),
                                 ("search", model_cfg.search_size))}
    return build_model(model_cfg, seed=0), images


def test_model_on_features_equals_model_on_images(tiny_model_config):
    model, images = _model_and_random_clips(tiny_model_config, seed=3)
    exemplar, search = model.encode_clips(images)
    from_images = model(images, training=False)
    from_features = model({"exemplar_features": exemplar, "search_features": search},
                          training=False)
    for name, value in from_images.items():
        np.testing.assert_allclose(from_features[name], value, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="search_features: expected shape"):
        model({"exemplar_features": exemplar, "search_features": search[..., :3]})


def test_model_on_conv4_features_equals_model_on_images(tiny_model_config):
    """Cached conv4 features + the model's conv5 = the model on images, gradients reach conv5."""
    model, images = _model_and_random_clips(tiny_model_config, seed=4)
    cfg = tiny_model_config

    def conv4(clips):
        flat = tf.reshape(clips, [-1, *clips.shape[2:]])
        out = model.backbone.features_after(flat, 4)
        return tf.reshape(out, [*clips.shape[:2], *out.shape[1:]])

    cached = {"exemplar_conv4": conv4(images["exemplar"]),
              "search_conv4": conv4(images["search"])}
    assert cached["search_conv4"].shape[-1] == cfg.channels[3]
    from_images = model(images, training=False)
    with tf.GradientTape() as tape:
        from_conv4 = model(cached, training=False)
        loss = tf.reduce_sum(from_conv4["response"])
    for name, value in from_images.items():
        np.testing.assert_allclose(from_conv4[name], value, rtol=1e-5, atol=1e-5)
    grads = tape.gradient(loss, model.backbone.conv5.trainable_weights)
    assert all(g is not None and np.abs(g.numpy()).max() > 0 for g in grads)
    with pytest.raises(ValueError, match="search_conv4: expected shape"):
        model({"exemplar_conv4": cached["exemplar_conv4"],
               "search_conv4": cached["search_conv4"][..., :3]})


def test_conv4_cache_holds_conv4_features_beside_the_conv5_cache(shards):
    from memnet_tf.data import feature_cache

    model, model_cfg, data_cfg, conv5 = _cache(shards)
    conv4 = feature_cache.ensure_cache(model, model_cfg, data_cfg, data_cfg.feature_cache,
                                       "train", 2, 7, progress=lambda _: None, layer=4)
    assert conv4.layer == 4 and conv5.layer == 5
    patches = np.concatenate(_patches(shards, model_cfg, data_cfg))
    offset = (patches.shape[1] - model_cfg.exemplar_size) // 2
    crops = patches[:, offset:offset + model_cfg.exemplar_size,
                    offset:offset + model_cfg.exemplar_size].astype(np.float32) / 255.0
    expected = model.backbone.features_after(crops, 4).numpy()
    np.testing.assert_allclose(conv4.centre_exemplar, expected, rtol=2e-3,
                               atol=2e-3 * np.abs(expected).max())
    # Same augmentations at both layers: conv5 of the cached conv4 search crops is the conv5 cache.
    finished = model.backbone.continue_from(np.asarray(conv4.search[:4, 1], np.float32), 4)
    np.testing.assert_allclose(finished, conv5.search[:4, 1], rtol=1e-2,
                               atol=1e-2 * np.abs(finished).max())
    np.testing.assert_array_equal(conv4.search_box, conv5.search_box)
    reread = feature_cache.read_cache(data_cfg.feature_cache, "train", layer=5)
    np.testing.assert_array_equal(reread.search, conv5.search)  # not overwritten by conv4's
    features, _ = next(iter(feature_cache.make_dataset(conv4, 3, "train", 0, 2)))
    assert sorted(features) == ["exemplar_conv4", "search_conv4"]


def test_without_residual_the_template_is_the_retrieved_one():
    from memnet_tf.layers import addressing
    from memnet_tf.layers.memory import MemoryControls, memory_step

    rng = np.random.default_rng(0)
    b, n, h, c = 2, 4, 3, 5
    f = lambda *shape: tf.constant(rng.normal(size=shape), tf.float32)  # noqa: E731
    gates = tf.nn.softmax(f(b, 3))
    logits = f(b, c)
    controls = MemoryControls(gates, tf.sigmoid(f(b, 1)), tf.sigmoid(logits), f(b, c),
                              tf.nn.softplus(f(b, 1)), logits)
    args = (controls, f(b, h, h, c), f(b, h, h, c), f(b, n, h, h, c),
            tf.nn.softmax(f(b, n)), tf.nn.softmax(f(b, 3)), tf.sigmoid(f(b, 1)),
            tf.nn.softmax(f(b, n)), 0.99)
    with_residual = memory_step(*args)
    alone = memory_step(*args, use_residual=False)
    retrieved = np.einsum("bn,bnhwc->bhwc", alone.read_weights.numpy(), alone.memory.numpy())
    np.testing.assert_allclose(alone.template, retrieved, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(with_residual.template,
                               args[2].numpy() + controls.residual_gate.numpy()[:, None, None]
                               * retrieved, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(alone.memory, with_residual.memory)
    del addressing


@pytest.mark.slow
def test_training_on_cached_features_end_to_end(shards, tmp_path):
    """train --feature_cache: builds the cache, trains, resumes with the cache reused."""
    backbone = tmp_path / "backbone"
    model_dir = tmp_path / "run"
    common = [sys.executable, "-m", "memnet_tf.train", "--flagfile=experiments/tiny.flags",
              "--dataset=tfrecord", f"--data_dir={shards}",
              f"--feature_cache={tmp_path / 'cache'}", "--feature_cache_augmentations=2",
              "--freeze_backbone", "--final_eval_sequences=0", "--validation_steps=1",
              "--log_every=1", "--time_steps=3"]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    first = subprocess.run(common + [f"--model_dir={backbone}", "--train_steps=1",
                                     "--nofreeze_backbone", "--feature_cache="],
                           cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    run = subprocess.run(common + [f"--model_dir={model_dir}", f"--init_backbone={backbone}",
                                   "--train_steps=3", "--checkpoint_every=3",
                                   "--time_steps=11", "--corrupt_write_prob=0.5"],
                         cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "feature cache (conv5, train): 2 tracks, 26 frames x 2 augmentations" in run.stdout
    # beta has 12 frames: too short for T = 11 (13 needed), said rather than silently unused.
    assert "1 track(s) shorter than 13 frames are never sampled: beta" in run.stdout
    assert os.path.isfile(model_dir / "checkpoint")
    # Cached features have no crops to show, but the memory panels and gate histograms need none.
    from test_summaries import _events

    assert "memory_panel/clip_1" in _events(model_dir / "validation")
    assert "gates/control_gates" in _events(model_dir / "train")
    for wrong_writes in ("other_clip", "shifted"):
        probe = subprocess.run([sys.executable, "tools/read_selectivity.py", f"--runs={model_dir}",
                                f"--feature_cache={tmp_path / 'cache'}", "--batches=1",
                                f"--wrong_writes={wrong_writes}"],
                               cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=600)
        assert probe.returncode == 0, probe.stderr[-2000:]
        assert probe.stdout.splitlines()[-1].startswith(
            f"headline: read mass on wrong slots ({wrong_writes}) / their share = "), probe.stdout
        agreement = subprocess.run(
            [sys.executable, "tools/memory_agreement.py", f"--runs={model_dir}",
             f"--feature_cache={tmp_path / 'cache'}", "--batches=1", "--burst=4",
             f"--wrong_writes={wrong_writes}"],
            cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=600)
        assert agreement.returncode == 0, agreement.stderr[-2000:]
        assert agreement.stdout.splitlines()[-1].startswith(
            f"headline: cos(T_retr, T_0) at the end of 4 {wrong_writes} wrong writes - with "
            "right writes = "), agreement.stdout
    too_long = subprocess.run(
        [sys.executable, "tools/memory_agreement.py", f"--runs={model_dir}",
         f"--feature_cache={tmp_path / 'cache'}", "--burst=11"],
        cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert too_long.returncode == 2 and "--burst=11" in too_long.stderr, too_long.stderr[-2000:]
    conv5 = subprocess.run(common + [f"--model_dir={tmp_path / 'conv5'}",
                                     f"--init_backbone={backbone}", "--train_steps=2",
                                     "--nofreeze_backbone", "--frozen_backbone_layers=4",
                                     "--backbone_learning_rate_scale=0.1",
                                     "--shifted_write_prob=0.5"],
                           cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert conv5.returncode == 0, conv5.stderr[-2000:]
    assert "feature cache (conv4, train): 2 tracks, 26 frames x 2 augmentations" in conv5.stdout
    assert "(conv1-4 frozen)" in conv5.stdout
    assert sorted(f for f in os.listdir(tmp_path / "cache") if f.endswith("cache.json")) == [
        "train-conv4-cache.json", "train-conv5-cache.json", "val-conv4-cache.json",
        "val-conv5-cache.json"]
    no_init = subprocess.run(common + [f"--model_dir={tmp_path / 'bad'}", "--train_steps=1"],
                             cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert no_init.returncode == 2 and "needs --freeze_backbone (or --frozen_backbone_layers) and --init_backbone" in \
        no_init.stderr


# ---------------------------------------------------------------------------------------------
# The experiment report.


def test_headline_pairs_seeds_and_reports_their_spread(tmp_path):
    import memory_on_real_video as bench

    rows = []
    auc = {("memtrack", 0): [0.7, 0.5], ("memtrack", 1): [0.6, 0.6], ("no_memory", 0): [0.6, 0.5],
           ("no_memory", 1): [0.62, 0.5], ("no_memory", 2): [0.1, 0.1]}
    for (variant, seed), values in auc.items():
        for i, value in enumerate(values):
            rows.append({"run": f"{variant}_seed{seed}", "sequence": f"s{i}", "AUC": value,
                         "prec": value})
    variants = bench.summarise_variants(rows)
    assert variants["memtrack"][0] == pytest.approx((0.6, 0.6))
    deltas = [0.6 - 0.55, 0.6 - 0.56]  # seed 2 has no memtrack run: not paired
    (line,) = bench.headline(variants)
    assert line.startswith(f"headline: MemTrack - no-memory twin = {np.mean(deltas):+.3f} "
                           "mean AUC (2 seeds")
    assert f"spread +-{np.std(deltas, ddof=1):.3f}" in line
    assert "nothing to compare" in bench.headline({"memtrack": {0: (0.5, 0.5)}})[-1]
    # Other recipes pair memtrack_<recipe> with no_memory_<recipe>; the plain pair stays last.
    both = {**variants, "memtrack_conv5": {0: (0.7, 0.7)}, "no_memory_conv5": {0: (0.6, 0.6)}}
    assert bench.headline(both) == [
        "pair: MemTrack - no-memory twin (conv5) = +0.100 mean AUC (1 seed, spread +-0.000)",
        line]
    only = bench.headline({"memtrack_conv5": {0: (0.7, 0.7)}, "no_memory_conv5": {0: (0.6, 0.6)}})
    assert only[-1].startswith("headline: MemTrack - no-memory twin (conv5) = +0.100")
    # A recipe without a twin of its own is paired with the plain twin, and says so.
    borrowed = bench.headline({"memtrack_sw03": {0: (0.7, 0.7), 1: (0.5, 0.5)},
                               "no_memory": {0: (0.6, 0.6), 1: (0.6, 0.6)}})
    assert borrowed == ["headline: MemTrack - no-memory twin (sw03; twin: no_memory) = +0.000 "
                        "mean AUC (2 seeds, spread +-0.141)"]
    for row in rows:
        row.update(dataset="d", frames=3, fps=12.345, gates="-", r="-", **{"|rT|/|T0|": "-",
                                                                          "max w_r": "-"})
    text = bench.format_report(rows, "title", "machine")
    assert text.splitlines()[-1] == line and "12.3" in text
    assert "| no_memory | 3     | 0.403" in text
    bench.plot_variants(rows, str(tmp_path / "auc.png"), "title")
    assert (tmp_path / "auc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_folders_are_discovered_by_name(tmp_path):
    import memory_on_real_video as bench

    for name in ("memtrack_seed0", "no_memory_seed12", "notes", "memtrack_seed1"):
        (tmp_path / name).mkdir()
    for name in ("memtrack_seed0", "no_memory_seed12", "notes"):
        (tmp_path / name / "checkpoint").write_text("x")
    assert sorted(bench.discover_runs(str(tmp_path))) == ["memtrack_seed0", "no_memory_seed12"]
    assert bench.variant_of("no_memory_seed12") == ("no_memory", 12)
    with pytest.raises(ValueError, match="not <variant>_seed<k>:DIR"):
        bench.parse_runs("memtrack:/tmp")


@pytest.mark.parametrize("args, message", [
    (["--variants=memtrack,bogus"], "--variants: unknown ['bogus']"),
    (["--seeds=0,x"], "--seeds: integers expected"),
    (["--evaluate=train"], "--evaluate: unknown ['train']"),
    (["--memory_write_interval=0"], "memory_write_interval"),
])
def test_experiment_tool_rejects_bad_arguments(tmp_path, args, message):
    result = subprocess.run([sys.executable, "tools/real_video_experiment.py",
                             f"--output_dir={tmp_path}", *args], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and message in result.stderr
    assert not os.listdir(tmp_path)  # nothing written before the arguments are checked


def test_memory_columns_survive_a_resumed_benchmark(tmp_path):
    """Reused results show the memory diagnostics they were tracked with (kept beside them)."""
    import memory_on_real_video as bench

    os.makedirs(tmp_path / "memtrack_seed0")
    records = [{"gates": np.array([0.1, 0.2, 0.7]), "r": 0.5, "residual_ratio": 0.25,
                "max_read": 0.4, "agreement": 0.9, "wrote": True},
               {"gates": np.array([0.3, 0.2, 0.5]), "r": 0.7, "residual_ratio": 0.35,
                "max_read": 0.6, "agreement": 0.3, "wrote": False}]
    tracked = bench.memory_columns(str(tmp_path), "memtrack_seed0", "Dog1", records)
    assert tracked == {"gates": "0.20/0.20/0.60", "r": "0.600", "|rT|/|T0|": "0.300",
                       "cos(Tr,T0)": "0.60", "max w_r": "0.50", "writes": "0.50"}
    assert bench.memory_columns(str(tmp_path), "memtrack_seed0", "Dog1", None) == tracked
    # Never tracked here (or a tracker without memory): nothing to show, said as "-".
    assert bench.memory_columns(str(tmp_path), "memtrack_seed0", "Couple", None)["r"] == "-"
    assert sorted(os.listdir(tmp_path / "memtrack_seed0")) == ["Dog1_memory.json",
                                                               "Dog1_memory_frames.json"]
    with open(tmp_path / "memtrack_seed0" / "Dog1_memory_frames.json", encoding="utf-8") as f:
        assert json.load(f) == {"r": [0.5, 0.7], "agreement": [0.9, 0.3], "wrote": [True, False]}


@pytest.mark.parametrize("args, message", [
    (["--memory_write_interval=0"], "memory_write_interval=0"),
    (["--memory_write_min_psr=-2"], "memory_write_min_psr=-2"),
])
def test_benchmark_rejects_bad_memory_write_settings(tmp_path, capsys, args, message):
    import memory_on_real_video as bench
    from test_track_cli import write_tiny_run

    run = write_tiny_run(str(tmp_path / "memtrack_seed0"))
    with pytest.raises(SystemExit) as exit_info:
        bench.main([f"--runs=memtrack_seed0:{run}", "--sequences=Crossing", "--no_baselines",
                    *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def _cached_batches_with(cache, count, **write_flags):
    """The first `count` cached train batches without and with `write_flags` of
    `feature_cache.make_dataset` (same seed), after checking that they change only the written
    exemplars of steps >= 1: searches, targets, step 0 and the val split are the clean ones.
    Returns [(clean features, changed features, targets)]."""
    from memnet_tf.data import feature_cache

    def first_batches(split, count, **flags_):
        data = feature_cache.make_dataset(cache, 3, split, 11, 4, num_val_clips=4, **flags_)
        return [batch for batch, _ in zip(data.as_numpy_iterator(), range(count))]

    key, batches = "exemplar_features", []
    for (clean, clean_targets), (features, targets) in zip(
            first_batches("train", count), first_batches("train", count, **write_flags)):
        np.testing.assert_array_equal(features["search_features"], clean["search_features"])
        for name in clean_targets:
            np.testing.assert_array_equal(targets[name], clean_targets[name])
        np.testing.assert_array_equal(features[key][:, 0], clean[key][:, 0])
        batches.append((clean, features, targets))
    (val_clean, _), = first_batches("val", 1)
    (val_changed, _), = first_batches("val", 1, **write_flags)
    np.testing.assert_array_equal(val_changed[key], val_clean[key])
    return batches


def test_corrupted_writes_change_only_the_train_exemplars_after_step_0(shards):
    _, _, _, cache = _cache(shards)
    for clean, features, _ in _cached_batches_with(cache, 3, corrupt_write_prob=1.0):
        written, original = features["exemplar_features"], clean["exemplar_features"]
        for b in range(4):
            for t in (1, 2):  # another clip's exemplar at the same step
                assert any(np.array_equal(written[b, t], original[c, t]) for c in range(4)
                           if c != b)


def test_shifted_writes_are_windows_of_the_cached_search_features_in_train_only(shards):
    _, _, _, cache = _cache(shards)
    for _, features, targets in _cached_batches_with(cache, 2, shifted_write_prob=1.0):
        written, searches = features["exemplar_features"], features["search_features"]
        h, positions = written.shape[2], searches.shape[2] - written.shape[2] + 1
        for b in range(4):
            for t in (1, 2):
                box = targets["search_box"][b, t - 1]
                target = ((box[:2] + box[2:]) / 2 - 63) / 8
                match = [(y, x) for y in range(positions) for x in range(positions)
                         if np.array_equal(written[b, t], searches[b, t - 1, y:y + h, x:x + h])]
                assert len(match) == 1, (b, t)
                y, x = match[0]
                assert max(abs(x - target[0]), abs(y - target[1])) >= 4
    # --shifted_write_burst reaches the cached pipeline: q = 1, K = 1 changes one step per clip.
    (clean, bursts, _), = _cached_batches_with(cache, 1, shifted_write_prob=1.0,
                                               shifted_write_burst=1)
    changed = np.any(bursts["exemplar_features"] != clean["exemplar_features"], axis=(2, 3, 4))
    assert not changed[:, 0].any() and (changed.sum(axis=1) == 1).all(), changed


def test_wrong_read_share_follows_the_written_slots():
    from memnet_tf.eval.memory_probe import wrong_read_share

    # One clip, 4 slots, 4 steps. Writes go to slots 0, 1, 2, 1 (argmax of the previous step's
    # write weights; slot 0 first); step 1's and step 3's templates are wrong.
    write = np.zeros((1, 4, 4))
    for t, slot in enumerate([1, 2, 1, 3]):
        write[0, t, slot] = 1.0
    wrong = np.array([[False, True, False, True]])
    rng = np.random.default_rng(0)
    read = rng.dirichlet(np.ones(4), size=(1, 4))
    mass, share = wrong_read_share(read, write, wrong)
    # Step 0: slot 0 right only -> skipped. Step 1: {0 right, 1 wrong}. Step 2: {0, 1 wrong, 2}.
    # Step 3: slot 1 overwritten by a wrong one again: {0, 1 wrong, 2}.
    r = read[0]
    expected_mass = [r[1, 1] / r[1, :2].sum(), r[2, 1] / r[2, :3].sum(), r[3, 1] / r[3, :3].sum()]
    np.testing.assert_allclose(mass, expected_mass)
    np.testing.assert_allclose(share, [1 / 2, 1 / 3, 1 / 3])
    # A read that is blind to content (uniform over the filled slots) has mass == share.
    uniform = np.array([[[1, 0, 0, 0], [.5, .5, 0, 0], [1 / 3] * 3 + [0], [1 / 3] * 3 + [0]]])
    blind_mass, blind_share = wrong_read_share(uniform, write, wrong)
    np.testing.assert_allclose(blind_mass, blind_share)


def test_selectivity_headline_is_the_mean_over_runs_with_their_spread():
    from memnet_tf.eval.memory_probe import selectivity_headline

    ratios = [0.40, 0.39, 0.36]
    line = selectivity_headline(ratios, "shifted")
    mean, spread = np.mean(ratios), np.std(ratios, ddof=1)
    assert line.startswith(f"headline: read mass on wrong slots (shifted) / their share = "
                           f"{mean:.2f} (mean of 3 runs, spread +-{spread:.2f}; "
                           "per run 0.40 / 0.39 / 0.36"), line
    assert "0.40 (" not in line  # not the first run's ratio
    one = selectivity_headline([1.12], "other_clip", skipped=2)
    assert one.startswith("headline: read mass on wrong slots (other_clip) / their share = 1.12 "
                          "(1 run; 2 run(s) without such a step left out"), one


def test_recorded_agreement_is_the_cells_cosine_of_retrieved_and_t0():
    """The benchmark's cos(T_retr, T_0) column, from a real tracker with the agreement gate."""
    import keras
    import memory_on_real_video as bench

    from memnet_tf import config as config_lib
    from memnet_tf.layers import addressing
    from memnet_tf.models.memtrack import build_model
    from memnet_tf.tracking.tracker import MemTracker
    from test_track_cli import blob_frame

    keras.utils.set_random_seed(0)
    model = build_model(config_lib.ModelConfig(width_multiplier=0.125, hidden_size=16,
                                               memory_size=3, residual_agreement=True))
    [weight] = [v for v in model.weights if "agreement_weight" in v.path]
    weight.assign(-np.ones(weight.shape, np.float32))
    tracker = bench.RecordingTracker(MemTracker(model))
    tracker.init(blob_frame((50, 40), 96, 128), [42, 32, 16, 16])
    for step in range(4):
        tracker.update(blob_frame((50 + 3 * step, 40 + step), 96, 128))
        state = tracker.tracker.state
        read = tracker.tracker.debug["diagnostics"]["read_weights"]
        retrieved = tf.einsum("n,nhwc->hwc", tf.constant(read), state.memory[0])[None]
        expected = addressing.template_agreement(retrieved, state.initial_template[:1])
        assert abs(tracker.records[-1]["agreement"] - float(expected[0, 0])) < 1e-5
    assert len(tracker.records) == 4
    assert all(-1.0 <= r["agreement"] <= 1.0 for r in tracker.records)
    # Frames after the first hold slots other than T_0: the memory no longer equals T_0.
    assert min(r["agreement"] for r in tracker.records) < 0.9999


def test_agreement_after_runs_picks_the_end_of_each_run_and_the_step_after():
    from memnet_tf.eval.memory_probe import agreement_after_runs

    wrong = np.array([[False, True, True, False, False],   # run 1-2: end 2, after 3
                      [False, False, False, True, True],   # run 3-4 ends the clip: no after
                      [False, False, False, False, False]])  # no run
    agreement = np.arange(15, dtype=np.float64).reshape(3, 5) / 10
    groups = agreement_after_runs(agreement, wrong)
    np.testing.assert_allclose(groups["run_end"], [0.2, 0.9])
    np.testing.assert_allclose(groups["after_run"], [0.3])
