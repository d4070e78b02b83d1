"""Training, evaluation and projection on small generated feature caches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmprep.errors import ConfigError, MmprepError
from mmprep.features import read_features
from mmprep.features.source import FeatureSource
from mmprep.heads.config import TrainHeadConfig
from mmprep.heads.evaluate import evaluate_run, project_run
from mmprep.heads.metrics import pair_metrics
from mmprep.heads.train import train_heads
from mmprep.synthetic.features import FeatureGenConfig, generate_features, write_sample_features

SMALL_DIMS = {"video": 48, "audio": 64, "text": 32}


def small_gen(**kw) -> FeatureGenConfig:
    # an easier world than the defaults (little latent noise, few hard negatives), so
    # that a few seconds of training must give clearly-above-chance retrieval
    base = dict(n=800, test=150, val=50, dims=dict(SMALL_DIMS), hidden_dim=128, captions=3,
                min_captions=1, seed=0, instance_std=1.0,
                obs_noise={"video": 0.1, "audio": 0.2, "text": 0.1})
    base.update(kw)
    return FeatureGenConfig(**base)


def small_cfg(loss="gram", epochs=12, **kw) -> TrainHeadConfig:
    cfg = TrainHeadConfig()
    cfg.loss.name = loss
    cfg.optim.epochs = epochs
    cfg.optim.batch_size = 64
    cfg.optim.lr = 2e-3
    cfg.head.kind = "mlp"
    cfg.head.hidden_dim = 128
    cfg.head.out_dim = 64
    cfg.log_every = 5
    for key, value in kw.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return cfg


@pytest.fixture(scope="module")
def feats(tmp_path_factory):
    return write_sample_features(tmp_path_factory.mktemp("feats") / "f.h5", small_gen())


@pytest.fixture(scope="module")
def gram_run(feats, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gram"
    return out, train_heads(feats, out, small_cfg("gram"), progress=False)


# ----------------------------------------------------------------- generator
def test_generator_is_deterministic_and_follows_the_schema(feats):
    fs = read_features(feats)
    assert list(fs.modalities) == ["video", "audio", "text"]
    assert fs.modalities["video"].data.shape == (800, 48)
    text = fs.modalities["text"]
    counts = np.bincount(text.owner, minlength=800)
    assert counts.min() >= 1 and counts.max() <= 3 and len(set(counts)) > 1
    assert len(text.captions) == text.data.shape[0]
    assert {s: int((fs.split == s).sum()) for s in ("train", "val", "test")} == \
        {"train": 600, "val": 50, "test": 150}
    again = generate_features(small_gen())
    np.testing.assert_array_equal(again.modalities["audio"].data, fs.modalities["audio"].data)
    other = generate_features(small_gen(seed=1))
    assert not np.allclose(other.modalities["audio"].data, fs.modalities["audio"].data)


def test_generator_rejects_bad_settings():
    with pytest.raises(ValueError):
        FeatureGenConfig(n=10, test=5, val=5)
    with pytest.raises(ValueError):
        FeatureGenConfig(noise={"depth": 1.0})
    with pytest.raises(ValueError):
        FeatureGenConfig(dims={"video": 8})


# ----------------------------------------------------------------- data access
def test_stream_and_memory_reads_agree(feats):
    rows = np.array([5, 3, 3, 700, 0])
    with FeatureSource(feats, loading="memory") as mem, \
            FeatureSource(feats, loading="stream") as st:
        assert mem.in_memory and not st.in_memory
        for m in ("video", "audio", "text"):
            np.testing.assert_array_equal(mem.take(m, rows), st.take(m, rows))


@pytest.mark.parametrize("loading", ["memory", "stream"])
def test_epoch_batches_visit_each_clip_once(feats, loading):
    with FeatureSource(feats, loading=loading) as src:
        clips = np.flatnonzero(src.split == "train")
        rng = np.random.default_rng(0)
        seen = []
        for batch, has in src.epoch_batches(clips, 64, rng, block=50, buffer_blocks=2):
            assert {m: v.shape[0] for m, v in batch.items()} == \
                {"video": 64, "audio": 64, "text": 64}
            assert all(h.shape == (64,) and h.all() for h in has.values())
            seen.append(batch["video"])
        seen = np.concatenate(seen)
        assert len(seen) == len(clips) // 64 * 64
        assert len(np.unique(seen, axis=0)) == len(seen)  # no clip twice


def test_one_caption_per_clip_is_sampled_from_its_own(feats):
    with FeatureSource(feats) as src:
        clips = np.arange(0, 800, 7)
        rng = np.random.default_rng(0)
        picked = set()
        for _ in range(20):
            rows = src.sample_items("text", clips, rng)
            assert (src.owner["text"][rows] == clips).all()
            picked.update(rows.tolist())
        rows, pos = src.items_of("text", clips)
        assert picked == set(rows.tolist())  # every caption gets drawn
        assert (src.owner["text"][rows] == clips[pos]).all()


# ----------------------------------------------------------------- training
def test_gram_training_beats_chance_and_writes_the_run(gram_run):
    out, metrics = gram_run
    for name in ("heads.safetensors", "config.json", "metrics.json", "train.log", "report.png"):
        assert (out / name).is_file(), name
    ev = metrics["eval"]
    assert ev["clips"] == 150
    chance = 1 / 150
    assert ev["pairs"]["text->video"]["R@1"] > 20 * chance
    assert ev["pairs"]["video->audio"]["R@1"] > 10 * chance
    assert ev["tuples"]["text->(video,audio)"]["R@1"] > 20 * chance
    hist = [h for h in metrics["history"] if "loss" in h]
    assert hist[-1]["loss"] < hist[0]["loss"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["eval"]["pairs"] == ev["pairs"]
    config = json.loads((out / "config.json").read_text())
    assert config["modalities"] == ["text", "video", "audio"]
    assert config["config"]["loss"]["name"] == "gram"
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    log = [json.loads(line) for line in (out / "train.log").read_text().splitlines()]
    assert log[0]["event"] == "start" and log[0]["train_clips"] == 600
    assert {r["event"] for r in log[1:-1]} == {"train"} and "loss" in log[1]
    assert log[-1]["event"] == "eval" and log[-1]["clips"] == 150
    for m in ev["pairs"].values():  # every table carries its counts and intervals
        assert m["clips"] == 150
        for k in (1, 5, 10):
            lo, hi = m[f"R@{k}_ci"]
            assert lo <= m[f"R@{k}"] <= hi and hi - lo > 0
    assert ev["coverage"] == {"text": 1.0, "video": 1.0, "audio": 1.0}


@pytest.mark.parametrize("loss,pure", [("pmrl", False), ("pmrl", True), ("gram", True),
                                       ("infonce", False)])
def test_other_objectives_train(feats, tmp_path, loss, pure):
    cfg = small_cfg(loss, epochs=3, loss__pure=pure)
    m = train_heads(feats, tmp_path / "run", cfg, progress=False)
    assert all(np.isfinite(h["loss"]) for h in m["history"] if "loss" in h)
    terms = set(m["history"][0])
    assert ("pair" in terms) == (loss != "infonce" and not pure)
    if not pure:  # the pure paper objectives may collapse on fresh heads (README)
        assert m["eval"]["pairs"]["text->video"]["R@1"] > 3 / 150


def test_eval_head_reproduces_training_metrics(gram_run, feats):
    out, metrics = gram_run
    res = evaluate_run(out, feats)
    assert res["pairs"] == metrics["eval"]["pairs"]
    assert res["tuples"] == metrics["eval"]["tuples"]
    val = evaluate_run(out, feats, split="val")
    assert val["clips"] == 50 and val["split"] == "val"


def test_project_round_trip(gram_run, feats, tmp_path):
    out, metrics = gram_run
    path = project_run(out, feats, tmp_path / "aligned.h5")
    src, proj = read_features(feats), read_features(path)
    assert proj.keys == src.keys
    np.testing.assert_array_equal(proj.split, src.split)
    np.testing.assert_array_equal(proj.modalities["text"].owner, src.modalities["text"].owner)
    assert proj.modalities["text"].captions == src.modalities["text"].captions
    for m in ("video", "audio", "text"):
        x = proj.modalities[m].data
        assert x.shape == (src.modalities[m].data.shape[0], 64)
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    # re-scoring the written embeddings gives the run's own numbers
    test = np.flatnonzero(proj.split == "test")
    video = torch.from_numpy(proj.modalities["video"].data[test])
    audio = torch.from_numpy(proj.modalities["audio"].data[test])
    groups = torch.arange(len(test))
    res = pair_metrics(video, groups, audio, groups)
    assert res["R@1"] == pytest.approx(metrics["eval"]["pairs"]["video->audio"]["R@1"])
    with pytest.raises(MmprepError):
        project_run(out, feats, feats)


def test_streamed_bf16_holdout_run(feats, tmp_path):
    cfg = small_cfg("gram", epochs=2, data__loading="stream", data__holdout=0.2)
    cfg.precision = "bf16"
    m = train_heads(feats, tmp_path / "run", cfg, progress=False)
    assert m["eval_split"] == "holdout 0.2"
    assert 100 < m["eval"]["clips"] < 220  # ~20 % of 800
    assert m["train_clips"] + m["eval"]["clips"] == 800


@pytest.fixture(scope="module")
def missing_feats(tmp_path_factory):
    return write_sample_features(tmp_path_factory.mktemp("miss") / "f.h5",
                                 small_gen(missing_audio=0.3))


@pytest.mark.parametrize("loss", ["gram", "pmrl", "infonce"])
def test_clips_missing_audio_train_and_evaluate_with_masks(missing_feats, tmp_path, loss):
    with FeatureSource(missing_feats) as src:
        has_audio = src.has("audio")
        train, test = src.split == "train", src.split == "test"
        n_audio_train, n_audio_test = int((has_audio & train).sum()), int((has_audio & test).sum())
    assert 600 * 0.6 < n_audio_train < 600 * 0.8
    m = train_heads(missing_feats, tmp_path / "run", small_cfg(loss, epochs=2), progress=False)
    # every training clip is used, with the modalities it has
    assert m["train_clips"] == 600 and m["clips_per_epoch"] == 600 // 64 * 64
    assert m["steps"] == 2 * (600 // 64)
    assert m["train_modality_clips"] == {"text": 600, "video": 600, "audio": n_audio_train}
    ev = m["eval"]
    assert ev["clips"] == 150 and ev["rows"]["audio"] == n_audio_test
    assert ev["coverage"]["audio"] == pytest.approx(n_audio_test / 150, abs=1e-4)
    # each pair over the clips with both, the tuples over the clips with all
    assert ev["pairs"]["text->video"]["clips"] == 150
    assert ev["pairs"]["video->text"]["queries"] == 150
    for key in ("video->audio", "audio->video", "text->audio", "audio->text"):
        assert ev["pairs"][key]["clips"] == n_audio_test
    assert ev["pairs"]["video->audio"]["queries"] == n_audio_test
    assert ev["tuples"]["text->(video,audio)"]["clips"] == n_audio_test
    assert ev["pairs"]["text->video"]["R@1"] > 5 / 150
    log = [json.loads(line) for line in (tmp_path / "run" / "train.log").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in log if r["event"] == "train")
    # --complete-only: today's behaviour, every table over the complete clips
    old = evaluate_run(tmp_path / "run", missing_feats, complete_only=True)
    assert old["clips"] == n_audio_test and old["pairs"]["text->video"]["clips"] == n_audio_test


def test_complete_only_training_leaves_out_incomplete_clips(missing_feats, tmp_path):
    m = train_heads(missing_feats, tmp_path / "run",
                    small_cfg("gram", epochs=1, data__complete_only=True), progress=False)
    assert m["train_clips"] < 600 * 0.85 and m["eval"]["complete_only"]
    m2 = train_heads(missing_feats, tmp_path / "run2",
                     small_cfg("infonce", epochs=1, data__modalities=["text", "video"]),
                     progress=False)
    assert m2["train_clips"] == 600 and list(m2["eval"]["rows"]) == ["text", "video"]


def test_clips_without_captions_and_masked_captions(tmp_path):
    """Item-level masks keep working: masked captions are never drawn nor scored, and a
    clip whose captions are all masked trains on video and audio."""
    from mmprep.features import write_features

    fs = read_features(write_sample_features(tmp_path / "f.h5", small_gen()))
    text = fs.modalities["text"]
    mask = np.ones(len(text.owner), bool)
    mask[::3] = False
    mask[text.owner == 0] = False  # clip 0: no usable caption
    text.mask = mask
    path = write_features(tmp_path / "masked.h5", fs)
    with FeatureSource(path) as src:
        assert not src.has("text")[0] and src.has("text")[1:].all() == src.has("text")[1:].all()
        rows, _ = src.items_of("text", np.arange(800))
        assert mask[rows].all() and len(rows) == mask[text.owner < 800].sum()
        rng = np.random.default_rng(0)
        for _ in range(5):
            drawn = src.sample_items("text", np.arange(1, 800), rng)
            assert mask[drawn[src.has("text")[1:]]].all()
    m = train_heads(path, tmp_path / "run", small_cfg("pmrl", epochs=1), progress=False)
    assert m["train_clips"] == 600


# ----------------------------------------------------------------- bad inputs
def test_clear_errors(feats, tmp_path, gram_run):
    with pytest.raises(MmprepError, match="no modality depth"):
        train_heads(feats, tmp_path / "a", small_cfg(data__modalities=["text", "depth"]),
                    progress=False)
    with pytest.raises(MmprepError, match="split 'nope' not found.*train \\(600\\)"):
        train_heads(feats, tmp_path / "b", small_cfg(data__eval_split="nope"), progress=False)
    with pytest.raises(ConfigError, match="anchor"):
        train_heads(feats, tmp_path / "c", small_cfg(loss__anchor="depth"), progress=False)
    with pytest.raises(MmprepError, match="already holds a run"):
        train_heads(feats, gram_run[0], small_cfg(), progress=False)
    with pytest.raises(MmprepError, match="not found"):
        train_heads(tmp_path / "missing.h5", tmp_path / "d", small_cfg(), progress=False)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(MmprepError, match="not a readable HDF5"):
        train_heads(tmp_path / "junk.h5", tmp_path / "e", small_cfg(), progress=False)
    with pytest.raises(MmprepError, match="not a train-head run"):
        evaluate_run(tmp_path, feats)


def test_too_few_samples(tmp_path):
    path = write_sample_features(tmp_path / "tiny.h5", small_gen(n=8, test=2, val=0))
    with pytest.raises(MmprepError, match="only 6 training clips"):
        train_heads(path, tmp_path / "run", small_cfg(), progress=False)


def test_config_validation():
    from mmprep.config import from_dict

    with pytest.raises(ConfigError, match="loss.name"):
        from_dict(TrainHeadConfig, {"loss": {"name": "triplet"}})
    with pytest.raises(ConfigError, match="batch_size"):
        from_dict(TrainHeadConfig, {"optim": {"batch_size": 1}})
    with pytest.raises(ConfigError, match="unknown option"):
        from_dict(TrainHeadConfig, {"optim": {"learning_rate": 1}})
    with pytest.raises(ConfigError, match="temperature"):
        from_dict(TrainHeadConfig, {"loss": {"temperature": 5.0}})


def test_loss_composition_pure_and_additions():
    from mmprep.heads.config import LossConfig
    from mmprep.heads.losses import gram_loss, infonce_loss, pmrl_terms
    from mmprep.heads.train import loss_terms

    g = torch.Generator().manual_seed(0)
    mods = ["text", "video", "audio"]
    emb = {m: torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=1)
           for m in mods}
    temps = {"main": torch.tensor(0.1), "pair": torch.tensor(0.2)}
    t, v, a = emb["text"], emb["video"], emb["audio"]

    pure = loss_terms(emb, mods, LossConfig(name="gram", pure=True, gram_anchors="all"),
                      temps, 0.0)
    torch.testing.assert_close(pure["loss"], gram_loss(t, v, a, temperature=0.1))
    assert "pair" not in pure
    rot = loss_terms(emb, mods, LossConfig(name="gram", gram_anchors="all", pair_set="anchor"),
                     temps, 0.0)
    expect = (gram_loss(t, v, a, temperature=0.1) + gram_loss(v, t, a, temperature=0.1)
              + gram_loss(a, t, v, temperature=0.1)) / 3
    pair = (infonce_loss(t, v, 0.2) + infonce_loss(t, a, 0.2)) / 2
    torch.testing.assert_close(rot["loss"], expect + pair)

    cfg = LossConfig(name="pmrl", pure=True, tau_sv=0.5, reg_weight=0.3)
    p = pmrl_terms(t, v, a, tau_sv=0.5, tau_reg=0.1)
    torch.testing.assert_close(loss_terms(emb, mods, cfg, temps, 0.0)["loss"],
                               p["sv"] + 0.3 * p["reg"])

    dec = LossConfig(name="pmrl", pair_decay=True, pair_weight=2.0)
    assert loss_terms(emb, mods, dec, temps, 0.0)["pair_weight"] == pytest.approx(2.0)
    assert loss_terms(emb, mods, dec, temps, 0.5)["pair_weight"] == pytest.approx(1.0)
    assert loss_terms(emb, mods, dec, temps, 1.0)["pair_weight"] == pytest.approx(0.0)

    base = loss_terms(emb, mods, LossConfig(name="infonce", pairs="all"), temps, 0.0)
    expect = (infonce_loss(t, v, 0.1) + infonce_loss(t, a, 0.1) + infonce_loss(v, a, 0.1)) / 3
    torch.testing.assert_close(base["loss"], expect)


def test_latent_ceiling_orders_modalities_by_their_noise():
    from mmprep.synthetic.features import latent_ceiling

    c = latent_ceiling(FeatureGenConfig(), clips=300)
    assert c["text->video"] > c["video->audio"] > 0.2
    easy = latent_ceiling(FeatureGenConfig(obs_noise={"video": 0, "audio": 0, "text": 0}),
                          clips=300)
    assert easy["video->audio"] == 1.0


@pytest.mark.gpu
def test_training_and_evaluation_on_cuda(feats, tmp_path):
    """bf16 heads on the GPU train as well as fp32 on the CPU, and a GPU-trained run
    evaluates the same on either device."""
    cfg = small_cfg("gram", epochs=6)
    cfg.device = "cpu"
    cpu_run = train_heads(feats, tmp_path / "cpu", cfg, progress=False)
    cfg = small_cfg("gram", epochs=6)
    cfg.device, cfg.precision = "cuda", "bf16"
    gpu_run = train_heads(feats, tmp_path / "gpu", cfg, progress=False)
    chance = 1 / 150
    for key in ("text->video", "video->audio"):
        assert gpu_run["eval"]["pairs"][key]["R@1"] > 5 * chance
        assert abs(gpu_run["eval"]["pairs"][key]["R@1"]
                   - cpu_run["eval"]["pairs"][key]["R@1"]) < 0.1
    on_gpu = evaluate_run(tmp_path / "gpu", feats, device="cuda")
    on_cpu = evaluate_run(tmp_path / "gpu", feats, device="cpu")
    for key, m in on_gpu["pairs"].items():
        assert abs(m["R@1"] - on_cpu["pairs"][key]["R@1"]) <= 2 * chance


# ----------------------------------------------------------------- recipes
def recipe_cfg(name: str, **kw) -> TrainHeadConfig:
    from mmprep.config import from_dict, to_dict
    from mmprep.heads.config import RECIPES

    cfg = small_cfg(epochs=2, **kw)
    data = to_dict(cfg)
    for key, value in {**RECIPES[name], "recipe": name}.items():
        *path, last = key.split(".")
        node = data
        for p in path:
            node = node[p]
        node[last] = value
    return from_dict(TrainHeadConfig, data)


def test_gram_paper_recipe_settings(feats, tmp_path):
    from click.testing import CliRunner

    from mmprep.cli import cli
    from mmprep.heads.config import LossConfig
    from mmprep.heads.losses import gram_loss
    from mmprep.heads.model import load
    from mmprep.heads.train import loss_terms

    r = CliRunner().invoke(cli, ["train-head", str(feats), "-o", str(tmp_path / "x"),
                                 "--recipe", "gram-paper", "--lr", "0.01", "--print-config"])
    assert r.exit_code == 0, r.output
    for line in ("recipe: gram-paper", "label_smoothing: 0.1", "temperature_form: raw",
                 "stop_gradient: true", "pure: true", "anchor: text", "lr: 0.01"):
        assert line in r.output, line
    # the loss: text-anchored volume loss only, smoothed, stop-gradient
    cfg = recipe_cfg("gram-paper")
    g = torch.Generator().manual_seed(0)
    mods = ["text", "video", "audio"]
    emb = {m: torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=1)
           for m in mods}
    temps = {"main": torch.tensor(0.07)}
    got = loss_terms(emb, mods, cfg.loss, temps, 0.0)
    assert set(got) == {"gram", "loss"}
    torch.testing.assert_close(got["loss"], gram_loss(
        emb["text"], emb["video"], emb["audio"], temperature=0.07, label_smoothing=0.1,
        stop_gradient=True))
    assert not LossConfig().stop_gradient and LossConfig().label_smoothing == 0.0
    # the temperature: tau itself is the parameter, weight-decayed and never clamped
    cfg.optim.weight_decay = 50.0  # large: the decay alone drives tau towards 0
    cfg.optim.lr = 0.05
    m = train_heads(feats, tmp_path / "run", cfg, progress=False)
    heads = load(tmp_path / "run")
    assert heads.temperature_form == "raw" and heads.meta["modalities"][0] == "text"
    tau = float(heads.temperature("main").detach())
    assert tau == pytest.approx(m["final_temperatures"]["main"])
    assert tau < cfg.loss.temperature_min  # below the log form's clamp: unclamped, decayed
    from safetensors import safe_open

    with safe_open(str(tmp_path / "run" / "heads.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert "raw_temperature.main" in keys and not any(k.startswith("log_") for k in keys)
    assert {"heads.text.net.0.weight", "heads.video.mean", "heads.audio.std"} <= keys


def test_pmrl_paper_recipe_settings(feats, tmp_path):
    cfg = recipe_cfg("pmrl-paper")
    assert (cfg.loss.name, cfg.loss.pure, cfg.loss.tau_sv) == ("pmrl", True, 0.05)
    m = train_heads(feats, tmp_path / "run", cfg, progress=False)
    assert m["final_temperatures"] == {"main": pytest.approx(0.1)}  # tau_reg fixed
    assert m["recipe"] == "pmrl-paper"
    assert all(np.isfinite(h["loss"]) for h in m["history"] if "loss" in h)


def test_load_maps_a_dict_of_inputs_to_unit_embeddings(gram_run, feats):
    import mmprep.heads

    heads = mmprep.heads.load(gram_run[0])
    fs = read_features(feats)
    x = {m: torch.from_numpy(fs.modalities[m].data[:5]) for m in ("video", "text")}
    out = heads(x)
    assert set(out) == {"video", "text"} and out["video"].shape == (5, 64)
    torch.testing.assert_close(out["video"].norm(dim=1), torch.ones(5))
    torch.testing.assert_close(heads.embed("video", x["video"]), out["video"])


# ----------------------------------------------------------------- compare
def test_compare_runs_paired(gram_run, feats, tmp_path):
    from click.testing import CliRunner

    from mmprep.cli import cli
    from mmprep.heads.compare import compare_runs

    same = compare_runs([gram_run[0]], [gram_run[0]], feats, n_boot=200)
    d = same.tables["video->audio"]["R@1"]
    assert d["diff"] == 0 and d["ci"] == [0.0, 0.0] and not d["significant"]
    other = tmp_path / "infonce"
    train_heads(feats, other, small_cfg("infonce", epochs=1), progress=False)
    res = compare_runs([gram_run[0]], [other], feats, n_boot=300)
    assert res.clips == 150 and res.tables["text->video"]["clips"] == 150
    for row in res.tables.values():
        for k in ("R@1", "R@5", "R@10"):
            lo, hi = row[k]["ci"]
            assert lo <= row[k]["diff"] <= hi
            assert row[k]["significant"] == (lo > 0 or hi < 0)
    r = CliRunner().invoke(cli, ["compare", str(gram_run[0]), f"{gram_run[0]},{other}",
                                 str(feats), "--n-boot", "200"])
    assert r.exit_code == 0, r.output
    assert "video->audio" in r.output and "significant" in r.output
    r = CliRunner().invoke(cli, ["compare", str(gram_run[0]), str(tmp_path / "nope"),
                                 str(feats)])
    assert r.exit_code == 1 and "not a train-head run" in r.output
