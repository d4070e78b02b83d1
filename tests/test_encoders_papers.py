"""The papers' encoders through ``mmprep embed``: the GRAM/VAST stack (EVA-CLIP frames,
BEATs audio, BERT-base-uncased text) on ``gram-vast`` shards in strict mode, CLAP text
and AST audio from ``hf:`` folders, each from tiny random models saved in their real
formats; mismatched shards are one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mmprep.cli import cli
from mmprep.encoders import load_encoder
from mmprep.encoders.base import sha256_files
from mmprep.extract import ExtractConfig, RunOptions, extract
from mmprep.features import read_features
from mmprep.manifest import read_manifest
from mmprep.presets import build_config
from mmprep.synthetic import models

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def gv_shards(sample_data, tmp_path_factory):
    """gram-vast shards: 224 px CLIP frames (2 per clip), BEATs fbank, BERT tokens."""
    out = tmp_path_factory.mktemp("gv")
    cfg = build_config(ExtractConfig, "extract", pipeline="gram-vast",
                       values={"video.num_frames": 2, "audio.target_frames": 256})
    extract(read_manifest(sample_data)[:3], out, cfg, RunOptions(progress=False))
    return out


def embed_cli(shards, out, *args):
    res = CliRunner().invoke(cli, ["embed", str(shards), "-o", str(out), "--device", "cpu",
                                   "--workers", "0", "--batch-size", "2", "-q", "--json",
                                   *args])
    return res


def test_gram_vast_stack_through_mmprep_embed_strict(gv_shards, tmp_path):
    pytest.importorskip("openbeats")
    pytest.importorskip("timm")
    eva = models.tiny_eva_clip(tmp_path / "eva")
    beats = models.tiny_beats(tmp_path / "beats")
    bert = models.tiny_hf_bert(tmp_path / "bert", like_bert_base_uncased=True)
    out = tmp_path / "gv.h5"
    res = embed_cli(gv_shards, out, "--video-encoder", eva, "--audio-encoder", beats,
                    "--text-encoder", bert, "--strict")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["embedded"] == 3
    assert all(c == [] for c in summary["conversions"].values())  # exactly what they take
    fs = read_features(out)
    assert {m: fs.modalities[m].dim for m in fs.modalities} == {
        "video": 32, "audio": 32, "text": 32}
    for m, spec in (("video", eva), ("audio", beats), ("text", bert)):
        data = fs.modalities[m].data
        assert np.isfinite(data).all() and np.abs(data).sum() > 0
        weights = load_encoder(spec, m).weights
        assert fs.modalities[m].attrs["weights_sha256"] == sha256_files(weights)


def test_clap_text_and_ast_audio_through_mmprep_embed(sample_data, tmp_path):
    shards = tmp_path / "ast"
    cfg = build_config(ExtractConfig, "extract", values={
        "video.enabled": False, "audio.window": "hanning", "audio.target_frames": 128})
    extract(read_manifest(sample_data)[:3], shards, cfg, RunOptions(progress=False))
    clap = models.tiny_hf_clap(tmp_path / "clap")
    ast = models.tiny_hf_ast(tmp_path / "ast_model")
    out = tmp_path / "c.h5"
    res = embed_cli(shards, out, "--text-encoder", clap, "--audio-encoder", ast)
    assert res.exit_code == 0, res.output
    conv = json.loads(res.output)["conversions"]
    assert any("re-tokenized" in c for c in conv["text"])  # CLAP's own tokenizer
    assert any("re-normalised" in c for c in conv["audio"])  # AST's mean / std
    fs = read_features(out)
    assert fs.modalities["text"].dim == 16 and fs.modalities["audio"].dim == 32
    assert np.isfinite(fs.modalities["audio"].data).all()
    refused = embed_cli(shards, tmp_path / "r.h5", "--audio-encoder", clap)
    assert refused.exit_code == 1 and "48 kHz" in refused.output
    assert len(refused.output.strip().splitlines()) == 1


def test_mismatched_shards_are_one_line_errors(gv_shards, tmp_path):
    ast = models.tiny_hf_ast(tmp_path / "ast_model")
    res = embed_cli(gv_shards, tmp_path / "a.h5", "--audio-encoder", ast)
    assert res.exit_code == 1
    assert "window 'povey' (needs 'hanning')" in res.output
    assert "waveform_scale 32768.0 (needs 1.0)" in res.output
    assert len(res.output.strip().splitlines()) == 1
    panns = models.tiny_panns(tmp_path / "panns")
    res = embed_cli(gv_shards, tmp_path / "p.h5", "--audio-encoder", panns)
    assert res.exit_code == 1 and "features 'fbank' (needs 'panns')" in res.output


@pytest.mark.slow
def test_real_eva02_b16_architecture_from_a_local_checkpoint(gv_shards, tmp_path):
    """open_clip's own EVA02-B-16 config (the real size), random weights saved as the
    published open_clip_pytorch_model.bin is, loaded by name."""
    open_clip = pytest.importorskip("open_clip")
    pytest.importorskip("timm")
    import torch

    model = open_clip.create_model("EVA02-B-16", pretrained=None)
    ckpt = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(model.state_dict(), ckpt)
    res = embed_cli(gv_shards, tmp_path / "e.h5", "--video-encoder",
                    f"open_clip:EVA02-B-16@{ckpt}", "--text-encoder",
                    f"open_clip:EVA02-B-16@{ckpt}", "--strict", "--set", "batch_size=1")
    assert res.exit_code == 1 and "re-tokenized" in res.output  # BERT tokens, CLIP tower
    res = embed_cli(gv_shards, tmp_path / "e.h5", "--video-encoder",
                    f"open_clip:EVA02-B-16@{ckpt}")
    assert res.exit_code == 0, res.output
    assert read_features(tmp_path / "e.h5").modalities["video"].dim == 512


def test_a_bert_base_uncased_folder_is_recognised_only_when_equivalent(tmp_path):
    from mmprep.encoders.base import canonical_tokenizer

    folder = models.tiny_hf_bert(tmp_path / "b", like_bert_base_uncased=True)[3:]
    assert canonical_tokenizer(folder) == "bert-base-uncased"
    plain = models.tiny_hf_bert(tmp_path / "p")[3:]  # tokenizer.json only: its own spec
    assert canonical_tokenizer(plain) == f"path:{tmp_path / 'p' / 'tokenizer.json'}"
    for name, edit in (("cased", lambda d: (d / "tokenizer_config.json").write_text(
                            json.dumps({"do_lower_case": False}))),
                       ("vocab", lambda d: (d / "vocab.txt").write_text("[PAD]\nhello\n")),
                       ("empty", lambda d: (d / "tokenizer.json").write_text(
                           (d / "tokenizer.json").read_text().replace('"[UNK]": 100,', "")))):
        copy = tmp_path / name
        models.tiny_hf_bert(copy, like_bert_base_uncased=True)
        edit(copy)
        assert canonical_tokenizer(str(copy)).startswith("path:"), name
