"""Every kind of bad input gives a correct sample or an error record, never a crash."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import webdataset as wds

from mmprep.config import from_dict
from mmprep.extract import ExtractConfig, RunOptions, extract
from mmprep.extract.options import PoolOptions
from mmprep.manifest import read_manifest
from mmprep.shards import inspect_path, shard_files
from mmprep.synthetic.media import encode_clip, make_indexed_clip, tone


def corrupt_middle(src, dst, seed=0):
    """Overwrite chunks in the middle of the media data with random bytes."""
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(seed)
    for start in np.linspace(len(data) * 0.4, len(data) * 0.7, 6).astype(int):
        data[start : start + 300] = rng.integers(0, 256, 300, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    good = make_indexed_clip(d / "good.mp4", 48, fps=24, gop=12)
    cases = {}  # key -> (row, expectation): "ok", "error:<stage>", or "either"

    def add(key, video, caption="a caption", expect="ok", **extra):
        cases[key] = ({"key": key, "video": str(video), "caption": caption, **extra}, expect)

    add("good", good)
    (d / "zero.mp4").write_bytes(b"")
    add("zero", d / "zero.mp4", expect="error:video")
    (d / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    add("truncated", d / "truncated.mp4", expect="either")
    (d / "text.mp4").write_text("this is a text file, not a video\n" * 50)
    add("text", d / "text.mp4", expect="error:video")
    add("audio_only", encode_clip(d / "audio_only.m4a", None, audio=tone(1.0)),
        expect="error:video")
    add("no_audio", encode_clip(d / "no_audio.mp4",
                                [np.full((32, 32, 3), i * 20, np.uint8) for i in range(12)],
                                fps=12))
    add("one_pixel", encode_clip(d / "one_pixel.mkv",
                                 [np.full((1, 1, 3), i * 20, np.uint8) for i in range(6)],
                                 fps=6, pix_fmt="yuv444p"))
    add("odd_size", encode_clip(d / "odd.mkv",
                                [np.full((37, 53, 3), i * 20, np.uint8) for i in range(6)],
                                fps=6, pix_fmt="yuv444p"))
    add("vfr", make_indexed_clip(d / "vfr.mp4", 6, frame_times=[0, 0.1, 0.15, 0.9, 1.0, 2.2],
                                 gop=None))
    add("corrupt_middle", corrupt_middle(good, d / "corrupt.mp4"), expect="either")
    data = good.read_bytes()  # a damaged sample description: the stream has no decoder
    assert b"avc1" in data and b"mp4a" in data and b"esds" in data
    (d / "no_video_codec.mp4").write_bytes(data.replace(b"avc1", b"zzzz"))
    add("no_video_codec", d / "no_video_codec.mp4", expect="error:video")
    (d / "no_audio_codec.mp4").write_bytes(data.replace(b"mp4a", b"zzzz")
                                           .replace(b"esds", b"zzzz"))
    add("no_audio_codec", d / "no_audio_codec.mp4", expect="error:audio")
    spaced = d / "dossier avec espaces ünïcødé 日本"
    spaced.mkdir()
    add("unicode_path", shutil.copy(good, spaced / "vidéo clip.mp4"))
    add("missing", d / "does_not_exist.mp4", expect="error:video")
    add("empty_caption", good, caption="   ", expect="error:text")
    add("long_caption", good, caption="word " * 20000)
    add("duplicate_key", d / "zero.mp4", expect="error:manifest")  # 'good' key again, below
    cases["duplicate_key"][0]["key"] = "good"
    if shutil.which("ffmpeg"):
        rotated = d / "rotated.mp4"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(good), "-c", "copy",
                        "-metadata:s:v:0", "rotate=90", str(rotated)], check=True)
        add("rotated", rotated)
    rows = [row for row, _ in cases.values()]
    # One caption with bytes that are not UTF-8: written raw into the manifest.
    manifest = d / "manifest.jsonl"
    lines = [json.dumps(r).encode() for r in rows]
    lines.append(b'{"key": "latin1", "video": "' + str(good).encode()
                 + b'", "caption": "caf\xe9 cr\xe8me"}')
    cases["latin1"] = ({}, "ok")
    manifest.write_bytes(b"\n".join(lines) + b"\n")
    return manifest, {k: e for k, (_, e) in cases.items()}


@pytest.fixture(scope="module")
def bad_run(bad_inputs, tmp_path_factory):
    manifest, expected = bad_inputs
    out = tmp_path_factory.mktemp("bad_out")
    cfg = from_dict(ExtractConfig, {"video": {"num_frames": 4, "size": 32},
                                    "audio": {"target_frames": 64},
                                    "shards": {"samples_per_shard": 5}})
    opts = RunOptions(progress=False, pool=PoolOptions(workers=2, sample_timeout=60))
    summary = extract(read_manifest(manifest), out, cfg, opts)
    return out, summary, expected


def test_every_sample_is_a_shard_sample_or_an_error_record(bad_run):
    out, summary, expected = bad_run
    samples = {s["__key__"]: s for s in wds.WebDataset(shard_files(out), shardshuffle=False)
               .decode("rgb8")}
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    error_keys = [e["key"] for e in errors]
    assert len(samples) + len(errors) == len(expected) == summary.ok + summary.failed
    assert not set(samples) & set(error_keys)
    assert len(set(error_keys)) == len(error_keys)
    by_key = {e["key"]: e for e in errors}
    for key, expect in expected.items():
        if key == "duplicate_key":
            assert any("duplicate key 'good'" in e["message"] for e in errors)
            continue
        if expect == "ok":
            assert key in samples, by_key.get(key)
        elif expect.startswith("error:"):
            assert by_key[key]["stage"] == expect.split(":")[1], by_key[key]
        else:
            assert key in samples or key in by_key
    assert inspect_path(str(out))["valid"]


def test_bad_input_details(bad_run):
    out, _, expected = bad_run
    errors = {e["key"]: e for e in map(json.loads, (out / "errors.jsonl").read_text()
                                       .splitlines())}
    for key in ("no_video_codec", "no_audio_codec"):
        assert "codec is unknown or its parameters are damaged" in errors[key]["message"]
    samples = {s["__key__"]: s for s in wds.WebDataset(shard_files(out), shardshuffle=False)
               .decode("rgb8")}
    meta = {k: s["json"] for k, s in samples.items()}
    assert meta["no_audio"]["has_audio"] is False
    assert samples["no_audio"]["mel.npy"].shape == (64, 64)
    assert samples["one_pixel"]["f000.jpg"].shape == (32, 32, 3)
    assert samples["odd_size"]["f003.jpg"].shape == (32, 32, 3)
    assert meta["vfr"]["frame_timestamps"] == sorted(meta["vfr"]["frame_timestamps"])
    assert meta["long_caption"]["text"]["truncated"] == [True]
    assert len(meta["long_caption"]["captions"][0]) == 10000
    assert "\ufffd" in meta["latin1"]["captions"][0]
    assert "UTF-8" in meta["latin1"]["warnings"]  # one string since format 2
    assert meta["unicode_path"]["source"].endswith("vidéo clip.mp4")
    if "rotated" in expected:
        assert meta["rotated"]["video"]["rotation"] == 90


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_4k_video_stays_within_bounded_memory(tmp_path):
    """A 4K clip (fps sampling keeps every frame) costs little more memory than a small
    one: frames are resized as soon as they are decoded."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (2160, 3840, 3), dtype=np.uint8)
    big = encode_clip(tmp_path / "4k.mp4", [np.roll(base, i * 8, axis=1) for i in range(12)],
                      fps=12, gop=12, audio=tone(1.0), options={"preset": "ultrafast"})
    small = encode_clip(tmp_path / "small.mp4", [base[:96, :128]] * 12, fps=12, gop=12,
                        audio=tone(1.0))
    code = (
        "import re, sys\n"
        "from mmprep.config import from_dict\n"
        "from mmprep.extract import ExtractConfig, run_sample\n"
        "from mmprep.manifest import Sample\n"
        "cfg = from_dict(ExtractConfig, {'video': {'sampling': 'fps', 'fps': 12}})\n"
        "o = run_sample(Sample(index=0, key='k', source=sys.argv[1], captions=['x']), cfg)\n"
        "assert o.ok and sum(n.endswith('.jpg') for n, _ in o.members) == 12, o.error\n"
        "status = open('/proc/self/status').read()\n"
        "print(int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1)) // 1024)\n"
    )

    def peak_mb(clip) -> int:
        out = subprocess.run([sys.executable, "-c", code, str(clip)], check=True,
                             capture_output=True, text=True).stdout
        return int(out.split()[-1])

    # Twelve decoded 4K RGB frames alone would take 300 MB.
    assert peak_mb(big) - peak_mb(small) < 150


