"""``mmprep bench decode --suite``: every method returns the same frames, the table and
the typed result carry what was measured (timings themselves are not checked)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mmprep.bench.decode import make_reference_clip
from mmprep.bench.decode_suite import (
    DecodeSuiteBench,
    FileRow,
    MethodRow,
    bench_audio,
    bench_decode_suite,
    bench_file,
    make_audio_file,
    table,
)
from mmprep.bench.peers import METHODS, floor_frames, pyav_decode_all, unavailable
from mmprep.cli import cli
from mmprep.media.video import VideoConfig, target_times
from mmprep.synthetic.media import make_indexed_clip, read_code


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return make_indexed_clip(tmp_path_factory.mktemp("suite") / "s.mp4", 72, fps=24, gop=24,
                             audio=False, bframes=2, options={"bf": "2"}, size=(256, 144))


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_every_method_returns_the_frames_on_screen(small, method):
    why = unavailable(method)
    if why is not None:
        pytest.skip(why)
    times = target_times(VideoConfig(num_frames=5), 0.0, 3.0)
    frames, decoded = method.run(small, times, None, 1)
    assert [read_code(f) for f in frames] == [int(t * 24 + 1e-6) for t in times]
    ref, _ = pyav_decode_all(small, times, None, 1)
    if method.needs in (None, "cuda"):  # PyAV-based: pixel-identical to exact decoding
        assert all(np.array_equal(a, b) for a, b in zip(frames, ref))
        assert decoded is not None and 0 < decoded <= 72
    small_frames, _ = method.run(small, times, (398 // 2, 112), 1)
    assert {f.shape for f in small_frames} == {(112, 199, 3)}


@pytest.mark.parametrize("kind", ["h264-bframes", "vp9", "open-gop"])
def test_floor_decodes_exact_frames_and_no_more_than_mmprep_plus_a_gop(tmp_path, kind):
    opts = {"h264-bframes": dict(bframes=3, options={"bf": "3", "b-pyramid": "normal"}),
            "vp9": dict(codec="libvpx-vp9", options={"deadline": "realtime", "cpu-used": "8",
                                                     "auto-alt-ref": "1", "lag-in-frames": "8"}),
            "open-gop": dict(bframes=3, options={"bf": "3", "open-gop": "1"})}[kind]
    ext = "webm" if kind == "vp9" else "mp4"
    clip = make_indexed_clip(tmp_path / f"c.{ext}", 96, fps=24, gop=24, audio=False,
                             size=(128, 72), **opts)
    # the second target lands on a B-frame (non-reference) in H.264, the last near the end
    times = [0.0, 1.0 + 1.5 / 24, 2.3, 3.9]
    frames, decoded = floor_frames(clip, times, None, 1)
    assert [read_code(f) for f in frames] == [int(t * 24 + 1e-6) for t in times]
    ref, _ = pyav_decode_all(clip, times, None, 1)
    assert all(np.array_equal(a, b) for a, b in zip(frames, ref))
    _, mm = METHODS[0].run(clip, times, None, 1)
    assert decoded <= mm + 24


def test_bench_file_rows_and_ratios(small):
    row = bench_file("small", [small, small], frames=4, threads=1, rounds=2)
    assert type(row) is FileRow and row.output == "398x224" and row.resolution == "256x144"
    by = {m.method: m for m in row.methods}
    assert all(type(m) is MethodRow for m in row.methods)
    assert by["mmprep"].ratio_to_mmprep == 1.0 and by["mmprep"].mean_abs_diff == 0.0
    assert by["PyAV decode-all"].frames_decoded == 144
    assert by["mmprep"].frames_decoded < by["PyAV decode-all"].frames_decoded
    for m in row.methods:
        assert (m.seconds is None) == (m.skipped is not None)
        if m.seconds is not None:
            assert m.ratio_to_mmprep == pytest.approx(m.seconds / by["mmprep"].seconds,
                                                      rel=0.02, abs=0.01)
    result = DecodeSuiteBench(frames=4, threads=1, rounds=2, scale=1.0, files=[row],
                              audio=None, machine="m")
    assert json.loads(result.to_json())["files"][0]["methods"][0]["method"] == "mmprep"
    assert row.mmprep_vs_floor == pytest.approx(by["mmprep"].seconds / by["floor"].seconds,
                                                rel=0.05, abs=0.01)
    text = table(result)
    assert text.splitlines()[0].startswith("| file | mmprep | mmprep, no skipping")
    assert text.splitlines()[0].endswith("| mmprep / floor |")
    assert "| small (3 s) |" in text


def test_audio_row_compares_the_same_samples(tmp_path):
    path = make_audio_file(tmp_path / "a.m4a", 2.0)
    row = bench_audio(path, 1, 2.0)
    assert row.mmprep_s > 0
    if row.skipped is None:
        assert row.max_abs_diff < 1e-4 and row.ratio_to_mmprep > 0


def test_reference_clips_h264_and_vp9(tmp_path):
    import av

    for codec, ext in (("libx264", "mp4"), ("libvpx-vp9", "webm")):
        path = make_reference_clip(tmp_path / f"r.{ext}", seconds=1.0, size=(160, 96),
                                   codec=codec, gop_frames=10)
        with av.open(str(path)) as c:
            st = c.streams.video[0]
            keys = [p.pts for p in c.demux(st) if p.is_keyframe and p.pts is not None]
            assert st.codec_context.name == codec.replace("libvpx-vp9", "vp9").replace(
                "libx264", "h264")
            assert len(keys) == 3


def test_cli_suite_on_one_video_and_bad_only(small):
    out = CliRunner().invoke(cli, ["bench", "decode", str(small), "--suite", "--frames", "3",
                                   "--repeat", "1", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["files"][0]["targets"] == 3 and data["audio"] is None
    bad = CliRunner().invoke(cli, ["bench", "decode", "--suite", "--only", "nope"])
    assert bad.exit_code == 2 and "not a suite file" in bad.output


@pytest.mark.slow
def test_whole_suite_at_a_small_scale(tmp_path):
    r = bench_decode_suite(scale=0.02, rounds=1, cache=tmp_path)
    assert len(r.files) == 5 and r.audio is not None
    assert all(f.methods[0].mean_abs_diff == 0.0 for f in r.files)
