"""An output folder that defends itself: concurrent runs, SLURM array start-up, killed
workers, planted symlinks, hostile manifests and shards, resource bombs; and a table of
inputs that must give one-line errors (never a traceback)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from mmprep.config import from_dict
from mmprep.extract import ExtractConfig, RunOptions, extract
from mmprep.extract.options import PoolOptions
from mmprep.manifest import read_manifest
from mmprep.shards import inspect_path, shard_files
from mmprep.synthetic.media import encode_clip, make_indexed_clip

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SMALL = ["--frames", "2", "--size", "32", "--mel-frames", "32", "--progress", "never"]


def mmprep(*args, timeout=300, **kw):
    return subprocess.run([sys.executable, "-m", "mmprep", *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=timeout, **kw)


def start(*args):
    return subprocess.Popen([sys.executable, "-m", "mmprep", *map(str, args)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def one_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert lines and lines[-1].startswith("Error: "), result.stderr
    return lines[-1]


def keys_in(out) -> list[str]:
    return [s["__key__"] for s in wds.WebDataset(shard_files(out), shardshuffle=False)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from mmprep.synthetic.clips import write_sample_data

    folder = tmp_path_factory.mktemp("hostile")
    manifest = write_sample_data(folder, 12, seed=3, seconds=1.0, fps=8)
    return manifest


# -- two runs, one folder ---------------------------------------------------------------

def test_a_second_run_on_a_busy_folder_is_refused(clips, tmp_path):
    out = tmp_path / "out"
    first = start("extract", clips, "-o", out, *SMALL, "--shard-size", "2", "--workers", "1")
    deadline = time.monotonic() + 60
    while not (out / ".mmprep.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = mmprep("extract", clips, "-o", out, *SMALL, "--shard-size", "2")
    assert second.returncode == 1
    assert "is in use by mmprep extract (pid" in one_line(second)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    report = inspect_path(str(out))
    assert report.valid and report.samples == 12


def test_a_run_killed_mid_way_leaves_no_lock_and_the_rerun_completes(clips, tmp_path):
    out = tmp_path / "out"
    first = start("extract", clips, "-o", out, *SMALL, "--shard-size", "2", "--workers", "1")
    deadline = time.monotonic() + 120
    while not list(out.glob("*.stats.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    again = mmprep("extract", clips, "-o", out, *SMALL, "--shard-size", "2", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["ok"] == 12
    report = inspect_path(str(out))
    assert report.valid and sorted(keys_in(out)) == sorted(set(keys_in(out)))


def test_a_shard_whose_tar_disagrees_with_its_stats_is_redone(clips, tmp_path):
    out = tmp_path / "out"
    args = ["extract", clips, "-o", out, *SMALL, "--shard-size", "4", "--json"]
    assert mmprep(*args).returncode == 0
    tar = out / "shard-000001.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])  # truncated behind our back
    again = mmprep(*args)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["ok"] == 12 and summary["shards_done_before"] == 2
    assert inspect_path(str(out)).valid


def test_slurm_array_tasks_start_together_on_one_folder(clips, tmp_path):
    out = tmp_path / "out"
    tasks = [start("extract", clips, "-o", out, *SMALL, "--shard-size", "1", "--workers", "1",
                   "--executor", "slurm", "--task-id", i, "--task-count", 4) for i in range(4)]
    for task in tasks:
        assert task.wait(timeout=300) == 0, task.stderr.read()
    record = json.loads((out / "extract.json").read_text())
    assert record["samples"] == 12
    report = inspect_path(str(out))
    assert report.valid and report.samples == 12 and report.shards == 12
    assert not list(out.glob(".*.tmp"))


def test_overwrite_cannot_be_combined_with_a_slurm_array(clips, tmp_path):
    res = mmprep("extract", clips, "-o", tmp_path / "o", *SMALL, "--overwrite",
                 "--executor", "slurm", "--task-id", 0, "--task-count", 2)
    assert res.returncode == 2 and "every array task would wipe" in one_line(res)


# -- a folder is never silently mixed ---------------------------------------------------

def test_without_its_record_a_folder_still_refuses_another_config(clips, tmp_path):
    out = tmp_path / "out"
    assert mmprep("extract", clips, "-o", out, *SMALL, "--shard-size", "6").returncode == 0
    (out / "extract.json").unlink()
    other = mmprep("extract", clips, "-o", out, *SMALL, "--shard-size", "6", "--frames", "3")
    assert other.returncode == 1 and "extracted with another config" in one_line(other)
    (out / "extract.json").write_text("{ not json")
    assert mmprep("extract", clips, "-o", out, *SMALL, "--shard-size", "6",
                  "--frames", "3").returncode == 1


def test_overwrite_removes_every_artifact_of_the_previous_run(clips, tmp_path):
    out = tmp_path / "out"
    assert mmprep("extract", clips, "-o", out, *SMALL, "--shard-size", "6").returncode == 0
    res = mmprep("extract", clips, "-o", out, *SMALL, "--shard-size", "6", "--overwrite",
                 "--shard-name", "other")
    assert res.returncode == 0, res.stderr
    assert not list(out.glob("shard-*")), sorted(p.name for p in out.iterdir())
    report = inspect_path(str(out))
    assert report.valid and report.samples == 12


# -- killed workers ---------------------------------------------------------------------

def _holders(path: Path) -> list[int]:
    """Pids of processes with ``path`` open."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) == str(path):
                    pids.append(int(proc.name))
                    break
        except OSError:
            continue
    return pids


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_workers_killed_mid_sample_become_records_and_the_rest_lands(clips, tmp_path):
    """Like the OOM killer: three samples whose worker is killed (-9) while it reads
    them, then good samples; every sample ends up in a shard or an error record."""
    fifos = []
    for i in range(3):
        fifo = tmp_path / f"big{i}.mp4"
        os.mkfifo(fifo)
        fifos.append(fifo)
    good = [json.loads(x) for x in Path(clips).read_text().splitlines()][:5]
    for row in good:
        row["video"] = str(Path(clips).parent / row["video"])
    rows = [{"video": str(f), "caption": "oversized", "key": f.stem} for f in fifos] + good
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    killed: list[int] = []

    def killer():  # opens each pipe for writing, so its reader gets going, then kills it
        for fifo in fifos:
            fd = os.open(fifo, os.O_WRONLY)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                pids = [p for p in _holders(fifo) if p != os.getpid()]
                if pids:
                    for pid in pids:
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                    break
                time.sleep(0.02)
            os.close(fd)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    cfg = from_dict(ExtractConfig, {"video": {"num_frames": 2, "size": 32},
                                    "audio": {"target_frames": 32},
                                    "shards": {"samples_per_shard": 4}})
    out = tmp_path / "out"
    summary = extract(read_manifest(manifest), out, cfg,
                      RunOptions(progress=False, pool=PoolOptions(workers=2,
                                                                  sample_timeout=None)))
    thread.join(timeout=30)
    assert len(killed) == 3
    assert (summary.ok, summary.failed) == (5, 3)
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(e["key"] for e in errors) == ["big0", "big1", "big2"]
    assert all(e["type"] == "WorkerCrash" and "signal 9" in e["message"]
               and "{stage}" not in e["message"] for e in errors)


