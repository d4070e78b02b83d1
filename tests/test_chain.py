"""`mmprep run`: the quickstart chain on tiny generated data, every artifact checked;
resume; every shipped preset validated."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import webdataset as wds
from click.testing import CliRunner

from mmprep.chain import ChainConfig, ChainOptions, load_chain, run_chain
from mmprep.cli import cli as main
from mmprep.errors import ConfigError, MmprepError
from mmprep.presets import build_config, list_presets
from mmprep.shards import inspect_path, shard_files

TINY = ["run.sample_data=16", "run.sample_seconds=1.0", "extract.video.num_frames=2",
        "extract.audio.target_frames=100", "extract.shards.samples_per_shard=8",
        "embed.batch_size=8", "embed.device=cpu", "train_head.device=cpu",
        "train_head.optim.epochs=3", "train_head.optim.batch_size=4",
        "train_head.head.out_dim=32"]


def tiny_chain(*extra):
    return load_chain("quickstart", [*TINY, *extra])


@pytest.fixture(scope="module")
def chain_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("chain")
    logs: list[str] = []
    summary = run_chain(tiny_chain(), out, ChainOptions(workers=1, progress=False,
                                                       log=logs.append))
    return out, summary, logs


def test_quickstart_chain_writes_every_artifact(chain_out):
    out, summary, _ = chain_out
    # shards: valid, complete, readable by webdataset, every sample there
    info = inspect_path(str(out / "shards"), deep=True)
    assert info["valid"], info["problems"]
    assert info["samples"] == 16
    samples = list(wds.WebDataset(shard_files(str(out / "shards")), shardshuffle=False)
                   .decode("rgb8"))
    assert len(samples) == 16
    assert samples[0]["f000.jpg"].shape == (224, 224, 3) and samples[0]["mel.npy"].shape == (
        100, 64)
    # feature cache: the documented schema, rows aligned by key
    with h5py.File(out / "features.h5", "r") as f:
        keys = [k.decode() if isinstance(k, bytes) else k for k in f["keys"][()]]
        assert keys == sorted(s["__key__"] for s in samples)
        assert f["video"].shape == (16, 1280) and f["audio"].shape == (16, 1280)
        assert f["text"].shape == (32, 384)  # two captions per clip
        owner = f["text_owner"][()]
        assert owner.min() == 0 and owner.max() == 15 and np.bincount(owner).tolist() == [2] * 16
        splits = {s.decode() if isinstance(s, bytes) else s for s in f["split"][()]}
        assert splits == {"train", "test"}
        for m in ("video", "audio", "text"):
            norms = np.linalg.norm(f[m][()], axis=1)
            assert np.isfinite(norms).all() and (norms > 0).all()
    # one run per loss, and the comparison
    for loss in ("gram", "pmrl", "infonce"):
        run = out / "runs" / loss
        for name in ("heads.safetensors", "config.json", "train.log", "report.png"):
            assert (run / name).is_file(), (loss, name)
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["loss"] == loss and metrics["eval"]["clips"] == 4
        r1 = metrics["eval"]["pairs"]["text->video"]["R@1"]
        assert 0.0 <= r1 <= 1.0
    results = json.loads((out / "results.json").read_text())
    assert results == json.loads(summary.to_json())
    table = results["results"]["directions"]
    assert set(table["video->audio"]) == {"gram", "pmrl", "infonce"}
    assert "text->(video,audio)" in table
    assert "| text → video |" in (out / "results.md").read_text()
    import matplotlib.image as mpimg

    for png in [out / "report.png", *(out / "runs").glob("*/report.png")]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = mpimg.imread(png)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 300


def test_rerun_skips_finished_steps_and_retrains_changed_heads(chain_out):
    out, summary, _ = chain_out
    logs: list[str] = []
    again = run_chain(tiny_chain(), out, ChainOptions(workers=1, progress=False,
                                                      log=logs.append))
    assert sum("skipped" in line for line in logs) == 5  # extract, embed, 3 runs
    assert again["results"] == summary["results"]
    stamp = (out / "features.h5").stat().st_mtime_ns
    logs.clear()
    changed = run_chain(tiny_chain("train_head.optim.epochs=4", "run.losses=[infonce]"), out,
                        ChainOptions(workers=1, progress=False, log=logs.append))
    assert (out / "features.h5").stat().st_mtime_ns == stamp
    assert any(line.startswith("train-head infonce:") and "skipped" not in line
               for line in logs)
    assert list(changed["results"]["mean_R@1"]) == ["infonce"]
    # changed encoders against the existing cache: refused, nothing touched
    with pytest.raises(MmprepError, match="--redo embed"):
        run_chain(tiny_chain("embed.text_encoder=none"), out,
                  ChainOptions(workers=1, progress=False, log=lambda m: None))
    assert (out / "features.h5").stat().st_mtime_ns == stamp


def test_until_stops_early_and_cli_runs(tmp_path):
    res = CliRunner().invoke(main, ["run", "quickstart", "-o", str(tmp_path / "o"), "-q",
                                    "--until", "extract", "--workers", "0", "--json",
                                    *[a for s in TINY for a in ("--set", s)]])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["extract"]["ok"] == 16 and "embed" not in summary
    assert not (tmp_path / "o" / "features.h5").exists()


def test_bad_chain_settings_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="must start with one of"):
        load_chain("quickstart", ["epochs=3"])
    with pytest.raises(ConfigError):
        load_chain("quickstart", ["run.losses=[gram,clip]"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntrain_heads:\n  seed: 1\n")
    with pytest.raises(ConfigError, match="unknown section"):
        load_chain(str(bad))
    noinput = tmp_path / "noinput.yaml"
    noinput.write_text("name: x\nembed:\n  text_encoder: minilm\n")
    with pytest.raises(ConfigError, match="no input"):
        run_chain(load_chain(str(noinput)), tmp_path / "o", ChainOptions(progress=False))
    with pytest.raises(ValueError):
        ChainConfig(sample_data=-1)


@pytest.mark.parametrize("preset", [p["name"] for p in list_presets()])
def test_every_preset_is_valid(preset):
    from mmprep.chain import SECTIONS

    info = next(p for p in list_presets() if p["name"] == preset)
    assert info["description"] and info["steps"]
    chain = load_chain(preset)  # every section parses strictly
    for section, cls in SECTIONS.items():
        assert isinstance(build_config(cls, section, pipeline=preset), cls)
    assert chain.name == preset
    res = CliRunner().invoke(main, ["run", preset, "--print-config"])
    assert res.exit_code == 0, res.output
    if "embed" in info["steps"]:
        assert chain.embed.encoders  # a chain preset names its encoders
