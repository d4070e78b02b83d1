"""``EmbedConfig``: which encoders, and how to run them (the ``embed:`` pipeline section)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

from mmprep.device import Precision

_DEVICE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")


@dataclass
class EmbedConfig:
    """Encoders (spec strings, see ``mmprep.encoders``; None skips a modality) and the
    run settings. Only the encoders, ``video_tokens``, ``strict``, ``precision`` and
    ``dtype`` change the content of the cache; the rest only changes speed."""

    video_encoder: str | None = None
    audio_encoder: str | None = None
    text_encoder: str | None = None
    video_tokens: bool = False  # also store per-frame embeddings /video_tokens (N, T, D)
    captions: bool = True  # store the caption text /text_caption
    strict: bool = False  # any preprocessing conversion is an error
    device: str = "auto"  # cpu, cuda, cuda:N, auto; "cuda:0,cuda:1": one process each
    batch_size: int = 32  # clips per batch
    precision: Precision = "fp32"  # fp16 / bf16: autocast
    workers: int | None = None  # DataLoader workers (None: 1 on CPU; half the cores, <= 8, on GPU)
    prefetch: int = 4  # batches each worker prepares ahead
    threads: int | None = None  # torch threads of the model on CPU (None: cores - workers)
    channels_last: bool = True  # for CNN encoders
    compile: bool = False  # torch.compile the encoders' forward
    dtype: Literal["float32", "float16"] = "float32"  # stored embeddings

    def __post_init__(self) -> None:
        for name in ("video_encoder", "audio_encoder", "text_encoder"):
            value = getattr(self, name)
            if value is not None and value.strip().lower() in ("", "none"):
                setattr(self, name, None)
        for dev in self.device_list:
            if not _DEVICE.fullmatch(dev):
                raise ValueError(f"device {dev!r} is not one of cpu, cuda, cuda:N, mps, auto")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.workers is not None and self.workers < 0:
            raise ValueError("workers must be >= 0")
        if self.prefetch < 1:
            raise ValueError("prefetch must be >= 1")
        if self.threads is not None and self.threads < 1:
            raise ValueError("threads must be >= 1")

    # the fields that change the content of the cache (the rest only changes speed)
    CONTENT_FIELDS = ("video_encoder", "audio_encoder", "text_encoder", "video_tokens",
                      "captions", "strict", "precision", "dtype")

    def content_hash(self) -> str:
        """Hash of the settings that change the cache's content."""
        from mmprep.config import config_hash

        return config_hash({k: getattr(self, k) for k in self.CONTENT_FIELDS})

    @property
    def device_list(self) -> list[str]:
        return [d.strip() for d in self.device.split(",") if d.strip()] or ["auto"]

    @property
    def encoders(self) -> dict[str, str]:
        """modality -> encoder spec, for the modalities asked for."""
        specs = {"video": self.video_encoder, "audio": self.audio_encoder,
                 "text": self.text_encoder}
        return {m: s for m, s in specs.items() if s}

    def num_workers(self, device_type: str = "cuda") -> int:
        """Loader processes. On CPU the models need the cores far more than the loader
        (decoding is tens of times faster than a CPU forward pass), so one is enough."""
        if self.workers is not None:
            return self.workers
        if device_type == "cpu":
            return 1
        return max(1, min(8, (os.cpu_count() or 2) // 2))

    def num_threads(self, workers: int) -> int:
        """Torch threads for the models on CPU: the cores the loader workers leave."""
        if self.threads is not None:
            return self.threads
        return max(1, (os.cpu_count() or 1) - workers)