# -- planted symlinks, keys read back ---------------------------------------------------

def test_planted_symlinks_are_never_written_through(clips, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victims = []
    for name in ("extract.json.tmp", "errors.jsonl.tmp", ".extract.json.tmp",
                 "shard-000000.tar.tmp"):
        victim = tmp_path / f"victim-{name}"
        victim.write_text("precious")
        (out / name).symlink_to(victim)
        victims.append(victim)
    assert mmprep("extract", clips, "-o", out, *SMALL, "--shard-size", "6").returncode == 0
    assert all(v.read_text() == "precious" for v in victims)
    feats = tmp_path / "features.h5"
    victim = tmp_path / "victim-h5"
    victim.write_text("precious")
    Path(str(feats) + ".tmp").symlink_to(victim)
    res = mmprep("embed", out, "-o", feats, "--text-encoder", "minilm", "-q")
    assert res.returncode == 0, res.stderr
    assert victim.read_text() == "precious"


def test_retry_failed_revalidates_keys_read_back(clips, tmp_path):
    out = tmp_path / "out"
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"video": str(tmp_path / "missing.mp4"), "key": "gone",
                                    "caption": "x"}) + "\n")
    assert mmprep("extract", manifest, "-o", out, *SMALL).returncode == 1  # all failed
    stats = out / "shard-000000.stats.json"
    data = json.loads(stats.read_text())
    data["errors"][0]["sample"]["key"] = "../../../../x"
    stats.write_text(json.dumps(data))
    res = mmprep("retry-failed", out)
    assert res.returncode == 1 and "breaks the key rules" in one_line(res)
    assert not list(tmp_path.rglob("x.json"))


