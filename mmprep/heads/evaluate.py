"""Apply trained heads: any-to-any retrieval evaluation and projection to a new cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmprep.errors import MmprepError
from mmprep.features.source import FeatureSource
from mmprep.heads.results import EvalResult


def embed_clips(model, source: FeatureSource, clips: np.ndarray, mods: list[str], device,
                *, chunk: int = 8192) -> tuple[dict, dict]:
    """Unit-norm embeddings of ``clips`` for each modality (every item of item-level
    ones) and the group (position in ``clips``) of each row."""
    import torch

    emb, group = {}, {}
    for m in mods:
        if source.is_item_level(m):
            rows, pos = source.items_of(m, clips)
        else:
            rows, pos = clips, np.arange(len(clips))
        parts = []
        for i in range(0, len(rows), chunk):
            x = torch.from_numpy(source.take(m, rows[i:i + chunk])).to(device)
            parts.append(model.embed(m, x))
        emb[m] = torch.cat(parts) if parts else torch.zeros(0, model.heads[m].net[-1].out_features)
        group[m] = torch.from_numpy(pos).to(device)
    return emb, group


def evaluate(model, source: FeatureSource, clips: np.ndarray, mods: list[str], *,
             device=None, pair_score: str = "cosine") -> EvalResult:
    """R@1/5/10 and median rank for every ordered pair of modalities (``pair_score``:
    cosine, or the sign-blind two-vector volume) and for anchor -> tuple of the
    clip-level others (and back), scored by GRAM volume. ``mods`` starts with the
    anchor."""
    import torch

    from mmprep.heads.metrics import pair_metrics, tuple_metrics

    device = device or torch.device("cpu")
    was_training = model.training
    model.eval()
    with torch.no_grad():
        emb, group = embed_clips(model, source, clips, mods, device)
        pairs = {}
        for q in mods:
            for g in mods:
                if q != g:
                    pairs[f"{q}->{g}"] = pair_metrics(emb[q], group[q], emb[g], group[g],
                                                      score=pair_score)
        anchor, others = mods[0], [m for m in mods[1:] if not source.is_item_level(m)]
        tuples = {}
        if len(others) >= 2:
            name = f"({','.join(others)})"
            res = tuple_metrics(emb[anchor], group[anchor], [emb[m] for m in others])
            tuples[f"{anchor}->{name}"] = res["forward"]
            tuples[f"{name}->{anchor}"] = res["backward"]
    model.train(was_training)
    return EvalResult(
        clips=int(len(clips)),
        pair_score=pair_score,
        rows={m: int(emb[m].shape[0]) for m in mods},
        pairs=pairs,
        tuples=tuples,
        mean_r1=float(np.mean([v["R@1"] for v in pairs.values()])),
    )


def evaluate_run(run_dir: str | Path, features: str | Path, *, split: str | None = None,
                 device: str = "auto", pair_score: str = "cosine") -> EvalResult:
    """Evaluate a train-head run on ``features``.

    Args:
        run_dir: the run folder written by ``train_heads``.
        features: a feature cache with the run's modalities (same input dimensions).
        split: the split to evaluate; default: the run's eval rows (its eval split, or
            its held-out share when it trained with a holdout).
        device: auto, cpu, cuda or cuda:N.
        pair_score: cosine, or the sign-blind two-vector volume.
    """
    from mmprep.device import resolve_device
    from mmprep.heads.clips import choose_clips
    from mmprep.heads.model import load_heads

    model, cfg, meta = load_heads(run_dir)
    dev = resolve_device(device)
    model.to(dev)
    mods = meta["modalities"]
    with FeatureSource(features, mods, loading=cfg.data.loading) as source:
        _check_dims(source, meta)
        if split is not None:
            cfg.data.eval_split, cfg.data.holdout = split, 0.0
        clips = choose_clips(source, cfg, mods, need_train=False)["eval"]
        result = evaluate(model, source, clips, mods, device=dev, pair_score=pair_score)
    result.split = (split if split is not None else
                    (f"holdout {cfg.data.holdout}" if cfg.data.holdout > 0
                     else cfg.data.eval_split))
    result.run = str(run_dir)
    result.loss = cfg.loss.name
    return result


def _check_dims(source: FeatureSource, meta: dict) -> None:
    for m, d in meta["input_dims"].items():
        if source.dims[m] != d:
            raise MmprepError(f"{source.path.name}: /{m} has dimension {source.dims[m]}, "
                              f"the heads were trained on {d}")


def project_run(run_dir: str | Path, features: str | Path, out: str | Path, *,
                device: str = "auto", overwrite: bool = False, chunk: int = 8192) -> Path:
    """Write the projected, unit-norm embeddings of every row of ``features`` as a new
    feature cache with the same schema (keys, split, owners, masks, captions).

    Args:
        run_dir: the run folder written by ``train_heads``.
        features: the feature cache to project (the run's modalities and dimensions).
        out: the new feature cache; never the input itself.
        device: auto, cpu, cuda or cuda:N.
        overwrite: replace ``out`` when it exists (refused otherwise).
        chunk: rows per forward pass.

    Returns the path written.
    """
    import torch

    from mmprep.device import resolve_device
    from mmprep.features import FeatureSet, Modality, write_features
    from mmprep.heads.model import load_heads

    model, cfg, meta = load_heads(run_dir)
    dev = resolve_device(device)
    model.to(dev)
    mods = meta["modalities"]
    if Path(out).resolve() == Path(features).resolve():
        raise MmprepError("the output must not overwrite the input feature cache")
    if Path(out).exists() and not overwrite:
        raise MmprepError(f"{out} exists (overwrite=True, --overwrite, replaces it)")
    with FeatureSource(features, mods, loading=cfg.data.loading) as source:
        _check_dims(source, meta)
        modalities = {}
        for m in mods:
            n_rows = len(source.owner[m]) if source.is_item_level(m) else len(source)
            parts = []
            for i in range(0, n_rows, chunk):
                rows = np.arange(i, min(i + chunk, n_rows))
                x = torch.from_numpy(source.take(m, rows)).to(dev)
                parts.append(model.embed(m, x).cpu().numpy())
            data = np.concatenate(parts) if parts else np.zeros((0, cfg.head.out_dim), np.float32)
            modalities[m] = Modality(
                data=data, owner=source.owner.get(m), mask=source.mask.get(m),
                captions=source.captions(m),
                attrs={"encoder": f"mmprep-head:{meta['config_hash']}",
                       "weights_sha256": "", "preprocessing": {"run": str(run_dir)},
                       "preprocessing_hash": meta["config_hash"]},
            )
        fs = FeatureSet(keys=list(source.keys), split=source.split, modalities=modalities,
                        attrs={"projected_from": str(Path(features).resolve()),
                               "heads": str(Path(run_dir).resolve()), "loss": cfg.loss.name})
    return write_features(out, fs)
