"""Audio decoding, resampling and log-mel features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio
from torchaudio.compliance import kaldi

from mmprep.errors import SampleError
from mmprep.media import audio
from mmprep.media.audio import AudioConfig, audio_features, decode_audio, fix_length, log_mel
from mmprep.synthetic.media import encode_clip, tone


@pytest.fixture(scope="module")
def stereo_48k(media_dir):
    """3 s of 48 kHz stereo: 440 Hz left, 880 Hz right, encoded as AAC."""
    left = tone(3.0, 48000, 440.0)[0]
    right = tone(3.0, 48000, 880.0)[0]
    return encode_clip(media_dir / "stereo48k.m4a", None, audio=np.stack([left, right]),
                       sample_rate=48000)


@pytest.fixture(scope="module")
def wav_16k(media_dir):
    return encode_clip(media_dir / "tone16k.wav", None, audio=tone(2.0, 16000, 440.0),
                       sample_rate=16000, audio_codec="pcm_s16le")


def test_decode_downmixes_and_resamples(stereo_48k):
    wave = decode_audio(stereo_48k, 16000)
    assert wave.source_rate == 48000 and wave.source_channels == 2
    assert wave.sample_rate == 16000
    assert wave.duration == pytest.approx(3.0, abs=0.06)
    spectrum = np.abs(np.fft.rfft(wave.samples[4000:20000]))
    freqs = np.fft.rfftfreq(16000, 1 / 16000)
    peaks = sorted(freqs[np.argsort(spectrum)[-2:]])
    # Both channels survive the downmix at the right pitch.
    assert peaks == pytest.approx([440, 880], abs=3)


def test_decode_cuts_start_end(wav_16k):
    wave = decode_audio(wav_16k, 16000, start=0.5, end=1.25)
    assert wave.samples.shape[0] == pytest.approx(12000, abs=2)
    full = decode_audio(wav_16k, 16000).samples
    assert np.abs(wave.samples - full[8000:8000 + wave.samples.shape[0]]).max() < 1e-6


def test_fbank_matches_torchaudio_kaldi(wav_16k):
    cfg = AudioConfig(mel_bins=64, waveform_scale=32768.0, mean=0.0, std=1.0)
    wave = decode_audio(wav_16k, 16000).samples
    ours = log_mel(wave, cfg)
    ref = kaldi.fbank(torch.from_numpy(wave)[None] * 32768.0, num_mel_bins=64,
                      sample_frequency=16000, frame_length=25, frame_shift=10, dither=0.0)
    np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("window", ["povey", "hanning", "hamming", "rectangular", "blackman"])
@pytest.mark.parametrize("rate,window_ms,hop_ms,bins", [(16000, 25.0, 10.0, 64),
                                                       (22050, 25.0, 10.0, 128),
                                                       (32000, 32.0, 8.0, 40),
                                                       (8000, 20.0, 12.5, 23)])
def test_cached_kaldi_fbank_equals_torchaudio_bit_for_bit(window, rate, window_ms, hop_ms,
                                                         bins):
    from mmprep.media.fbank import kaldi_fbank

    rng = np.random.default_rng(rate)
    size = int(rate * window_ms / 1000)
    for n in (size, size + 1, rate // 3, 2 * rate + 17):
        wave = torch.from_numpy(rng.normal(0, 0.2, n).astype(np.float32)) * 32768
        want = kaldi.fbank(wave[None], sample_frequency=float(rate), num_mel_bins=bins,
                           frame_length=window_ms, frame_shift=hop_ms, dither=0.0,
                           window_type=window)
        got = kaldi_fbank(wave, rate, bins, window_ms, hop_ms, window)
        assert got.dtype == want.dtype and torch.equal(got, want), (n, window)
    with pytest.raises(ValueError, match="window needs at least"):
        kaldi_fbank(torch.zeros(size - 1), rate, bins, window_ms, hop_ms, window)


def test_melspectrogram_matches_torchaudio(wav_16k):
    cfg = AudioConfig(features="melspectrogram", mel_bins=40, mean=1.0, std=2.0)
    wave = decode_audio(wav_16k, 16000).samples
    ours = log_mel(wave, cfg)
    mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=512, win_length=400,
                                               hop_length=160, n_mels=40)
    ref = ((torch.log(mel(torch.from_numpy(wave)) + 1e-6) - 1.0) / 2.0).T
    np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("seconds", [0.01, 0.3, 1.0, 2.5])
def test_mel_frames_follow_duration(seconds):
    cfg = AudioConfig()
    n = int(16000 * seconds)
    feats = log_mel(np.zeros(n, np.float32) + 0.01, cfg)
    expected = 1 + (max(n, 400) - 400) // 160  # Kaldi snip_edges framing
    assert feats.shape == (expected, 64)
    mel = log_mel(np.zeros(n, np.float32) + 0.01, AudioConfig(features="melspectrogram"))
    assert mel.shape == (1 + max(n, 400) // 160, 64)


def test_normalisation_is_applied():
    wave = tone(1.0)[0]
    raw = log_mel(wave, AudioConfig())
    norm = log_mel(wave, AudioConfig(mean=15.0, std=13.0))
    np.testing.assert_allclose(norm, (raw - 15.0) / 13.0, rtol=1e-5, atol=1e-5)


def test_fix_length_pads_and_reports_valid_frames():
    feats = np.ones((300, 8), np.float32)
    out, valid = fix_length(feats, AudioConfig(mel_bins=8, target_frames=1024, pad_value=-1.0))
    assert out.shape == (1024, 8) and valid == [300]
    assert (out[:300] == 1).all() and (out[300:] == -1).all()


def test_fix_length_slices_long_audio():
    feats = np.arange(5000, dtype=np.float32)[:, None].repeat(4, axis=1)
    cfg = AudioConfig(mel_bins=4, target_frames=1000, slices=2)
    out, valid = fix_length(feats, cfg)
    assert out.shape == (2, 1000, 4)
    # 5 chunks split into groups [0,1,2] and [3,4]: middle chunks 1 and 3.
    assert out[0, 0, 0] == 1000 and out[1, 0, 0] == 3000
    assert valid == [1000, 1000]
    rnd, _ = fix_length(feats, AudioConfig(mel_bins=4, target_frames=1000, slices=2,
                                           slice_sampling="random"), seed=3)
    assert rnd.shape == (2, 1000, 4)


def test_audio_features_for_a_video_file(sample_data):
    clip = sample_data.parent / "clips" / "clip000000.mp4"
    cfg = AudioConfig(target_frames=256)
    af = audio_features(clip, cfg)
    assert af.has_audio and af.mel.shape == (256, 64) and af.mel.dtype == np.float32
    assert af.valid_frames[0] == pytest.approx(98, abs=3)  # ~1 s of audio at a 10 ms hop
    assert af.meta["sample_rate"] == 16000 and af.meta["hop_s"] == 0.01


@pytest.fixture(scope="module")
def silent_video(media_dir):
    frames = [np.full((32, 32, 3), 100, np.uint8)] * 12
    return encode_clip(media_dir / "silent.mp4", frames, fps=12)


def test_missing_audio_policies(silent_video):
    zeros = audio_features(silent_video, AudioConfig(missing="zeros"), clip_seconds=1.0)
    assert not zeros.has_audio and zeros.mel.shape == (98, 64) and not zeros.mel.any()
    fixed = audio_features(silent_video, AudioConfig(missing="zeros", target_frames=100))
    assert fixed.mel.shape == (100, 64)
    omit = audio_features(silent_video, AudioConfig(missing="omit"))
    assert omit.mel is None and not omit.has_audio
    with pytest.raises(SampleError, match="no audio stream") as info:
        audio_features(silent_video, AudioConfig(missing="error"))
    assert info.value.stage == "audio"


def test_float16_output(wav_16k):
    af = audio_features(wav_16k, AudioConfig(dtype="float16"))
    assert af.mel.dtype == np.float16


def test_config_validation():
    with pytest.raises(ValueError):
        AudioConfig(slices=2)
    with pytest.raises(ValueError):
        AudioConfig(std=0)


def _per_frame_resample(path, rate):
    """FFmpeg's resampler fed one decoded frame at a time (the plain PyAV way)."""
    import av

    out = []
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in container.decode(container.streams.audio[0]):
            out += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out)


