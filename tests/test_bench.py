"""Benchmarks run end to end on small inputs (timings are not checked, results are)."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from mmprep.bench.decode import bench_decode, decode_all_pick
from mmprep.cli import cli
from mmprep.synthetic.media import make_indexed_clip, read_code


def test_bench_decode_methods_agree(media_dir):
    clip = make_indexed_clip(media_dir / "bench.mp4", 120, fps=24, gop=24, audio=False)
    result = bench_decode(clip, frames=4, repeat=1, ffmpeg=shutil.which("ffmpeg") is not None)
    assert result["same_frames_as_pyav"] is True
    assert result["mmprep_decoded_frames"] < 120
    assert result["speedup_vs_pyav_decode_all"] > 0
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
