"""Workers, timeouts, crashes, executors, remote outputs, retries and validation."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sys
import tarfile
import threading
import time

import pytest
from click.testing import CliRunner

from mmprep.cli import cli
from mmprep.config import from_dict
from mmprep.errors import MmprepError
from mmprep.extract import ExtractConfig, RunOptions, extract, retry_failed
from mmprep.extract.executors.pool import SamplePool
from mmprep.extract.executors.slurm import task_slot
from mmprep.extract.options import PoolOptions, SlurmOptions
from mmprep.manifest import Sample, read_manifest
from mmprep.shards import inspect_path


def cfg_small(per_shard=2) -> ExtractConfig:
    return from_dict(ExtractConfig, {"video": {"num_frames": 3, "size": 24},
                                     "audio": {"target_frames": 64},
                                     "shards": {"samples_per_shard": per_shard}})


def opts(workers=2, **kw) -> RunOptions:
    return RunOptions(progress=False, pool=PoolOptions(workers=workers, sample_timeout=60), **kw)


def tar_bytes(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}


def test_same_bytes_whatever_the_worker_count(sample_data, tmp_path):
    samples = read_manifest(sample_data)
    cfg = from_dict(ExtractConfig, {"video": {"num_frames": 3, "size": 24,
                                              "sampling": "random"},
                                    "audio": {"target_frames": 64},
                                    "shards": {"samples_per_shard": 2}})
    results = []
    for workers in (0, 1, 2):
        out = tmp_path / f"w{workers}"
        extract(samples, out, cfg, opts(workers))
        results.append(tar_bytes(out))
    assert len(results[0]) == 3
    assert results[0] == results[1] == results[2]


@pytest.fixture
def fifo_clip(tmp_path):
    """A named pipe called .mp4 that nobody writes to: opening it blocks forever."""
    path = tmp_path / "stuck.mp4"
    os.mkfifo(path)
    return path


def test_hung_sample_times_out_and_the_run_goes_on(sample_data, fifo_clip, tmp_path):
    clips = sorted((sample_data.parent / "clips").glob("*.mp4"))[:3]
    manifest = tmp_path / "m.jsonl"
    rows = [{"video": str(c), "caption": "ok"} for c in clips]
    rows.insert(1, {"video": str(fifo_clip), "caption": "hangs"})
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    t0 = time.monotonic()
    summary = extract(read_manifest(manifest), out, cfg_small(),
                      RunOptions(progress=False, pool=PoolOptions(workers=2, sample_timeout=3)))
    assert time.monotonic() - t0 < 45
    assert summary.ok == 3 and summary.failed == 1
    (err,) = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert err["key"] == "stuck" and err["type"] == "Timeout" and err["stage"] == "video"
    assert "no result after 3 s" in err["message"]


def test_a_killed_worker_becomes_an_error_record_and_is_replaced(sample_data, fifo_clip):
    good = Sample(index=1, key="good", source=str(sorted(
        (sample_data.parent / "clips").glob("*.mp4"))[0]), captions=["fine"])
    stuck = Sample(index=0, key="stuck", source=str(fifo_clip), captions=["hangs"])
    pool = SamplePool(cfg_small(), 1, sample_timeout=None)
    try:
        pool.submit(pool.idle()[0], "a", stuck)
        time.sleep(1.0)
        (pid,) = pool.busy_pids()
        os.kill(pid, signal.SIGKILL)
        results = []
        deadline = time.monotonic() + 20
        while not results and time.monotonic() < deadline:
            results = pool.poll(0.5)
        ((task, outcome),) = results
        assert task == "a" and outcome.error["type"] == "WorkerCrash"
        assert "signal 9" in outcome.error["message"] and outcome.error["stage"] == "video"
        assert pool.replaced == 1
        pool.submit(pool.idle()[0], "b", good)
        results = []
        while not results:
            results = pool.poll(0.5)
        assert results[0][0] == "b" and results[0][1].ok
    finally:
        pool.close()


def test_fail_fast_and_max_failure_rate_exit_codes(sample_data, tmp_path):
    clips = sorted((sample_data.parent / "clips").glob("*.mp4"))
    manifest = tmp_path / "m.csv"
    manifest.write_text("video,caption\n" + f"{clips[0]},a\nmissing.mp4,b\n{clips[1]},c\n")
    runner = CliRunner()
    base = ["extract", str(manifest), "--frames", "2", "--size", "16", "-q", "--workers", "1"]
    result = runner.invoke(cli, [*base, "-o", str(tmp_path / "ff"), "--fail-fast"])
    assert result.exit_code == 1 and "stopped by --fail-fast" in result.output
    assert not list((tmp_path / "ff").glob("*.stats.json"))
    assert not list((tmp_path / "ff").glob("*.tmp"))
    result = runner.invoke(cli, [*base, "-o", str(tmp_path / "rate"), "--max-failure-rate", "0.2"])
    assert result.exit_code == 3 and "above --max-failure-rate" in result.output
    result = runner.invoke(cli, [*base, "-o", str(tmp_path / "ok"), "--max-failure-rate", "0.5"])
    assert result.exit_code == 0


def test_slurm_tasks_cover_the_dataset(sample_data, tmp_path):
    samples = read_manifest(sample_data)
    reference = tmp_path / "ref"
    extract(samples, reference, cfg_small(), opts(0))
    out = tmp_path / "slurm"
    for task in range(2):
        env = {"SLURM_ARRAY_TASK_ID": str(task + 1), "SLURM_ARRAY_TASK_MIN": "1",
               "SLURM_ARRAY_TASK_COUNT": "2"}
        assert task_slot(SlurmOptions(), env) == (task, 2)
        extract(samples, out, cfg_small(),
                opts(1, executor="slurm", slurm=SlurmOptions(task_id=task, task_count=2)))
        done = sorted(p.name for p in out.glob("*.stats.json"))
        assert len(done) == (2 if task == 0 else 3)
    assert tar_bytes(out) == tar_bytes(reference)
    with pytest.raises(MmprepError, match="SLURM_ARRAY_TASK_ID"):
        task_slot(SlurmOptions(), {})
    assert task_slot(SlurmOptions(), {"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "0",
                                      "SLURM_ARRAY_TASK_STEP": "2",
                                      "SLURM_ARRAY_TASK_COUNT": "3"}) == (2, 3)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed")
def test_ray_executor_matches_local(sample_data, tmp_path):
    import ray

    samples = read_manifest(sample_data)
    reference = tmp_path / "ref"
    extract(samples, reference, cfg_small(), opts(0))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "ray"
        summary = extract(samples, out, cfg_small(), opts(None, executor="ray"))
        assert summary.ok == len(samples)
        assert tar_bytes(out) == tar_bytes(reference)
        with pytest.raises(MmprepError, match="asks for 64 CPU"):
            run = opts(None, executor="ray", overwrite=True)
            run.ray.cpus_per_task = 64
            extract(samples, tmp_path / "ray2", cfg_small(), run)
    finally:
        ray.shutdown()


def test_missing_ray_gives_a_clear_message(sample_data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MmprepError, match=r"pip install 'mmprep\[ray\]'"):
        extract(read_manifest(sample_data), tmp_path / "o", cfg_small(), opts(executor="ray"))


def test_fsspec_output_and_input_urls(sample_data, tmp_path):
    import fsspec

    clips = sorted((sample_data.parent / "clips").glob("*.mp4"))[:3]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"video": f"file://{c}", "caption": "x"}) + "\n"
                                for c in clips))
    url = f"memory://mmprep-test-{os.getpid()}/out"
    summary = extract(read_manifest(manifest), url, cfg_small(), opts(2))
    assert summary.ok == 3
    fs = fsspec.filesystem("memory")
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(url.removeprefix("memory://"), detail=False))
    assert "shard-000000.tar" in names and "shard-000001.stats.json" in names
    with fsspec.open(f"{url}/shard-000000.tar", "rb") as fh, tarfile.open(fileobj=fh) as tar:
        assert tar.getnames()[0] == "clip000000.json"
    again = extract(read_manifest(manifest), url, cfg_small(), opts(2))
    assert again.processed == 0 and again.shards_done_before == 2
    assert inspect_path(url)["valid"]


def test_retry_failed_reprocesses_only_the_failures(sample_data, tmp_path):
    clips = sorted((sample_data.parent / "clips").glob("*.mp4"))
    late = tmp_path / "late.mp4"
    manifest = tmp_path / "m.jsonl"
    rows = [{"video": str(clips[0]), "caption": "a"}, {"video": str(late), "caption": "b"},
            {"video": str(clips[1]), "caption": "c"}, {"caption": "no video"}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    first = extract(read_manifest(manifest), out, cfg_small(), opts(1))
    assert first.ok == 2 and first.failed == 2
    shutil.copy(clips[2], late)
    summary, retried = retry_failed(out, opts(1))
    assert retried == 1  # the manifest row without video cannot be retried
    assert summary.ok == 3 and summary.failed == 1
    stats = json.loads((out / "shard-000002.stats.json").read_text())
    assert stats["retry"] is True and stats["keys"] == ["late"]
    errors = (out / "errors.jsonl").read_text().splitlines()
    assert len(errors) == 1 and "no media path" in errors[0]
    info = inspect_path(str(out))
    assert info["valid"] and info["samples"] == 3
    # The original command still sees a finished run.
    assert extract(read_manifest(manifest), out, cfg_small(), opts(1)).processed == 0


def test_inspect_finds_problems(sample_data, tmp_path):
    out = tmp_path / "out"
    extract(read_manifest(sample_data), out, cfg_small(), opts(0))
    assert inspect_path(str(out))["valid"]
    result = CliRunner().invoke(cli, ["inspect", str(out), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["samples"] == 6
    # A truncated tar.
    tar = out / "shard-000001.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    info = inspect_path(str(out))
    assert not info["valid"]
    assert any("shard-000001.tar" in p for p in info["problems"])
    result = CliRunner().invoke(cli, ["inspect", str(tar)])
    assert result.exit_code == 1 and "valid: NO" in result.output
    # Duplicate keys across shards.
    shutil.copy(out / "shard-000000.tar", tmp_path / "copy.tar")
    info = inspect_path(str(tmp_path / "*.tar"))
    assert info["valid"]
    shutil.copy(out / "shard-000000.tar", tmp_path / "copy2.tar")
    info = inspect_path(str(tmp_path / "*.tar"))
    assert any("appears again" in p for p in info["problems"])
    # A missing shard of the plan.
    (out / "shard-000002.stats.json").unlink()
    assert any("not complete" in p for p in inspect_path(str(out))["problems"])


def test_progress_survives_a_background_thread_reading_stats(sample_data, tmp_path):
    """Reading stats while a run writes them never sees a half-written file."""
    out = tmp_path / "out"
    seen: list[int] = []
    unreadable: list[str] = []
    crashed: list[BaseException] = []
    stop = threading.Event()

    def reader():
        try:
            while not stop.is_set():
                complete = 0
                for path in sorted(out.glob("*.stats.json")) if out.exists() else []:
                    try:
                        stats = json.loads(path.read_bytes())
                    except FileNotFoundError:
                        continue  # listed, then replaced: not a half-written file
                    except ValueError as exc:  # truncated or half-written JSON
                        unreadable.append(f"{path.name}: {exc}")
                        continue
                    assert isinstance(stats, dict) and stats["count"]["input"] == 1
                    complete += 1
                seen.append(complete)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            crashed.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    try:
        extract(read_manifest(sample_data), out, cfg_small(1), opts(2))
    finally:
        stop.set()
        t.join()
    assert not crashed, crashed
    assert not unreadable, unreadable
    assert seen and max(seen) <= 6 and seen == sorted(seen)