# -- hostile manifests ------------------------------------------------------------------

def test_a_stray_csv_quote_is_an_error_record_not_eaten_rows(clips, tmp_path):
    clip = Path(clips).parent / "clips" / "clip000000.mp4"
    manifest = tmp_path / "m.csv"
    manifest.write_text(f'video,caption,key\n{clip},"oops stray quote,k1\n'
                        f"{clip},second,k2\n{clip},third,k3\n")
    samples = read_manifest(manifest)
    assert [s.key for s in samples if s.error is None] == ["k2", "k3"]
    (bad,) = [s for s in samples if s.error]
    assert "unbalanced quote" in bad.error and bad.lines == [2]
    # a legitimate multi-line caption still reads as one field
    manifest.write_text(f'video,caption,key\n{clip},"two\nlines",k1\n{clip},x,k2\n')
    assert [s.captions for s in read_manifest(manifest)] == [["two\nlines"], ["x"]]


def test_huge_fields_and_deep_json_do_not_crash(clips, tmp_path):
    clip = Path(clips).parent / "clips" / "clip000000.mp4"
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"video,caption\n{clip},{'w' * 200_000}\n")
    (s,) = read_manifest(manifest)
    assert s.error is None and len(s.captions[0]) == 200_000
    deep = tmp_path / "m.jsonl"
    deep.write_text(json.dumps({"video": str(clip)}) + "\n" + "[" * 100_000 + "\n")
    good, bad = read_manifest(deep)
    assert good.error is None and "nested too deeply" in bad.error
    nul = tmp_path / "nul.jsonl"
    nul.write_text(json.dumps({"video": "a\u0000b.mp4", "caption": "x"}) + "\n")
    (s,) = read_manifest(nul)
    assert "NUL" in s.error


def test_parquet_timestamp_and_bytes_columns_are_kept_as_text(clips, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import datetime

    import pyarrow.parquet as pq

    clip = str(Path(clips).parent / "clips" / "clip000000.mp4")
    table = pa.table({"video": [clip], "caption": ["x"],
                      "when": [datetime.datetime(2024, 5, 1, 12, 0)], "blob": [b"\x00\xff"]})
    pq.write_table(table, tmp_path / "m.parquet")
    out = tmp_path / "out"
    res = mmprep("extract", tmp_path / "m.parquet", "-o", out, *SMALL)
    assert res.returncode == 0, res.stderr
    (sample,) = list(wds.WebDataset(shard_files(out), shardshuffle=False).decode())
    assert sample["json"]["meta"] == {"when": "2024-05-01T12:00:00", "blob": "00ff"}


# -- resource bounds --------------------------------------------------------------------

def test_two_frames_far_apart_are_capped_not_allocated(tmp_path):
    far = make_indexed_clip(tmp_path / "far.mp4", 2, fps=1, gop=1, audio=False,
                            frame_times=[0.0, 100_000.0])
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"video": str(far), "caption": "x", "key": "far"}) + "\n")
    out = tmp_path / "out"
    res = mmprep("extract", manifest, "-o", out, "--frames", "2", "--size", "32",
                 "--progress", "never")
    assert res.returncode == 1  # its only sample failed, cleanly
    (err,) = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert err["stage"] == "audio" and "above the sample cap" in err["message"]
    assert sum(p.stat().st_size for p in out.glob("*.tar")) < 1_000_000


def test_the_per_sample_cap_is_an_option(clips, tmp_path):
    out = tmp_path / "out"
    res = mmprep("extract", clips, "-o", out, *SMALL, "--max-sample-mb", "0.001", "--json")
    assert json.loads(res.stdout)["failed"] == 12
    err = json.loads((out / "errors.jsonl").read_text().splitlines()[0])
    assert err["stage"] == "pack" and "max_sample_mb" in err["message"]


