"""``hf:DIR``: a transformers model saved locally (``save_pretrained``), never downloaded.

The folder's ``config.json`` decides how the model is used:

| model_type | video | audio | text |
|---|---|---|---|
| ``clip`` | ``get_image_features`` | - | ``get_text_features`` |
| vision models (``vit``, ``clip_vision_model``, ``dinov2``, ...) | pooler output or CLS | - | - |
| ``audio-spectrogram-transformer`` (AST) | - | pooler output | - |
| ``clap`` | - | refused (see below) | ``get_text_features`` |
| text models (``bert``, ``roberta``, ...) | - | - | masked mean of token states |

Image size and mean/std come from ``preprocessor_config.json`` when present (else the
config's ``image_size`` and CLIP's mean/std). Text is tokenized with the folder's
``tokenizer.json`` / ``vocab.txt`` (mmprep re-tokenizes the captions when the shards used
another tokenizer). A sentence-transformers folder (``modules.json``) gets its pooling
(``1_Pooling``) and L2 normalisation. AST's feature settings (Kaldi fbank, bins, frames,
mean/std) come from ``preprocessor_config.json``. CLAP's audio tower needs its own
48 kHz dB mel features, which extract does not produce, so it is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mmprep.encoders.base import (
    Encoder,
    ImageInput,
    MelInput,
    TokenInput,
    mean_pool_tokens,
    pooled,
)
from mmprep.errors import MmprepError
from mmprep.media.norms import PIXEL_NORMS

CLIP_MEAN, CLIP_STD = PIXEL_NORMS["clip"]
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
VISION_TYPES = ("vit", "clip_vision_model", "dinov2", "deit", "beit", "siglip_vision_model",
                "vit_mae", "convnext", "resnet", "swin", "dinov3_vit")
AST_TYPE = "audio-spectrogram-transformer"


def _transformers():
    # Offline: the hub is never asked, whatever the user's environment says.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import transformers
    except ImportError as exc:
        raise MmprepError("hf: encoders need transformers: pip install 'mmprep[hf]'") from exc
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def model_dir(path: str) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        looks_like_hub_id = path.count("/") == 1 and not path.startswith((".", "/", "~"))
        hint = (f" (a hub id? download it first, e.g. `huggingface-cli download {path} "
                f"--local-dir DIR`, then use hf:DIR)" if looks_like_hub_id else "")
        raise MmprepError(f"hf:{path}: no such folder{hint}; hf: takes a folder written by "
                          "save_pretrained, and never downloads")
    if not (folder / "config.json").is_file():
        raise MmprepError(f"hf:{path}: no config.json in {folder}; save the model there with "
                          "model.save_pretrained(DIR)")
    return folder.resolve()


def weight_files(folder: Path) -> list[Path]:
    files = sorted({p for pat in WEIGHT_PATTERNS for p in folder.glob(pat)})
    if not files:
        raise MmprepError(f"hf:{folder}: no weights (model.safetensors or pytorch_model.bin); "
                          "save the model there with model.save_pretrained(DIR)")
    return files


def load_auto_model(folder: Path):
    """``AutoModel.from_pretrained(folder)``, local files only, in eval mode."""
    transformers = _transformers()
    weight_files(folder)
    try:
        config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
        model = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise MmprepError(f"hf:{folder}: cannot load the model: {exc}") from exc
    return model.eval(), config


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _tokenizer_spec(folder: Path, model_type: str, vocab_size: int) -> str:
    if (folder / "tokenizer.json").is_file() or (folder / "vocab.txt").is_file():
        return str(folder)
    if model_type == "clip" and vocab_size == 49408:
        return "clip"
    raise MmprepError(f"hf:{folder}: no tokenizer.json or vocab.txt; save the tokenizer "
                      "there with tokenizer.save_pretrained(DIR)")


def _image_input(folder: Path, image_size: int, flexible: bool = False) -> ImageInput:
    pre = _json(folder / "preprocessor_config.json")
    size = pre.get("crop_size") or pre.get("size") or image_size
    if isinstance(size, dict):
        size = size.get("height") or size.get("shortest_edge") or image_size
    mean = tuple(pre.get("image_mean") or CLIP_MEAN)
    std = tuple(pre.get("image_std") or CLIP_STD)
    interp = {2: "bilinear", 3: "bicubic"}.get(pre.get("resample"), "bicubic")
    return ImageInput(int(size), mean, std, interp, flexible_size=flexible)


def _sentence_transformers(folder: Path) -> tuple[str, bool]:
    """(pooling, normalize) of a sentence-transformers folder; mean/False otherwise."""
    modules = _json(folder / "modules.json")
    if not isinstance(modules, list):
        return "mean", False
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    pooling = "mean"
    for m in modules:
        if m.get("type", "").endswith("Pooling"):
            cfg = _json(folder / m.get("path", "") / "config.json")
            if cfg.get("pooling_mode_cls_token"):
                pooling = "cls"
    return pooling, normalize


def load_hf(spec: str, modality: str, arch: str | None, path: str | None) -> Encoder:
    folder = model_dir(arch or "")
    model, config = load_auto_model(folder)
    mtype = config.model_type
    common = {"spec": f"hf:{folder}", "modality": modality, "module": model,
              "weights": weight_files(folder)}

    if mtype == "clip" and modality == "video":
        vc = config.vision_config
        return Encoder(**common, dim=config.projection_dim,
                       input=_image_input(folder, vc.image_size),
                       forward=lambda m, x: pooled(m.get_image_features(pixel_values=x)),
                       notes="CLIP image features (projected)")
    if mtype in ("clip", "clap") and modality == "text":
        tc = config.text_config
        # CLAP's RoBERTa-style positions start after the padding id
        offset = int(getattr(tc, "pad_token_id", 0) or 0) + 1 if mtype == "clap" else 0
        return Encoder(**common, dim=config.projection_dim,
                       input=TokenInput(_tokenizer_spec(folder, mtype, tc.vocab_size),
                                        tc.max_position_embeddings - offset,
                                        vocab_size=tc.vocab_size),
                       forward=lambda m, ids, mask: pooled(
                           m.get_text_features(input_ids=ids, attention_mask=mask)),
                       notes=f"{mtype.upper()} text features (projected)")
    if mtype == "clap" and modality == "audio":
        raise MmprepError(
            f"hf:{folder}: CLAP's audio tower needs ClapFeatureExtractor's 48 kHz dB mel "
            "features, which the shards do not hold; use an AST (hf:DIR) or the "
            "efficientnet-lite0 stand-in for audio, and CLAP for text")
    if mtype == AST_TYPE and modality == "audio":
        pre = _json(folder / "preprocessor_config.json")
        std = float(pre.get("std", 4.5689974))
        inp = MelInput(
            mode="spectrogram", mel_bins=int(config.num_mel_bins),
            frames=int(config.max_length), sample_rate=int(pre.get("sampling_rate", 16000)),
            features="fbank", window="hanning", waveform_scale=1.0, hop_s=0.01,
            window_s=0.025, mean=float(pre.get("mean", -4.2677393)),
            # ASTFeatureExtractor normalises as (x - mean) / (2 * std).
            std=2 * std if pre.get("do_normalize", True) else None,
        )
        return Encoder(**common, dim=config.hidden_size, input=inp,
                       forward=lambda m, x: pooled(m(input_values=x)),
                       notes="AST pooled output (mean of the CLS and distillation tokens)")
    is_vision = mtype in VISION_TYPES or (hasattr(config, "image_size")
                                          and hasattr(config, "num_channels"))
    if is_vision and modality == "video":
        size = config.image_size if isinstance(config.image_size, int) else 224
        return Encoder(**common, dim=config.hidden_size, input=_image_input(folder, size),
                       forward=lambda m, x: pooled(m(pixel_values=x)),
                       notes=f"{mtype} pooled output")
    is_text = hasattr(config, "vocab_size") and not is_vision and mtype not in (AST_TYPE,)
    if is_text and modality == "text":
        pooling, normalize = _sentence_transformers(folder)

        def forward(m, ids, mask):
            hidden = m(input_ids=ids, attention_mask=mask).last_hidden_state
            return hidden[:, 0] if pooling == "cls" else mean_pool_tokens(hidden, mask)

        max_len = int(getattr(config, "max_position_embeddings", 512))
        return Encoder(**common, dim=config.hidden_size,
                       input=TokenInput(_tokenizer_spec(folder, mtype, config.vocab_size),
                                        max_len, vocab_size=config.vocab_size),
                       forward=forward, normalize=normalize,
                       notes=f"{mtype} {pooling} pooling" + (" + L2" if normalize else ""))
    raise MmprepError(
        f"hf:{folder}: a {mtype!r} model cannot encode {modality}; supported: clip "
        "(video, text), vision models (video), audio-spectrogram-transformer (audio), "
        "clap (text), text models such as bert (text)")
