"""``mmprep doctor``: check that this environment can run mmprep, and say what to fix.

Each check is a small function in ``CHECKS`` returning a ``Check``; ``run_doctor`` runs
them all into a ``DoctorReport``. A check is *required* when the main job (``extract``)
cannot run without it; the report is ``ok`` when no required check failed.

torch, torchvision, torchaudio (and the packages that import torch) are never imported
in this process: a child interpreter (``probe_torch``) imports them one step at a time
and prints one JSON line per step as it goes, so an import that crashes or aborts the
interpreter (a wrong native library, an ABI mismatch) kills only the child, and the
last step it started names the culprit. The child is then rerun without that step, so
the other steps are still checked.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from mmprep.environment import PIN_FIX, TORCH_PINS, base_version, pin_fix
from mmprep.environment import installed_version as dist_version
from mmprep.environment.probe import (
    PROBE_DEPENDS,
    PROBE_TIMEOUT,
    REQUIRED_PACKAGES,
    Probe,
    StepResult,
    probe_torch,
)

Status = Literal["ok", "warn", "fail"]

# The torch triple (pinned exactly in pyproject.toml) and its install command.
TORCH_FIX = PIN_FIX
AV_REQUIREMENT = "av>=13,<19"  # as in pyproject.toml
MIN_PYTHON = (3, 10)
DISK_FAIL_BYTES = 1_000_000_000  # below 1 GB free: fail
DISK_WARN_BYTES = 10_000_000_000  # below 10 GB free: warn

# Optional extras: (module, distribution, extra, what needs it).
EXTRAS: list[tuple[str, str, str, str]] = [
    ("ray", "ray", "ray", "--executor ray"),
    ("open_clip", "open_clip_torch", "clip", "open_clip encoders, the clip tokenizer"),
    ("transformers", "transformers", "hf", "hf: encoders, minilm"),
    ("openbeats", "openbeats", "audio-encoders", "beats: encoders (BEATs checkpoints)"),
    ("pyarrow", "pyarrow", "parquet", "Parquet manifests"),
    ("datasets", "datasets", "test", "Hugging Face datasets (tests)"),
]

# Decoders: key -> (FFmpeg decoder names, any one will do; what will not decode without).
DECODERS: dict[str, tuple[tuple[str, ...], str]] = {
    "h264": (("h264",), "H.264 video (most .mp4/.mkv/.mov)"),
    "hevc": (("hevc",), "HEVC/H.265 video (phone and camera .mp4/.mov)"),
    "vp9": (("vp9", "libvpx-vp9"), "VP9 video (most .webm)"),
    "av1": (("libdav1d", "libaom-av1", "av1"), "AV1 video"),
    "aac": (("aac", "aac_fixed", "libfdk_aac"), "AAC audio (most .mp4/.m4a)"),
    "opus": (("opus", "libopus"), "Opus audio (.webm/.opus)"),
    "mp3": (("mp3float", "mp3"), "MP3 audio"),
}
REQUIRED_DECODERS = ("h264", "aac")
# Encoders sample-data and the test suite's generated clips use (mmprep.synthetic.media).
ENCODERS: dict[str, str] = {"h264": "libx264", "aac": "aac"}
NVDEC_DECODERS = ("h264_cuvid", "hevc_cuvid")


@dataclass
class Check:
    """One check's result. ``required``: the main job (extract) cannot run when it fails."""

    name: str
    status: Status
    detail: str
    fix: str = ""  # a command or a sentence; empty when there is nothing to do
    required: bool = True
    data: dict[str, Any] = field(default_factory=dict)  # versions etc., for --json


