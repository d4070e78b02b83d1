"""mmprep.loader: exactly once per epoch over ranks and workers, determinism, resume,
padding and masks, unreadable tars, fsspec sources, and the shard index (wids, HF)."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mmprep.config import from_dict
from mmprep.errors import MmprepError
from mmprep.extract import ExtractConfig, RunOptions, extract
from mmprep.loader import ShardDataset, choose_frames, collate, make_loader
from mmprep.manifest import read_manifest
from mmprep.shards import inspect_path
from mmprep.synthetic.clips import write_sample_data
from mmprep.synthetic.media import encode_clip

N = 10


def mixed_shards(root: Path) -> Path:
    """10 clips in 3 shards: 1, 2 or 3 captions, cut and uncut, one without audio; 8
    frames stored per clip (the loader takes 4)."""
    man = write_sample_data(root, n=N - 1, seconds=1.5, size=(64, 48), captions_per_clip=3)
    rows = [json.loads(line) for line in man.read_text().splitlines()]
    for i, r in enumerate(rows):
        r["caption"] = r["caption"][: 1 + i % 3]
        if i % 2:
            r["start"], r["end"] = 0.2, 1.2
    frames = [np.full((48, 64, 3), 12 * k, np.uint8) for k in range(18)]
    encode_clip(root / "clips" / "silent.mp4", frames, fps=12)
    rows.append({"key": "silent", "video": "clips/silent.mp4", "caption": ["a silent clip"]})
    man.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = from_dict(ExtractConfig, {
        "video": {"num_frames": 8, "size": 32, "mean": "clip", "std": "clip"},
        "audio": {"target_frames": 64}, "shards": {"samples_per_shard": 4}})
    out = root / "shards"
    summary = extract(read_manifest(man), out, cfg, RunOptions(progress=False))
    assert summary.ok == N
    return out


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return mixed_shards(tmp_path_factory.mktemp("loader"))


def all_keys(folder: Path) -> list[str]:
    return [k for f in sorted(folder.glob("*.stats.json"))
            for k in json.loads(f.read_text())["keys"]]


def batches(loader) -> list[dict]:
    return list(loader)


def same_batches(a: list[dict], b: list[dict]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x["__key__"] != y["__key__"] or x["caption"] != y["caption"]:
            return False
        for name in ("video", "frame_times", "audio", "text_ids"):
            if not torch.equal(x[name], y[name]):
                return False
    return True


# -- the shard index -------------------------------------------------------------------


def test_index_written_and_checked_by_inspect(shards, tmp_path):
    assert sorted(p.name for p in shards.glob("*.index.json")) == [
        f"shard-00000{i}.index.json" for i in range(3)]
    report = inspect_path(str(shards))
    assert report.valid and report.samples == N, report.problems
    bad = tmp_path / "bad"
    shutil.copytree(shards, bad)
    index = json.loads((bad / "shard-000001.index.json").read_text())
    index["files"][0]["samples"][1][1] += 512
    (bad / "shard-000001.index.json").write_text(json.dumps(index))
    report = inspect_path(str(bad))
    assert not report.valid
    assert any("index disagrees" in p for p in report.problems)


def test_wids_opens_the_index(shards, tmp_path):
    wids = pytest.importorskip("wids")
    ds = wids.ShardListDataset(str(shards / "shard-wids.json"), cache_dir=str(tmp_path / "c"),
                               transformations=[])
    assert len(ds) == N
    assert sorted(ds[i]["__key__"] for i in range(len(ds))) == sorted(all_keys(shards))


def test_hugging_face_datasets_loads_mixed_shards(shards, tmp_path):
    datasets = pytest.importorskip("datasets")
    tars = sorted(str(p) for p in shards.glob("*.tar"))
    ds = datasets.load_dataset("webdataset", data_files={"train": tars}, split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert len(ds) == N
    assert sorted(ds["__key__"]) == sorted(all_keys(shards))
    starts = {r["__key__"]: r["json"]["start"] for r in ds}
    assert starts["clip000001"] == pytest.approx(0.2) and starts["clip000000"] == 0.0


# -- order, ranks, workers ----------------------------------------------------------------


@pytest.mark.parametrize("world", [2, 3])
def test_exactly_once_over_ranks_and_workers(shards, world):
    keys: list[str] = []
    steps = []
    for rank in range(world):
        loader = make_loader(shards, batch_size=2, num_workers=2, rank=rank, world_size=world,
                             stateful=False, num_frames=2)
        got = batches(loader)
        steps.append(len(got))
        keys += [k for b in got for k in b["__key__"]]
        assert sum(len(b["__key__"]) for b in got) == len(loader.dataset)
    assert len(set(steps)) == 1
    assert set(keys) == set(all_keys(shards))
    padded = -(-N // world) * world
    assert len(keys) == padded  # every sample once, plus the padding's repeats
    if world == 2:
        assert len(set(keys)) == len(keys)


def test_uneven_drop(shards):
    keys = []
    for rank in range(3):
        ds = ShardDataset(shards, rank=rank, world_size=3, uneven="drop", num_frames=1)
        assert len(ds) == 3
        keys += [i["__key__"] for i in ds]
    assert len(keys) == len(set(keys)) == 9


def test_batches_do_not_depend_on_workers_and_repeat_for_a_seed(shards):
    def run(workers, seed=0, epoch=0):
        loader = make_loader(shards, batch_size=3, num_workers=workers, stateful=False,
                             num_frames=4, sampling="random", seed=seed)
        loader.dataset.set_epoch(epoch)
        return batches(loader)

    first = run(0)
    assert same_batches(first, run(2))
    assert same_batches(first, run(1))
    assert not same_batches(first, run(0, seed=1))
    other = run(0, epoch=1)
    assert [b["__key__"] for b in other] != [b["__key__"] for b in first]
    times = {k: t for b in first for k, t in zip(b["__key__"], b["frame_times"])}
    times1 = {k: t for b in other for k, t in zip(b["__key__"], b["frame_times"])}
    assert any(not torch.equal(times[k], times1[k]) for k in times)


def test_distributed_gloo_two_processes(shards, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(f"""
import json, sys
import torch.distributed as dist
from mmprep.loader import make_loader
rank = int(sys.argv[1])
dist.init_process_group("gloo", init_method="file://{tmp_path}/rendezvous", rank=rank,
                        world_size=2)
