"""``panns:PATH``: PANNs CNN14 (Kong et al. 2020) from its published checkpoint.

``PATH`` is ``Cnn14_mAP=0.431.pth`` (32 kHz) or ``Cnn14_16k_mAP=0.438.pth`` (16 kHz), as
published with the paper: ``torch.save({"model": state_dict, ...})`` (a bare state dict
is accepted too). The checkpoint carries its front end (the STFT kernels and mel filters
of torchlibrosa), from which the loader reads the sample rate (n_fft = 32 ms of audio,
hop 10 ms: 1024/320 at 32 kHz, 512/160 at 16 kHz) and checks that the filters are PANNs'
(Slaney, 50 Hz to min(14 kHz, rate / 2)).

The shards must hold that log-mel: ``features: panns`` at the checkpoint's rate, 64 bins,
32 ms window, 10 ms hop (the ``panns`` preset is 16 kHz; ``--sample-rate 32000`` for the
32 kHz model); stored normalised values are converted back to dB (a declared
conversion). Other features (Kaldi fbank, ``melspectrogram``) or another rate are refused
with the settings to use. The embedding is CNN14's: six conv blocks, mean over
frequency, max + mean over time, ``relu(fc1(x))`` (2048-d); the AudioSet classifier is
unused. mmprep implements the network (it is tested against ``panns_inference``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmprep.encoders.base import Encoder, MelInput, require_file
from mmprep.encoders.beats import read_checkpoint
from mmprep.errors import MmprepError

EXPECTED = ("a PANNs CNN14 checkpoint (Cnn14_mAP=0.431.pth or Cnn14_16k_mAP=0.438.pth: "
            'torch.save({"model": state_dict}))')
FRONT_END = ("spectrogram_extractor.", "logmel_extractor.")
BLOCKS = 6


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x, pool: int):
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.avg_pool2d(x, pool) if pool > 1 else x


class Cnn14(nn.Module):
    """CNN14 without its front end: (n, frames, mel_bins) dB log-mel -> (n, fc1 width)."""

    def __init__(self, mel_bins: int, widths: list[int], dim: int):
        super().__init__()
        self.bn0 = nn.BatchNorm2d(mel_bins)
        cin = 1
        for i, cout in enumerate(widths, 1):
            setattr(self, f"conv_block{i}", ConvBlock(cin, cout))
            cin = cout
        self.fc1 = nn.Linear(cin, dim)

    def forward(self, mel):
        x = self.bn0(mel.unsqueeze(1).transpose(1, 3)).transpose(1, 3)  # bn over mel bins
        for i in range(1, BLOCKS + 1):
            x = getattr(self, f"conv_block{i}")(x, 2 if i < BLOCKS else 1)
        x = x.mean(dim=3)
        x = x.max(dim=2).values + x.mean(dim=2)
        return F.relu(self.fc1(x))


def panns_state(path: Path) -> dict[str, Any]:
    obj = read_checkpoint(path, "panns", EXPECTED)
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    keys = [f"conv_block{i}.conv1.weight" for i in range(1, BLOCKS + 1)] + ["fc1.weight",
                                                                          "bn0.weight"]
    if not isinstance(state, dict) or any(k not in state for k in keys):
        have = sorted(map(str, state))[:4] if isinstance(state, dict) else type(obj).__name__
        raise MmprepError(f"panns:{path}: not a CNN14 checkpoint (needs conv_block1-6, "
                          f"bn0 and fc1; has {have} ...); expected {EXPECTED}")
    return state


def front_end(state: dict[str, Any], path: Path) -> tuple[int, int]:
    """(sample rate, mel bins) of the checkpoint's torchlibrosa front end, checked."""
    from mmprep.media.audio import _panns_transform

    real = state.get("spectrogram_extractor.stft.conv_real.weight")
    mel_w = state.get("logmel_extractor.melW")
    if real is None or mel_w is None:
        raise MmprepError(f"panns:{path}: no front end in the checkpoint (spectrogram_"
                          f"extractor / logmel_extractor), so its sample rate is unknown; "
                          f"expected {EXPECTED}")
    n_fft = int(real.shape[-1])
    rate, bins = n_fft * 1000 // 32, int(mel_w.shape[1])
    want = _panns_transform(rate, n_fft, rate // 100, bins).mel_scale.fb
    if tuple(want.shape) != tuple(mel_w.shape) or not torch.allclose(
            want, mel_w.float(), atol=1e-5, rtol=1e-3):
        raise MmprepError(f"panns:{path}: the checkpoint's mel filters are not PANNs' "
                          f"(Slaney, 50 Hz to {min(14000, rate // 2)} Hz, n_fft {n_fft}); "
                          f"expected {EXPECTED}")
    return rate, bins


def build_cnn14(state: dict[str, Any], path: Path, bins: int) -> Cnn14:
    widths = [int(state[f"conv_block{i}.conv1.weight"].shape[0])
              for i in range(1, BLOCKS + 1)]
    model = Cnn14(bins, widths, int(state["fc1.weight"].shape[0]))
    weights = {k: v for k, v in state.items()
               if not k.startswith(FRONT_END) and not k.startswith("fc_audioset.")}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        lines = [s.strip() for s in str(exc).splitlines()[1:] if s.strip()]
        raise MmprepError(f"panns:{path}: the state dict does not match CNN14 "
                          f"({lines[0][:200] if lines else exc}); expected {EXPECTED}"
                          ) from exc
    return model.eval()


def load_panns(spec: str, modality: str, arch: str | None, path: str | None) -> Encoder:
    if modality != "audio":
        raise MmprepError("panns: CNN14 is an audio encoder; use it as audio_encoder")
    weights = require_file(arch, "panns", "give the checkpoint as panns:/path/"
                           "Cnn14_16k_mAP=0.438.pth (published with PANNs on Zenodo; "
                           "nothing is downloaded)")
    state = panns_state(weights)
    rate, bins = front_end(state, weights)
    model = build_cnn14(state, weights, bins)
    inp = MelInput(mode="spectrogram", mel_bins=bins, sample_rate=rate, features="panns",
                   waveform_scale=1.0, hop_s=0.01, window_s=0.032, mean=0.0, std=1.0)
    return Encoder(spec=f"panns:{weights}", modality="audio", module=model,
                   dim=model.fc1.out_features, input=inp, weights=[weights],
                   forward=lambda m, x: m(x),
                   notes=f"PANNs CNN14 {rate // 1000} kHz embedding (fc1, before the "
                         "AudioSet classifier)")