@pytest.mark.parametrize("block", [1 << 17, 3000])
def test_block_resampling_gives_the_per_frame_samples(stereo_48k, wav_16k, media_dir,
                                                      monkeypatch, block):
    import av

    monkeypatch.setattr(audio._Blocks, "BLOCK_SAMPLES", block)
    s16 = encode_clip(media_dir / "stereo_s16.wav", None, sample_rate=22050,
                      audio=np.stack([tone(1.5, 22050, 300.0)[0], tone(1.5, 22050, 500.0)[0]]),
                      audio_codec="pcm_s16le")
    # Six channels at 44.1 kHz: the mix to mono (before resampling) follows FFmpeg's matrix.
    six = encode_clip(media_dir / "six_channels.wav", None, sample_rate=44100,
                      audio=np.stack([tone(1.0, 44100, 200.0 + 100 * k)[0] for k in range(6)]),
                      audio_codec="pcm_s16le")
    for path in (stereo_48k, wav_16k, s16, six):
        want = _per_frame_resample(path, 16000)
        with av.open(str(path)) as c:
            got = np.concatenate(audio._decode_frames(c, c.streams.audio[0], 16000, None)[0])
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_whole_track_graph_gives_the_frame_loop_samples(stereo_48k, wav_16k, media_dir):
    """Local files decode inside one filter graph; same samples and cut as frame by frame."""
    import av

    from mmprep.media import audio_graph
    from mmprep.synthetic.media import make_indexed_clip

    clip = make_indexed_clip(media_dir / "graph_av.mp4", 30, fps=24, gop=12)
    for path in (stereo_48k, wav_16k, clip):
        for end in (None, 0.7):
            assert audio_graph.graph_path(path) is not None
            got = decode_audio(path, 16000, end=end).samples
            with av.open(str(path)) as c:
                st = c.streams.audio[0]
                g_chunks, g_first = audio_graph.decode_in_graph(str(path), st, 16000, end)
                chunks, first, _ = audio._decode_frames(c, st, 16000, end)
            for ch, t0 in ((chunks, first), (g_chunks, g_first)):  # frames, then the graph
                want = np.concatenate(ch)
                a = max(0, int(round(-t0 * 16000)))
                b = want.shape[0] if end is None else int(round((end - t0) * 16000))
                assert got.shape == want[a:b].shape
                np.testing.assert_allclose(got, want[a:b], atol=1e-6)