loader = make_loader({str(shards)!r}, batch_size=2, num_workers=2, num_frames=2)
keys = [b["__key__"] for b in loader]
out = [None, None]
dist.all_gather_object(out, keys)
if rank == 0:
    with open({str(tmp_path / "keys.json")!r}, "w") as f:
        json.dump(out, f)
dist.barrier()  # neither rank tears down gloo while the other still talks to it
dist.destroy_process_group()
""")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, str(script), str(r)], env=env,
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
    per_rank = json.loads((tmp_path / "keys.json").read_text())
    assert len(per_rank[0]) == len(per_rank[1])  # the same number of steps
    keys = [k for rank in per_rank for b in rank for k in b]
    assert sorted(keys) == sorted(all_keys(shards))


# -- resume ------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_at_step_k_gives_the_remaining_batches(shards, workers):
    pytest.importorskip("torchdata")

    def loader():
        dl = make_loader(shards, batch_size=2, num_workers=workers, num_frames=2,
                         sampling="random", seed=3)
        dl.dataset.set_epoch(1)
        return dl

    full = batches(loader())
    dl = loader()
    it = iter(dl)
    head = [next(it) for _ in range(2)]
    state = dl.state_dict()
    del it
    resumed = loader()
    resumed.dataset.set_epoch(0)  # the saved state carries the epoch
    resumed.load_state_dict(state)
    rest = batches(resumed)
    assert same_batches(head + rest, full)
    assert len(rest) == len(full) - 2


# -- items and batches ------------------------------------------------------------------


def test_items_captions_audio_and_collate(shards):
    ds = ShardDataset(shards, num_frames=4, captions="all", shuffle=False)
    items = {i["__key__"]: i for i in ds}
    assert items["clip000002"]["text_ids"].shape[0] == 3
    batch = collate([items[k] for k in ("clip000000", "clip000001", "clip000002", "silent")])
    assert batch["caption_mask"].sum(1).tolist() == [1, 2, 3, 1]
    assert batch["text_ids"].shape[:2] == (4, 3)
    assert not batch["text_mask"][0, 1:].any()
    assert batch["video"].shape == (4, 4, 3, 32, 32) and batch["video_mask"].all()
    assert batch["audio_mask"][3].sum() == 0 and batch["audio_mask"][0].any()
    assert batch["audio"].shape[0] == 4 and batch["audio"][3].abs().sum() == 0
    mean = torch.tensor(items["silent"]["meta"]["video"]["mean"]).view(3, 1, 1)
    std = torch.tensor(items["silent"]["meta"]["video"]["std"]).view(3, 1, 1)
    u8 = ShardDataset(shards, num_frames=4, uint8=True, shuffle=False)
    raw = {i["__key__"]: i for i in u8}["silent"]["video"]
    assert raw.dtype == torch.uint8
    assert torch.allclose(items["silent"]["video"], (raw / 255.0 - mean) / std, atol=1e-5)

    one = ShardDataset(shards, num_frames=4, captions="random", shuffle=False)
    picked = collate(list(one)[:3])
    assert picked["text_ids"].shape == (3, 40) and isinstance(picked["caption"][0], str)
    # frames of different counts pad with a mask
    all_frames = ShardDataset(shards, shuffle=False)
    a = next(iter(all_frames))
    b = dict(a, video=a["video"][:5], frame_times=a["frame_times"][:5])
    padded = collate([a, b])
    assert padded["video_mask"].sum(1).tolist() == [8, 5]


def test_choose_frames():
    times = [(i + 0.5) / 32 * 4 for i in range(32)]  # 32 uniform frames of a 4 s clip
    rng = np.random.default_rng(0)
    uniform = choose_frames(times, 0.0, 4.0, 8, "uniform", rng)
    assert uniform == [1, 5, 9, 13, 17, 21, 25, 29]
    picks = [choose_frames(times, 0.0, 4.0, 8, "random", np.random.default_rng(s))
             for s in range(20)]
    for pick in picks:
        assert [p // 4 for p in pick] == list(range(8))  # one frame inside each segment
    assert len({tuple(p) for p in picks}) > 1
    # fewer stored frames than segments: the nearest one repeats
    assert choose_frames([0.5, 3.5], 0.0, 4.0, 4, "uniform", rng) == [0, 0, 1, 1]
    assert choose_frames(times, 0.0, 4.0, None, "uniform", rng) == list(range(32))


# -- bad input ----------------------------------------------------------------------------


def test_truncated_tar_mid_epoch(shards, tmp_path, caplog):
    bad = tmp_path / "bad"
    shutil.copytree(shards, bad)
    tar = bad / "shard-000001.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    caplog.set_level(logging.WARNING, logger="mmprep.loader")
    ds = ShardDataset(bad, num_frames=2, batch_size=2)
    assert len(ds) == N
    items = list(ds)
    assert len(items) == N
    replaced = [i["__replaces__"] for i in items if i["__replaces__"]]
    assert replaced and ds.skipped == len(replaced)
    assert all(k in json.loads((bad / "shard-000001.stats.json").read_text())["keys"]
               for k in replaced)
    warnings = [r for r in caplog.records if r.name == "mmprep.loader"]
    assert len(warnings) == 1 and "shard-000001.tar" in warnings[0].getMessage()
    loader = make_loader(bad, batch_size=2, num_workers=2, stateful=False, num_frames=2)
    assert sum(len(b["__key__"]) for b in loader) == N


def _tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_foreign_shards_are_one_clear_error(tmp_path, shards):
    _tar(tmp_path / "other.tar", {"a.jpg": b"x", "a.cls": b"1"})
    with pytest.raises(MmprepError, match="member a.json is missing"):
        ShardDataset(str(tmp_path / "other.tar"))
    with tarfile.open(shards / "shard-000000.tar") as src:
        members = {m.name: src.extractfile(m).read() for m in src if m.name.startswith(
            "clip000000.")}
    meta = json.loads(members["clip000000.json"])
    del meta["video"]["frame_timestamps"]
    members["clip000000.json"] = json.dumps(meta).encode()
    _tar(tmp_path / "nofield.tar", members)
    with pytest.raises(MmprepError, match="video.frame_timestamps"):
        ShardDataset(str(tmp_path / "nofield.tar"))


# -- sources --------------------------------------------------------------------------------


def test_sources_fsspec_brace_and_list(shards):
    fsspec = pytest.importorskip("fsspec")
    want = sorted(all_keys(shards))

    def keys(source):
        return sorted(i["__key__"] for i in ShardDataset(source, num_frames=1))

    assert keys(f"file://{shards}") == want
    assert keys(str(shards / "shard-{000000..000002}.tar")) == want
    assert keys(sorted(str(p) for p in shards.glob("*.tar"))) == want
    mem = fsspec.filesystem("memory")
    for p in shards.iterdir():
        mem.pipe(f"/loader-test/{p.name}", p.read_bytes())
    try:
        assert keys("memory://loader-test") == want
        assert keys("memory://loader-test/*.tar") == want
        assert keys(["memory://loader-test/shard-000000.tar"]) == sorted(want[:4])
    finally:
        mem.rm("/loader-test", recursive=True)


# -- the example ------------------------------------------------------------------------


def test_train_from_shards_example_resumes(shards, tmp_path):
    script = Path(__file__).resolve().parents[1] / "examples" / "train_from_shards.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}

    def run(out, *extra):
        res = subprocess.run([sys.executable, str(script), str(shards), "-o", str(out),
                              "--batch-size", "4", *extra], env=env, capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        return res.stdout

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert "done: 2 epochs, 6 steps" in run(whole)
    assert "stopped after step 2" in run(killed, "--stop-after", "2")
    out = run(killed)
    assert "resumed at epoch 0, step 2" in out and "done: 2 epochs, 6 steps" in out
    assert (killed / "log.txt").read_text() == (whole / "log.txt").read_text()
    a = torch.load(whole / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(killed / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
