"""Tiny randomly initialised encoders saved like real ones, for tests and demos.

Each function writes a model folder or weights file under ``folder`` and returns the
encoder spec that loads it (``hf:DIR``, ``open_clip:CONFIG.json@CKPT``,
``torchvision:ARCH@WEIGHTS``). The weights are random: the embeddings mean nothing, but
every code path (loading, preprocessing checks, forward, pooling) is the real one.
"""

from __future__ import annotations

import json
from pathlib import Path


def _quiet_transformers():
    from mmprep.encoders.hf import _transformers

    return _transformers()


def _small(**extra) -> dict:
    return {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, **extra}


def tiny_hf_bert(folder: str | Path, *, max_positions: int = 64,
                 like_bert_base_uncased: bool = False) -> str:
    """A 2-layer BERT with the packaged BERT-uncased WordPiece tokenizer.json; with
    ``like_bert_base_uncased`` the tokenizer is saved as bert-base-uncased's folder is
    (``vocab.txt``, ``tokenizer.json``, ``tokenizer_config.json``: what
    ``huggingface-cli download bert-base-uncased`` gives) and 512 positions."""
    from tokenizers import BertWordPieceTokenizer

    from mmprep.media.text import _packaged_vocab

    t = _quiet_transformers()
    BertConfig, BertModel = t.BertConfig, t.BertModel

    folder = Path(folder)
    if like_bert_base_uncased:
        max_positions = 512
    BertModel(BertConfig(**_small(max_position_embeddings=max_positions))).save_pretrained(
        folder)
    BertWordPieceTokenizer(str(_packaged_vocab()), lowercase=True).save(
        str(folder / "tokenizer.json"))
    if like_bert_base_uncased:
        (folder / "vocab.txt").write_bytes(_packaged_vocab().read_bytes())
        (folder / "tokenizer_config.json").write_text(json.dumps(
            {"do_lower_case": True, "model_max_length": 512,
             "tokenizer_class": "BertTokenizer"}))
    return f"hf:{folder}"


def tiny_hf_clap(folder: str | Path) -> str:
    """A tiny CLAP (RoBERTa-style text tower + HTS-AT audio tower), with the packaged
    BERT-uncased tokenizer.json for its text (CLAP's own BPE files need a download)."""
    from tokenizers import BertWordPieceTokenizer

    from mmprep.media.text import _packaged_vocab

    t = _quiet_transformers()
    folder = Path(folder)
    config = t.ClapConfig(
        text_config=_small(vocab_size=30522, max_position_embeddings=66, pad_token_id=0),
        audio_config={"hidden_size": 32, "depths": [1, 1], "num_attention_heads": [2, 2],
                      "window_size": 4, "spec_size": 64, "patch_size": 4,
                      "num_mel_bins": 64, "patch_embeds_hidden_size": 16,
                      "projection_hidden_size": 32},
        projection_dim=16)
    t.ClapModel(config).save_pretrained(folder)
    BertWordPieceTokenizer(str(_packaged_vocab()), lowercase=True).save(
        str(folder / "tokenizer.json"))
    return f"hf:{folder}"


def tiny_hf_clip(folder: str | Path, *, image_size: int = 32) -> str:
    """A 2-layer CLIP (vision + text towers, CLIP BPE vocab size, no tokenizer files)."""
    t = _quiet_transformers()
    CLIPConfig, CLIPModel = t.CLIPConfig, t.CLIPModel
    folder = Path(folder)
    config = CLIPConfig(
        text_config=_small(vocab_size=49408, max_position_embeddings=77),
        vision_config=_small(image_size=image_size, patch_size=16), projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    return f"hf:{folder}"


def tiny_hf_ast(folder: str | Path, *, mel_bins: int = 64, frames: int = 128) -> str:
    """A 2-layer Audio Spectrogram Transformer with an ASTFeatureExtractor config."""
    t = _quiet_transformers()
    ASTConfig, ASTModel = t.ASTConfig, t.ASTModel
    folder = Path(folder)
    ASTModel(ASTConfig(**_small(num_mel_bins=mel_bins, max_length=frames))).save_pretrained(
        folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "feature_extractor_type": "ASTFeatureExtractor", "feature_size": 1,
        "num_mel_bins": mel_bins, "max_length": frames, "sampling_rate": 16000,
        "mean": -4.2677393, "std": 4.5689974, "do_normalize": True,
    }))
    return f"hf:{folder}"


def tiny_open_clip(folder: str | Path, *, image_size: int = 32) -> str:
    """An open_clip model config (tiny ViT + text transformer) and its checkpoint."""

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": image_size, "layers": 1, "width": 32, "patch_size": 16,
                       "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                     "layers": 1},
    }
    return _save_open_clip(folder, "mmprep-tiny-clip", config, "tiny_clip.pt")


def _save_open_clip(folder: Path, name: str, config: dict, weights: str) -> str:
    """Write ``config`` as open_clip model ``name``, build it with random weights, save
    them as ``weights`` in ``folder``; returns the ``open_clip:CONFIG@WEIGHTS`` spec."""
    import open_clip
    import torch

    cfg_path = folder / f"{name}.json"
    cfg_path.write_text(json.dumps(config))
    open_clip.add_model_config(cfg_path)
    model = open_clip.create_model(name, pretrained=None)
    ckpt = folder / weights
    torch.save(model.state_dict(), ckpt)
    return f"open_clip:{cfg_path}@{ckpt}"


