"""A real ``kill -9`` of a running extract, then a rerun: nothing lost, nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import webdataset as wds

from mmprep.shards import inspect_path, shard_files


@pytest.fixture(scope="module")
def twelve_clips(tmp_path_factory):
    from mmprep.synthetic.clips import write_sample_data

    return write_sample_data(tmp_path_factory.mktemp("kill_clips"), 12, seed=3, seconds=1.0,
                             fps=8)


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for c in map(int, children):
                if c not in found:
                    found.add(c)
                    todo.append(c)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def command(manifest, out):
    return [sys.executable, "-m", "mmprep", "extract", str(manifest), "-o", str(out),
            "--frames", "3", "--size", "32", "--mel-frames", "64", "--shard-size", "2",
            "--workers", "2", "-q"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
@pytest.mark.parametrize("when", ["first_shard", "mid_run", "early"])
def test_kill_9_then_rerun_keeps_every_sample_once(twelve_clips, tmp_path, when):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command(twelve_clips, out), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    wanted = {"first_shard": 1, "mid_run": 3, "early": 0}[when]
    children: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        children |= descendants(proc.pid)
        done = len(list(out.glob("*.stats.json"))) if out.exists() else 0
        if (wanted == 0 and any(out.glob("*.tar.tmp"))) or (wanted and done >= wanted):
            break
        time.sleep(0.05)
    children |= descendants(proc.pid)
    killed_while_running = proc.poll() is None
    if killed_while_running:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if killed_while_running:
        time.sleep(3)
        assert not [c for c in children if alive(c)], "worker processes outlived the parent"

    rerun = subprocess.run(command(twelve_clips, out), env=env, capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    keys = [s["__key__"] for s in wds.WebDataset(shard_files(out), shardshuffle=False)]
    expected = [json.loads(line)["key"] for line in twelve_clips.read_text().splitlines()]
    assert keys == expected  # every sample exactly once, in manifest order
    info = inspect_path(str(out))
    assert info["valid"], info["problems"]
    assert not info["warnings"]
