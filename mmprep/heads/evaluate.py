"""Apply trained heads: any-to-any retrieval evaluation and projection to a new cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmprep.errors import MmprepError
from mmprep.features.source import FeatureSource
from mmprep.heads.results import EvalResult


def embed_clips(model, source: FeatureSource, clips: np.ndarray, mods: list[str], device,
                *, chunk: int = 8192) -> tuple[dict, dict, dict]:
    """Unit-norm embeddings of ``clips`` for each modality they have (every usable item
    of item-level ones), the group (position in ``clips``) of each row, and which
    positions have each modality."""
    import torch

    emb, group, has = {}, {}, {}
    for m in mods:
        has[m] = source.has(m)[clips]
        if source.is_item_level(m):
            rows, pos = source.items_of(m, clips)
        else:
            pos = np.flatnonzero(has[m])
            rows = clips[pos]
        parts = []
        for i in range(0, len(rows), chunk):
            x = torch.from_numpy(source.take(m, rows[i:i + chunk])).to(device)
            parts.append(model.embed(m, x))
        emb[m] = torch.cat(parts) if parts else torch.zeros(0, model.heads[m].net[-1].out_features)
        group[m] = np.asarray(pos, dtype=np.int64)
    return emb, group, has


def score_tables(model, source: FeatureSource, clips: np.ndarray, mods: list[str], *,
                 device=None, pair_score: str = "cosine"
                 ) -> tuple[dict[str, dict[str, tuple]], dict[str, np.ndarray]]:
    """Per-query ranks of every retrieval table: ``{"pairs": {"text->video": (ranks,
    groups)}, "tuples": {...}}`` (groups: the query's clip, a position in ``clips``) and
    which positions have each modality. Each ordered pair is scored over the clips that
    have both modalities, the anchor <-> tuple tables over the clips that have all of
    theirs (the anchor and the clip-level others)."""
    import torch

    from mmprep.heads.metrics import pair_ranks, tuple_ranks

    device = device or torch.device("cpu")
    was_training = model.training
    model.eval()
    tables: dict[str, dict[str, tuple]] = {"pairs": {}, "tuples": {}}
    with torch.no_grad():
        emb, group, has = embed_clips(model, source, clips, mods, device)

        def rows_of(m, keep):
            sel = keep[group[m]]
            return emb[m][torch.from_numpy(np.flatnonzero(sel)).to(emb[m].device)], group[m][sel]

        def tensor(a):
            return torch.from_numpy(a).to(device)

        for q in mods:
            for g in mods:
                if q == g:
                    continue
                both = has[q] & has[g]
                if both.sum() < 2:
                    continue
                xq, gq = rows_of(q, both)
                xg, gg = rows_of(g, both)
                ranks = pair_ranks(xq, tensor(gq), xg, tensor(gg), score=pair_score)
                tables["pairs"][f"{q}->{g}"] = (ranks.cpu().numpy(), gq)
        anchor, others = mods[0], [m for m in mods[1:] if not source.is_item_level(m)]
        if len(others) >= 2:
            every = has[anchor] & np.logical_and.reduce([has[m] for m in others])
            sub = np.flatnonzero(every)
            if len(sub) >= 2:
                local = np.full(len(clips), -1, np.int64)
                local[sub] = np.arange(len(sub))
                xa, ga = rows_of(anchor, every)
                outs = [rows_of(m, every)[0] for m in others]
                res = tuple_ranks(xa, tensor(local[ga]), outs)
                name = f"({','.join(others)})"
                tables["tuples"][f"{anchor}->{name}"] = (res["forward"].cpu().numpy(), ga)
                tables["tuples"][f"{name}->{anchor}"] = (res["backward"].cpu().numpy(), sub)
    model.train(was_training)
    return tables, has


def evaluate(model, source: FeatureSource, clips: np.ndarray, mods: list[str], *,
             device=None, pair_score: str = "cosine", complete_only: bool = False
             ) -> EvalResult:
    """R@1/5/10, median rank, query and clip counts and 95% bootstrap intervals over
    the clips (``mmprep.heads.bootstrap``) for every ordered pair of modalities
    (``pair_score``: cosine, or the sign-blind two-vector volume) over the clips that
    have both, and for anchor -> tuple of the clip-level others (and back) over the
    clips that have all, scored by GRAM volume. ``mods`` starts with the anchor."""
    from mmprep.heads.bootstrap import clip_weights
    from mmprep.heads.metrics import summarize

    tables, has = score_tables(model, source, clips, mods, device=device,
                               pair_score=pair_score)
    weights = clip_weights(len(clips))
    pairs = {k: summarize(r, g, weights) for k, (r, g) in tables["pairs"].items()}
    tuples = {k: summarize(r, g, weights) for k, (r, g) in tables["tuples"].items()}
    rows = {}
    for m in mods:
        rows[m] = (int(len(source.items_of(m, clips)[0])) if source.is_item_level(m)
                   else int(has[m].sum()))
    return EvalResult(
        clips=int(len(clips)),
        pair_score=pair_score,
        rows=rows,
        pairs=pairs,
        tuples=tuples,
        mean_r1=float(np.mean([v["R@1"] for v in pairs.values()])) if pairs else float("nan"),
        coverage={m: round(float(has[m].mean()), 4) if len(clips) else 0.0 for m in mods},
        complete_only=complete_only,
    )


def evaluate_run(run_dir: str | Path, features: str | Path, *, split: str | None = None,
                 device: str = "auto", pair_score: str = "cosine",
                 complete_only: bool | None = None) -> EvalResult:
    """Evaluate a train-head run on ``features``.

    Args:
        run_dir: the run folder written by ``train_heads``.
        features: a feature cache with the run's modalities (same input dimensions).
        split: the split to evaluate; default: the run's eval rows (its eval split, or
            its held-out share when it trained with a holdout).
        device: auto, cpu, cuda or cuda:N.
        pair_score: cosine, or the sign-blind two-vector volume.
        complete_only: evaluate only clips with every modality (default: as the run
            trained, ``data.complete_only``).
    """
    from mmprep.device import resolve_device
    from mmprep.heads.model import load_heads

    model, cfg, meta = load_heads(run_dir)
    dev = resolve_device(device)
    model.to(dev)
    mods = meta["modalities"]
    with FeatureSource(features, mods, loading=cfg.data.loading) as source:
        clips = run_eval_clips(source, cfg, meta, split, complete_only)
        result = evaluate(model, source, clips, mods, device=dev, pair_score=pair_score,
                          complete_only=cfg.data.complete_only)
    result.split = (split if split is not None else
                    (f"holdout {cfg.data.holdout}" if cfg.data.holdout > 0
                     else cfg.data.eval_split))
    result.run = str(run_dir)
    result.loss = cfg.loss.name
    return result


def run_eval_clips(source: FeatureSource, cfg, meta: dict, split: str | None,
                   complete_only: bool | None) -> np.ndarray:
    """The clips a run is evaluated on: ``split`` (default: the run's own eval rows),
    those with two or more modalities, or all (``complete_only``). Updates ``cfg``."""
    from mmprep.heads.clips import choose_clips

    _check_dims(source, meta)
    if split is not None:
        cfg.data.eval_split, cfg.data.holdout = split, 0.0
    if complete_only is not None:
        cfg.data.complete_only = complete_only
    return choose_clips(source, cfg, meta["modalities"], need_train=False)["eval"]


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
