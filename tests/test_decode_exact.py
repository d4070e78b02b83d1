"""The sampler decodes less (keyframe index, non-reference frames dropped) yet returns
exactly the frames a full decode shows at each target time."""

from __future__ import annotations

import av
import numpy as np
import pytest

from mmprep.media.video import FrameReader, VideoConfig, sample_frames, target_times
from mmprep.synthetic.media import make_indexed_clip

FPS = 24
N = 24 * 8  # 8 s
GOP = 24


def _h264_b(path):
    return make_indexed_clip(path, N, fps=FPS, audio=False, gop=GOP, bframes=3,
                             options={"bf": "3", "b-pyramid": "normal"})


def _open_gop(path):
    return make_indexed_clip(path, N, fps=FPS, audio=False, gop=GOP, bframes=3,
                             options={"bf": "3", "open-gop": "1"})


def _vp9(path):
    return make_indexed_clip(path, N, fps=FPS, audio=False, gop=GOP, codec="libvpx-vp9",
                             options={"deadline": "realtime", "cpu-used": "8",
                                      "auto-alt-ref": "1", "lag-in-frames": "8"})


VFR_TIMES = [round(i / FPS + (0.4 if i >= 60 else 0.0) + (0.9 if i >= 130 else 0.0)
                   + (0.013 * (i % 3)), 3) for i in range(N)]


def _vfr(path):
    return make_indexed_clip(path, N, fps=FPS, audio=False, gop=GOP, bframes=2,
                             frame_times=VFR_TIMES, options={"bf": "2"})


def _ts(path):
    """MPEG-TS: no index, a start time above 0, seeks that can land on a later keyframe."""
    return make_indexed_clip(path, N, fps=FPS, audio=True, gop=GOP, bframes=3,
                             options={"bf": "3"}, container_format="mpegts")


MAKERS = {"h264_bframes.mp4": _h264_b, "open_gop.mp4": _open_gop, "vp9.webm": _vp9,
          "vfr.mp4": _vfr, "h264.ts": _ts}


@pytest.fixture(scope="module", params=sorted(MAKERS))
def clip(request, tmp_path_factory):
    name = request.param
    return MAKERS[name](tmp_path_factory.mktemp("exact") / name)


def full_decode(path):
    """Every frame in display order: (time, rgb array, key, reference)."""
    out = []
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        origin, tb = st.start_time or 0, float(st.time_base)
        for f in c.decode(st):
            out.append(((f.pts - origin) * tb, f.to_ndarray(format="rgb24"), f.key_frame))
    refs = set()
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        st.codec_context.skip_frame = "NONREF"
        origin, tb = st.start_time or 0, float(st.time_base)
        refs = {round((f.pts - origin) * tb, 6) for f in c.decode(st)}
    return [(t, a, k, round(t, 6) in refs) for t, a, k in out]


def on_screen(frames, t):
    i = max([j for j, f in enumerate(frames) if f[0] <= t + 1e-6], default=0)
    return i


def native(**kw):
    return VideoConfig(size=None, resize="none", **kw)


@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("sampling", ["uniform", "random", "fps", "keyframes"])
def test_frames_identical_to_exact_decoding(clip, sampling, skip):
    frames = full_decode(clip)
    cfg = native(sampling=sampling, num_frames=11, fps=2.5, skip_nonref=skip)
    for seed, (lo, hi) in enumerate([(None, None), (1.3, 6.1), (3.0, None)]):
        fs = sample_frames(clip, cfg, start=lo, end=hi, seed=seed)
        if sampling == "keyframes":
            a, b = lo or 0.0, hi or 1e9
            want = [i for i, f in enumerate(frames) if f[2] and a - 1e-6 <= f[0] < b]
        else:
            targets = target_times(cfg, lo or 0.0, fs.window[1], seed=seed)
            want = [on_screen(frames, t) for t in targets]
        assert len(fs.frames) == len(want)
        for got, ts, i in zip(fs.frames, fs.timestamps, want):
            assert ts == pytest.approx(frames[i][0], abs=1e-5)
            assert np.array_equal(got, frames[i][1])


def test_skipping_decodes_fewer_frames_with_bframes(tmp_path):
    path = _h264_b(tmp_path / "b.mp4")
    cfg = dict(sampling="uniform", num_frames=8)
    skip = sample_frames(path, native(**cfg))
    full = sample_frames(path, native(skip_nonref=False, **cfg))
    assert [f.tobytes() for f in skip.frames] == [f.tobytes() for f in full.frames]
    assert skip.stats["skipped_packets"] > 0
    assert skip.stats["decoded"] < full.stats["decoded"]


def _reader(path, threads: int | None = None, **kw):
    c = av.open(str(path))
    st = c.streams.video[0]
    if threads is not None:
        st.codec_context.thread_count = threads
    return c, FrameReader(c, st, **kw)


def _check_targets(c, reader, frames, targets):
    """The reader gives the frame a full decode shows at each target, in order."""
    with c:
        for n, t in enumerate(targets):
            got_t, frame = reader.frame_at(t, last=n == len(targets) - 1)
            i = on_screen(frames, t)
            assert got_t == pytest.approx(frames[i][0], abs=1e-6)
            assert np.array_equal(frame.to_ndarray(format="rgb24"), frames[i][1])


