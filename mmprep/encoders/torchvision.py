"""``torchvision:ARCH@WEIGHTS``: a torchvision classification model with a local weights file.

``ARCH`` is any name of ``torchvision.models.list_models()`` that has ImageNet weights
(``resnet50``, ``efficientnet_b0``, ``convnext_tiny``, ``vit_b_16``, ...). ``WEIGHTS`` is the
state-dict file torchvision would download (e.g. ``resnet50-11ad3fa6.pth``); without
``@WEIGHTS`` the file is looked up in the torch hub cache (``$TORCH_HOME/hub/checkpoints``)
and never downloaded. The embedding is the input of the final classifier layer (the
last ``Linear``, replaced by the identity). Input size and mean/std come from the
weights' metadata (the crop size, e.g. 224). CNNs also accept ``--audio-encoder``
(log-mel image stand-in); transformers (ViT, Swin, MaxViT) need their fixed size.
"""

from __future__ import annotations

from pathlib import Path

from mmprep.encoders.base import Encoder, ImageInput, MelInput, require_file
from mmprep.errors import MmprepError

FIXED_SIZE_PREFIXES = ("vit_", "swin", "maxvit")


def _weights_meta(arch: str):
    import torchvision

    try:
        return torchvision.models.get_model_weights(arch).DEFAULT
    except (ValueError, KeyError) as exc:
        names = torchvision.models.list_models(module=torchvision.models)
        raise MmprepError(f"torchvision:{arch}: unknown architecture (examples: "
                          f"{', '.join(names[:8])}, ...)") from exc


def _strip_classifier(model, num_classes: int) -> int:
    """Replace the last ``Linear`` with ``num_classes`` outputs by the identity."""
    import torch

    last = None
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and mod.out_features == num_classes:
            last = name
    if last is None:
        raise MmprepError("torchvision: no classifier layer found to remove")
    parent = model.get_submodule(last.rsplit(".", 1)[0]) if "." in last else model
    dim = parent.get_submodule(last.rsplit(".", 1)[-1]).in_features
    setattr(parent, last.rsplit(".", 1)[-1], torch.nn.Identity())
    return int(dim)


def load_torchvision(spec: str, modality: str, arch: str | None, path: str | None) -> Encoder:
    import torch
    import torchvision

    if not arch:
        raise MmprepError("torchvision: needs an architecture, e.g. "
                          "torchvision:resnet50@/path/resnet50-11ad3fa6.pth")
    meta = _weights_meta(arch)
    filename = Path(meta.url).name
    if path is None:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
        path = str(cached) if cached.is_file() else None
    hint = (f"give the state-dict file torchvision downloads from {meta.url} as "
            f"torchvision:{arch}@/path/{filename} (or put it in "
            f"{Path(torch.hub.get_dir()) / 'checkpoints'})")
    weights = require_file(path, f"torchvision:{arch}", hint)
    model = torchvision.models.get_model(arch, weights=None)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        model.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise MmprepError(f"torchvision:{arch}: cannot load {weights}: {first}") from exc
    dim = _strip_classifier(model, len(meta.meta.get("categories") or []) or 1000)
    tf = meta.transforms()
    flexible = not arch.startswith(FIXED_SIZE_PREFIXES)
    interp = str(getattr(tf, "interpolation", "bilinear")).rsplit(".", 1)[-1].lower()
    image = ImageInput(int(tf.crop_size[0]), tuple(tf.mean), tuple(tf.std), interp,
                       flexible_size=flexible)

    def forward(module, x):
        return module(x)

    def forward_mel(module, mel):
        x = mel.transpose(1, 2).unsqueeze(1).expand(-1, 3, -1, -1)
        return module(x.contiguous(memory_format=torch.channels_last) if flexible else x)

    if modality == "video":
        inp, fwd = image, forward
    elif modality == "audio" and flexible:
        inp, fwd = MelInput(mode="image"), forward_mel
    else:
        raise MmprepError(f"torchvision:{arch} cannot encode {modality}"
                          + (" (a fixed-size transformer: video only)" if modality == "audio"
                             else "; it is a vision model"))
    return Encoder(spec=f"torchvision:{arch}@{weights}", modality=modality, module=model,
                   dim=dim, input=inp, weights=[weights], forward=fwd,
                   channels_last=flexible, notes=f"torchvision {arch}, classifier removed")