def test_an_audio_stream_the_demuxer_cannot_seek_is_read_from_the_start(tmp_path):
    """An AVI whose audio stream has no packets (an encoder that died after writing the
    header): FFmpeg refuses to seek that stream. A clip cut after the first second must
    not fail on the seek: the audio is read from the start of a fresh open (here: no
    samples, so the missing-audio policy applies), and the frames come out as usual."""
    import av

    from mmprep.media.audio import decode_audio
    from mmprep.synthetic.media import code_frame

    path = tmp_path / "silent_stream.avi"
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        out.add_stream("mp2", rate=44100)  # declared, never written
        for i in range(72):
            frame = av.VideoFrame.from_ndarray(code_frame(i, 64, 48), format="rgb24")
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    # the premise: the audio stream refuses to seek
    with av.open(str(path)) as c, pytest.raises(av.error.FFmpegError):
        c.seek(1000, stream=c.streams.audio[0], backward=True)
    wave = decode_audio(str(path), 16000, start=1.5, end=2.5)
    assert wave is not None and wave.samples.shape == (0,)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"key": "k", "video": str(path), "caption": "x",
                                    "start": 1.5, "end": 2.5}) + "\n")
    cfg = from_dict(ExtractConfig, {"video": {"num_frames": 2, "size": 32},
                                    "audio": {"target_frames": 64}})
    summary = extract(read_manifest(manifest), tmp_path / "out", cfg,
                      RunOptions(progress=False, pool=PoolOptions(workers=0)))
    assert summary.ok == 1 and summary.failed == 0
    sample = next(iter(wds.WebDataset(shard_files(tmp_path / "out"), shardshuffle=False)))
    meta = json.loads(sample["json"])
    assert meta["has_audio"] is False and meta["audio"]["missing_reason"]


