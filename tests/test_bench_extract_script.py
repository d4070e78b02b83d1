"""``mmprep bench extract``'s torchcodec + torchaudio + webdataset script does the same
job as ``extract``: same members, same tokens, the same fbank to float rounding, frames
at the same times (torchcodec resizes bilinearly, the preset bicubically)."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from mmprep.bench.extract import _script_unavailable, bench_extract, torchcodec_script
from mmprep.extract import PoolOptions, RunOptions, extract
from mmprep.extract.sample import ExtractConfig
from mmprep.manifest import read_manifest
from mmprep.presets import build_config
from mmprep.synthetic.clips import write_sample_data


def _members(folder) -> dict[str, bytes]:
    out = {}
    for tar in sorted(folder.rglob("*.tar")):
        with tarfile.open(tar) as t:
            out.update({m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()})
    return out


def _npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data))


def test_script_writes_what_extract_writes(tmp_path):
    if (why := _script_unavailable()) is not None:
        pytest.skip(f"torchcodec/webdataset {why}")
    write_sample_data(tmp_path / "clips", 2, seconds=1.0, fps=25, size=(320, 240))
    samples = read_manifest(tmp_path / "clips" / "manifest.jsonl")
    cfg = build_config(ExtractConfig, "extract", pipeline="gram-vast",
                       values={"video.threads": 1})
    torchcodec_script(samples, cfg, tmp_path / "script")
    extract(samples, tmp_path / "mmprep", cfg,
            RunOptions(progress=False, pool=PoolOptions(workers=0)))
    got, ref = _members(tmp_path / "script"), _members(tmp_path / "mmprep")
    for s in samples:
        k = s.key
        for i in range(cfg.video.num_frames):
            a = np.asarray(Image.open(io.BytesIO(got[f"{k}.f{i:03d}.jpg"])), np.int16)
            b = np.asarray(Image.open(io.BytesIO(ref[f"{k}.f{i:03d}.jpg"])), np.int16)
            assert a.shape == b.shape == (224, 224, 3)
            assert np.abs(a - b).mean() < 6  # interpolation and JPEG, not another frame
        assert np.array_equal(_npy(got[f"{k}.tok.npy"]), _npy(ref[f"{k}.tok.npy"]))
        assert np.array_equal(_npy(got[f"{k}.mask.npy"]), _npy(ref[f"{k}.mask.npy"]))
        np.testing.assert_allclose(_npy(got[f"{k}.mel.npy"]), _npy(ref[f"{k}.mel.npy"]),
                                   atol=1e-3)


def test_bench_extract_reports_the_script_ratio(tmp_path):
    r = bench_extract(2, seconds=1.0, cache_dir=tmp_path, ffmpeg=False, repeat=2)
    assert len(r.mmprep_runs_s) == 2 and r.mmprep_s > 0
    if r.script_skipped is None:
        assert len(r.script_runs_s) == 2
        assert r.speedup_vs_script == pytest.approx(r.script_s / r.mmprep_s, rel=0.05)
    else:
        assert r.script_s is None
    assert bench_extract(2, seconds=1.0, cache_dir=tmp_path, ffmpeg=False,
                         script=False).script_skipped == "not run"
