"""Benchmarks run end to end on small inputs (timings are not checked, results are)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from click.testing import CliRunner

from mmprep.bench.decode import DecodeBench, bench_decode, decode_all_pick
from mmprep.bench.embed import EmbedBench, bench_embed
from mmprep.bench.extract import ExtractBench, bench_extract
from mmprep.bench.heads import (
    EpochRun,
    GramBench,
    GramRow,
    HeadsEpochBench,
    PmrlBench,
    PmrlRow,
    bench_epoch,
    bench_gram,
    bench_pmrl,
)
from mmprep.bench.loader import LoaderBench, LoaderRow, bench_loader
from mmprep.bench.scale import ScaleBench, bench_scale
from mmprep.cli import cli
from mmprep.results import Result
from mmprep.synthetic.media import make_indexed_clip, read_code
from mmprep.synthetic.models import tiny_hf_bert


def test_bench_decode_methods_agree(media_dir):
    clip = make_indexed_clip(media_dir / "bench.mp4", 120, fps=24, gop=24, audio=False)
    result = bench_decode(clip, frames=4, repeat=1, ffmpeg=shutil.which("ffmpeg") is not None)
    assert result["same_frames_as_pyav"] is True
    assert result["mmprep_decoded_frames"] < 120
    assert result["same_frames_as_floor"] is True and 0 < result["floor_decoded_frames"] < 120
    assert result["mmprep_vs_floor"] == pytest.approx(
        result["mmprep_s"] / result["floor_s"], rel=0.05)
    assert result["speedup_vs_pyav_decode_all"] == pytest.approx(
        result["pyav_decode_all_s"] / result["mmprep_s"], rel=0.02)
    if result["ffmpeg_cli_s"] is not None:
        assert result["max_mean_abs_diff_vs_ffmpeg"] < 1.0
    frames = decode_all_pick(clip, [0.0, 2.51], threads=1)
    assert [read_code(f) for f in frames] == [0, 60]


def test_bench_decode_cli_json(media_dir):
    clip = make_indexed_clip(media_dir / "bench_cli.mp4", 48, fps=24, gop=12, audio=False)
    result = CliRunner().invoke(cli, ["bench", "decode", str(clip), "--frames", "2",
                                      "--repeat", "1", "--no-ffmpeg", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["frames"] == 2 and data["ffmpeg_cli_s"] is None


def assert_round_trips(result: Result) -> None:
    """JSON text == dict form, and every field reads the same as attribute and as key."""
    data = result.to_dict()
    assert json.loads(result.to_json()) == data
    names = [f.name for f in dataclasses.fields(result)]
    assert list(data) == names + list(result.derived())
    for name in names:
        value = getattr(result, name)
        assert name in result and result[name] is value and result.get(name) is value
        for item in value if isinstance(value, list) else []:
            if isinstance(item, Result):
                assert_round_trips(item)


@pytest.fixture
def bench_cache(tmp_path_factory, monkeypatch):
    """Generated clips and shards go to one temporary cache, not the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "bench_cache"))


def _decode(media_dir, tmp_path):
    clip = make_indexed_clip(media_dir / "bench_types.mp4", 48, fps=24, gop=12, audio=False)
    return bench_decode(clip, frames=2, repeat=1, ffmpeg=False)


def _scale(media_dir, tmp_path):
    import torch

    threads = torch.get_num_threads()
    try:
        return bench_scale(4, seconds=1.0, repeat=1)
    finally:
        torch.set_num_threads(threads)  # bench_scale leaves torch on one thread


BENCHES = {
    DecodeBench: _decode,
    ExtractBench: lambda media_dir, tmp_path: bench_extract(4, seconds=1.0, ffmpeg=False),
    ScaleBench: _scale,
    EmbedBench: lambda media_dir, tmp_path: bench_embed(
        4, seconds=1.0, video_encoder=None, audio_encoder=None,
        text_encoder=tiny_hf_bert(tmp_path / "bert"), batch_size=4, device="cpu", workers=0,
        repeat=1),
    GramBench: lambda media_dir, tmp_path: bench_gram((8,), (3,), dim=8, naive_rows=4,
                                                      repeats=1),
    PmrlBench: lambda media_dir, tmp_path: bench_pmrl((8,), (3,), dim=8, repeats=1),
    HeadsEpochBench: lambda media_dir, tmp_path: bench_epoch(
        100, batch_size=32, work_dir=tmp_path, losses=("infonce",), stream=False),
}
BENCHES[LoaderBench] = lambda media_dir, tmp_path: bench_loader(
    4, seconds=1.0, batch_size=2, workers=(0,), rounds=1)
ROWS = {GramBench: GramRow, PmrlBench: PmrlRow, HeadsEpochBench: EpochRun,
        LoaderBench: LoaderRow}


@pytest.mark.parametrize("kind", BENCHES, ids=lambda kind: kind.__name__)
def test_bench_results_are_typed_and_round_trip(kind, media_dir, tmp_path, bench_cache):
    result = BENCHES[kind](media_dir, tmp_path)
    assert type(result) is kind
    assert isinstance(result.machine, str) and result.machine
    if kind in ROWS:
        rows = result.runs if kind is HeadsEpochBench else result.rows
        assert rows and all(type(row) is ROWS[kind] for row in rows)
    assert_round_trips(result)
