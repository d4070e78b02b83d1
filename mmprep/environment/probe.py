"""A child interpreter that imports torch, torchvision, torchaudio and the packages that
import torch, one step at a time, printing one JSON line per step as it goes. An import
that crashes or aborts the interpreter (a wrong native library, an ABI mismatch) kills
only the child; the last step it started names the culprit, and the child is rerun
without that step so the other steps are still checked. Used by ``mmprep doctor``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Literal

PROBE_TIMEOUT = 120.0

# Required packages other than the torch triple and PyAV: (module, distribution).
REQUIRED_PACKAGES: list[tuple[str, str]] = [
    ("numpy", "numpy"), ("h5py", "h5py"), ("tokenizers", "tokenizers"), ("PIL", "pillow"),
    ("yaml", "pyyaml"), ("safetensors", "safetensors"), ("click", "click"), ("tqdm", "tqdm"),
    ("webdataset", "webdataset"),  # last: it imports torch
]


# Steps run in this order; DEPENDS: a step is skipped when what it needs did not load.
PROBE_DEPENDS: dict[str, str] = {
    "cuda": "torch", "torchvision": "torch", "torchaudio": "torch", "kaldi": "torchaudio",
    "pkg:webdataset": "torch",
}
_MARK = "@mmprep-doctor "

_PROBE_SCRIPT = r'''
import faulthandler, importlib, importlib.metadata, json, os, sys, time
faulthandler.enable()
try:
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file
except Exception:
    pass
# like the `mmprep` script: the current folder is not on the path
sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
ARGS = json.loads(sys.argv[1])
SKIP, FAILED, DEPENDS = set(ARGS["skip"]), set(ARGS["failed"]), ARGS["depends"]

def emit(**event):
    sys.stdout.write(ARGS["mark"] + json.dumps(event) + "\n")
    sys.stdout.flush()

def version(dist, module):
    try:
        return importlib.metadata.version(dist)
    except Exception:
        return getattr(module, "__version__", None)

def step_torch():
    import torch
    return {"version": torch.__version__, "cuda_build": torch.version.cuda}

def step_cuda():
    import torch
    available = torch.cuda.is_available()
    count = torch.cuda.device_count() if available else 0
    return {"available": available, "count": count, "cuda": torch.version.cuda,
            "names": [torch.cuda.get_device_name(i) for i in range(count)]}

def step_torchvision():
    import torch
    import torchvision
    from torchvision.ops import nms  # runs the C++ extension
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
    return {"version": torchvision.__version__}

def step_torchaudio():
    import torchaudio
    return {"version": getattr(torchaudio, "__version__", None)}

def step_kaldi():
    import torch
    import torchaudio.compliance.kaldi as kaldi
    wave = torch.randn(1, 16000, generator=torch.Generator().manual_seed(0)) * 0.1
    feats = kaldi.fbank(wave, num_mel_bins=64, sample_frequency=16000)
    return {"shape": list(feats.shape)}

def package_step(module, dist):
    def step():
        mod = importlib.import_module(module)
        return {"version": version(dist, mod)}
    return step

STEPS = [("pkg:" + m, package_step(m, d)) for m, d in ARGS["packages"][:-1]]
STEPS += [("torch", step_torch), ("cuda", step_cuda), ("torchvision", step_torchvision),
          ("torchaudio", step_torchaudio), ("kaldi", step_kaldi)]
STEPS += [("pkg:" + m, package_step(m, d)) for m, d in ARGS["packages"][-1:]]

for name, fn in STEPS:
    if name in SKIP:
        continue
    need = DEPENDS.get(name)
    if need in FAILED:
        FAILED.add(name)
        emit(step=name, event="skipped", error=need + " did not load")
        continue
    emit(step=name, event="start")
    t0 = time.perf_counter()
    try:
        info = fn()
    except (Exception, SystemExit) as exc:
        FAILED.add(name)
        emit(step=name, event="error", error=(type(exc).__name__ + ": " + str(exc))[:2000])
    else:
        emit(step=name, event="ok", info=info, seconds=round(time.perf_counter() - t0, 3))
emit(event="done")
os._exit(0)  # skip the interpreter's teardown (seconds with torch loaded)
'''


@dataclass
class StepResult:
    status: Literal["ok", "error", "skipped", "crashed", "timeout"]
    info: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    seconds: float | None = None


@dataclass
class Probe:
    """What the child processes found, by step ("torch", "pkg:numpy", ...)."""

    steps: dict[str, StepResult]
    runs: int = 1
    seconds: float = 0.0
    error: str = ""  # the child could not run at all


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def _stderr_hint(stderr: str) -> str:
    """The telling line of a dead child's stderr (faulthandler's or the last one)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("Fatal Python error"):
            return ln[:300]
    return lines[-1][:300] if lines else ""


def probe_torch(timeout: float = PROBE_TIMEOUT, python: str | None = None) -> Probe:
    """Import the torch triple, run a small kaldi fbank and import the required packages
    in child interpreters; a step that kills its child is recorded and skipped on rerun."""
    python = python or sys.executable
    start = time.monotonic()
    deadline = start + timeout
    steps: dict[str, StepResult] = {}
    runs = 0
    while True:
        runs += 1
        failed = [n for n, r in steps.items() if r.status != "ok"]
        args = {"skip": sorted(steps), "failed": failed, "depends": PROBE_DEPENDS,
                "packages": REQUIRED_PACKAGES, "mark": _MARK}
        try:
            proc = subprocess.Popen([python, "-c", _PROBE_SCRIPT, json.dumps(args)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, errors="replace")
        except OSError as exc:
            return Probe(steps, runs, time.monotonic() - start,
                         f"cannot start {python}: {exc}")
        timed_out = False
        try:
            out, err = proc.communicate(timeout=max(deadline - time.monotonic(), 1.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            timed_out = True
        started, done = None, False
        for line in out.splitlines():
            if not line.startswith(_MARK):
                continue
            try:
                event = json.loads(line[len(_MARK):])
            except ValueError:
                continue
            if event.get("event") == "done":
                done = True
            elif event.get("event") == "start":
                started = event["step"]
            else:
                steps[event["step"]] = StepResult(event["event"], event.get("info", {}),
                                                  event.get("error", ""), event.get("seconds"))
                started = None
        if done:
            break
        if started is None:  # died outside any step: the interpreter itself
            why = (f"did not finish within {timeout:g} s" if timed_out
                   else _exit_reason(proc.returncode))
            hint = _stderr_hint(err)
            return Probe(steps, runs, time.monotonic() - start,
                         f"{python} {why}" + (f": {hint}" if hint else ""))
        if timed_out:
            steps[started] = StepResult("timeout", error=f"did not finish within {timeout:g} s")
            break
        hint = _stderr_hint(err)
        steps[started] = StepResult("crashed", error=_exit_reason(proc.returncode)
                                    + (f" ({hint})" if hint else ""))
        if time.monotonic() >= deadline or runs > 20:
            break
    return Probe(steps, runs, time.monotonic() - start)
