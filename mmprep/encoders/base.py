"""The frozen-encoder interface and the preprocessing each encoder declares.

An ``Encoder`` wraps a torch module in eval mode with its input declaration:

- ``ImageInput``: frames of ``size`` x ``size`` pixels, normalised with ``mean``/``std``;
- ``MelInput``: log-mel features, either as an image for a vision CNN (``mode="image"``,
  the documented stand-in for an audio encoder) or with the exact settings an audio
  model was trained on (``mode="spectrogram"``: bins, frames, rate, normalisation);
- ``TokenInput``: token ids of a tokenizer (an ``mmprep.media.text`` spec), with a mask.

``plan(meta, strict)`` checks a declaration against a shard's ``KEY.json`` metadata and
returns an ``InputPlan``: what the data loader must do (resize frames, pad mel frames,
re-tokenize captions) and the list of conversions applied. A mismatch that cannot be
converted raises ``MmprepError``; with ``strict`` every conversion does too.
``prepare(...)`` is the device-side part (dtype, normalisation, layout) of images and
mel features; ``TokenInput.fit`` trims or pads token batches on the host.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmprep.errors import MmprepError

Modality = Literal["video", "audio", "text"]
MODALITIES: tuple[str, ...] = ("video", "audio", "text")


@dataclass
class InputPlan:
    """Instructions for the data loader, and what was converted (recorded in the cache)."""

    modality: str
    shard: dict[str, Any]  # the shard's relevant preprocessing, as recorded in KEY.json
    conversions: list[str] = field(default_factory=list)
    resize_to: int | None = None  # video: resize (shorter side) + centre crop to this size
    interpolation: str = "bicubic"
    mel_frames: int | None = None  # audio: pad/cut every slice to this many frames
    mel_scale: tuple[float, float] = (1.0, 0.0)  # audio: x * a + b (re-normalisation)
    retokenize: str | None = None  # text: tokenizer spec to re-tokenize captions with
    max_length: int | None = None  # text: token length (re-tokenized) / expected (shard)


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


@dataclass(frozen=True)
class ImageInput:
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    flexible_size: bool = False  # a CNN that also runs on other sizes (e.g. mel images)
    kind: str = "image"

    def plan(self, meta: dict[str, Any], strict: bool) -> InputPlan:
        video = meta.get("video")
        if not video:
            raise MmprepError("the shards hold no frames (extracted without video); "
                              "drop the video encoder or re-extract with video")
        size = video.get("size") or meta.get("size")
        shard = {k: video.get(k) for k in ("size", "resize", "format", "mean", "std",
                                           "sampling", "num_frames")}
        plan = InputPlan("video", shard, interpolation=self.interpolation)
        if size is None or list(size) != [self.size, self.size]:
            plan.resize_to = self.size
            plan.conversions.append(
                f"frames resized from {size} to {self.size}x{self.size} (shorter side to "
                f"{self.size}, {self.interpolation}, antialiased, then centre crop)")
        for name, ours in (("mean", self.mean), ("std", self.std)):
            theirs = video.get(name)
            if theirs is not None and any(abs(a - b) > 1e-4 for a, b in zip(theirs, ours)):
                plan.conversions.append(
                    f"frames normalised with the encoder's {name} {_fmt(ours)}, not the "
                    f"shard's recorded {_fmt(theirs)} (frames are stored as uint8 pixels)")
        _strict(plan, strict)
        return plan

    def prepare(self, frames, dtype, channels_last: bool = False):
        """uint8 (n, 3, H, W) on the device -> normalised float (n, 3, H, W)."""
        import torch

        mean, std = _pixel_stats(self.mean, self.std, frames.device)
        x = (frames.float() - mean) / std
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x.to(dtype)


@functools.lru_cache(maxsize=16)
def _pixel_stats(mean, std, device):
    """Mean/std on the device, made once (a host-to-device copy per batch would wait for
    the queued GPU work)."""
    import torch

    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    return m.to(device), s.to(device)


@dataclass(frozen=True)
class MelInput:
    mode: Literal["image", "spectrogram"]
    mel_bins: int | None = None
    frames: int | None = None  # spectrogram: frames per input (padded / cut)
    sample_rate: int | None = None
    features: str | None = None  # "fbank" / "melspectrogram"
    window: str | None = None  # fbank window type
    waveform_scale: float | None = None
    hop_s: float | None = None
    window_s: float | None = None
    mean: float | None = None  # the model's normalisation of raw log-mel: (x - mean) / std
    std: float | None = None
    bins_multiple: int | None = None  # mel_bins must be a multiple of it (patch models)
    kind: str = "mel"

    def plan(self, meta: dict[str, Any], strict: bool) -> InputPlan:
        audio = meta.get("audio")
        if not audio:
            raise MmprepError("the shards hold no audio features (extracted without audio); "
                              "drop the audio encoder or re-extract with audio")
        shard = {k: audio.get(k) for k in ("sample_rate", "features", "mel_bins", "hop_s",
                                           "window_s", "window", "waveform_scale", "mean",
                                           "std", "shape")}
        plan = InputPlan("audio", shard)
        if self.mode == "image":
            plan.conversions.append(
                "stand-in audio encoder: the stored log-mel (bins x frames) is fed to a "
                "vision CNN as a 3-channel image, slices mean-pooled")
            return plan  # the stand-in is itself the documented choice, not a mismatch
        wrong = []
        for name, want in (("features", self.features), ("sample_rate", self.sample_rate),
                           ("mel_bins", self.mel_bins), ("window", self.window),
                           ("waveform_scale", self.waveform_scale)):
            have = audio.get(name)
            if want is None:
                continue
            if have is None:
                plan.conversions.append(f"audio.{name} not recorded by the shards; "
                                        f"assumed {want!r}")
            elif have != want and not (isinstance(want, float) and abs(have - want) < 1e-9):
                wrong.append(f"{name} {have!r} (needs {want!r})")
        for name, want in (("hop_s", self.hop_s), ("window_s", self.window_s)):
            have = audio.get(name)
            if want is not None and have is not None and abs(have - want) > 1e-6:
                wrong.append(f"{name} {have!r} (needs {want!r})")
        bins = audio.get("mel_bins")
        if self.bins_multiple and bins is not None and bins % self.bins_multiple:
            wrong.append(f"mel_bins {bins!r} (needs a multiple of {self.bins_multiple})")
        if wrong:
            raise MmprepError(
                "the shards' audio features do not match the audio encoder: "
                + ", ".join(wrong) + "; re-extract with matching audio settings "
                "(--mel-*, --sample-rate), or use a stand-in such as efficientnet-lite0")
        shape = audio.get("shape") or []
        if self.frames is not None and (len(shape) < 2 or shape[-2] != self.frames):
            plan.mel_frames = self.frames
            have = shape[-2] if len(shape) >= 2 else "variable"
            plan.conversions.append(f"mel frames padded/cut from {have} to {self.frames}")
        if self.mean is not None and self.std is not None:
            s_mean, s_std = float(audio.get("mean", 0.0)), float(audio.get("std", 1.0))
            a = s_std / self.std
            b = (s_mean - self.mean) / self.std
            if abs(a - 1) > 1e-9 or abs(b) > 1e-9:
                plan.mel_scale = (a, b)
                plan.conversions.append(
                    f"mel re-normalised from (x - {s_mean:.6g}) / {s_std:.6g} to "
                    f"(x - {self.mean:.6g}) / {self.std:.6g}")
        _strict(plan, strict)
        return plan

    def prepare(self, mel, plan: InputPlan, dtype):
        """float (n, frames, bins) on the device -> model input."""
        a, b = plan.mel_scale
        x = mel.float()
        if a != 1.0 or b != 0.0:
            x = x * a + b
        return x.to(dtype)


def canonical_tokenizer(spec: str | None) -> str | None:
    """One name per tokenizer: aliases folded, paths made absolute."""
    from mmprep.media.text import TOKENIZERS, _bert

    if spec is None:
        return None
    if spec in TOKENIZERS:
        return "bert-base-uncased" if TOKENIZERS[spec] is _bert else spec
    path = Path(spec.removeprefix("hf:")).expanduser()
    if path.is_dir() and _is_bert_base_uncased(path.resolve()):
        return "bert-base-uncased"
    if path.is_dir():
        for name in ("tokenizer.json", "vocab.txt"):
            if (path / name).is_file():
                path = path / name
                break
    return "path:" + str(path.resolve())


@functools.lru_cache(maxsize=32)
def _is_bert_base_uncased(folder: Path) -> bool:
    """A tokenizer folder equivalent to bert-base-uncased's (as downloaded from the hub):
    the same ``vocab.txt``, lower-cased, and a WordPiece ``tokenizer.json`` if any."""
    import json

    from mmprep.media.text import _packaged_vocab

    vocab = folder / "vocab.txt"
    try:
        if not vocab.is_file() or vocab.read_bytes() != _packaged_vocab().read_bytes():
            return False
        config_file = folder / "tokenizer_config.json"
        config = json.loads(config_file.read_text("utf-8")) if config_file.is_file() else {}
        if config.get("do_lower_case", True) is not True:
            return False
        tok_file = folder / "tokenizer.json"
        if tok_file.is_file():
            tok = json.loads(tok_file.read_text("utf-8"))
            norm, model = tok.get("normalizer") or {}, tok.get("model") or {}
            words = vocab.read_text("utf-8").splitlines()
            if (model.get("type") != "WordPiece" or norm.get("lowercase") is not True
                    or model.get("vocab") != {w: i for i, w in enumerate(words)}):
                return False
    except (OSError, ValueError, AttributeError):
        return False
    return True


@dataclass(frozen=True)
class TokenInput:
    tokenizer: str  # an mmprep.media.text tokenizer spec
    max_length: int  # the model's maximum sequence length
    pad_to_max: bool = False  # the model needs exactly max_length tokens (open_clip)
    kind: str = "tokens"
    vocab_size: int | None = None  # ids must be below it (checked per sample)

    def plan(self, meta: dict[str, Any], strict: bool) -> InputPlan:
        text = meta.get("text") or {}
        shard = {k: text.get(k) for k in ("tokenizer", "max_length", "pad_id")}
        plan = InputPlan("text", shard, max_length=text.get("max_length"))
        have = canonical_tokenizer(text.get("tokenizer"))
        length = text.get("max_length") or 0
        if have is None:
            reason = "the shards hold no tokens"
        elif have != canonical_tokenizer(self.tokenizer):
            reason = f"the shards' tokens come from {text.get('tokenizer')!r}"
        elif length > self.max_length:
            reason = f"the shards' {length} tokens exceed the encoder's {self.max_length}"
        else:
            reason = None
        if reason is not None:
            plan.retokenize = self.tokenizer
            plan.max_length = self.max_length
            plan.conversions.append(f"captions re-tokenized from KEY.json with "
                                    f"{self.tokenizer!r}, {self.max_length} tokens ({reason})")
        _strict(plan, strict)
        return plan

    def fit(self, ids: np.ndarray, mask: np.ndarray, trim: bool = True):
        """Host side, per batch: pad to ``max_length`` (``pad_to_max``), or drop the
        columns that are padding in every row (exact for models that use the attention
        mask or a causal mask)."""
        if self.pad_to_max and ids.shape[1] != self.max_length:
            pad = ((0, 0), (0, self.max_length - ids.shape[1]))
            return np.pad(ids, pad), np.pad(mask, pad)
        if trim and ids.shape[0]:
            n = max(1, int(mask.sum(1).max()))
            if n < ids.shape[1]:
                return np.ascontiguousarray(ids[:, :n]), np.ascontiguousarray(mask[:, :n])
        return ids, mask


def _strict(plan: InputPlan, strict: bool) -> None:
    if strict and plan.conversions:
        raise MmprepError(
            f"{plan.modality}: the shards' preprocessing does not match the encoder "
            f"(strict mode): {'; '.join(plan.conversions)}")


InputSpec = ImageInput | MelInput | TokenInput


class Encoder:
    """A frozen module plus what it expects. ``forward`` takes prepared tensors on the
    device and returns (n, dim) embeddings."""

    def __init__(
        self,
        *,
        spec: str,
        modality: str,
        module,
        dim: int,
        input: InputSpec,
        weights: list[Path],
        forward,
        normalize: bool = False,
        channels_last: bool = False,
        trim_tokens: bool = True,
        notes: str = "",
    ):
        self.spec = spec
        self.modality = modality
        self.module = module.eval().requires_grad_(False)
        self.dim = int(dim)
        self.input = input
        self.weights = [Path(w) for w in weights]
        self._forward = forward
        self.normalize = normalize
        self.channels_last = channels_last
        self.trim_tokens = trim_tokens
        self.notes = notes
        self._sha: str | None = None

    def to(self, device) -> Encoder:
        import torch

        self.module.to(device)
        if self.channels_last:
            self.module.to(memory_format=torch.channels_last)
        return self

    def compile(self) -> None:
        import torch

        self._forward = torch.compile(self._forward, dynamic=True)

    def __call__(self, *inputs):
        import torch

        out = self._forward(self.module, *inputs)
        out = out.float()
        if self.normalize:
            out = torch.nn.functional.normalize(out, dim=-1)
        return out

    def weights_sha256(self) -> str:
        if self._sha is None:
            self._sha = sha256_files(self.weights)
        return self._sha

    def describe(self) -> dict[str, Any]:
        """The declared preprocessing, as plain data."""
        return {"input": asdict(self.input), "l2_normalized": self.normalize}


def sha256_files(paths: list[Path]) -> str:
    """SHA-256 of one file, or of the list of (name, SHA-256) of several."""
    digests = []
    for path in sorted(paths):
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digests.append((path.name, h.hexdigest()))
    if len(digests) == 1:
        return digests[0][1]
    return hashlib.sha256("".join(f"{n}:{d}\n" for n, d in digests).encode()).hexdigest()


def require_file(path: str | Path | None, what: str, hint: str) -> Path:
    """``path`` as an existing file, or an error naming what to provide."""
    if path is None or str(path) == "":
        raise MmprepError(f"{what}: no weights file given; {hint}")
    p = Path(path).expanduser()
    if not p.is_file():
        raise MmprepError(f"{what}: weights file not found: {p}; {hint}")
    return p.resolve()


def mean_pool_tokens(hidden, mask):
    """Mean of the hidden states over the positions where ``mask`` is 1."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def pooled(out):
    """``pooler_output`` of a transformers output (or the tensor itself)."""
    if hasattr(out, "pooler_output") and out.pooler_output is not None:
        return out.pooler_output
    if hasattr(out, "last_hidden_state"):
        return out.last_hidden_state[:, 0]
    return out
