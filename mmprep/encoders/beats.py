"""``beats:PATH``: Microsoft's BEATs audio encoder from its official checkpoint.

``PATH`` is a checkpoint file as Microsoft publishes it (``BEATs_iter3.pt``,
``BEATs_iter3_plus_AS2M.pt``, ...): ``torch.save({"cfg": {...}, "model": state_dict})``.
The model is the vendored ESPnet ``BeatsEncoder`` of the ``openbeats`` package (MIT; the
same module names as Microsoft's code, so the official state dict loads key for key):
16x16 patch embedding, layer norm and projection, convolutional position embedding, the
transformer with its gated relative position bias. A fine-tuned checkpoint's AudioSet
classifier (``predictor.*``) is not used: the embedding is the encoder output before it.

Input: the shards' Kaldi fbank, exactly as BEATs computes it (16 kHz mono, int16-scaled
waveform, Povey window, 25 ms / 10 ms, ``(x - 15.41663) / (2 * 6.55582)``): the
``gram-vast`` preset. BEATs itself uses 128 mel bins and GRAM/VAST 64; any number of bins
that is a multiple of the patch size (16) is accepted. Shards normalised with other
statistics are re-normalised (a declared conversion); other features (``melspectrogram``),
rates, windows or waveform scales are refused with the setting to change.

Output: the mean of the patch tokens (``dim`` = ``encoder_embed_dim``, 768 for the
published models). The per-patch tokens are there for library use,
``load_encoder("beats:PATH", "audio").module.tokens(fbank)`` (n, patches, dim); the
feature cache stores the mean.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from mmprep.encoders.base import Encoder, MelInput, require_file
from mmprep.errors import MmprepError
from mmprep.media.norms import AUDIO_NORMS

BEATS_MEAN, BEATS_STD = AUDIO_NORMS["beats"]  # 15.41663 and 2 * 6.55582
EXPECTED = ('a BEATs checkpoint as Microsoft publishes it (e.g. BEATs_iter3_plus_AS2M.pt: '
            'torch.save({"cfg": {...}, "model": state_dict}))')
# Keys of BeatsEncoder that Microsoft's model does not have (padding-mask helpers).
_HELPER_KEYS = ("patch_embedding_pad.weight", "raw2fbank_pad.weight")
_CLASSIFIER_PREFIXES = ("predictor.", "predictor_dropout.")
# Layers share layer 0's relative position bias; a state dict may hold it once.
_SHARED_BIAS = re.compile(r"encoder\.layers\.[1-9]\d*\.self_attn\.relative_attention_bias\.")


def _openbeats():
    try:
        from openbeats import beats_encoder
    except ImportError as exc:
        raise MmprepError("beats: encoders need the openbeats package: "
                          "pip install 'mmprep[audio-encoders]'") from exc
    return beats_encoder


def _numpy_globals(path: Path) -> list | None:
    """The numpy types a checkpoint pickles (training checkpoints often hold numpy
    arrays, e.g. a sampler's random state), or None if it needs anything else."""
    import importlib

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - unreadable: the caller reports the first error
        return None
    found = []
    for name in names:
        module, _, attr = name.rpartition(".")
        if module.split(".")[0] != "numpy":
            return None
        try:
            found.append(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError):
            return None
    if found:  # arrays unpickle their dtype's class too
        import numpy as np

        found += [getattr(np.dtypes, n) for n in getattr(np.dtypes, "__all__", [])]
    return found


def read_checkpoint(path: Path, family: str, expected: str) -> Any:
    """``torch.load`` of a checkpoint file (tensors, plain data and numpy arrays only,
    never arbitrary pickled objects), with one clear line for a damaged file."""
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            allowed = _numpy_globals(path)
            if not allowed:
                raise
            with torch.serialization.safe_globals(allowed):
                return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError,
            OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise MmprepError(f"{family}:{path}: cannot read the checkpoint (truncated or not "
                          f"a torch file? {type(exc).__name__}: {first}); expected "
                          f"{expected}") from exc


def beats_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(cfg, state dict) of an official BEATs checkpoint, or an error naming the file."""
    obj = read_checkpoint(path, "beats", EXPECTED)
    if not (isinstance(obj, dict) and isinstance(obj.get("cfg"), dict)
            and isinstance(obj.get("model"), dict)):
        have = (f"a dict with keys {sorted(map(str, obj))[:6]}" if isinstance(obj, dict)
                else type(obj).__name__)
        raise MmprepError(f"beats:{path}: not a BEATs checkpoint ({have}); expected "
                          f"{EXPECTED}")
    state = obj["model"]
    if "patch_embedding.weight" not in state or not any(
            k.startswith("encoder.layers.") for k in state):
        raise MmprepError(f"beats:{path}: the state dict has no BEATs encoder "
                          f"(no patch_embedding / encoder.layers keys; keys: "
                          f"{sorted(state)[:4]} ...); expected {EXPECTED}")
    return obj["cfg"], state


class Beats(torch.nn.Module):
    """BEATs on normalised fbank: ``forward`` (n, frames, bins) -> mean patch token
    (n, dim); ``tokens`` -> the (n, patches, dim) patch tokens."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.patch = int(encoder.input_patch_size)

    def tokens(self, fbank):
        if fbank.shape[1] < self.patch:
            raise MmprepError(f"beats: {fbank.shape[1]} fbank frames; BEATs needs at "
                              f"least {self.patch}")
        with warnings.catch_warnings():  # openbeats' torch.cuda.amp.autocast(False)
            warnings.simplefilter("ignore", FutureWarning)
            return self.encoder.extract_features(fbank, padding_mask=None,
                                                 skip_fbank_extraction=True)[0]

    def forward(self, fbank):
        return self.tokens(fbank).mean(dim=1)


def build_beats(cfg: dict[str, Any], state: dict[str, Any], path: Path) -> Beats:
    """The BEATs encoder of ``cfg`` with the official weights, loaded strictly."""
    beats_encoder = _openbeats()
    # The shards hold normalised fbank; BeatsEncoder normalises its feature input as
    # (x - mean) / (2 * std): mean 0 and std 0.5 make that the identity.
    with warnings.catch_warnings():  # torch.nn.utils.weight_norm, as the weights need
        warnings.simplefilter("ignore", FutureWarning)
        model = beats_encoder.BeatsEncoder(input_size=0, beats_config=dict(cfg),
                                           fbank_mean=0.0, fbank_std=0.5)
    weights = {k: v for k, v in state.items() if not k.startswith(_CLASSIFIER_PREFIXES)}
    try:
        info = model.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # shape mismatch: cfg and weights disagree
        line = next((s.strip() for s in str(exc).splitlines() if "size mismatch" in s),
                    str(exc).splitlines()[0])
        raise MmprepError(f"beats:{path}: the weights do not fit the checkpoint's cfg "
                          f"({line}); expected {EXPECTED}") from exc
    missing = [k for k in info.missing_keys
               if k not in _HELPER_KEYS and not _SHARED_BIAS.match(k)]
    if missing or info.unexpected_keys:
        raise MmprepError(
            f"beats:{path}: the state dict does not match the BEATs architecture of its "
            f"cfg (missing: {missing[:3]}, unexpected: {info.unexpected_keys[:3]}); "
            f"expected {EXPECTED}")
    return Beats(model.eval())


def load_beats(spec: str, modality: str, arch: str | None, path: str | None) -> Encoder:
    if modality != "audio":
        raise MmprepError("beats: BEATs is an audio encoder; use it as audio_encoder "
                          "(--audio-encoder beats:PATH)")
    weights = require_file(arch, "beats", "give the checkpoint as beats:/path/"
                           "BEATs_iter3_plus_AS2M.pt (downloaded from Microsoft's BEATs "
                           "page; nothing is downloaded)")
    cfg, state = beats_checkpoint(weights)
    module = build_beats(cfg, state, weights)
    patch = module.patch
    inp = MelInput(mode="spectrogram", sample_rate=16000, features="fbank", window="povey",
                   waveform_scale=32768.0, hop_s=0.01, window_s=0.025, mean=BEATS_MEAN,
                   std=BEATS_STD, bins_multiple=patch)
    dim = int(module.encoder.output_size())
    return Encoder(spec=f"beats:{weights}", modality="audio", module=module, dim=dim,
                   input=inp, weights=[weights], forward=lambda m, x: m(x),
                   notes="BEATs encoder output, mean over patches (classifier unused)")
