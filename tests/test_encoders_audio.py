"""Audio encoders from official checkpoints: BEATs and PANNs CNN14.

Random weights saved in the official layouts; each encoder checked against an independent
implementation on the raw waveform (its own front end), run end to end on extracted
shards, and refused with one clear line for a wrong preset or a bad checkpoint.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from mmprep.embed import EmbedConfig, EmbedOptions, embed
from mmprep.encoders import load_encoder
from mmprep.encoders.base import sha256_files
from mmprep.errors import ConfigError, MmprepError
from mmprep.extract import ExtractConfig, RunOptions, extract
from mmprep.features import read_features
from mmprep.manifest import read_manifest
from mmprep.media.audio import log_mel
from mmprep.presets import build_config
from mmprep.synthetic import models

pytest.importorskip("openbeats")
# openbeats builds BEATs' position convolution with torch.nn.utils.weight_norm, as the
# official checkpoints' weight_g / weight_v need.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

# Microsoft's BEATs state-dict keys for one transformer layer (BEATs.py / backbone.py).
BEATS_LAYER_KEYS = {
    "fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight", "final_layer_norm.bias",
    "final_layer_norm.weight", "self_attn.grep_a", "self_attn.grep_linear.bias",
    "self_attn.grep_linear.weight", "self_attn.k_proj.bias", "self_attn.k_proj.weight",
    "self_attn.out_proj.bias", "self_attn.out_proj.weight", "self_attn.q_proj.bias",
    "self_attn.q_proj.weight", "self_attn.relative_attention_bias.weight",
    "self_attn.v_proj.bias", "self_attn.v_proj.weight", "self_attn_layer_norm.bias",
    "self_attn_layer_norm.weight"}
BEATS_TOP_KEYS = {
    "post_extract_proj.weight", "post_extract_proj.bias", "patch_embedding.weight",
    "layer_norm.weight", "layer_norm.bias", "encoder.pos_conv.0.bias",
    "encoder.pos_conv.0.weight_g", "encoder.pos_conv.0.weight_v", "encoder.layer_norm.weight",
    "encoder.layer_norm.bias", "predictor.weight", "predictor.bias"}


@pytest.fixture(scope="module")
def beats_spec(tmp_path_factory):
    return models.tiny_beats(tmp_path_factory.mktemp("beats"))


def gram_vast_audio(**extra):
    values = {f"audio.{k}": v for k, v in extra.items()}
    return build_config(ExtractConfig, "extract", pipeline="gram-vast", values=values).audio


def test_tiny_beats_has_the_official_key_layout(beats_spec):
    obj = torch.load(beats_spec.removeprefix("beats:"), weights_only=True)
    assert set(obj) == {"cfg", "model"}
    want = BEATS_TOP_KEYS | {f"encoder.layers.{i}.{k}" for i in range(2)
                             for k in BEATS_LAYER_KEYS}
    assert set(obj["model"]) == want


def test_beats_matches_openbeats_on_the_waveform(beats_spec):
    """mmprep's gram-vast fbank + beats: == BEATs' own front end (waveform * 2**15, Kaldi
    fbank, (x - 15.41663) / (2 * 6.55582)) + encoder, run by openbeats from the file."""
    from openbeats.beats_encoder import BeatsEncoder

    rng = np.random.default_rng(0)
    wave = (0.3 * np.sin(np.linspace(0, 900, 24000)) + 0.05 * rng.standard_normal(24000)
            ).astype(np.float32)
    ckpt = torch.load(beats_spec.removeprefix("beats:"), weights_only=True)
    ref = BeatsEncoder(input_size=0, beats_config=ckpt["cfg"]).eval()
    ref.load_state_dict(ckpt["model"], strict=False)
    with torch.no_grad():
        tokens, _, _ = ref(torch.from_numpy(wave)[None], torch.tensor([wave.shape[0]]),
                           waveform_input=True)
    enc = load_encoder(beats_spec, "audio")
    fbank = log_mel(wave, gram_vast_audio(mel_bins=128))  # BEATs' own 128 bins
    with torch.no_grad():
        ours_tokens = enc.module.tokens(torch.from_numpy(fbank)[None])
        ours = enc(torch.from_numpy(fbank)[None])
    assert ours_tokens.shape == tokens.shape
    torch.testing.assert_close(ours_tokens, tokens, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours, tokens.mean(1), atol=1e-5, rtol=1e-5)
    assert enc.dim == 32 and ours.shape == (1, 32)


@pytest.fixture(scope="module")
def gram_vast_shards(sample_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("gv_shards")
    cfg = build_config(ExtractConfig, "extract", pipeline="gram-vast",
                       values={"video.num_frames": 2, "video.size": 32,
                               "audio.target_frames": 256})
    extract(read_manifest(sample_data)[:3], out, cfg, RunOptions(progress=False))
    return out


def run_embed(shards, out, **kw):
    cfg = EmbedConfig(**{"device": "cpu", "batch_size": 2, "workers": 0, **kw})
    return embed(str(shards), out, cfg, EmbedOptions(progress=False))


def test_beats_end_to_end_on_gram_vast_shards(gram_vast_shards, beats_spec, tmp_path):
    out = tmp_path / "f.h5"
    run_embed(gram_vast_shards, out, audio_encoder=beats_spec, strict=True)
    audio = read_features(out).modalities["audio"]
    assert audio.data.shape == (3, 32) and np.isfinite(audio.data).all()
    path = Path(beats_spec.removeprefix("beats:"))
    assert audio.attrs["weights_sha256"] == sha256_files([path])
    prep = audio.attrs["preprocessing"]
    prep = json.loads(prep) if isinstance(prep, str) else prep
    assert prep["conversions"] == [] and prep["encoder"]["input"]["bins_multiple"] == 16


def test_beats_refuses_other_presets_with_the_setting(sample_data, beats_spec, tmp_path):
    shards = tmp_path / "clip"
    cfg = build_config(ExtractConfig, "extract", pipeline="clip",
                       values={"video.enabled": False, "text.tokenizer": "bert",
                               "text.max_length": 16})
    extract(read_manifest(sample_data)[:1], shards, cfg, RunOptions(progress=False))
    with pytest.raises(MmprepError, match=r"features 'melspectrogram' \(needs 'fbank'\)"):
        run_embed(shards, tmp_path / "f.h5", audio_encoder=beats_spec)


def test_beats_mel_bins_must_fit_the_patches(beats_spec):
    enc = load_encoder(beats_spec, "audio")
    meta = {"audio": {"sample_rate": 16000, "features": "fbank", "mel_bins": 40,
                      "window": "povey", "waveform_scale": 32768.0, "hop_s": 0.01,
                      "window_s": 0.025, "mean": 15.41663, "std": 13.11164}}
    with pytest.raises(MmprepError, match="mel_bins 40 .needs a multiple of 16"):
        enc.input.plan(meta, strict=False)
    meta["audio"].update(mel_bins=64, mean=0.0, std=1.0)
    plan = enc.input.plan(meta, strict=False)  # other statistics: a declared conversion
    assert plan.conversions and "re-normalised" in plan.conversions[-1]


def test_beats_checkpoint_errors_name_the_file(beats_spec, tmp_path):
    good = Path(beats_spec.removeprefix("beats:"))
    with pytest.raises(MmprepError, match="weights file not found: .*nope.pt"):
        load_encoder(f"beats:{tmp_path / 'nope.pt'}", "audio")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(MmprepError, match=r"cut\.pt: cannot read the checkpoint .*truncated"):
        load_encoder(f"beats:{cut}", "audio")
    bare = tmp_path / "bare.pt"
    torch.save(torch.load(good, weights_only=True)["model"], bare)
    with pytest.raises(MmprepError, match=r"bare\.pt: not a BEATs checkpoint.*BEATs_iter3"):
        load_encoder(f"beats:{bare}", "audio")
    other = tmp_path / "resnet.pt"
    torch.save({"cfg": {}, "model": {"conv1.weight": torch.zeros(1)}}, other)
    with pytest.raises(MmprepError, match=r"resnet\.pt: the state dict has no BEATs encoder"):
        load_encoder(f"beats:{other}", "audio")
    wrong = tmp_path / "wrong_cfg.pt"
    obj = torch.load(good, weights_only=True)
    torch.save({"cfg": {**obj["cfg"], "encoder_embed_dim": 48}, "model": obj["model"]}, wrong)
    with pytest.raises(MmprepError, match=r"wrong_cfg\.pt: the weights do not fit"):
        load_encoder(f"beats:{wrong}", "audio")
    with pytest.raises(ConfigError, match="cannot encode video .it encodes: audio"):
        load_encoder(beats_spec, "video")
