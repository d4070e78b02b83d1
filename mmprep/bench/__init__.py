"""Benchmarks. Each compares mmprep with a baseline measured in the same run and returns
a typed result (a ``mmprep.results.Result``) that records the machine it ran on."""

from __future__ import annotations

import os
import platform
from typing import Any


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_description(device: Any = None) -> str:
    """What a benchmark ran on: CPU model, usable cores and, when ``device`` is a CUDA
    device, the GPU's name. torch is imported only for a CUDA device (a benchmark that
    passes one has imported it already)."""
    cores = usable_cores()
    text = f"{cpu_model()}, {cores} usable core{'' if cores == 1 else 's'}"
    if device is not None and str(device).startswith("cuda"):
        import torch

        text += f", GPU {torch.cuda.get_device_name(device)}"
    return text
