"""Normalisation statistics, defined once and referred to by name.

Configs and presets may name a set instead of spelling the numbers (``mean: clip``,
``std: clip`` for frames; ``mean: beats``, ``std: beats`` for audio features); the name
is resolved to the numbers when the config is built, so what is recorded and hashed is
always the numbers.
"""

from __future__ import annotations

from mmprep.errors import ConfigError

# pixel mean / std per RGB channel, on [0, 1] pixels
PIXEL_NORMS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    # OpenAI CLIP (and EVA-CLIP, VAST, GRAM)
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    # torchvision ImageNet models
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # EfficientNet-Lite (TF-Lite convention: (x - 127) / 128 on 0..255 pixels)
    "efficientnet-lite": ((127 / 255,) * 3, (128 / 255,) * 3),
}

# log-mel feature mean / std
AUDIO_NORMS: dict[str, tuple[float, float]] = {
    # BEATs (and GRAM/VAST): fbank of the int16-scaled waveform, (x - 15.41663) / (2 * 6.55582)
    "beats": (15.41663, 2 * 6.55582),
    # no normalisation
    "none": (0.0, 1.0),
}


def pixel_norm(value, which: str):
    """``value`` as a 3-tuple; a name from ``PIXEL_NORMS`` gives its mean or std."""
    if isinstance(value, str):
        if value not in PIXEL_NORMS:
            raise ConfigError(f"unknown pixel statistics {value!r} "
                              f"(known: {', '.join(PIXEL_NORMS)})")
        return PIXEL_NORMS[value][0 if which == "mean" else 1]
    return value


def audio_norm(value, which: str) -> float:
    """``value`` as a number; a name from ``AUDIO_NORMS`` gives its mean or std."""
    if isinstance(value, str):
        if value not in AUDIO_NORMS:
            raise ConfigError(f"unknown audio statistics {value!r} "
                              f"(known: {', '.join(AUDIO_NORMS)})")
        return AUDIO_NORMS[value][0 if which == "mean" else 1]
    return value
