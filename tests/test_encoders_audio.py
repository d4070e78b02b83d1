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
    pytest.importorskip("openbeats")
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


# --- PANNs CNN14 -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def panns_ref():
    """panns_inference's models.py (Kong's CNN14 with the torchlibrosa front end), imported
    without its package ``__init__`` (which fetches a label file at import)."""
    pytest.importorskip("torchlibrosa")
    spec = importlib.util.find_spec("panns_inference")
    if spec is None:
        pytest.skip("panns_inference is not installed")
    pkg = types.ModuleType("_panns_reference")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["_panns_reference"] = pkg
    try:
        yield importlib.import_module("_panns_reference.models")
    finally:
        for name in [n for n in sys.modules if n.startswith("_panns_reference")]:
            del sys.modules[name]


def panns_audio(**extra):
    values = {f"audio.{k}": v for k, v in extra.items()}
    return build_config(ExtractConfig, "extract", pipeline="panns", values=values).audio


@pytest.mark.parametrize("rate", [16000, 32000])
def test_panns_matches_panns_inference_on_the_waveform(panns_ref, rate, tmp_path):
    """The real-size CNN14 with random weights and statistics: mmprep's panns log-mel +
    panns: == panns_inference's Cnn14 (torchlibrosa front end) on the same waveform."""
    torch.manual_seed(rate)
    ref = panns_ref.Cnn14(rate, rate * 32 // 1000, rate // 100, 64, 50,
                          min(14000, rate // 2), 527)
    with torch.no_grad():
        for name, b in ref.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(-20.0 if name.startswith("bn0") else 0.0, 1.0)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 2.0).mul_(300.0 if name.startswith("bn0") else 1.0)
        for name, p in ref.named_parameters():
            if ".bn" in name or name.startswith("bn0"):
                p.add_(torch.randn_like(p) * 0.1)
    ref.eval()
    path = tmp_path / ("Cnn14_mAP=0.431.pth" if rate == 32000 else "Cnn14_16k_mAP=0.438.pth")
    torch.save({"model": ref.state_dict(), "iteration": 0}, path)
    rng = np.random.default_rng(rate)
    t = np.arange(int(1.5 * rate)) / rate
    wave = (0.2 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(3 * t))
            + 0.02 * rng.standard_normal(t.shape[0])).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(wave)[None])["embedding"]
        want_mel = ref.logmel_extractor(ref.spectrogram_extractor(torch.from_numpy(wave)[None]))
    enc = load_encoder(f"panns:{path}", "audio")
    assert enc.dim == 2048 and enc.input.sample_rate == rate
    mel = log_mel(wave, panns_audio(sample_rate=rate))
    np.testing.assert_allclose(mel, want_mel[0, 0].numpy(), atol=2e-3)
    with torch.no_grad():
        got = enc(torch.from_numpy(mel)[None])
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def panns_spec(tmp_path_factory):
    return models.tiny_panns(tmp_path_factory.mktemp("panns"))


def test_panns_end_to_end_on_panns_shards(sample_data, panns_spec, tmp_path):
    shards = tmp_path / "shards"
    cfg = build_config(ExtractConfig, "extract", pipeline="panns",
                       values={"video.enabled": False, "audio.target_frames": 200})
    extract(read_manifest(sample_data)[:3], shards, cfg, RunOptions(progress=False))
    run_embed(shards, tmp_path / "f.h5", audio_encoder=panns_spec, strict=True)
    audio = read_features(tmp_path / "f.h5").modalities["audio"]
    assert audio.data.shape == (3, 24) and np.isfinite(audio.data).all()
    assert audio.attrs["weights_sha256"] == sha256_files(
        [Path(panns_spec.removeprefix("panns:"))])


def test_panns_refuses_fbank_shards_and_the_other_rate(gram_vast_shards, panns_spec,
                                                        tmp_path):
    with pytest.raises(MmprepError, match=r"features 'fbank' \(needs 'panns'\)"):
        run_embed(gram_vast_shards, tmp_path / "f.h5", audio_encoder=panns_spec)
    enc32 = load_encoder(models.tiny_panns(tmp_path / "p32", sample_rate=32000), "audio")
    meta = {"audio": {"sample_rate": 16000, "features": "panns", "mel_bins": 64,
                      "waveform_scale": 1.0, "hop_s": 0.01, "window_s": 0.032,
                      "mean": 0.0, "std": 1.0}}
    with pytest.raises(MmprepError, match=r"sample_rate 16000 \(needs 32000\)"):
        enc32.input.plan(meta, strict=False)


def test_panns_training_checkpoint_with_numpy_state_loads(panns_spec, tmp_path):
    """The published files are training checkpoints: numpy arrays (a sampler's random
    state) next to the weights load; other pickled objects do not."""
    good = Path(panns_spec.removeprefix("panns:"))
    state = torch.load(good, weights_only=True)["model"]
    full = tmp_path / "Cnn14_16k_mAP=0.438.pth"
    torch.save({"iteration": 100, "model": state,
                "sampler": {"random_state": np.random.RandomState(0).get_state(),
                            "indexes": np.arange(5), "scale": np.float64(1.0)}}, full)
    assert load_encoder(f"panns:{full}", "audio").dim == 24
    odd = tmp_path / "pickled.pth"
    torch.save({"model": state, "extra": Path("x")}, odd)
    with pytest.raises(MmprepError, match=r"pickled\.pth: cannot read the checkpoint"):
        load_encoder(f"panns:{odd}", "audio")


def test_panns_checkpoint_errors_name_the_file(panns_spec, beats_spec, tmp_path):
    good = Path(panns_spec.removeprefix("panns:"))
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(MmprepError, match=r"cut\.pth: cannot read the checkpoint"):
        load_encoder(f"panns:{cut}", "audio")
    beats_file = beats_spec.removeprefix("beats:")
    with pytest.raises(MmprepError, match=r"BEATs_tiny_random\.pt: not a CNN14 checkpoint"):
        load_encoder(f"panns:{beats_file}", "audio")
    state = torch.load(good, weights_only=True)["model"]
    odd = tmp_path / "odd_filters.pth"
    torch.save({"model": {**state, "logmel_extractor.melW": state["logmel_extractor.melW"]
                          * 2}}, odd)
    with pytest.raises(MmprepError, match=r"odd_filters\.pth: the checkpoint's mel filters"):
        load_encoder(f"panns:{odd}", "audio")
    short = tmp_path / "cnn10.pth"
    torch.save({"model": {k: v for k, v in state.items() if not k.startswith("fc1.")}}, short)
    with pytest.raises(MmprepError, match=r"cnn10\.pth: not a CNN14 checkpoint"):
        load_encoder(f"panns:{short}", "audio")
    broken = tmp_path / "broken.pth"
    torch.save({"model": {**state, "conv_block2.bn1.weight": torch.zeros(3)}}, broken)
    with pytest.raises(MmprepError, match=r"broken\.pth: the state dict does not match CNN14"):
        load_encoder(f"panns:{broken}", "audio")
