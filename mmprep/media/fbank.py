"""Kaldi filter banks, the same numbers as ``torchaudio.compliance.kaldi.fbank``, faster.

torchaudio rebuilds the window and the mel filter bank for every call and computes a
frame energy that ``fbank`` (without ``use_energy``) throws away; that is about half of
the time on a 2 s clip. ``kaldi_fbank`` keeps the window and the filters per setting
and runs the same tensor operations in the same order (pre-emphasis written without a
replicate pad, the FFT zero-padding done by ``rfft(n=...)``), so its output is equal to
torchaudio's bit for bit (tested). Only torchaudio's defaults that mmprep uses are
covered: mono, no dither, snip_edges, DC offset removed, pre-emphasis 0.97, power
spectrum, log, low_freq 20 Hz, high_freq at Nyquist, no VTLN.
"""

from __future__ import annotations

import functools

PREEMPHASIS = 0.97  # torchaudio's (and Kaldi's) default preemphasis_coefficient


@functools.lru_cache(maxsize=16)
def _constants(sample_rate: float, mel_bins: int, window_ms: float, hop_ms: float,
               window_type: str):
    """(shift, size, padded size, window (1, size), mel filters (bins, padded // 2 + 1))."""
    import torch
    import torch.nn.functional as F
    from torchaudio.compliance import kaldi

    shift = int(sample_rate * hop_ms * kaldi.MILLISECONDS_TO_SECONDS)
    size = int(sample_rate * window_ms * kaldi.MILLISECONDS_TO_SECONDS)
    padded = kaldi._next_power_of_2(size)
    window = kaldi._feature_window_function(window_type, size, 0.42, torch.device("cpu"),
                                            torch.float32).unsqueeze(0)
    banks, _ = kaldi.get_mel_banks(mel_bins, padded, sample_rate, 20.0, 0.0, 100.0, -500.0,
                                   1.0)
    banks = F.pad(banks.to(dtype=torch.float32), (0, 1), mode="constant", value=0)
    return shift, size, padded, window, banks


def kaldi_fbank(wave, sample_rate: float, mel_bins: int, window_ms: float, hop_ms: float,
                window_type: str):
    """Log mel filter banks of a 1-D float32 tensor, (frames, mel_bins); the waveform
    must hold at least one window."""
    import torch
    from torchaudio.compliance import kaldi

    shift, size, padded, window, banks = _constants(float(sample_rate), int(mel_bins),
                                                    float(window_ms), float(hop_ms),
                                                    window_type)
    n = wave.size(0)
    if not 2 <= size <= n:
        raise ValueError(f"a {size}-sample window needs at least that many samples, got {n}")
    frames = wave.as_strided((1 + (n - size) // shift, size),
                             (shift * wave.stride(0), wave.stride(0)))
    frames = frames - torch.mean(frames, dim=1).unsqueeze(1)
    emphasised = torch.empty_like(frames)
    torch.sub(frames[:, 1:], PREEMPHASIS * frames[:, :-1], out=emphasised[:, 1:])
    torch.sub(frames[:, :1], PREEMPHASIS * frames[:, :1], out=emphasised[:, :1])
    spectrum = torch.fft.rfft(emphasised * window, n=padded).abs().pow(2.0)
    return torch.max(torch.mm(spectrum, banks.T), kaldi.EPSILON).log()
