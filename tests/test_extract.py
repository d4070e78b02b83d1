"""End to end: manifest -> shards, read back with the webdataset library."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from click.testing import CliRunner

from mmprep.cli import cli
from mmprep.config import from_dict
from mmprep.errors import MmprepError
from mmprep.extract import ExtractConfig, RunOptions, extract
from mmprep.manifest import read_manifest
from mmprep.shards import shard_files
from mmprep.synthetic.media import encode_clip, make_indexed_clip, read_code

QUIET = RunOptions(progress=False)


def small_cfg(**sections) -> ExtractConfig:
    data = {"video": {"num_frames": 4, "size": 32}, "audio": {"target_frames": 128},
            "shards": {"samples_per_shard": 4}}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return from_dict(ExtractConfig, data)


def read_back(out_dir) -> list[dict]:
    ds = wds.WebDataset(shard_files(out_dir), shardshuffle=False).decode("rgb8")
    return list(ds)


@pytest.fixture(scope="module")
def extracted(sample_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    summary = extract(read_manifest(sample_data), out, small_cfg(), QUIET)
    return out, summary


def test_shards_read_back_with_webdataset(extracted, sample_data):
    out, summary = extracted
    assert summary.ok == 6 and summary.failed == 0 and summary.shards == 2
    assert sorted(p.name for p in out.glob("*.tar")) == ["shard-000000.tar", "shard-000001.tar"]
    samples = read_back(out)
    manifest = [json.loads(line) for line in sample_data.read_text().splitlines()]
    assert [s["__key__"] for s in samples] == [m["key"] for m in manifest]
    for s, m in zip(samples, manifest):
        meta = s["json"]
        frames = [s[f"f{i:03d}.jpg"] for i in range(4)]
        assert all(f.shape == (32, 32, 3) for f in frames)
        assert s["mel.npy"].shape == (128, 64) and s["mel.npy"].dtype == np.float32
        assert s["tok.npy"].dtype == np.int32 and s["tok.npy"].shape == (2, 40)
        assert s["mask.npy"].shape == (2, 40)
        assert s["txt"] == meta["captions"][0] == m["caption"][0]
        assert meta["has_audio"] is True
        assert meta["duration"] == pytest.approx(1.0, abs=0.05)
        assert meta["fps"] == pytest.approx(8)
        assert meta["size"] == [32, 32]
        assert len(meta["frame_timestamps"]) == 4
        assert meta["audio_rate"] == 16000 and meta["mel_hop"] == 0.01
        assert meta["meta"]["shape"] == m["shape"]
        assert meta["split"] == m["split"]
        assert meta["pipeline_hash"] == small_cfg().content_hash() and meta["mmprep_version"]


def test_tar_members_follow_the_contract(extracted):
    out, _ = extracted
    with tarfile.open(out / "shard-000000.tar") as tar:
        names = tar.getnames()
        infos = tar.getmembers()
    assert names[:9] == [
        "clip000000.json", "clip000000.f000.jpg", "clip000000.f001.jpg", "clip000000.f002.jpg",
        "clip000000.f003.jpg", "clip000000.mel.npy", "clip000000.tok.npy", "clip000000.mask.npy",
        "clip000000.txt",
    ]
    assert all(i.mtime == 0 and i.uid == 0 and i.mode == 0o644 for i in infos)


def test_stats_marker_and_errors_file(extracted):
    out, _ = extracted
    stats = json.loads((out / "shard-000001.stats.json").read_text())
    assert stats["count"] == {"input": 2, "ok": 2, "failed": 0}
    assert stats["files"][0]["file"] == "shard-000001.tar"
    assert stats["files"][0]["bytes"] == (out / "shard-000001.tar").stat().st_size
    assert set(stats["timings"]) >= {"video", "audio", "text", "write"}
    assert (out / "errors.jsonl").read_text() == ""
    assert not list(out.glob("*.tmp"))


def test_bad_samples_become_error_records(tmp_path, sample_data):
    clips = sample_data.parent / "clips"
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video at all\n" * 20)
    good = clips / "clip000000.mp4"
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    rows = [
        {"video": str(good), "caption": "good"},
        {"video": str(tmp_path / "zero.mp4"), "caption": "zero bytes"},
        {"video": str(tmp_path / "text.mp4"), "caption": "text file"},
        {"video": str(tmp_path / "missing.mp4"), "caption": "missing"},
        {"video": str(truncated), "caption": "truncated"},
        {"video": str(good), "caption": "", "key": "nocap"},
    ]
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    summary = extract(read_manifest(m), out, small_cfg(), QUIET)
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    ok_keys = [s["__key__"] for s in read_back(out)]
    # Every sample is accounted for exactly once.
    assert summary.ok + summary.failed == len(rows) == len(ok_keys) + len(errors)
    by_key = {e["key"]: e for e in errors}
    assert "clip000000" in ok_keys
    assert "empty file" in by_key["zero"]["message"] and by_key["zero"]["stage"] == "video"
    assert "cannot open" in by_key["text"]["message"]
    assert "not found" in by_key["missing"]["message"]
    assert by_key["nocap"]["stage"] == "text"
    for e in errors:
        assert set(e) >= {"key", "index", "source", "stage", "type", "message"}


def test_resume_skips_finished_shards_and_redoes_partial(tmp_path, sample_data):
    out = tmp_path / "out"
    samples = read_manifest(sample_data)
    extract(samples, out, small_cfg(), QUIET)
    first = hashlib.sha256((out / "shard-000000.tar").read_bytes()).hexdigest()
    (out / "shard-000001.stats.json").unlink()  # shard 1 "interrupted"
    (out / "shard-000001.tar").write_bytes(b"garbage")
    summary = extract(samples, out, small_cfg(), QUIET)
    assert summary.shards_done_before == 1 and summary.processed == 2
    assert hashlib.sha256((out / "shard-000000.tar").read_bytes()).hexdigest() == first
    assert [s["__key__"] for s in read_back(out)] == [s.key for s in samples]


def test_config_change_is_refused_without_overwrite(tmp_path, sample_data):
    out = tmp_path / "out"
    samples = read_manifest(sample_data)
    extract(samples, out, small_cfg(), QUIET)
    with pytest.raises(MmprepError, match="config changed"):
        extract(samples, out, small_cfg(video={"num_frames": 2}), QUIET)
    summary = extract(samples, out, small_cfg(video={"num_frames": 2}),
                      RunOptions(progress=False, overwrite=True))
    assert summary.processed == 6
    assert "f002.jpg" not in read_back(out)[0]


def test_same_input_same_bytes(tmp_path, sample_data):
    samples = read_manifest(sample_data)
    cfg = small_cfg(video={"sampling": "random"})
    extract(samples, tmp_path / "a", cfg, QUIET)
    extract(samples, tmp_path / "b", cfg, QUIET)
    for name in ("shard-000000.tar", "shard-000001.tar"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_raw_frames_and_omitted_audio(tmp_path, media_dir):
    frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(10)]
    silent = encode_clip(media_dir / "silent_e2e.mp4", frames, fps=10)
    m = tmp_path / "m.csv"
    m.write_text(f"video,caption\n{silent},a silent clip\n")
    out = tmp_path / "out"
    cfg = small_cfg(video={"format": "raw", "size": 16}, audio={"missing": "omit"})
    extract(read_manifest(m), out, cfg, QUIET)
    (sample,) = read_back(out)
    assert sample["frames.npy"].shape == (4, 16, 16, 3)
    assert sample["frames.npy"].dtype == np.uint8
    assert "mel.npy" not in sample
    assert sample["json"]["has_audio"] is False
    assert sample["json"]["audio"]["missing_reason"] == "no audio stream"


def test_start_end_cut_in_extract(tmp_path, media_dir):
    clip = make_indexed_clip(media_dir / "cut.mp4", 96, fps=24, gop=12)
    m = tmp_path / "m.csv"
    m.write_text(f"video,caption,start,end\n{clip},first,0,1\n{clip},second,2,3.5\n")
    out = tmp_path / "out"
    extract(read_manifest(m), out, small_cfg(video={"size": None, "resize": "none"}), QUIET)
    a, b = read_back(out)
    assert a["__key__"] == "cut_0-1000" and b["__key__"] == "cut_2000-3500"
    assert b["json"]["duration"] == pytest.approx(1.5)
    codes = [read_code(b[f"f{i:03d}.jpg"]) for i in range(4)]
    assert all(48 <= c < 84 for c in codes)
    assert all(2.0 <= t < 3.5 for t in b["json"]["frame_timestamps"])
    assert b["json"]["audio"]["duration"] == pytest.approx(1.5, abs=0.03)


def test_max_shard_bytes_splits_into_parts(tmp_path, sample_data):
    out = tmp_path / "out"
    cfg = small_cfg(shards={"samples_per_shard": 6, "max_bytes": 60_000})
    extract(read_manifest(sample_data), out, cfg, QUIET)
    stats = json.loads((out / "shard-000000.stats.json").read_text())
    names = [p["file"] for p in stats["files"]]
    assert len(names) > 1 and names[0] == "shard-000000.tar" and names[1] == "shard-000000_1.tar"
    assert sum(p["samples"] for p in stats["files"]) == 6
    assert len(read_back(out)) == 6


# -- command line --------------------------------------------------------------------

def run_cli(args, input=None):
    result = CliRunner().invoke(cli, args, input=input, catch_exceptions=False)
    return result


def test_cli_extract_with_preset_and_overrides(tmp_path, sample_data):
    out = tmp_path / "out"
    result = run_cli(["extract", str(sample_data), "-o", str(out), "--pipeline", "gram-vast",
                      "--frames", "2", "--size", "24", "--mel-frames", "64", "-q", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ok"] == 6
    s = read_back(out)[0]
    assert s["f001.jpg"].shape == (24, 24, 3) and "f002.jpg" not in s
    assert s["mel.npy"].shape == (64, 64)
    assert s["json"]["pipeline"] == "gram-vast"
    assert s["json"]["video"]["mean"] == pytest.approx([0.48145466, 0.4578275, 0.40821073])


def test_cli_stdin_manifest(tmp_path, sample_data):
    clips = sample_data.parent / "clips"
    lines = "".join(
        json.dumps({"video": str(p), "caption": f"clip {i}"}) + "\n"
        for i, p in enumerate(sorted(clips.glob("*.mp4"))[:2])
    )
    out = tmp_path / "out"
    result = run_cli(["extract", "-", "-o", str(out), "--frames", "2", "--size", "16", "-q"],
                     input=lines)
    assert result.exit_code == 0, result.output
    assert [s["txt"] for s in read_back(out)] == ["clip 0", "clip 1"]


def test_cli_print_config_and_bad_values(tmp_path, sample_data):
    result = run_cli(["extract", str(sample_data), "-o", str(tmp_path), "--print-config",
                      "--set", "audio.slices=2", "--mel-frames", "100"])
    assert result.exit_code == 0
    assert "slices: 2" in result.output and "target_frames: 100" in result.output
    bad = run_cli(["extract", str(sample_data), "-o", str(tmp_path), "--set", "video.resize=zoom"])
    assert bad.exit_code == 2 and "'zoom' is not one of" in bad.output
    unknown = run_cli(["extract", str(sample_data), "-o", str(tmp_path), "--pipeline", "nope"])
    assert unknown.exit_code == 2 and "unknown pipeline" in unknown.output


def test_cli_all_samples_failing_exits_non_zero(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("video,caption\nmissing.mp4,x\n")
    result = run_cli(["extract", str(m), "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 1
    assert "1 failed" in result.output


def test_jpeg_frames_match_decoded_pixels(tmp_path, media_dir):
    clip = make_indexed_clip(media_dir / "jpegcheck.mp4", 24, fps=24)
    m = tmp_path / "m.csv"
    m.write_text(f"video,caption\n{clip},x\n")
    extract(read_manifest(m), tmp_path / "out",
            small_cfg(video={"size": None, "resize": "none", "jpeg_quality": 95}), QUIET)
    with tarfile.open(tmp_path / "out" / "shard-000000.tar") as tar:
        data = tar.extractfile("jpegcheck.f001.jpg").read()
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(data)))
    assert img.shape == (96, 128, 3)
    assert read_code(img) == 9  # 4 frames over 1 s: second segment middle is 0.375 s


def test_pipeline_presets_validate():
    from mmprep.presets import build_config, list_presets

    names = [p["name"] for p in list_presets()]
    assert {"gram-vast", "clip"} <= set(names)
    for name in names:
        cfg = build_config(ExtractConfig, "extract", pipeline=name)
        assert cfg.pipeline == name
    vast = build_config(ExtractConfig, "extract", pipeline="gram-vast")
    assert vast.audio.std == pytest.approx(2 * 6.55582)
    assert vast.audio.target_frames == 1024 and vast.video.num_frames == 8


def test_preset_files_are_shipped():
    from mmprep.presets import preset_dir

    assert (preset_dir() / "gram-vast.yaml").is_file()
    assert Path(preset_dir()).resolve().name == "pipelines"


# -- first contact: path lists, unusable manifests, stable types, quiet logs ---------

def test_cli_path_per_line_on_stdin_packs_every_clip(tmp_path, sample_data):
    clips = sorted((sample_data.parent / "clips").glob("*.mp4"))
    out = tmp_path / "out"
    result = run_cli(["extract", "-", "-o", str(out), "--allow-no-caption", "--frames", "2",
                      "--size", "16", "--json"], input="".join(f"{p}\n" for p in clips))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] == len(clips)
    assert sorted(s["__key__"] for s in read_back(out)) == [p.stem for p in clips]


@pytest.mark.parametrize("content", [b"video,caption\n", bytes(range(256)) * 64, b"",
                                     b"\x00\x01garbage\x02" * 100])
def test_cli_unusable_manifest_exits_2_with_the_reason(tmp_path, content):
    m = tmp_path / "manifest.csv"
    m.write_bytes(content)
    result = run_cli(["extract", str(m), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "holds no samples" in result.output or "not a text file" in result.output
    assert not (tmp_path / "out").exists()


def test_json_fields_keep_one_type_and_load_with_hf_datasets(tmp_path, media_dir):
    """Cut and uncut clips, with and without audio, one per shard: Hugging Face's
    webdataset loader infers the schema from the first samples and casts the rest."""
    clip = make_indexed_clip(media_dir / "types.mp4", 48, fps=24, gop=12)
    silent = encode_clip(media_dir / "types_silent.mp4",
                         [np.full((32, 32, 3), 9 * i, np.uint8) for i in range(12)], fps=12)
    m = tmp_path / "m.jsonl"
    rows = [{"video": str(clip), "caption": "uncut"},
            {"video": str(silent), "caption": ["no audio", "second"], "split": "test"},
            {"video": str(clip), "caption": "cut", "start": 0.5, "end": 1.5},
            {"video": str(clip), "caption": "  ", "key": "k"},  # -> error record
            {"video": str(clip), "caption": "cut\udcff", "start": 0.25}]
    m.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8",
                 errors="surrogateescape")
    out = tmp_path / "out"
    cfg = small_cfg(shards={"samples_per_shard": 1})
    summary = extract(read_manifest(m), out, cfg, QUIET)
    assert (summary.ok, summary.failed) == (4, 1)
    metas = [s["json"] for s in read_back(out)]

    def types(obj, prefix=""):
        if isinstance(obj, dict):
            return {k: t for key, v in obj.items() if key != "meta"
                    for k, t in types(v, f"{prefix}{key}.").items()}
        return {prefix[:-1]: type(obj).__name__}

    first = types(metas[0])
    assert all(types(meta) == first for meta in metas[1:])
    assert metas[0]["start"] == 0.0 and metas[0]["end"] == pytest.approx(2.0)
    assert metas[2]["start"] == 0.5 and metas[2]["end"] == pytest.approx(1.5)
    assert metas[1]["audio"]["missing_reason"] == "no audio stream"
    assert isinstance(metas[3]["warnings"], str) and metas[3]["num_warnings"] == 1
    assert all(meta["format_version"] == 2 for meta in metas)

    script = ("import glob, sys, datasets\n"
              "files = sorted(glob.glob(sys.argv[1] + '/*.tar'))\n"
              "ds = datasets.load_dataset('webdataset', data_files={'train': files},\n"
              "                           split='train', cache_dir=sys.argv[2])\n"
              "print(len(ds), sorted(ds[i]['json']['key'] for i in range(len(ds))))\n")
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([sys.executable, "-c", script, str(out), str(tmp_path / "cache")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split(" ", 1)[0] == "4"


def test_no_progress_bar_when_stderr_is_a_file(tmp_path, sample_data):
    log = tmp_path / "stderr.log"
    args = [sys.executable, "-m", "mmprep", "extract", str(sample_data), "--frames", "2",
            "--size", "16", "--workers", "1"]
    with open(log, "w") as fh:
        subprocess.run([*args, "-o", str(tmp_path / "a")], stderr=fh, check=True, timeout=300)
    text = log.read_text()
    assert "6 samples" in text and "clip/s]" not in text and "\r" not in text
    with open(log, "w") as fh:
        subprocess.run([*args, "-o", str(tmp_path / "b"), "--progress", "always"], stderr=fh,
                       check=True, timeout=300)
    assert "clip/s]" in log.read_text()


def test_shard_writer_writes_the_bytes_of_tarfile(tmp_path):
    """Headers are built directly for short ASCII names; the tar stays byte for byte the
    one Python's tarfile writes in PAX format (long and non-ASCII names go through it),
    and webdataset reads it back."""
    import io
    import tarfile

    import webdataset as wds

    from mmprep.shards.folder import open_output
    from mmprep.shards.writer import ShardWriter

    long_key = "k" * 120
    samples = [("a", [("json", b"{}"), ("txt", b"")]),
               ("clip_0001", [("mel.npy", b"x" * 511), ("f000.jpg", b"y" * 512)]),
               (long_key, [("txt", b"z" * 513)]),
               ("caf\u00e9-\u65e5\u672c", [("txt", "\u00e9".encode())]),
               ("b" * 96, [("json", b"1" * 10000)])]  # name of exactly 100 characters
    store = open_output(tmp_path / "out")
    writer = ShardWriter(store, "t", 0)
    for key, members in samples:
        writer.write(key, members)
    [part] = writer.close()
    got = (tmp_path / "out" / part["file"]).read_bytes()

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for key, members in samples:
            for suffix, data in members:
                info = tarfile.TarInfo(name=f"{key}.{suffix}")
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    assert got == buf.getvalue()
    keys = [s["__key__"] for s in wds.WebDataset(str(tmp_path / "out" / part["file"]),
                                                 shardshuffle=False)]
    assert keys == [k for k, _ in samples]


@pytest.mark.parametrize("max_bytes", [1, 12_000, 25_000, 40_000])
def test_max_bytes_bounds_each_part_file(tmp_path, max_bytes):
    """A part's file, pax records of long names and the end-of-archive record included,
    stays within max_bytes unless its one sample alone is larger; nothing is lost."""
    import webdataset as wds

    from mmprep.shards.folder import open_output
    from mmprep.shards.writer import ShardWriter, tar_file_size

    rng = np.random.default_rng(0)
    samples = [(("k" * 150 if i % 3 == 0 else f"s{i:03d}") + str(i),
                [("json", b"{}"), ("bin", bytes(int(rng.integers(0, 9000))))])
               for i in range(30)]
    store = open_output(tmp_path / "out")
    writer = ShardWriter(store, "t", 0, max_bytes=max_bytes)
    sizes = [writer.write(key, members) for key, members in samples]
    parts = writer.close()
    keys = []
    for part in parts:
        path = tmp_path / "out" / part["file"]
        # write() returns each sample's exact bytes: the part is their sum plus the end
        assert path.stat().st_size == part["bytes"] == tar_file_size(
            sum(sizes[len(keys):len(keys) + part["samples"]]))
        if part["samples"] > 1:
            assert part["bytes"] <= max_bytes
        keys += [s["__key__"] for s in wds.WebDataset(str(path), shardshuffle=False)]
    assert keys == [k for k, _ in samples]
    if max_bytes == 1:
        assert len(parts) == len(samples)


def test_header_scan_agrees_with_tarfile(tmp_path):
    """The index is built by reading only the ustar headers of mmprep's tars; for any
    other tar (pax records, GNU format, damage) tarfile reads it: same answer, same
    errors."""
    import io
    import tarfile

    from mmprep.shards.index import _scan_ustar, scan_members
    from mmprep.shards.writer import member_header

    def tar_bytes(names, fmt=None, sizes=None):
        buf = io.BytesIO()
        if fmt is None:  # mmprep's writer
            for name, size in zip(names, sizes):
                buf.write(member_header(name, size) + b"d" * size + b"\0" * (-size % 512))
            buf.write(b"\0" * 1024)
            return buf.getvalue()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
            for name, size in zip(names, sizes):
                info = tarfile.TarInfo(name)
                info.size = size
                tar.addfile(info, io.BytesIO(b"d" * size))
        return buf.getvalue()

    def by_tarfile(data):
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            return [(i.name, i.offset, i.offset_data, i.size) for i in tar if i.isfile()]

    names, sizes = ["a.json", "a.f000.jpg", "b.txt", "c" * 100], [3, 1000, 0, 512]
    plain = tar_bytes(names, sizes=sizes)
    assert _scan_ustar(io.BytesIO(plain)) == by_tarfile(plain) != []
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        other = tar_bytes(["x" * 150 + ".txt", "caf\u00e9.txt"], fmt, [5, 7])
        assert _scan_ustar(io.BytesIO(other)) is None
        assert scan_members(io.BytesIO(other)) == by_tarfile(other)
    bad_sum = bytearray(plain)
    bad_sum[0] = ord("z")  # the first name changes, its checksum no longer matches
    assert _scan_ustar(io.BytesIO(bytes(bad_sum))) is None
    with pytest.raises(tarfile.ReadError):
        scan_members(io.BytesIO(bytes(bad_sum)))
    cut = plain[:512 + 100]  # the first member's header, then its data cut short
    assert _scan_ustar(io.BytesIO(cut)) is None
    with pytest.raises((tarfile.ReadError, EOFError, OSError)):
        scan_members(io.BytesIO(cut))


def test_each_run_records_the_hash_of_its_own_config(sample_data, tmp_path):
    """The hash is computed once per run (in each worker, or once inline), from the
    config of that run: a changed config object gives the changed hash."""
    from mmprep.extract import PoolOptions

    samples = read_manifest(sample_data)[:2]
    cfg = small_cfg()
    hashes = {}
    for workers in (0, 1):
        for size in (32, 48):
            cfg.video.size = size
            out = tmp_path / f"w{workers}_s{size}"
            extract(samples, out, cfg, RunOptions(progress=False,
                                                  pool=PoolOptions(workers=workers)))
            metas = [s["json"] for s in read_back(out)]
            assert {m["pipeline_hash"] for m in metas} == {cfg.content_hash()}
            hashes[workers, size] = cfg.content_hash()
    assert hashes[0, 32] == hashes[1, 32] != hashes[0, 48] == hashes[1, 48]


def test_shard_features_equal_the_stages_run_on_their_own(sample_data, tmp_path):
    """extract opens each file once (the audio stage rewinds the video stage's
    container): the shards' frames and features are those of the stages run alone on a
    fresh open, including the first fbank frames of clips that start at 0 (MP4 puts
    AAC's priming packet before the start)."""
    from mmprep.media.audio import audio_features
    from mmprep.media.video import sample_frames, sample_seed

    samples = read_manifest(sample_data)
    cfg = small_cfg(video={"format": "raw"})
    extract(samples, tmp_path / "out", cfg, QUIET)
    got = {s["__key__"]: s for s in read_back(tmp_path / "out")}
    for s in samples:
        seed = sample_seed(cfg.seed, s.key)
        fs = sample_frames(s.source, cfg.video, seed=seed)
        np.testing.assert_array_equal(got[s.key]["frames.npy"], np.stack(fs.frames))
        af = audio_features(s.source, cfg.audio, seed=seed)
        np.testing.assert_array_equal(got[s.key]["mel.npy"], af.mel)
