"""Encoder registry: spec parsing, missing weights, preprocessing checks, every family."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import webdataset as wds

from mmprep.config import from_dict
from mmprep.embed import EmbedConfig, EmbedOptions, embed
from mmprep.encoders import load_encoder, parse_spec
from mmprep.encoders.base import ImageInput, MelInput, TokenInput
from mmprep.errors import ConfigError, MmprepError
from mmprep.extract import ExtractConfig, RunOptions, extract
from mmprep.features import read_features
from mmprep.manifest import read_manifest
from mmprep.shards import shard_files
from mmprep.synthetic import models

META = {
    "video": {"size": [32, 32], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
              "num_frames": 4, "sampling": "uniform"},
    "audio": {"sample_rate": 16000, "features": "fbank", "mel_bins": 64, "hop_s": 0.01,
              "window_s": 0.025, "window": "hanning", "waveform_scale": 1.0, "mean": 1.0,
              "std": 2.0, "shape": [100, 64]},
    "text": {"tokenizer": "bert", "max_length": 40, "pad_id": 0},
}


@pytest.fixture(scope="module")
def shards(sample_data, tmp_path_factory):
    """Three sample clips: 4 frames of 32 px, 128 Hann-window fbank frames, BERT tokens."""
    out = tmp_path_factory.mktemp("enc_shards")
    cfg = from_dict(ExtractConfig, {"video": {"num_frames": 4, "size": 32},
                                    "audio": {"target_frames": 128, "window": "hanning"},
                                    "shards": {"samples_per_shard": 2}})
    extract(read_manifest(sample_data)[:3], out, cfg, RunOptions(progress=False))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_models")
    return {
        "bert": models.tiny_hf_bert(root / "bert"),
        "clip": models.tiny_hf_clip(root / "clip"),
        "ast": models.tiny_hf_ast(root / "ast"),
        "ast128": models.tiny_hf_ast(root / "ast128", mel_bins=128),
        "open_clip": models.tiny_open_clip(root / "oc"),
        "torchvision": models.tiny_torchvision(root / "tv"),
    }


def run(shards, out, **kw):
    cfg = EmbedConfig(**{"device": "cpu", "batch_size": 2, "workers": 1, **kw})
    return embed(str(shards), out, cfg, EmbedOptions(progress=False))


def test_spec_syntax():
    assert parse_spec("minilm") == ("minilm", None, None)
    assert parse_spec("torchvision:resnet50@/w/r.pth") == ("torchvision", "resnet50", "/w/r.pth")
    assert parse_spec("open_clip:ViT-B-32") == ("open_clip", "ViT-B-32", None)
    assert parse_spec("hf:/models/a@b") == ("hf", "/models/a@b", None)
    with pytest.raises(ConfigError, match="unknown encoder 'clip'.*minilm"):
        parse_spec("clip")


def test_missing_weights_and_downloads_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(MmprepError, match=r"torchvision:resnet18: no weights file given.*"
                                          r"resnet18-f37072fd\.pth"):
        load_encoder("torchvision:resnet18", "video")
    with pytest.raises(MmprepError, match="weights file not found: .*missing.pth"):
        load_encoder(f"torchvision:resnet18@{tmp_path / 'missing.pth'}", "video")
    with pytest.raises(MmprepError, match=r"open_clip:ViT-B-32: no weights file given; give "
                                          r"a local checkpoint as open_clip:ViT-B-32@.*openai"):
        load_encoder("open_clip:ViT-B-32", "video")
    with pytest.raises(MmprepError, match="no such folder.*huggingface-cli download"):
        load_encoder("hf:openai/clip-vit-base-patch32", "video")
    (tmp_path / "cfg_only").mkdir()
    (tmp_path / "cfg_only" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(MmprepError, match="no weights .*save_pretrained"):
        load_encoder(f"hf:{tmp_path / 'cfg_only'}", "text")
    with pytest.raises(MmprepError, match=r"cannot encode video \(it encodes: text\)"):
        load_encoder("minilm", "video")
    with pytest.raises(MmprepError, match="cannot encode audio"):
        load_encoder("open_clip:ViT-B-32@/x.pt", "audio")


def test_declared_preprocessing_checks_and_conversions():
    img = ImageInput(32, (0.5,) * 3, (0.5,) * 3)
    assert img.plan(META, strict=False).conversions == []
    plan = ImageInput(224, (0.4,) * 3, (0.5,) * 3).plan(META, strict=False)
    assert plan.resize_to == 224 and len(plan.conversions) == 2  # size and mean
    with pytest.raises(MmprepError, match="strict mode.*resized"):
        ImageInput(224, (0.5,) * 3, (0.5,) * 3).plan(META, strict=True)
    with pytest.raises(MmprepError, match="no frames"):
        img.plan({}, strict=False)

    ast = MelInput("spectrogram", mel_bins=64, frames=128, sample_rate=16000,
                   features="fbank", window="hanning", waveform_scale=1.0, mean=-4.0, std=9.0)
    plan = ast.plan(META, strict=False)
    assert plan.mel_frames == 128
    a, b = plan.mel_scale  # stored (x - 1) / 2  ->  (x + 4) / 9
    assert a * ((3.0 - 1) / 2) + b == pytest.approx((3.0 + 4) / 9)
    wrong = {**META, "audio": {**META["audio"], "mel_bins": 128, "window": "povey"}}
    with pytest.raises(MmprepError, match="mel_bins 128 \\(needs 64\\), window 'povey'"):
        ast.plan(wrong, strict=False)

    same = TokenInput("bert-base-uncased", 256).plan(META, strict=False)
    assert same.retokenize is None and same.conversions == []
    other = TokenInput("clip", 77).plan(META, strict=False)
    assert other.retokenize == "clip" and other.max_length == 77
    short = TokenInput("bert-base-uncased", 32).plan(META, strict=False)
    assert short.retokenize and "exceed" in short.conversions[0]
    with pytest.raises(MmprepError, match="strict mode.*re-tokenized"):
        TokenInput("clip", 77).plan(META, strict=True)


def test_preprocessing_mismatch_is_a_clear_error(shards, tiny, tmp_path, sample_data):
    with pytest.raises(MmprepError, match="mel_bins 64 \\(needs 128\\)"):
        run(shards, tmp_path / "a.h5", audio_encoder=tiny["ast128"])
    with pytest.raises(MmprepError, match="strict mode.*frames resized from \\[32, 32\\]"):
        run(shards, tmp_path / "b.h5", video_encoder="efficientnet-lite0", strict=True)
    povey = tmp_path / "povey"  # extract's default fbank window; an AST needs Hann
    extract(read_manifest(sample_data)[:1], povey,
            from_dict(ExtractConfig, {"video": {"enabled": False},
                                      "audio": {"target_frames": 128}}),
            RunOptions(progress=False))
    with pytest.raises(MmprepError, match="window 'povey' \\(needs 'hanning'\\)"):
        run(povey, tmp_path / "c.h5", audio_encoder=tiny["ast"])
    with pytest.raises(MmprepError, match="hold no frames"):
        run(povey, tmp_path / "d.h5", video_encoder="efficientnet-lite0")
    assert not (tmp_path / "a.h5").exists() and not (tmp_path / "c.h5").exists()


def test_hf_tiny_models_end_to_end(shards, tiny, tmp_path):
    """hf: CLIP (video + text), BERT (text) and AST (audio) built from tiny random configs,
    saved, loaded back through the registry; rows equal a direct transformers forward."""
    import transformers

    out = tmp_path / "hf.h5"
    summary = run(shards, out, video_encoder=tiny["clip"], audio_encoder=tiny["ast"],
                  text_encoder=tiny["bert"])
    assert summary.embedded == 3
    fs = read_features(out)
    assert fs.modalities["video"].dim == 16 and fs.modalities["audio"].dim == 32
    assert fs.modalities["text"].dim == 32
    assert any("re-tokenized" in c for c in summary.conversions["text"])
    assert any("re-normalised" in c for c in summary.conversions["audio"])
    assert summary.conversions["video"] == []  # 32 px frames, what the tiny CLIP takes

    sample = next(iter(wds.WebDataset(shard_files(shards), shardshuffle=False).decode("rgb8")))
    row = fs.keys.index(sample["__key__"])
    clip = transformers.CLIPModel.from_pretrained(tiny["clip"][3:]).eval()
    frames = torch.stack([torch.from_numpy(np.array(sample[f"f{i:03d}.jpg"])).permute(2, 0, 1)
                          for i in range(4)]).float() / 255
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    ast = transformers.ASTModel.from_pretrained(tiny["ast"][3:]).eval()
    mel = torch.from_numpy(np.array(sample["mel.npy"]))[None]  # stored with mean 0, std 1
    with torch.no_grad():
        out_v = clip.get_image_features(pixel_values=(frames - mean) / std)
        video = getattr(out_v, "pooler_output", out_v).mean(0)
        audio = ast(input_values=(mel + 4.2677393) / (2 * 4.5689974)).pooler_output[0]
    np.testing.assert_allclose(fs.modalities["video"].data[row], video.numpy(), atol=1e-5)
    np.testing.assert_allclose(fs.modalities["audio"].data[row], audio.numpy(), atol=1e-5)

    from mmprep.media.text import get_tokenizer

    bert = transformers.BertModel.from_pretrained(tiny["bert"][3:]).eval()
    tok = get_tokenizer(tiny["bert"][3:], 64)(sample["json"]["captions"])
    ids, mask = torch.from_numpy(tok.ids).long(), torch.from_numpy(tok.mask).long()
    with torch.no_grad():
        hidden = bert(input_ids=ids, attention_mask=mask).last_hidden_state
    ref = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    text = fs.modalities["text"]
    np.testing.assert_allclose(text.data[text.owner == row], ref.numpy(), atol=1e-5)


def test_hf_clip_text_tower_and_unsupported_uses(shards, tiny, tmp_path):
    summary = run(shards, tmp_path / "t.h5", text_encoder=tiny["clip"])
    assert summary.modalities == {"text": 16}
    assert "'clip', 77 tokens" in summary.conversions["text"][0]
    with pytest.raises(MmprepError, match="cannot encode audio"):
        load_encoder(tiny["clip"], "audio")
    with pytest.raises(MmprepError, match="cannot encode video"):
        load_encoder(tiny["bert"], "video")


def test_open_clip_and_torchvision_local_weights(shards, tiny, tmp_path):
    out = tmp_path / "oc.h5"
    summary = run(shards, out, video_encoder=tiny["open_clip"], text_encoder=tiny["open_clip"])
    fs = read_features(out)
    assert fs.modalities["video"].data.shape == (3, 16)
    assert fs.modalities["text"].data.shape == (6, 16)
    assert any("'clip', 77 tokens" in c for c in summary.conversions["text"])
    spec = tiny["torchvision"]
    out = tmp_path / "tv.h5"
    summary = run(shards, out, video_encoder=spec, audio_encoder=spec)
    fs = read_features(out)
    assert fs.modalities["video"].data.shape == (3, 1024)  # mobilenet_v3_small penultimate
    assert fs.modalities["audio"].data.shape == (3, 1024)
    assert fs.modalities["video"].attrs["encoder"] == spec
    assert np.isfinite(fs.modalities["video"].data).all()


def test_video_tokens_and_reduced_precision(shards, tiny, tmp_path):
    out = tmp_path / "tok.h5"
    run(shards, out, video_encoder=tiny["clip"], video_tokens=True, dtype="float16")
    fs = read_features(out)
    import h5py

    with h5py.File(out) as f:
        tokens = f["video_tokens"][()]
        assert f["video"].dtype == np.float16
    assert tokens.shape == (3, 4, 16)
    np.testing.assert_allclose(tokens.astype(np.float32).mean(1),
                               fs.modalities["video"].data.astype(np.float32), atol=2e-3)
    fp32 = run(shards, tmp_path / "fp32.h5", text_encoder=tiny["bert"])
    bf16 = run(shards, tmp_path / "bf16.h5", text_encoder=tiny["bert"], precision="bf16")
    assert fp32.embedded == bf16.embedded == 3
    a = read_features(tmp_path / "fp32.h5").modalities["text"].data
    b = read_features(tmp_path / "bf16.h5").modalities["text"].data
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.98 and np.abs(a - b).max() > 0  # autocast really ran in bf16


def test_raw_frames_and_clips_without_audio(sample_data, media_dir, tiny, tmp_path):
    """frames.npy members work like JPEG frames; a clip without an audio track gets a zero
    audio row and audio_mask false."""
    from mmprep.synthetic.media import make_indexed_clip

    silent = make_indexed_clip(media_dir / "embed_silent.mp4", 24, fps=24, audio=False)
    rows = [{"key": "silent", "video": str(silent), "caption": "no sound at all"},
            {"key": "sound", "video": str(sample_data.parent / "clips" / "clip000000.mp4"),
             "caption": "a clip with sound"}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = from_dict(ExtractConfig, {"video": {"num_frames": 2, "size": 32, "format": "raw"},
                                    "audio": {"target_frames": 64, "missing": "omit"}})
    extract(read_manifest(manifest), tmp_path / "shards", cfg, RunOptions(progress=False))
    out = tmp_path / "f.h5"
    run(tmp_path / "shards", out, video_encoder=tiny["clip"],
        audio_encoder="efficientnet-lite0")
    fs = read_features(out)
    assert fs.keys == ["silent", "sound"]
    assert fs.modalities["audio"].mask.tolist() == [False, True]
    assert not fs.modalities["audio"].data[0].any() and fs.modalities["audio"].data[1].any()
    assert fs.modalities["video"].data.shape == (2, 16)