def tiny_eva_clip(folder: str | Path) -> str:
    """An EVA-CLIP in open_clip's EVA02 layout (``custom_text``, timm EVA02 vision trunk
    whose head is the projection, as ``EVA02-B-16``), at timm's smallest EVA02
    (``eva02_tiny_patch14_224``, 224 px) with a 1-layer text tower."""

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 224, "timm_model_name": "eva02_tiny_patch14_224",
                       "timm_model_pretrained": False, "timm_pool": "token",
                       "timm_proj": None},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                     "layers": 1},
        "custom_text": True,
    }
    return _save_open_clip(folder, "mmprep-tiny-eva02", config, "tiny_eva02.pt")


def tiny_torchvision(folder: str | Path, arch: str = "mobilenet_v3_small") -> str:
    """A randomly initialised torchvision classifier saved as a state-dict file."""
    import torch
    import torchvision

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{arch}-random.pth"
    torch.save(torchvision.models.get_model(arch, weights=None).state_dict(), path)
    return f"torchvision:{arch}@{path}"


# A small BEATs configuration with every feature of the published ones (deep norm, gated
# relative position bias, a fine-tuned AudioSet-style predictor).
TINY_BEATS_CFG = {
    "input_patch_size": 16, "embed_dim": 16, "conv_bias": False, "encoder_layers": 2,
    "encoder_embed_dim": 32, "encoder_ffn_embed_dim": 64, "encoder_attention_heads": 4,
    "activation_fn": "gelu", "layer_norm_first": False, "deep_norm": True, "dropout": 0.0,
    "attention_dropout": 0.0, "activation_dropout": 0.0, "encoder_layerdrop": 0.0,
    "dropout_input": 0.0, "conv_pos": 16, "conv_pos_groups": 4,
    "relative_position_embedding": True, "num_buckets": 32, "max_distance": 128,
    "gru_rel_pos": True, "finetuned_model": True, "predictor_dropout": 0.0,
    "predictor_class": 5,
}


# The architecture of the published BEATs_iter3 / BEATs_iter3_plus_AS2M checkpoints.
BEATS_ITER3_CFG = {
    **TINY_BEATS_CFG, "embed_dim": 512, "encoder_layers": 12, "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072, "encoder_attention_heads": 12, "conv_pos": 128,
    "conv_pos_groups": 16, "num_buckets": 320, "max_distance": 800, "predictor_class": 527,
}


def tiny_beats(folder: str | Path, *, seed: int = 0, real_size: bool = False) -> str:
    """A 2-layer BEATs checkpoint in Microsoft's layout: ``{"cfg": ..., "model": ...}``
    with the official state-dict keys (``predictor.*`` included, no ESPnet helpers);
    ``real_size``: BEATs_iter3's architecture (90M parameters, for benchmarks)."""
    import torch
    from openbeats.beats_encoder import BeatsEncoder

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    cfg = dict(BEATS_ITER3_CFG if real_size else TINY_BEATS_CFG)
    enc = BeatsEncoder(input_size=0, beats_config=cfg)
    with torch.no_grad():  # non-trivial values everywhere (norms, biases, gates)
        for name, p in enc.named_parameters():
            if not name.endswith("_pad.weight"):
                p.add_(torch.randn_like(p) * 0.05)
    state = {k: v.clone() for k, v in enc.state_dict().items()
             if k not in ("patch_embedding_pad.weight", "raw2fbank_pad.weight")}
    dim, classes = cfg["encoder_embed_dim"], cfg["predictor_class"]
    state["predictor.weight"] = torch.randn(classes, dim)
    state["predictor.bias"] = torch.randn(classes)
    path = folder / ("BEATs_iter3_random.pt" if real_size else "BEATs_tiny_random.pt")
    torch.save({"cfg": cfg, "model": state}, path)
    return f"beats:{path}"


def tiny_panns(folder: str | Path, *, sample_rate: int = 16000, seed: int = 0,
               widths: tuple[int, ...] = (4, 8, 8, 16, 16, 32), dim: int = 24) -> str:
    """A CNN14 checkpoint in the published layout (``{"model": state_dict}``, torchlibrosa
    front end included: STFT kernels and Slaney mel filters for ``sample_rate``), with
    narrow random conv blocks. ``widths=(64, 128, 256, 512, 1024, 2048), dim=2048`` is
    the real size."""
    import math

    import torch

    from mmprep.encoders.panns import Cnn14
    from mmprep.media.audio import _panns_transform

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    n_fft = sample_rate * 32 // 1000
    model = Cnn14(64, list(widths), dim)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * (0.1 if "bn" in name else 0.0))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0, 0.5 if name.startswith("bn0") else 0.05)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 2.0).mul_(100.0 if name.startswith("bn0") else 1.0)
    state = dict(model.state_dict())
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    window = 0.5 - 0.5 * torch.cos(2 * math.pi * n / n_fft)  # periodic Hann
    angle = 2 * math.pi * k * n / n_fft
    state["spectrogram_extractor.stft.conv_real.weight"] = (
        torch.cos(angle) * window).float()[:, None, :]
    state["spectrogram_extractor.stft.conv_imag.weight"] = (
        -torch.sin(angle) * window).float()[:, None, :]
    fb = _panns_transform(sample_rate, n_fft, sample_rate // 100, 64).mel_scale.fb
    state["logmel_extractor.melW"] = fb.clone()
    state["fc_audioset.weight"] = torch.randn(527, dim) * 0.05
    state["fc_audioset.bias"] = torch.zeros(527)
    name = "Cnn14_mAP=0.431.pth" if sample_rate == 32000 else f"Cnn14_{sample_rate // 1000}k.pth"
    path = folder / f"random-{name}"
    torch.save({"model": state, "iteration": 0}, path)
    return f"panns:{path}"
