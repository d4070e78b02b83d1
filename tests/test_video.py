"""Frame sampling: which frames, in which order, at which times, at which size."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from mmprep.errors import SampleError
from mmprep.media.frames import plan_geometry
from mmprep.media.video import VideoConfig, sample_frames, target_times
from mmprep.synthetic.media import code_frame, encode_clip, make_indexed_clip, read_code, tone

FPS = 24


def native(**kw) -> VideoConfig:
    return VideoConfig(size=None, resize="none", **kw)


def codes(fs) -> list[int]:
    return [read_code(f) for f in fs.frames]


def test_uniform_frames_are_segment_middles(indexed_clip):
    fs = sample_frames(indexed_clip, native(num_frames=8))
    # 10 s in 8 segments of 1.25 s: middles at 0.625 + 1.25 i -> frame floor(t * 24).
    expected = [int(np.floor((0.625 + 1.25 * i) * FPS + 1e-9)) for i in range(8)]
    assert codes(fs) == expected
    assert fs.timestamps == pytest.approx([e / FPS for e in expected], abs=1e-6)
    assert fs.timestamps == sorted(fs.timestamps)
    assert fs.info.fps == pytest.approx(FPS)
    assert fs.info.duration == pytest.approx(10.0)


def test_each_frame_is_the_one_on_screen_at_its_timestamp(indexed_clip):
    for sampling in ("uniform", "random", "fps"):
        fs = sample_frames(indexed_clip, native(sampling=sampling, num_frames=12, fps=3), seed=5)
        assert codes(fs) == [round(t * FPS) for t in fs.timestamps]


def test_seeking_gives_the_same_frames_as_decoding_everything(indexed_clip):
    rng = np.random.default_rng(0)
    for trial in range(5):
        cfg_seek = native(sampling="random", num_frames=int(rng.integers(1, 20)))
        cfg_full = native(sampling="random", num_frames=cfg_seek.num_frames, seek=False)
        a = sample_frames(indexed_clip, cfg_seek, seed=trial)
        b = sample_frames(indexed_clip, cfg_full, seed=trial)
        assert codes(a) == codes(b)
        assert a.timestamps == b.timestamps


def test_seeking_decodes_fewer_frames_on_a_long_clip(media_dir):
    path = make_indexed_clip(media_dir / "long.mp4", 24 * 40, fps=FPS, gop=24, audio=False)
    seek = sample_frames(path, native(num_frames=4))
    full = sample_frames(path, native(num_frames=4, seek=False))
    assert codes(seek) == codes(full)
    assert seek.stats["seeks"] >= 3
    assert seek.stats["decoded"] < full.stats["decoded"] / 3


def test_random_sampling_is_seeded_and_one_frame_per_segment(indexed_clip):
    a = sample_frames(indexed_clip, native(sampling="random", num_frames=8), seed=1)
    b = sample_frames(indexed_clip, native(sampling="random", num_frames=8), seed=1)
    c = sample_frames(indexed_clip, native(sampling="random", num_frames=8), seed=2)
    assert codes(a) == codes(b)
    assert codes(a) != codes(c)
    for i, t in enumerate(a.timestamps):
        assert 1.25 * i - 1 / FPS <= t < 1.25 * (i + 1)


def test_fps_sampling_and_cap(indexed_clip):
    fs = sample_frames(indexed_clip, native(sampling="fps", fps=2))
    assert codes(fs) == [12 * k for k in range(20)]
    capped = sample_frames(indexed_clip, native(sampling="fps", fps=2, max_frames=5))
    assert len(capped.frames) == 5
    assert codes(capped)[0] == 0 and codes(capped)[-1] == 228


def test_keyframes_sampling(indexed_clip):
    fs = sample_frames(indexed_clip, native(sampling="keyframes"))
    got = codes(fs)
    assert got[0] == 0
    assert got == sorted(got) and len(got) >= 9
    # Only keyframes were decoded.
    assert fs.stats["decoded"] == len(got)


def test_start_end_cut(indexed_clip):
    fs = sample_frames(indexed_clip, native(num_frames=4), start=2.0, end=4.0)
    assert fs.window == (2.0, 4.0)
    assert codes(fs) == [int(np.floor((2.0 + 0.25 + 0.5 * i) * FPS + 1e-9)) for i in range(4)]
    assert all(2.0 <= t < 4.0 for t in fs.timestamps)


def test_end_beyond_the_video_is_clamped(indexed_clip):
    fs = sample_frames(indexed_clip, native(num_frames=2), start=9.0, end=50.0)
    assert fs.window == (9.0, 10.0)
    assert codes(fs) == [222, 234]


def test_start_beyond_the_video_is_an_error(indexed_clip):
    with pytest.raises(SampleError, match="empty clip window"):
        sample_frames(indexed_clip, native(), start=20.0)


def test_clip_shorter_than_n_frames_repeats_frames(media_dir):
    path = make_indexed_clip(media_dir / "three.mp4", 3, fps=FPS, audio=False)
    fs = sample_frames(path, native(num_frames=8))
    assert len(fs.frames) == 8
    assert codes(fs) == sorted(codes(fs))
    assert set(codes(fs)) == {0, 1, 2}


def test_single_frame_video(media_dir):
    path = make_indexed_clip(media_dir / "one.mp4", 1, fps=FPS, audio=False)
    fs = sample_frames(path, native(num_frames=4))
    assert codes(fs) == [0, 0, 0, 0]


def test_variable_frame_rate(media_dir):
    times = [0.0, 0.1, 0.15, 0.5, 1.2, 1.25, 1.3, 2.0, 2.9]
    path = make_indexed_clip(media_dir / "vfr.mp4", len(times), fps=FPS, frame_times=times,
                             audio=False, gop=None)
    fs = sample_frames(path, native(sampling="fps", fps=4))
    for t, c in zip(fs.timestamps, codes(fs)):
        assert times[c] == pytest.approx(t, abs=2e-3)
    # Frame on screen at 1.0 s is the one shown at 0.5 s.
    assert codes(fs)[4] == 3


@pytest.mark.parametrize(
    "mode,size,expected",
    [
        ("shorter-side", 48, (48, 64)),
        ("center-crop", 48, (48, 48)),
        ("pad", 48, (36, 48)),
        ("none", None, (96, 128)),
    ],
)
def test_resize_modes(indexed_clip, mode, size, expected):
    fs = sample_frames(indexed_clip, VideoConfig(size=size, resize=mode, num_frames=2))
    h, w = fs.frames[0].shape[:2]
    if mode == "pad":
        assert (h, w) == (48, 48)
        content = (fs.frames[0].sum(axis=(1, 2)) > 0).sum()
        assert content == expected[0]  # 128x96 -> 48x36 letterboxed
    else:
        assert (h, w) == expected
    assert all(f.dtype == np.uint8 and f.shape[2] == 3 for f in fs.frames)


def test_center_crop_keeps_the_centre(media_dir):
    # Left third red, middle green, right third blue: the centre crop is green.
    img = np.zeros((60, 180, 3), dtype=np.uint8)
    img[:, :60, 0] = 255
    img[:, 60:120, 1] = 255
    img[:, 120:, 2] = 255
    path = encode_clip(media_dir / "thirds.mp4", [img] * 4, fps=4, pix_fmt="yuv444p")
    fs = sample_frames(path, VideoConfig(size=30, resize="center-crop", num_frames=1))
    mean = fs.frames[0].reshape(-1, 3).mean(axis=0)
    assert mean[1] > 200 and mean[0] < 40 and mean[2] < 40


@pytest.mark.parametrize("w,h", [(1, 1), (33, 17), (7, 100)])
def test_tiny_and_odd_sizes(media_dir, w, h):
    frames = [np.full((h, w, 3), 30 * i, dtype=np.uint8) for i in range(6)]
    path = encode_clip(media_dir / f"odd_{w}x{h}.mkv", frames, fps=6, pix_fmt="yuv444p")
    for mode in ("shorter-side", "center-crop", "pad"):
        fs = sample_frames(path, VideoConfig(size=16, resize=mode, num_frames=3))
        assert len(fs.frames) == 3
        if mode != "shorter-side":
            assert fs.frames[0].shape == (16, 16, 3)
        else:
            assert min(fs.frames[0].shape[:2]) == 16


def test_plan_geometry_rotation_swaps_display_size():
    g = plan_geometry(320, 180, size=90, mode="shorter-side", rotation=90)
    assert g.out_size == (160, 90)
    assert (g.scale_w, g.scale_h) == (160, 90)


def test_target_times_cover_the_window():
    times = target_times(VideoConfig(num_frames=4), 1.0, 3.0)
    assert times == pytest.approx([1.25, 1.75, 2.25, 2.75])


def test_audio_only_file_has_no_video(media_dir):
    path = encode_clip(media_dir / "audio_only.m4a", None, audio=tone(1.0))
    with pytest.raises(SampleError, match="no video stream"):
        sample_frames(path, VideoConfig())


@pytest.mark.parametrize(
    "content,message",
    [(b"", "empty file"), (b"this is not a video\n" * 10, "cannot open"), (None, "not found")],
)
def test_unreadable_inputs_raise_sample_errors(tmp_path, content, message):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SampleError, match=message) as info:
        sample_frames(path, VideoConfig())
    assert info.value.stage == "video"


def test_code_frame_round_trip():
    for i in (0, 1, 77, 4095):
        assert read_code(code_frame(i)) == i


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI needed to tag rotation")
@pytest.mark.parametrize("angle", [90, 180, 270])
def test_rotated_video_comes_out_upright_like_ffmpeg(media_dir, angle):
    img = np.zeros((60, 120, 3), dtype=np.uint8)
    img[:30, :60] = (255, 0, 0)
    img[:30, 60:] = (0, 255, 0)
    img[30:, :60] = (0, 0, 255)
    img[30:, 60:] = (255, 255, 255)
    src = encode_clip(media_dir / "quad.mp4", [img] * 4, fps=4, pix_fmt="yuv444p")
    rotated = media_dir / f"quad_r{angle}.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), "-c", "copy",
                    "-metadata:s:v:0", f"rotate={angle}", str(rotated)], check=True)
    h, w = (120, 60) if angle in (90, 270) else (60, 120)
    raw = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(rotated), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    reference = np.frombuffer(raw, np.uint8).reshape(h, w, 3)
    fs = sample_frames(rotated, native(num_frames=1))
    assert fs.info.rotation == angle
    assert fs.frames[0].shape == reference.shape
    assert np.abs(fs.frames[0].astype(int) - reference).mean() < 3


def test_keyframes_thinned_and_windowed(indexed_clip):
    all_kf = codes(sample_frames(indexed_clip, native(sampling="keyframes")))
    thinned = codes(sample_frames(indexed_clip, native(sampling="keyframes", max_frames=3)))
    assert len(thinned) == 3 and thinned[0] == all_kf[0] and thinned[-1] == all_kf[-1]
    windowed = sample_frames(indexed_clip, native(sampling="keyframes"), start=3.0, end=6.0)
    assert all(3.0 <= t < 6.0 for t in windowed.timestamps)
    assert codes(windowed) == [c for c in all_kf if 72 <= c < 144]


def test_too_many_frames_needs_max_frames(indexed_clip):
    with pytest.raises(SampleError, match="max-frames"):
        sample_frames(indexed_clip, native(sampling="fps", fps=2000))


def test_transform_is_applied_per_frame(indexed_clip):
    fs = sample_frames(indexed_clip, native(num_frames=3), transform=lambda a: a.shape)
    assert fs.frames == [(96, 128, 3)] * 3


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_scaling_frames_starts_no_threads(indexed_clip):
    """PyAV's reformat defaults to an automatic thread pool per call (per frame); with
    threads=1 nothing is started, so parallel workers do not fight over the cores.
    Measured in a fresh process, away from the test runner's own threads."""
    import sys

    code = (
        "import os, sys\n"
        "from mmprep.media.video import VideoConfig, sample_frames\n"
        "def newest():\n"
        "    return max(int(t) for t in os.listdir('/proc/self/task'))\n"
        "cfg = VideoConfig(num_frames=8, size=64, resize='center-crop', threads=1)\n"
        "sample_frames(sys.argv[1], cfg)\n"
        "before = newest()\n"
        "for _ in range(3):\n"
        "    sample_frames(sys.argv[1], cfg)\n"
        "print(newest() - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(indexed_clip)], check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == "0"


def test_default_decoder_threads_by_resolution_and_worker_share():
    from mmprep.media.video import VideoInfo, decoder_threads, set_cores_per_worker

    def info(w, h, codec="h264"):
        return VideoInfo(duration=1.0, fps=25.0, width=w, height=h, codec=codec,
                         rotation=0, frames=25)

    try:
        set_cores_per_worker(None)  # outside a pool: FFmpeg's automatic count from 480p
        assert decoder_threads(info(640, 360)) == 1
        assert decoder_threads(info(854, 480)) == 0 and decoder_threads(info(1280, 720)) == 0
        assert decoder_threads(info(640, 360, "vp9")) == 0  # VP9 gains at any size
        set_cores_per_worker(2 // 2)  # 2 workers on 2 cores: one thread each
        assert decoder_threads(info(1280, 720)) == 1
        set_cores_per_worker(16 // 2)  # 2 workers on 16 cores: 8 threads each
        assert decoder_threads(info(1280, 720)) == 8 and decoder_threads(info(320, 240)) == 1
        assert decoder_threads(info(320, 240, "vp9")) == 8
        set_cores_per_worker(0)  # more workers than cores: still one thread
        assert decoder_threads(info(1280, 720)) == 1
    finally:
        set_cores_per_worker(None)



@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p", "yuvj420p"])
@pytest.mark.parametrize("size,mode", [(40, "center-crop"), (57, "shorter-side"), (40, "pad")])
def test_scaled_frames_match_converting_first_and_resizing_after(pix_fmt, size, mode):
    """Scaled frames come out of libswscale as planar RGB: channels in RGB order and
    within rounding of the straightforward way (convert the whole frame to RGB, then
    resize it), no further from it than libswscale's packed rgb24 output."""
    import av
    from PIL import Image

    from mmprep.media.frames import render

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:90, 0:160]
    img = np.stack([xx * 255 // 159, yy * 255 // 89, 255 - xx * 255 // 159], axis=2)
    img = (img + rng.integers(-20, 20, img.shape)).clip(0, 255).astype(np.uint8)
    img[30:60, 60:100] = (230, 30, 40)  # a red block: channel order shows at once
    frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=pix_fmt)
    geom = plan_geometry(160, 90, size=size, mode=mode)
    out = render(frame, geom, "bicubic")
    full = frame.to_ndarray(format="rgb24")
    ref = np.asarray(Image.fromarray(full).resize((geom.scale_w, geom.scale_h),
                                                  Image.BICUBIC))
    packed = frame.reformat(width=geom.scale_w, height=geom.scale_h, format="rgb24",
                            interpolation="BICUBIC").to_ndarray()

    def place(arr):
        if geom.crop is not None:
            top, left, h, w = geom.crop
            return arr[top:top + h, left:left + w]
        if geom.pad is not None:
            top, left, h, w = geom.pad
            canvas = np.zeros((h, w, 3), dtype=np.uint8)
            canvas[top:top + arr.shape[0], left:left + arr.shape[1]] = arr
            return canvas
        return arr

    ref, packed = place(ref).astype(int), place(packed).astype(int)
    assert out.shape == ref.shape and out.dtype == np.uint8 and out.flags.c_contiguous
    err = np.abs(out.astype(int) - ref).mean()
    assert err < 4.0
    assert err <= np.abs(packed - ref).mean() + 0.05
    red = out.reshape(-1, 3)[np.argmax(out.reshape(-1, 3)[:, 0].astype(int)
                                       - out.reshape(-1, 3)[:, 1])]
    assert red[0] > 150 and red[1] < 100 and red[2] < 100
