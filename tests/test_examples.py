"""The example scripts run on generated data."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import webdataset as wds

from mmprep.shards import inspect_path, shard_files

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


def run_example(name, tmp_path, **env_vars):
    env = {**os.environ, "MMPREP": mmprep_bin(tmp_path), "PYTHON": sys.executable, **env_vars}
    result = subprocess.run(["bash", str(EXAMPLES / name)], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_msrvtt_example(sample_data, tmp_path):
    data = tmp_path / "msrvtt"
    (data / "videos").mkdir(parents=True)
    rows = [json.loads(x) for x in sample_data.read_text().splitlines()][:4]
    videos, sentences = [], []
    for i, row in enumerate(rows):
        shutil.copy(sample_data.parent / row["video"], data / "videos" / f"video{i}.mp4")
        videos.append({"video_id": f"video{i}", "split": "train" if i < 3 else "test"})
        sentences += [{"video_id": f"video{i}", "caption": c} for c in row["caption"]]
    (data / "annotation.json").write_text(json.dumps({"videos": videos, "sentences": sentences}))
    result = run_example("msrvtt.sh", tmp_path, DATA=str(data),
                         EXTRA_ARGS="--frames 2 --size 32 --mel-frames 64")
    assert "valid: yes" in result.stdout
    meta = {s["__key__"]: s["json"] for s in wds.WebDataset(
        shard_files(data / "shards"), shardshuffle=False).decode()}
    assert sorted(meta) == ["video0", "video1", "video2", "video3"]
    assert meta["video3"]["split"] == "test" and meta["video0"]["num_captions"] == 2


def test_audiocaps_example(tmp_path):
    from mmprep.synthetic.media import encode_clip, tone

    data = tmp_path / "audiocaps"
    lines = ["audiocap_id,youtube_id,start_time,caption"]
    for i, freq in enumerate((300.0, 500.0, 700.0)):
        encode_clip(data / "audio" / f"yt{i}.wav", None, audio=tone(2.0, 16000, freq),
                    audio_codec="pcm_s16le")
        lines += [f"{10 * i},yt{i},30,a tone of {freq:g} hertz",
                  f"{10 * i + 1},yt{i},30,a steady beep"]
    (data / "captions.csv").write_text("\n".join(lines) + "\n")
    result = run_example("audiocaps.sh", tmp_path, DATA=str(data))
    assert "valid: yes" in result.stdout
    samples = list(wds.WebDataset(shard_files(data / "shards"), shardshuffle=False).decode())
    assert [s["__key__"] for s in samples] == ["yt0", "yt1", "yt2"]
    assert samples[0]["mel.npy"].shape == (1024, 64)
    assert samples[0]["json"]["num_captions"] == 2 and "f000.jpg" not in samples[0]