def test_short_tracks_skip_the_graph_long_ones_use_it(media_dir, monkeypatch):
    from mmprep.media import audio_graph
    from mmprep.synthetic.media import make_indexed_clip

    calls = []
    real = audio.decode_in_graph
    monkeypatch.setattr(audio, "decode_in_graph",
                        lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    short = make_indexed_clip(media_dir / "short_a.mp4", 48, fps=24, gop=12)  # 2 s
    long = make_indexed_clip(media_dir / "long_a.mp4", 24 * 6, fps=24, gop=24)  # 6 s
    assert audio.GRAPH_MIN_SECONDS == 4.0 and audio_graph.graph_path(short) is not None
    decode_audio(short, 16000)
    assert calls == []
    decode_audio(long, 16000)
    assert calls == [str(long)]


def test_graph_path_only_for_plain_local_files(tmp_path):
    from mmprep.media.audio_graph import graph_path

    odd = tmp_path / "a,b:c.wav"
    odd.write_bytes(b"x")
    assert graph_path(odd) is None and graph_path("http://x/a.wav") is None
    assert graph_path(tmp_path / "missing.wav") is None


@pytest.mark.parametrize("name,kwargs", [
    ("shared.mp4", {}),
    ("shared.mkv", {"sample_rate": 44100}),
    ("shared_vp9.webm", {"codec": "libvpx-vp9", "audio_codec": "libopus", "sample_rate": 48000}),
    ("shared.ts", {"container_format": "mpegts"}),
    ("shared_mpeg4.avi", {"codec": "mpeg4", "audio_codec": "aac"}),
])
def test_audio_from_the_video_stages_container_equals_a_fresh_open(media_dir, name, kwargs):
    """extract opens a local file once: the video stage samples frames (seeking far
    ahead), then the audio stage rewinds the same container, or opens the file again
    where the demuxer is not known to rewind exactly or the clip starts late (a seek).
    Same features either way."""
    from mmprep.media.io import rewind_for
    from mmprep.media.video import VideoConfig, open_video, sample_frames
    from mmprep.synthetic.media import make_indexed_clip

    path = make_indexed_clip(media_dir / name, 24 * 5, fps=24, gop=24, **kwargs)
    cfg = AudioConfig(target_frames=None)
    # (None, 2.0) and (0.01, 1.0): short enough to be decoded frame by frame from the
    # start of the rewound container (a longer track goes through the filter graph)
    for start, end in ((None, None), (None, 2.0), (0.01, 1.0), (0.5, 2.0), (2.5, None)):
        fresh = audio_features(path, cfg, start=start, end=end)
        vcfg = VideoConfig(num_frames=4, size=32)
        with open_video(path, vcfg) as container:
            fs = sample_frames(path, vcfg, start=start, end=end, container=container)
            assert fs.frames
            shared = audio_features(path, cfg, start=start, end=end, container=container)
            rewound = rewind_for(container, container.streams.audio[0])
        assert rewound == (name.endswith((".mp4", ".mkv", ".webm")))
        assert shared.has_audio and shared.meta == fresh.meta
        np.testing.assert_array_equal(shared.mel, fresh.mel)


@pytest.mark.parametrize("name,rate,codec", [
    ("noise_44k.wav", 44100, "pcm_s16le"),
    ("noise_22k.flac", 22050, "flac"),
    ("noise_48k.wav", 48000, "pcm_s16le"),
    ("tone_44k.m4a", 44100, "aac"),
])
def test_a_late_start_is_cut_on_the_grid_of_a_full_decode(media_dir, name, rate, codec):
    """A clip starting after SEEK_AFTER is reached by a seek; its resampled samples are
    those of decoding the whole track and cutting (not up to half an output sample off:
    broadband noise shows any shift). AAC is checked on tones only, to 1e-3: its
    decoder's noise substitution draws from a random state that a seek resets (noise
    bands, and here the last 50 ms, come out differently)."""
    rng = np.random.default_rng(1)
    seconds = 5.0
    if name.startswith("noise"):
        wave = (rng.standard_normal((2, int(seconds * rate))) * 0.2).astype(np.float32)
    else:
        wave = np.concatenate([tone(seconds, rate, 330.0), tone(seconds, rate, 1210.0)])
    path = encode_clip(media_dir / name, None, audio=wave, sample_rate=rate,
                       audio_codec=codec)
    full = decode_audio(path, 16000).samples
    for start, end in ((1.7, 2.9), (2.0003, 3.5), (3.33, None)):
        assert start > audio.SEEK_AFTER
        got = decode_audio(path, 16000, start=start, end=end).samples
        a = int(round(start * 16000))
        want = full[a:a + got.shape[0]]
        assert got.shape[0] > 8000 and got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-3 if codec == "aac" else 1e-4)


def test_a_late_start_at_an_odd_rate_keeps_its_whole_length(media_dir):
    """11127 Hz to 16 kHz has a 1 s grid step (gcd 1): putting the seek on the grid would
    drop more than the seek's lead before the clip, so it is not done (the samples may
    sit up to half an output sample off a full decode) and the clip keeps its length."""
    rate = 11127
    path = encode_clip(media_dir / "odd_rate.wav", None, audio=tone(5.0, rate, 300.0),
                       sample_rate=rate, audio_codec="pcm_s16le")
    full = decode_audio(path, 16000).samples
    for start in (1.7, 2.0003, 3.33):
        got = decode_audio(path, 16000, start=start, end=start + 1.0).samples
        a = int(round(start * 16000))
        assert got.shape == (16000,)
        np.testing.assert_allclose(got, full[a:a + 16000], atol=0.02)  # a 300 Hz tone
