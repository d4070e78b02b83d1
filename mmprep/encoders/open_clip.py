"""``open_clip:ARCH@CHECKPOINT``: an open_clip model with a local checkpoint file.

``ARCH`` is an open_clip model name (``open_clip.list_models()``, e.g. ``ViT-B-32``; use
the ``-quickgelu`` variants for OpenAI weights) or the path of a model-config JSON file
(registered under its file stem). ``CHECKPOINT`` is a state-dict file, e.g. the
``open_clip_pytorch_model.bin`` of a hub repository downloaded beforehand. The vision
tower encodes video frames (``encode_image``), the text tower captions (``encode_text``,
CLIP BPE tokens padded to the context length, 77). Models whose text tower or tokenizer
come from the Hugging Face hub are refused (they would need a download; use ``hf:DIR``).
"""

from __future__ import annotations

from pathlib import Path

from mmprep.encoders.base import Encoder, ImageInput, TokenInput, require_file
from mmprep.errors import MmprepError
from mmprep.media.norms import PIXEL_NORMS


def _open_clip():
    try:
        import open_clip
    except ImportError as exc:
        raise MmprepError("open_clip: encoders need open_clip_torch: "
                          "pip install 'mmprep[clip]'") from exc
    return open_clip


def _resolve_arch(open_clip, arch: str) -> str:
    path = Path(arch).expanduser()
    if arch.endswith(".json"):
        if not path.is_file():
            raise MmprepError(f"open_clip: model config not found: {path}")
        open_clip.add_model_config(path)
        return path.stem
    if open_clip.get_model_config(arch) is None:
        names = open_clip.list_models()
        raise MmprepError(f"open_clip:{arch}: unknown model (examples: "
                          f"{', '.join(names[:6])}, ...; or a model-config .json path)")
    return arch


def load_open_clip(spec: str, modality: str, arch: str | None, path: str | None) -> Encoder:
    open_clip = _open_clip()
    if not arch:
        raise MmprepError("open_clip: needs a model name, e.g. "
                          "open_clip:ViT-B-32@/path/open_clip_pytorch_model.bin")
    name = _resolve_arch(open_clip, arch)
    cfg = open_clip.get_model_config(name) or {}
    text_cfg = cfg.get("text_cfg", {})
    if text_cfg.get("hf_model_name") or text_cfg.get("hf_tokenizer_name"):
        raise MmprepError(f"open_clip:{arch} uses a Hugging Face text tower/tokenizer that "
                          "would be downloaded; save it locally and use hf:DIR instead")
    tags = open_clip.list_pretrained_tags_by_model(name) if not arch.endswith(".json") else []
    hint = ("give a local checkpoint as open_clip:" + arch + "@/path/open_clip_model.bin"
            + (f" (weights published for it: {', '.join(tags[:4])})" if tags else ""))
    weights = require_file(path, f"open_clip:{arch}", hint)
    try:
        model = open_clip.create_model(name, pretrained=str(weights), load_weights=True,
                                       device="cpu")
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MmprepError(f"open_clip:{arch}: cannot load {weights}: {first}") from exc
    dim = int(cfg.get("embed_dim", 0)) or int(model.text_projection.shape[-1])
    spec = f"open_clip:{arch}@{weights}"
    if modality == "video":
        pre = open_clip.get_model_preprocess_cfg(model)
        size = pre.get("size", 224)
        size = size[0] if isinstance(size, list | tuple) else size
        clip_mean, clip_std = PIXEL_NORMS["clip"]
        inp = ImageInput(int(size), tuple(pre.get("mean", clip_mean)),
                         tuple(pre.get("std", clip_std)),
                         pre.get("interpolation", "bicubic"))
        return Encoder(spec=spec, modality=modality, module=model, dim=dim, input=inp,
                       weights=[weights], forward=lambda m, x: m.encode_image(x),
                       notes="open_clip encode_image")
    if modality == "text":
        context = int(text_cfg.get("context_length", 77))
        vocab = getattr(model, "vocab_size", None) or 49408
        inp = TokenInput("clip", context, pad_to_max=True, vocab_size=int(vocab))

        def forward(m, ids, mask):
            return m.encode_text(ids)

        return Encoder(spec=spec, modality=modality, module=model, dim=dim, input=inp,
                       weights=[weights], forward=forward, trim_tokens=False,
                       notes="open_clip encode_text")
    raise MmprepError(f"open_clip:{arch} has vision and text towers; it cannot encode audio")