def test_workers_0_enforces_the_sample_timeout(clips, tmp_path):
    fifo = tmp_path / "stuck.mp4"
    os.mkfifo(fifo)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"video": str(fifo), "caption": "x", "key": "stuck"}) + "\n")
    t0 = time.monotonic()
    res = mmprep("extract", manifest, "-o", tmp_path / "out", *SMALL, "--workers", "0",
                 "--sample-timeout", "2", timeout=60)
    assert time.monotonic() - t0 < 45 and res.returncode == 1
    err = json.loads((tmp_path / "out" / "errors.jsonl").read_text())
    assert err["type"] == "Timeout"


# -- embed: one bad sample, one record ---------------------------------------------------

def _rewrite(tar: Path, change) -> None:
    """Rewrite ``tar`` with ``change(name, data) -> data`` applied to every member."""
    with tarfile.open(tar) as src:
        members = [(m, src.extractfile(m).read()) for m in src.getmembers()]
    tmp = tar.with_suffix(".new")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as dst:
        for info, data in members:
            data = change(info.name, data)
            info.size = len(data)
            dst.addfile(info, __import__("io").BytesIO(data))
    tmp.replace(tar)


def test_embed_records_poisoned_samples_and_goes_on(clips, tmp_path):
    import io

    out = tmp_path / "shards"
    assert mmprep("extract", clips, "-o", out, *SMALL, "--shard-size", "12").returncode == 0
    keys = keys_in(out)

    def poison(name, data):
        key, _, suffix = name.partition(".")
        if key == keys[0] and suffix == "json":
            return b"[1, 2, 3]"
        if key == keys[1] and suffix == "tok.npy":
            buf = io.BytesIO()
            np.save(buf, -np.ones((2, 40), np.int32))
            return buf.getvalue()
        if key == keys[2] and suffix == "mel.npy":
            buf = io.BytesIO()
            np.save(buf, np.full((32, 64), np.nan, np.float32))
            return buf.getvalue()
        if key == keys[3] and suffix == "json":
            meta = json.loads(data)
            meta["captions"] = [1, None]
            return json.dumps(meta).encode()
        return data

    (tar,) = out.glob("*.tar")
    _rewrite(tar, poison)
    feats = tmp_path / "f.h5"
    res = mmprep("embed", tar, "-o", feats, "--text-encoder", "minilm",
                 "--audio-encoder", "efficientnet-lite0", "-q", "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["failed"] == 4 and summary["rows"] == 8
    errors = [json.loads(x) for x in Path(str(feats) + ".errors.jsonl").read_text().splitlines()]
    text = " ".join(e["message"] for e in errors)
    assert {e["key"] for e in errors} == set(keys[:4])
    assert "not an object" in text and "token ids" in text and "NaN" in text
    import h5py

    with h5py.File(feats) as f:
        assert np.isfinite(f["audio"][()]).all() and np.isfinite(f["text"][()]).all()


def test_nonfinite_embeddings_are_found_per_clip():
    import torch

    from mmprep.embed.encode import nonfinite_clips

    video = np.zeros((3, 4), np.float32)
    video[1, 2] = np.nan
    text = np.zeros((4, 4), np.float32)
    text[3, 0] = np.inf
    bad = nonfinite_clips({"video": video, "text": text}, torch.tensor([0, 0, 1, 2]), 3)
    assert bad == {1: ["video"], 2: ["text"]}


# -- one-line errors, never a traceback --------------------------------------------------

def _case_dirs(tmp: Path, clips) -> dict:
    a_file = tmp / "a-file"
    a_file.write_text("x")
    dangling = tmp / "dangling"
    dangling.symlink_to(tmp / "nowhere")
    good_out = tmp / "good"
    assert mmprep("extract", clips, "-o", good_out, *SMALL, "--shard-size", "6").returncode == 0
    garbage_record = tmp / "garbage_record"
    shutil.copytree(good_out, garbage_record)
    (garbage_record / "extract.json").write_bytes(os.urandom(200))
    list_stats = tmp / "list_stats"
    shutil.copytree(good_out, list_stats)
    (list_stats / "shard-000000.stats.json").write_text("[1, 2, 3]")
    list_meta = tmp / "list_meta.tar"
    shutil.copy(good_out / "shard-000001.tar", list_meta)
    _rewrite(list_meta, lambda n, d: b"[]" if n.endswith(".json") else d)
    not_ckpt = tmp / "not-a-checkpoint.bin"
    not_ckpt.write_bytes(os.urandom(4096))
    return {"file": a_file, "dangling": dangling, "good": good_out,
            "garbage_record": garbage_record, "list_stats": list_stats,
            "list_meta": list_meta, "not_ckpt": not_ckpt}


HOSTILE = [
    # (name, args (with {placeholders}), exit code, text in the message)
    ("empty -o", ["extract", "{clips}", "-o", ""], 2, "empty name"),
    ("-o under a file", ["extract", "{clips}", "-o", "{file}/sub"], 2, "is a file"),
    ("-o a dangling symlink", ["extract", "{clips}", "-o", "{dangling}"], 2, "missing target"),
    ("-o /dev/null", ["extract", "{clips}", "-o", "/dev/null"], 2, "not a folder"),
    ("missing tokenizer", ["extract", "{clips}", "-o", "{tmp}/t", "--tokenizer",
                           "/nonexistent"], 2, "unknown tokenizer"),
    ("garbage extract.json (inspect)", ["inspect", "{garbage_record}"], 1, None),
    ("garbage extract.json (retry)", ["retry-failed", "{garbage_record}"], 1,
     "no readable extract.json"),
    ("stats file a JSON list (inspect)", ["inspect", "{list_stats}"], 1, None),
    ("KEY.json a list (inspect)", ["inspect", "{list_meta}"], 1, None),
    ("not a checkpoint (embed)", ["embed", "{good}", "-o", "{tmp}/f.h5", "--video-encoder",
                                  "open_clip:ViT-B-32@{not_ckpt}"], 1, "cannot load"),
]


@pytest.fixture(scope="module")
def cases(tmp_path_factory, clips):
    tmp = tmp_path_factory.mktemp("cases")
    return {"tmp": tmp, "clips": clips, **_case_dirs(tmp, clips)}


@pytest.mark.parametrize("name, args, code, text", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_inputs_give_one_line_errors(cases, name, args, code, text):
    if name.startswith("not a checkpoint"):
        pytest.importorskip("open_clip")
    res = mmprep(*[a.format(**cases) for a in args])
    if args[0] == "inspect":  # a report: the problems listed, no traceback
        assert res.returncode == code and "Traceback" not in res.stderr, res.stderr
        assert "valid: NO" in res.stdout
        return
    line = one_line(res)
    assert res.returncode == code, (res.returncode, res.stderr)
    if text:
        assert text in line, line


def test_a_stats_file_holding_a_list_is_redone_by_the_next_run(cases, clips, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(cases["list_stats"], out)
    res = mmprep("extract", clips, "-o", out, *SMALL, "--shard-size", "6", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["shards_done_before"] == 1
    assert inspect_path(str(out)).valid


def test_file_system_errors_are_one_line(capsys):
    import errno

    from mmprep.cli.options import handle_errors

    @handle_errors
    def disk_full():
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/shard-000001.tar")

    with pytest.raises(SystemExit) as exit_info:
        disk_full()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == (
        "Error: No space left on device (/data/out/shard-000001.tar)")


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.5])
def test_ctrl_c_early_prints_no_traceback(clips, tmp_path, delay):
    """Ctrl-C reaches the whole process group: the command, the fork server, workers."""
    proc = subprocess.Popen([sys.executable, "-m", "mmprep", "extract", str(clips), "-o",
                             str(tmp_path / "out"), *SMALL, "--workers", "2"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (130, 0), err
    assert "Traceback" not in err, err


def test_a_claimed_length_without_anything_decoded_is_capped(tmp_path):
    """An audio-only run of a 1 s file without audio whose row claims 100000 s."""
    silent = encode_clip(tmp_path / "s.mp4", [np.full((32, 32, 3), 9, np.uint8)] * 8, fps=8)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"video": str(silent), "caption": "x", "key": "s",
                                    "end": 100000}) + "\n")
    out = tmp_path / "out"
    res = mmprep("extract", manifest, "-o", out, "--no-video", "--progress", "never")
    assert res.returncode == 1  # its only sample failed, cleanly
    err = json.loads((out / "errors.jsonl").read_text())
    assert err["stage"] == "audio" and "above the sample cap" in err["message"]
