"""Caches written by other tools: the minimal schema, import-features, bad files."""

from __future__ import annotations

import json
import logging

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from mmprep.cli import cli
from mmprep.errors import MmprepError
from mmprep.features import read_features
from mmprep.features.importer import import_features
from mmprep.features.source import FeatureSource
from mmprep.heads.config import TrainHeadConfig
from mmprep.heads.evaluate import evaluate_run
from mmprep.heads.train import train_heads


def arrays(n=64, captions=2, seed=0, missing=0.15):
    """Features with a little shared signal, as numpy arrays named like the datasets."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 8)).astype(np.float32)
    owner = np.repeat(np.arange(n), captions)
    return {
        "keys": np.array([f"clip{i:04d}" for i in range(n)]),
        "split": np.array(["train"] * (n - 16) + ["test"] * 16),
        "video": (z @ rng.standard_normal((8, 24)) + 0.1 * rng.standard_normal((n, 24))
                  ).astype(np.float32),
        "audio": (z @ rng.standard_normal((8, 20))).astype(np.float32),
        "audio_mask": rng.random(n) > missing,
        "text": (z[owner] @ rng.standard_normal((8, 16))).astype(np.float32),
        "text_owner": owner,
    }


def write_minimal(path, a):
    """What a researcher's own pipeline writes: the datasets, no attributes."""
    with h5py.File(path, "w") as f:
        for name, value in a.items():
            f[name] = value.astype("S") if value.dtype.kind == "U" else value
    return path


def small_cfg(**kw) -> TrainHeadConfig:
    cfg = TrainHeadConfig()
    cfg.optim.epochs, cfg.optim.batch_size = 3, 16
    cfg.head.out_dim = 16
    for key, value in kw.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return cfg


def test_minimal_schema_trains_and_evaluates_with_one_warning(tmp_path, caplog):
    a = arrays()
    path = write_minimal(tmp_path / "minimal.h5", a)
    with caplog.at_level(logging.WARNING, logger="mmprep.features"):
        m = train_heads(path, tmp_path / "run", small_cfg(), progress=False)
    warned = [r for r in caplog.records if "provenance unknown" in r.getMessage()]
    assert len(warned) == 1 and "\n" not in warned[0].getMessage()
    assert m["train_clips"] == 48 and m["eval"]["clips"] == 16
    has_audio = int(a["audio_mask"][48:].sum())
    assert m["eval"]["pairs"]["video->audio"]["clips"] == has_audio
    assert m["eval"]["pairs"]["text->video"]["clips"] == 16
    assert m["eval"]["pairs"]["text->video"]["queries"] == 32
    res = evaluate_run(tmp_path / "run", path)
    assert res["pairs"] == m["eval"]["pairs"]


def test_minimal_schema_from_the_readme_runs_on_the_command_line(tmp_path):
    path = write_minimal(tmp_path / "m.h5", arrays())
    r = CliRunner().invoke(cli, ["train-head", str(path), "-o", str(tmp_path / "run"), "-q",
                                 "--epochs", "1", "--batch-size", "16", "--out-dim", "8"])
    assert r.exit_code == 0, r.output
    assert "text->video" in r.output and "95% CI" in r.output


def to_format(a: dict, fmt: str, folder):
    if fmt == "npz":
        np.savez(folder / "f.npz", **a)
        return folder / "f.npz"
    if fmt == "npy":
        (folder / "npy").mkdir()
        for k, v in a.items():
            np.save(folder / "npy" / f"{k}.npy", v)
        return folder / "npy"
    if fmt == "safetensors":
        from safetensors.numpy import save_file

        tensors = {k: np.ascontiguousarray(v) for k, v in a.items()
                   if k not in ("keys", "split")}
        tensors["audio_mask"] = tensors["audio_mask"].astype(np.uint8)
        save_file(tensors, str(folder / "f.safetensors"),
                  metadata={"keys": json.dumps(a["keys"].tolist()),
                            "split": json.dumps(a["split"].tolist())})
        return folder / "f.safetensors"
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(a["keys"])
    text = [[a["text"][r].tolist() for r in np.flatnonzero(a["text_owner"] == i)]
            for i in range(n)]
    table = pa.table({"key": a["keys"].tolist(), "split": a["split"].tolist(),
                      "video": a["video"].tolist(), "audio": a["audio"].tolist(),
                      "audio_mask": a["audio_mask"].tolist(), "text": text})
    pq.write_table(table, folder / "f.parquet")
    return folder / "f.parquet"


