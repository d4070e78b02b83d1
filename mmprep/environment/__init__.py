"""What mmprep needs from its environment, and clear errors when the install is broken.

The torch triple is pinned here (and in pyproject.toml): torchaudio and torchvision
ship compiled extensions built against one exact torch, and a mismatch fails only when
they load (``undefined symbol: ...``). ``preflight`` imports what a job needs before
any sample is processed, so a broken install stops the run with one message instead of
one error record per sample or a worker traceback.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from mmprep.errors import EnvironmentProblem

# The versions mmprep is tested with; the GPU machines ship exactly these.
TORCH_PINS = {"torch": "2.11.0", "torchvision": "0.26.0", "torchaudio": "2.11.0"}
PIN_FIX = "pip install " + " ".join(f"{k}=={v}" for k, v in TORCH_PINS.items())
DOCTOR_HINT = "run `mmprep doctor` to check the whole environment"


def installed_version(dist: str) -> str | None:
    """The installed distribution's version, without importing it (None: not installed)."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def base_version(version: str | None) -> str | None:
    """``2.11.0+cu130`` -> ``2.11.0``."""
    return version.split("+", 1)[0] if version else version


def pin_fix() -> str:
    """The torch triple's install command; with --force-reinstall when the pinned versions
    are already installed (a broken or mismatched build of the same versions)."""
    if all(base_version(installed_version(n)) == v for n, v in TORCH_PINS.items()):
        return PIN_FIX + " --force-reinstall"
    return PIN_FIX


def explain_import_error(module: str, exc: BaseException) -> str:
    """One sentence naming what failed to load and why, with the fix when it is known."""
    top = module.split(".", 1)[0]
    text = f"{type(exc).__name__}: {exc}".strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    message = f"cannot load {module} ({text})"
    if "undefined symbol" in text and top in ("torchaudio", "torchvision"):
        have = base_version(installed_version(top)) or "?"
        torch = base_version(installed_version("torch")) or "?"
        message += (f": {top} {have} was built for another torch than the installed torch "
                    f"{torch} (an ABI mismatch); fix: {pin_fix()}")
    elif isinstance(exc, ModuleNotFoundError) and top in TORCH_PINS:
        message += f"; fix: {pin_fix()}"
    elif isinstance(exc, ModuleNotFoundError):
        message += f"; fix: pip install {exc.name or top}"
    return message


def preflight(modules: Iterable[str], *, what: str = "mmprep") -> None:
    """Import ``modules``; raise ``EnvironmentProblem`` naming the first that fails."""
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - OSError from a .so, ImportError, ...
            raise EnvironmentProblem(
                f"{what} cannot run: {explain_import_error(module, exc)}; {DOCTOR_HINT}"
            ) from exc
