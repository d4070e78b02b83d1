"""Devices and precision, shared by everything that runs models (embed, train-head).

``resolve_device`` turns ``auto``/``cpu``/``cuda``/``cuda:N``/``mps`` into a
``torch.device`` with a clear error when it is not there; ``autocast`` gives the mixed
precision context for ``fp32``/``fp16``/``bf16``.
"""

from __future__ import annotations

import contextlib
from typing import Literal

from mmprep.errors import MmprepError

Precision = Literal["fp32", "fp16", "bf16"]


def resolve_device(name: str):
    """``torch.device`` for ``name``; ``auto`` is the first CUDA device when there is one."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise MmprepError(f"device {name!r} is not a device (cpu, cuda, cuda:N, mps, auto)"
                          ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MmprepError(f"device {name!r}: CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise MmprepError(f"device {name!r}: only {torch.cuda.device_count()} GPU(s) visible")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise MmprepError(f"device {name!r}: MPS is not available on this machine")
    return dev


def autocast(device, precision: str):
    """Autocast to fp16/bf16 on ``device``; fp32 runs without autocast."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)