@pytest.mark.parametrize("seconds", [1.5, 3.0])
def test_audio_whose_channels_and_rate_change_midstream_is_decoded_whole(tmp_path, seconds):
    """Two MPEG-TS recordings joined byte for byte (a broadcast capture, `cat a.ts b.ts`):
    mono 44.1 kHz AAC, then stereo 48 kHz. A resampler takes one setup, so the change
    needs a new one (it raised "Frame does not match AudioResampler setup"); both parts
    come out, each at its pitch, and extract writes the sample."""
    from mmprep.media.audio import decode_audio

    a = encode_clip(tmp_path / "a.ts", None, audio=tone(seconds, 44100, 300.0),
                    sample_rate=44100, container_format="mpegts")
    b = encode_clip(tmp_path / "b.ts", None, audio=tone(seconds, 48000, 500.0, channels=2),
                    sample_rate=48000, container_format="mpegts")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    wave = decode_audio(str(joined), 16000)
    assert wave.samples.shape[0] == pytest.approx(2 * seconds * 16000, abs=0.1 * 16000)
    for at, pitch in ((0.25, 300), (0.75, 500)):
        mid = int(at * wave.samples.shape[0])
        spectrum = np.abs(np.fft.rfft(wave.samples[mid - 4000:mid + 4000]))
        assert np.argmax(spectrum) * 2 == pytest.approx(pitch, abs=4)  # 2 Hz bins
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"key": "k", "video": str(joined), "caption": "x"}) + "\n")
    cfg = from_dict(ExtractConfig, {"video": {"enabled": False},
                                    "audio": {"target_frames": 64}})
    summary = extract(read_manifest(manifest), tmp_path / "out", cfg,
                      RunOptions(progress=False, pool=PoolOptions(workers=0)))
    assert summary.ok == 1 and summary.failed == 0
