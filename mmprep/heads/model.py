"""Projection heads: one per modality, all mapping to a shared unit-norm space."""

from __future__ import annotations

import math

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """Input normalisation -> linear or two-layer MLP -> L2 normalisation."""

    def __init__(self, in_dim: int, out_dim: int, *, kind: str = "mlp", hidden_dim: int = 1024,
                 dropout: float = 0.0, input_norm: str = "standardize"):
        super().__init__()
        self.input_norm = input_norm
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        if kind == "linear":
            self.net = nn.Sequential(nn.Linear(in_dim, out_dim))
        elif kind == "mlp":
            self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout),
                                     nn.Linear(hidden_dim, out_dim))
        else:
            raise ValueError(f"unknown head kind {kind!r}")

    def set_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_norm == "standardize":
            x = (x - self.mean) / self.std
        elif self.input_norm == "l2":
            x = nn.functional.normalize(x, dim=-1) * math.sqrt(x.shape[-1])
        return nn.functional.normalize(self.net(x).float(), dim=-1)


class AlignmentHeads(nn.Module):
    """The heads of a run plus its learnable temperatures: ``log_temperature.NAME``
    (log tau, form ``log``) or ``temperature.NAME`` (tau itself, form ``raw``).

    Called with a dict of input rows by modality (any subset of its modalities), it
    returns a dict of unit-norm aligned embeddings; ``embed(m, x)`` does one modality
    in chunks without gradients."""

    def __init__(self, dims: dict[str, int], *, out_dim: int, kind: str, hidden_dim: int,
                 dropout: float, input_norm: str, temperatures: dict[str, float],
                 temperature_form: str = "log"):
        super().__init__()
        self.heads = nn.ModuleDict({
            m: ProjectionHead(d, out_dim, kind=kind, hidden_dim=hidden_dim, dropout=dropout,
                              input_norm=input_norm)
            for m, d in dims.items()
        })
        self.temperature_form = temperature_form
        if temperature_form == "raw":
            self.raw_temperature = nn.ParameterDict({
                name: nn.Parameter(torch.tensor(float(t))) for name, t in temperatures.items()})
        else:
            self.log_temperature = nn.ParameterDict({
                name: nn.Parameter(torch.tensor(math.log(t))) for name, t in temperatures.items()
            })

    @property
    def modalities(self) -> list[str]:
        return list(self.heads)

    @property
    def temperature_params(self) -> nn.ParameterDict:
        return self.raw_temperature if self.temperature_form == "raw" else self.log_temperature

    def temperature(self, name: str) -> torch.Tensor:
        if self.temperature_form == "raw":
            return self.raw_temperature[name]
        return self.log_temperature[name].exp()

    def clamp_temperatures(self, low: float, high: float) -> None:
        """Clamp log-parameterised temperatures (raw ones are never clamped)."""
        if self.temperature_form == "raw":
            return
        with torch.no_grad():
            for p in self.log_temperature.values():
                p.clamp_(math.log(low), math.log(high))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: self.heads[m](x) for m, x in batch.items() if m in self.heads}

    @torch.no_grad()
    def embed(self, m: str, x: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
        """Unit-norm projections of many rows, in chunks, float32."""
        out = [self.heads[m](x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        return torch.cat(out) if out else x.new_zeros((0, self.heads[m].net[-1].out_features))


def save_heads(path, model: AlignmentHeads, cfg, meta: dict) -> None:
    """safetensors file of the heads, their input statistics and temperatures; the
    metadata holds the config and what is needed to rebuild the modules."""
    import json

    from safetensors.torch import save

    from mmprep.config import to_dict
    from mmprep.storage import atomic_write_bytes

    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save(tensors, metadata={
        "format": "mmprep-heads", "version": "1",
        "config": json.dumps(to_dict(cfg)), "meta": json.dumps(meta),
    }))


def load_heads(run_dir) -> tuple[AlignmentHeads, object, dict]:
    """Load the heads of a train-head run.

    Args:
        run_dir: the run folder (``heads.safetensors`` and ``config.json``).

    Returns (model, TrainHeadConfig, meta): ``model.embed(modality, x)`` maps input
    features (rows, input dim) to unit-norm aligned embeddings.
    """
    import json
    from pathlib import Path

    from safetensors import safe_open
    from safetensors.torch import load_file

    from mmprep.config import from_dict
    from mmprep.errors import MmprepError
    from mmprep.heads.config import TrainHeadConfig

    path = Path(run_dir) / "heads.safetensors"
    if not path.is_file():
        raise MmprepError(f"{run_dir} is not a train-head run (no heads.safetensors)")
    with safe_open(str(path), framework="pt") as f:
        info = f.metadata() or {}
    if info.get("format") != "mmprep-heads":
        raise MmprepError(f"{path} was not written by mmprep train-head")
    cfg = from_dict(TrainHeadConfig, json.loads(info["config"]))
    meta = json.loads(info["meta"])
    state = load_file(str(path))
    form = "raw" if any(k.startswith("raw_temperature.") for k in state) else "log"
    prefix = f"{form}_temperature."
    temps = {k.split(".", 1)[1]: 1.0 for k in state if k.startswith(prefix)}
    h = cfg.head
    model = AlignmentHeads(meta["input_dims"], out_dim=h.out_dim, kind=h.kind,
                           hidden_dim=h.hidden_dim, dropout=h.dropout, input_norm=h.input_norm,
                           temperatures=temps, temperature_form=form)
    model.load_state_dict(state)
    model.eval()
    return model, cfg, meta


def load(run_dir) -> AlignmentHeads:
    """The trained heads of a run folder, ready to use in your own code (CPU, eval
    mode). ``heads({"video": x})`` maps a dict of input rows (torch tensors, (rows,
    input dim), any subset of ``heads.modalities``) to a dict of unit-norm aligned
    embeddings; ``heads.embed("video", x)`` does one modality without gradients.
    ``heads.config`` is the run's ``TrainHeadConfig``, ``heads.meta`` its metadata
    (modalities with the anchor first, input dimensions, the feature cache)."""
    model, cfg, meta = load_heads(run_dir)
    model.config, model.meta = cfg, meta
    return model