def test_a_target_that_is_a_non_reference_frame(clip):
    frames = full_decode(clip)
    nonref = [i for i, f in enumerate(frames) if not f[3]]
    if not nonref:
        pytest.skip("this encoder made no non-reference frames")
    picks = nonref[:: max(1, len(nonref) // 9)]
    c, reader = _reader(clip)
    with c:
        for n, i in enumerate(picks):
            t, frame = reader.frame_at(frames[i][0], last=n == len(picks) - 1)
            assert t == pytest.approx(frames[i][0], abs=1e-6)
            assert np.array_equal(frame.to_ndarray(format="rgb24"), frames[i][1])


def test_seeks_near_the_end(clip):
    frames = full_decode(clip)
    end = frames[-1][0]
    targets = [end - 0.5, end - 0.06, end - 1e-4, end, end + 0.5]
    for skip in (True, False):
        _check_targets(*_reader(clip, skip_nonref=skip), frames, targets)


def test_a_single_late_target_seeks_to_its_keyframe(clip):
    frames = full_decode(clip)
    c, reader = _reader(clip)
    with c:
        t, _ = reader.frame_at(frames[-3][0], last=True)
    assert t == pytest.approx(frames[-3][0], abs=1e-6)
    assert reader.stats["seeks"] >= 1


def floor_frames(frames, targets) -> int:
    """Frames an ideal decoder needs: from the keyframe before each shown frame up to it."""
    need = set()
    for t in targets:
        i = on_screen(frames, t)
        k = max(j for j in range(i + 1) if frames[j][2])
        need.update(range(k, i + 1))
    return len(need)


@pytest.mark.parametrize("skip", [True, False])
def test_decoded_frames_never_above_floor_plus_one_gop(clip, skip):
    if clip.suffix == ".ts":
        pytest.skip("MPEG-TS has no index and its seeks are not exact: the frames are "
                    "(tests above), the count is not bounded by the floor")
    frames = full_decode(clip)
    gop = max(np.diff([i for i, f in enumerate(frames) if f[2]] + [len(frames)]))
    for sampling, n in (("uniform", 3), ("uniform", 8), ("random", 5), ("fps", 1)):
        cfg = native(sampling=sampling, num_frames=n, fps=1.0, skip_nonref=skip)
        fs = sample_frames(clip, cfg, seed=n)
        floor = floor_frames(frames, target_times(cfg, 0.0, fs.window[1], seed=n))
        assert fs.stats["decoded"] <= floor + gop, (sampling, n, fs.stats, floor, gop)


def _vp8(path):
    return make_indexed_clip(path, N, fps=FPS, audio=False, gop=GOP, codec="libvpx",
                             options={"deadline": "realtime", "cpu-used": "8"})


@pytest.mark.parametrize("maker", [_vp9, _vp8, _vfr], ids=["vp9", "vp8", "h264-vfr"])
def test_in_order_codecs_never_decode_past_a_target(tmp_path, maker):
    """VP8/VP9 on one thread: packets stamped after a target stay undecoded unless a
    later target needs them; frames as a full decode shows them; an H.264 file with
    B-frames holds nothing (its frames leave the decoder out of packet order)."""
    path = maker(tmp_path / ("clip.webm" if maker is not _vfr else "clip.mp4"))
    in_order = maker is not _vfr
    frames = full_decode(path)
    for sampling, n in (("uniform", 8), ("random", 5), ("fps", 1), ("uniform", 40)):
        for lo, hi in ((None, None), (1.3, 6.1)):
            cfg = native(sampling=sampling, num_frames=n, fps=1.0, threads=1)
            fs = sample_frames(path, cfg, start=lo, end=hi, seed=n)
            targets = target_times(cfg, lo or 0.0, fs.window[1], seed=n)
            want = [on_screen(frames, t) for t in targets]
            for got, ts, i in zip(fs.frames, fs.timestamps, want, strict=True):
                assert ts == pytest.approx(frames[i][0], abs=1e-5)
                assert np.array_equal(got, frames[i][1])
            if in_order:
                assert fs.stats["decoded"] <= floor_frames(frames, targets), (sampling, n)
            else:
                assert fs.stats["held_packets"] == 0
    if in_order:  # the held packet after each sparse target is never decoded
        fs = sample_frames(path, native(num_frames=3, threads=1))
        assert fs.stats["held_packets"] >= 2
        assert fs.stats["decoded"] == floor_frames(frames, fs.timestamps)


@pytest.mark.parametrize("maker", [_vp9, _vp8], ids=["vp9", "vp8"])
def test_held_packets_near_the_end_and_before_the_first_frame(tmp_path, maker):
    path = maker(tmp_path / "clip.webm")
    frames = full_decode(path)
    end = frames[-1][0]
    for targets in ([0.0, end - 0.5, end - 0.06, end - 1e-4, end, end + 0.5],
                    [frames[5][0] - 1e-3, frames[5][0], frames[6][0] - 1e-3]):
        c, reader = _reader(path, threads=1)
        assert reader._hold  # the packets after each target are held
        _check_targets(c, reader, frames, targets)


def test_hardware_decoding_falls_back_to_the_cpu_without_a_flag(tmp_path):
    """hwaccel="cuda" on a machine without NVDEC decodes on the CPU: same frames."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: see the gpu test")
    path = _h264_b(tmp_path / "b.mp4")
    hw = sample_frames(path, native(num_frames=5, hwaccel="cuda"))
    cpu = sample_frames(path, native(num_frames=5))
    assert hw.stats["hwaccel"] == 0
    assert all(np.array_equal(a, b) for a, b in zip(hw.frames, cpu.frames))


@pytest.mark.gpu
def test_nvdec_gives_the_cpu_frames(tmp_path):
    path = _h264_b(tmp_path / "b.mp4")
    for sampling in ("uniform", "random", "fps"):
        hw = sample_frames(path, native(sampling=sampling, num_frames=7, hwaccel="cuda"))
        cpu = sample_frames(path, native(sampling=sampling, num_frames=7))
        assert hw.stats["hwaccel"] == 1
        assert hw.timestamps == cpu.timestamps
        assert all(np.array_equal(a, b) for a, b in zip(hw.frames, cpu.frames))
