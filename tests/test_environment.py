"""Installs that keep working: the lock agrees with pyproject, and a broken install is
one clear error (exit code 4), never a traceback or an error record per sample."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mmprep.environment import TORCH_PINS, explain_import_error, preflight
from mmprep.errors import EnvironmentProblem

ROOT = Path(__file__).resolve().parents[1]
ABI_ERROR = ("/site-packages/torchaudio/lib/libtorchaudio.so: undefined symbol: "
             "torch_exception_get_what_without_backtrace")


def read_lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"lock line {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra if not r.startswith("mmprep[")]
    return reqs


def test_lock_pins_every_declared_dependency_within_its_range():
    lock = read_lock()
    env = {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux"}
    for req in project_requirements():
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        assert name in lock, f"{req.name} is declared in pyproject.toml but not locked"
        assert req.specifier.contains(lock[name], prereleases=True), (
            f"the lock pins {req.name}=={lock[name]}, outside pyproject's {req.specifier}")


def test_torch_triple_is_exact_everywhere():
    lock = read_lock()
    declared = {canonicalize_name(r.name): str(r.specifier) for r in project_requirements()}
    makefile = (ROOT / "Makefile").read_text()
    for name, version in TORCH_PINS.items():
        assert lock[name] == version
        assert declared[name] == f"=={version}"
        assert f"{name}=={version}" in makefile


def test_make_and_ci_install_through_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert "-c $(LOCK)" in makefile and "LOCK ?= constraints.txt" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_abi_mismatch_is_named_with_the_fix():
    msg = explain_import_error("torchaudio.compliance.kaldi", OSError(ABI_ERROR))
    assert "ABI mismatch" in msg and "torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0" in msg
    missing = explain_import_error("tokenizers", ModuleNotFoundError("no", name="tokenizers"))
    assert "pip install tokenizers" in missing


def test_preflight_names_the_module_that_fails(monkeypatch, tmp_path):
    (tmp_path / "brokenlib.py").write_text("raise OSError('libbroken.so: cannot open')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    preflight(["json", "numpy"])
    with pytest.raises(EnvironmentProblem, match="cannot load brokenlib.*mmprep doctor"):
        preflight(["numpy", "brokenlib"])


@pytest.fixture()
def broken_torchaudio(tmp_path):
    """A torchaudio that fails to load the way an ABI-mismatched wheel does."""
    shadow = tmp_path / "shadow"
    (shadow / "torchaudio").mkdir(parents=True)
    (shadow / "torchaudio" / "__init__.py").write_text(f"raise OSError({ABI_ERROR!r})\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow), str(ROOT)])}


def mmprep(args, env=None):
    return subprocess.run([sys.executable, "-m", "mmprep", *args], capture_output=True,
                          text=True, env=env or {**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=300)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_worker_that_cannot_import_stops_the_run_with_one_line(tmp_path, sample_data,
                                                              broken_torchaudio, workers):
    out = tmp_path / "out"
    args = ["extract", str(sample_data), "-o", str(out), "--frames", "2", "--size", "32",
            "--shard-size", "2"]
    # half the shards done by a healthy install first (array task 0 of 2)
    first = mmprep([*args, "--executor", "slurm", "--task-id", "0", "--task-count", "2"])
    assert first.returncode == 0, first.stderr
    done = {p.name: p.read_bytes() for p in out.glob("*.stats.json")}
    assert len(done) == 2

    broken = mmprep([*args, "--workers", workers], env=broken_torchaudio)
    assert broken.returncode == 4, broken.stderr
    assert "Traceback" not in broken.stderr
    lines = [line for line in broken.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "torchaudio" in lines[0] and "ABI mismatch" in lines[0]
    assert "mmprep doctor" in lines[0]
    assert {p.name: p.read_bytes() for p in out.glob("*.stats.json")} == done  # kept

    resumed = mmprep([*args, "--json"])
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["ok"] == 6 and summary["shards_done_before"] == 2