@pytest.mark.parametrize("fmt", ["npz", "npy", "parquet", "safetensors"])
def test_import_features_round_trips(tmp_path, fmt):
    a = arrays()
    src = to_format(a, fmt, tmp_path)
    summary = import_features(src, tmp_path / "out.h5")
    assert summary.rows == 64 and summary.format == fmt
    assert summary.modalities["audio"]["missing"] == int((~a["audio_mask"]).sum())
    fs = read_features(tmp_path / "out.h5")
    assert fs.keys == a["keys"].tolist()
    np.testing.assert_array_equal(fs.split, a["split"])
    for m in ("video", "audio", "text"):
        np.testing.assert_allclose(fs.modalities[m].data, a[m], rtol=1e-6)
    np.testing.assert_array_equal(fs.modalities["text"].owner, a["text_owner"])
    np.testing.assert_array_equal(fs.modalities["audio"].mask, a["audio_mask"])
    with pytest.raises(MmprepError, match="exists"):
        import_features(src, tmp_path / "out.h5")


def test_import_features_command(tmp_path):
    src = to_format(arrays(), "npz", tmp_path)
    r = CliRunner().invoke(cli, ["import-features", str(src), "-o", str(tmp_path / "o.h5")])
    assert r.exit_code == 0, r.output
    assert "64 clips" in r.output and "audio 64x20" in r.output
    r = CliRunner().invoke(cli, ["import-features", str(tmp_path / "nope.npz"), "-o",
                                 str(tmp_path / "p.h5")])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "not found" in r.output


def bad(kind: str) -> tuple[dict, str]:
    a = arrays()
    if kind == "rows":
        a["audio"] = a["audio"][:60]
        return a, r"/audio: 60 rows for 64 keys"
    if kind == "owner":
        a["text_owner"] = a["text_owner"].copy()
        a["text_owner"][[5, 9]] = [64, -1]
        return a, r"/text_owner: values out of range 0\.\.63 at rows 5, 9"
    if kind == "nan":
        a["video"] = a["video"].copy()
        a["video"][[3, 40]] = np.nan
        a["video"][41, 2] = np.inf
        return a, r"/video: NaN or infinite values at rows 3, 40, 41"
    if kind == "duplicate":
        a["keys"] = a["keys"].copy()
        a["keys"][10] = a["keys"][2]
        return a, r"/keys: duplicate keys 'clip0002' at rows 2, 10"
    a["split"] = np.array(["test"] * 64)
    return a, r"split 'train' not found in .*\(splits: test \(64\)\); or hold out"


@pytest.mark.parametrize("kind", ["rows", "owner", "nan", "duplicate", "no-train"])
def test_bad_files_give_an_error_naming_the_dataset_and_rows(tmp_path, kind):
    a, message = bad(kind)
    path = write_minimal(tmp_path / "bad.h5", a)
    with pytest.raises(MmprepError, match=message):
        train_heads(path, tmp_path / "run", small_cfg(), progress=False)
    r = CliRunner().invoke(cli, ["train-head", str(path), "-o", str(tmp_path / "r"), "-q"])
    assert r.exit_code == 1 and r.output.startswith("Error: ") and "Traceback" not in r.output
    if kind != "no-train":  # the importer refuses the same arrays
        np.savez(tmp_path / "bad.npz", **a)
        with pytest.raises(MmprepError, match=message.replace(r"\.", ".")[:20]):
            import_features(tmp_path / "bad.npz", tmp_path / "bad-out.h5")
        assert not (tmp_path / "bad-out.h5").exists()


def test_streamed_nan_rows_are_reported_when_read(tmp_path):
    a, _ = bad("nan")
    path = write_minimal(tmp_path / "bad.h5", a)
    with FeatureSource(path, loading="stream") as src:
        src.take("video", np.array([0, 1]))
        with pytest.raises(MmprepError, match="/video: NaN or infinite values at row 40$"):
            src.take("video", np.array([40, 2]))


def test_masked_out_rows_may_hold_anything(tmp_path):
    a = arrays()
    a["audio"][~a["audio_mask"]] = np.nan  # placeholders of missing audio
    m = train_heads(write_minimal(tmp_path / "f.h5", a), tmp_path / "run", small_cfg(),
                    progress=False)
    assert m["train_modality_clips"]["audio"] == int(a["audio_mask"][:48].sum())


def test_a_file_of_another_format_is_refused(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = "something-else"
        f["keys"] = np.array([b"a"])
    with pytest.raises(MmprepError, match="format='something-else'"):
        read_features(tmp_path / "other.h5")
    with h5py.File(tmp_path / "nokeys.h5", "w") as f:
        f["video"] = np.zeros((2, 3))
    with pytest.raises(MmprepError, match="no /keys dataset"):
        read_features(tmp_path / "nokeys.h5")
