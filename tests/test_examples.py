"""The example scripts run on generated data."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmprep.inspect import inspect_path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def mmprep_bin(tmp_path) -> str:
    """A tiny `mmprep` launcher for the interpreter running the tests."""
    launcher = tmp_path / "mmprep"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mmprep "$@"\n')
    launcher.chmod(0o755)
    return str(launcher)


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.sh"))
                         + sorted(p.name for p in EXAMPLES.glob("*.sbatch")))
def test_examples_are_valid_shell(name):
    subprocess.run(["bash", "-n", str(EXAMPLES / name)], check=True)


def test_slurm_example_as_a_two_task_array(sample_data, tmp_path):
    out = tmp_path / "shards"
    for task in (0, 1):
        env = {**os.environ, "MANIFEST": str(sample_data), "OUT": str(out),
               "MMPREP": mmprep_bin(tmp_path), "SLURM_ARRAY_TASK_ID": str(task),
               "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_CPUS_PER_TASK": "1",
               "EXTRA_ARGS": "--shard-size 2 --frames 2 --size 32 --mel-frames 64"}
        subprocess.run(["bash", str(EXAMPLES / "slurm_extract.sbatch")], env=env, check=True,
                       capture_output=True)
    info = inspect_path(str(out))
    assert info["valid"] and info["samples"] == 6


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed")
def test_ray_example_on_a_local_ray(sample_data, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(MANIFEST=str(sample_data), OUT=str(tmp_path / "shards"), CPUS_PER_TASK="1",
               MMPREP=mmprep_bin(tmp_path),
               EXTRA_ARGS="--shard-size 3 --frames 2 --size 32 --mel-frames 64")
    result = subprocess.run(["bash", str(EXAMPLES / "ray_extract.sh")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "valid: yes" in result.stdout