@dataclass
class DoctorReport:
    checks: list[Check]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """The main job can run: no required check failed."""
        return not any(c.status == "fail" and c.required for c in self.checks)

    def get(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "seconds": round(self.seconds, 2),
                "checks": [asdict(c) for c in self.checks]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


# ---------------------------------------------------------------------------------------
# Lookups (module-level so tests can replace them)


def installed_version(module: str, dist: str) -> str | None:
    """The version of an optional package when it is installed and importable by name."""
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except (ImportError, ValueError):
        return None
    return dist_version(dist) or "installed"


def find_codec(name: str, mode: str) -> str | None:
    """The name of FFmpeg's codec ``name`` (mode "r": decoder, "w": encoder), or None."""
    import av.codec

    try:
        return av.codec.Codec(name, mode).name
    except Exception:  # noqa: BLE001 - UnknownCodecError and friends
        return None


def packaged_encoder_files() -> dict[str, tuple[Path | None, str]]:
    """Packaged encoder -> (its weights file, "") or (None, why it is missing)."""
    from mmprep.encoders import packaged
    from mmprep.errors import MmprepError

    found: dict[str, tuple[Path | None, str]] = {}
    for name, locate, file in (("minilm", packaged.minilm_dir, "model.safetensors"),
                               ("efficientnet-lite0", packaged.efficientnet_lite0_file, None)):
        try:
            path = locate()
        except MmprepError as exc:
            found[name] = (None, str(exc))
            continue
        found[name] = (path / file if file else path, "")
    return found


# ---------------------------------------------------------------------------------------
# The checks


@dataclass
class Context:
    path: Path
    timeout: float = PROBE_TIMEOUT
    _probe: Probe | None = None

    def probe(self) -> Probe:
        if self._probe is None:
            self._probe = probe_torch(self.timeout)
        return self._probe


def _step_failure(step: StepResult | None, probe: Probe, what: str) -> str | None:
    """Why a probe step did not succeed, as a sentence; None when it succeeded."""
    if step is not None and step.status == "ok":
        return None
    if step is None:
        return f"not checked: {probe.error or 'the check process stopped early'}"
    if step.status == "skipped":
        return f"not checked: {step.error}"
    if step.status == "crashed":
        return f"{what} killed the check process: {step.error}"
    if step.status == "timeout":
        return f"{what} {step.error}"
    return f"{what} failed: {step.error}"


def _torch_family(ctx: Context, name: str) -> Check:
    probe = ctx.probe()
    pin = TORCH_PINS[name]
    installed = dist_version(name)
    torch_installed = dist_version("torch")
    step = probe.steps.get(name)
    data = {"pinned": pin, "installed": installed, "loaded": None}
    why = _step_failure(step, probe, f"importing {name}")
    if why is None and name == "torchaudio":
        data["loaded"] = step.info.get("version")
        why = _step_failure(probe.steps.get("kaldi"), probe,
                            "torchaudio.compliance.kaldi.fbank")
    if why is not None:
        error = step.error if step is not None else ""
        if step is not None and step.status == "error" and installed is None \
                and "ModuleNotFoundError" in error:
            detail = "not installed"
        elif "undefined symbol" in why and name != "torch":
            detail = (f"{name} {installed or '(version unknown)'} was built for another torch "
                      f"than the installed torch {torch_installed or '(none)'} "
                      f"(ABI mismatch): {why}")
        else:
            detail = why
        if step is not None and step.status == "skipped":
            return Check(name, "fail", detail, f"fix {PROBE_DEPENDS[name]} first (see its check)",
                         data=data)
        return Check(name, "fail", detail, pin_fix(), data=data)
    loaded = step.info.get("version") or installed
    data["loaded"] = loaded
    detail = str(loaded)
    if name == "torch":
        cuda = step.info.get("cuda_build")
        detail += f" (CUDA {cuda} build)" if cuda else " (CPU build)"
    elif name == "torchvision":
        detail += ", C++ ops (nms) work"
    else:
        detail += ", kaldi fbank works"
    if base_version(loaded) != pin:
        return Check(name, "warn", f"{detail}; tested with {pin}", TORCH_FIX, data=data)
    return Check(name, "ok", detail, data=data)


def check_python(ctx: Context) -> Check:
    version = platform.python_version()
    data = {"version": version, "executable": sys.executable}
    detail = f"{version} ({sys.executable})"
    if sys.version_info < MIN_PYTHON:
        need = ".".join(map(str, MIN_PYTHON))
        return Check("python", "fail", f"{detail}; mmprep needs >= {need}",
                     f"use Python >= {need}, e.g. python3.11 -m venv .venv", data=data)
    return Check("python", "ok", detail, data=data)


def check_torch(ctx: Context) -> Check:
    return _torch_family(ctx, "torch")


def check_torchvision(ctx: Context) -> Check:
    return _torch_family(ctx, "torchvision")


def check_torchaudio(ctx: Context) -> Check:
    return _torch_family(ctx, "torchaudio")


def check_pyav(ctx: Context) -> Check:
    fix = f"pip install '{AV_REQUIREMENT}'"
    try:
        import av
    except Exception as exc:  # noqa: BLE001 - ImportError, OSError from FFmpeg's libraries
        if dist_version("av") is None:
            return Check("pyav", "fail", "not installed", fix)
        return Check("pyav", "fail", f"does not load: {type(exc).__name__}: {exc}",
                     fix + " --force-reinstall")
    libs = getattr(av, "library_versions", {}) or {}
    avcodec = ".".join(map(str, libs.get("libavcodec", ()))) or "?"
    ffmpeg = getattr(av, "ffmpeg_version_info", None) or "?"
    data = {"version": av.__version__, "ffmpeg": ffmpeg, "libavcodec": avcodec}
    return Check("pyav", "ok", f"PyAV {av.__version__}, FFmpeg {ffmpeg} (libavcodec {avcodec})",
                 data=data)


def check_codecs(ctx: Context) -> Check:
    try:
        import av  # noqa: F401
    except Exception:  # noqa: BLE001
        return Check("codecs", "fail", "not checked: PyAV does not load",
                     f"pip install '{AV_REQUIREMENT}'")
    decoders = {key: [n for n in names if find_codec(n, "r")]
                for key, (names, _) in DECODERS.items()}
    encoders = {key: find_codec(name, "w") for key, name in ENCODERS.items()}
    data = {"decoders": decoders, "encoders": encoders}
    missing_req = [k for k in REQUIRED_DECODERS if not decoders[k]]
    missing_opt = [k for k in DECODERS if k not in REQUIRED_DECODERS and not decoders[k]]
    # FFmpeg's native "av1" decoder only drives hardware decoders: no CPU decoding.
    av1_hw_only = decoders["av1"] == ["av1"]
    missing_enc = [k for k, found in encoders.items() if not found]
    parts = []
    found = [k + (f" ({decoders[k][0]})" if decoders[k][0] != k else "")
             for k in DECODERS if decoders[k]]
    parts.append("decode: " + (", ".join(found) or "none"))
    enc = [f"{k} ({encoders[k]})" if encoders[k] != k else k for k in ENCODERS if encoders[k]]
    parts.append("encode: " + (", ".join(enc) or "none"))
    problems = []
    if missing_req or missing_opt:
        problems.append("no decoder for " + "; ".join(
            f"{k}: {DECODERS[k][1]} won't decode" for k in missing_req + missing_opt))
    if av1_hw_only:
        problems.append(f"av1 has only FFmpeg's hardware-only decoder: {DECODERS['av1'][1]} "
                        "won't decode on the CPU")
    if missing_enc:
        problems.append("no encoder for " + ", ".join(
            f"{k} ({ENCODERS[k]})" for k in missing_enc)
            + ": sample-data and the tests' generated clips need it")
    detail = "; ".join(parts + problems)
    fix = (f"install the PyPI wheel of PyAV, which bundles an FFmpeg with these codecs: "
           f"pip install --force-reinstall '{AV_REQUIREMENT}'")
    if missing_req:
        return Check("codecs", "fail", detail, fix, data=data)
    if problems:
        return Check("codecs", "warn", detail, fix, data=data)
    return Check("codecs", "ok", detail, data=data)


def check_packages(ctx: Context) -> Check:
    probe = ctx.probe()
    versions, problems, broken, needs_torch = {}, [], [], False
    for module, dist in REQUIRED_PACKAGES:
        step = probe.steps.get("pkg:" + module)
        why = _step_failure(step, probe, "importing it")
        if why is None:
            versions[module] = step.info.get("version")
            continue
        if step is not None and step.status == "error" and dist_version(dist) is None:
            why = "not installed"
        if step is not None and step.status == "skipped":  # torch is the problem
            needs_torch = True
        else:
            broken.append(dist)
        problems.append(f"{module}: {why}")
    data = {"versions": versions}
    if problems:
        fixes = ["pip install " + " ".join(broken)] if broken else []
        if needs_torch:
            fixes.append("fix torch first (see its check)")
        return Check("packages", "fail", "; ".join(problems), "; ".join(fixes), data=data)
    return Check("packages", "ok", ", ".join(f"{m} {v}" for m, v in versions.items()),
                 data=data)


def check_encoder_weights(ctx: Context) -> Check:
    files = packaged_encoder_files()
    code = {"minilm": ("transformers", "transformers"),
            "efficientnet-lite0": ("efficientnet_lite_pytorch", "efficientnet-lite-pytorch")}
    found, missing, data = [], [], {}
    for name, (path, why) in files.items():
        module, dist = code[name]
        data[name] = str(path) if path else None
        if path is None:
            missing.append(f"{name}: {why.split('; ')[0]}")
        elif installed_version(module, dist) is None:
            missing.append(f"{name}: weights found, but it also needs {dist}")
        else:
            found.append(f"{name} ({path.stat().st_size / 1e6:.1f} MB)")
    if missing:
        detail = ("; ".join(missing) + "; `make quickstart` and embed with the packaged "
                  "encoders (minilm, efficientnet-lite0) will not run (extract is unaffected)")
        if found:
            detail = "found " + ", ".join(found) + "; " + detail
        return Check("encoder-weights", "warn", detail, "pip install 'mmprep[encoders]'",
                     required=False, data=data)
    return Check("encoder-weights", "ok", ", ".join(found), required=False, data=data)


def check_gpu(ctx: Context) -> Check:
    probe = ctx.probe()
    step = probe.steps.get("cuda")
    nvdec = [n for n in NVDEC_DECODERS if find_codec(n, "r")]
    try:
        from av.codec.hwaccel import hwdevices_available

        hw = list(hwdevices_available())
    except Exception:  # noqa: BLE001 - older PyAV, or PyAV missing
        hw = []
    data: dict[str, Any] = {"nvdec": nvdec, "hwdevices": hw}
    if nvdec or "cuda" in hw:
        video = (f"FFmpeg has NVDEC ({', '.join(nvdec) or 'cuda hwdevice'}); "
                 "--set video.hwaccel=cuda decodes on it, with a CPU fallback")
    else:
        video = "FFmpeg has no NVDEC; mmprep decodes video on the CPU"
    why = _step_failure(step, probe, "torch.cuda")
    if why is not None:
        return Check("gpu", "warn", f"{why}; embed and train-head run on CPU; {video}",
                     required=False, data=data)
    info = step.info
    data.update(info)
    if not info.get("available"):
        build = f"torch built for CUDA {info['cuda']}" if info.get("cuda") else "CPU torch"
        return Check("gpu", "ok", f"none: embed and train-head run on CPU ({build}); {video}",
                     required=False, data=data)
    names = info.get("names") or []
    devices = ", ".join(f"{names.count(n)} x {n}" for n in dict.fromkeys(names))
    return Check("gpu", "ok", f"{devices} (CUDA {info.get('cuda')}): embed and train-head "
                 f"use it with --device auto; {video}", required=False, data=data)


def check_extras(ctx: Context) -> Check:
    found, missing, extras, data = [], [], [], {}
    for module, dist, extra, use in EXTRAS:
        version = installed_version(module, dist)
        data[dist] = version
        if version is None:
            missing.append(f"{module}: not installed, for {use} (pip install 'mmprep[{extra}]')")
            extras.append(extra)
        else:
            found.append(f"{module} {version}")
    detail = "; ".join([", ".join(found)] * bool(found) + missing)
    if missing:
        return Check("extras", "warn", detail,
                     f"only if you need them: pip install 'mmprep[{','.join(extras)}]'",
                     required=False, data=data)
    return Check("extras", "ok", detail, required=False, data=data)


def check_disk(ctx: Context) -> Check:
    path = ctx.path.resolve()
    while not path.exists() and path != path.parent:  # an output folder not made yet
        path = path.parent
    usage = shutil.disk_usage(path)
    data = {"path": str(path), "free_bytes": usage.free, "total_bytes": usage.total}
    detail = f"{usage.free / 1e9:.1f} GB free of {usage.total / 1e9:.1f} GB at {path}"
    fix = (f"free space on {path}, or write outputs to another disk (check it with "
           "mmprep doctor --path DIR)")
    if usage.free < DISK_FAIL_BYTES:
        return Check("disk", "fail", detail + f" (< {DISK_FAIL_BYTES / 1e9:g} GB)", fix,
                     data=data)
    if usage.free < DISK_WARN_BYTES:
        return Check("disk", "warn", detail + f" (< {DISK_WARN_BYTES / 1e9:g} GB: room for "
                     "small runs only)", fix, data=data)
    return Check("disk", "ok", detail, data=data)


def check_cpu(ctx: Context) -> Check:
    total = os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = total
    data = {"usable": usable, "total": total}
    return Check("cpu", "ok", f"{usable} usable core(s) of {total}", required=False, data=data)


# The registry: run in this order, reported in this order.
CHECKS: list[Callable[[Context], Check]] = [
    check_python, check_torch, check_torchvision, check_torchaudio, check_pyav, check_codecs,
    check_packages, check_encoder_weights, check_gpu, check_extras, check_disk, check_cpu,
]


def run_doctor(path: str | Path = ".", timeout: float = PROBE_TIMEOUT,
               probe: Probe | None = None) -> DoctorReport:
    """Check that this environment can run mmprep.

    Args:
        path: where outputs will go (its free disk is checked).
        timeout: seconds the child processes that import torch & co. may take.
        probe: a ``probe_torch`` result to reuse instead of a new one.

    Returns the report; ``report.ok`` is False when the main job cannot run.
    """
    t0 = time.perf_counter()
    ctx = Context(Path(path), timeout, probe)
    checks = []
    for fn in CHECKS:
        name = fn.__name__.removeprefix("check_").replace("_", "-")
        try:
            checks.append(fn(ctx))
        except Exception as exc:  # noqa: BLE001 - a bug in one check must not hide the rest
            checks.append(Check(name, "warn", f"the check itself failed: "
                                f"{type(exc).__name__}: {exc}", required=False))
    return DoctorReport(checks, time.perf_counter() - t0)


def format_report(report: DoctorReport, width: int = 100) -> str:
    """The table: check, status, detail (wrapped); then what to fix; then the verdict."""
    name_w = max([len("check")] + [len(c.name) for c in report.checks])
    indent = " " * (name_w + 10)
    lines = [f"{'check':<{name_w}}  status  detail"]
    for c in report.checks:
        wrapped = textwrap.wrap(c.detail, width=max(width - len(indent), 30)) or [""]
        lines.append(f"{c.name:<{name_w}}  {c.status:<6}  {wrapped[0]}")
        lines += [indent + w for w in wrapped[1:]]
    fixes = [c for c in report.checks if c.status != "ok" and c.fix]
    if fixes:
        lines += ["", "To fix:"]
        lines += [f"  {c.name} ({c.status}): {c.fix}" for c in fixes]  # unwrapped: copyable
    warnings = sum(c.status == "warn" for c in report.checks)
    lines.append("")
    if report.ok:
        lines.append("The main job (extract) can run here"
                     + (f"; {warnings} warning(s) above." if warnings else "."))
    else:
        failed = ", ".join(c.name for c in report.checks if c.status == "fail" and c.required)
        lines.append(f"The main job (extract) cannot run here: fix {failed} (exit code 4).")
    return "\n".join(lines)
