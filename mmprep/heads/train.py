"""The training loop of ``mmprep train-head`` and the loss it optimises."""

from __future__ import annotations

import json
import math
import time
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from mmprep import __version__
from mmprep.config import config_hash, to_dict
from mmprep.device import autocast, resolve_device
from mmprep.errors import MmprepError
from mmprep.features.source import FeatureSource
from mmprep.heads.clips import choose_clips, resolve_modalities
from mmprep.heads.config import LossConfig, TrainHeadConfig
from mmprep.heads.results import TrainResult
from mmprep.storage import atomic_write_bytes

STATS_ROWS = 50_000  # rows used for the input standardisation statistics


def input_statistics(source: FeatureSource, m: str, clips: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of modality ``m`` over the rows of ``clips`` that have it."""
    clips = clips[source.has(m)[clips]]
    if source.is_item_level(m):
        rows, _ = source.items_of(m, clips)
    else:
        rows = clips
    if len(rows) > STATS_ROWS:
        rows = np.sort(rng.choice(rows, STATS_ROWS, replace=False))
    x = source.take(m, rows).astype(np.float64)
    return x.mean(0), x.std(0)


# --------------------------------------------------------------------------- loss
def pair_list(mods: list[str], which: str) -> list[tuple[str, str]]:
    """Pairs for InfoNCE: (anchor, other) for each other modality, or all pairs."""
    if which == "anchor":
        return [(mods[0], m) for m in mods[1:]]
    return list(combinations(mods, 2))


def loss_terms(emb: dict, mods: list[str], cfg: LossConfig, temps: dict, progress: float,
               present: dict | None = None) -> dict[str, Any]:
    """All loss terms for one batch of unit-norm embeddings; ``loss`` is the total.

    ``mods`` starts with the anchor. ``temps`` maps 'main' and 'pair' to temperatures.
    ``progress`` in [0, 1] drives ``pair_decay``. ``present`` maps each modality to a
    (B,) bool tensor (None: every clip has every modality): GRAM scores each tuple over
    the vectors it has, PMRL each clip over its columns, InfoNCE the clips with both.
    """
    import torch

    from mmprep.heads.losses import gram_loss, infonce_loss, pmrl_terms

    def mask(names) -> torch.Tensor | None:
        return None if present is None else torch.stack([present[m] for m in names], 1)

    terms: dict[str, Any] = {}
    if cfg.name == "gram":
        roles = mods if (cfg.gram_anchors == "all" and not cfg.pure) else mods[:1]
        parts = []
        for a in roles:
            order = [a] + [m for m in mods if m != a]
            parts.append(gram_loss(*[emb[m] for m in order], temperature=temps["main"],
                                   label_smoothing=cfg.label_smoothing, present=mask(order),
                                   stop_gradient=cfg.stop_gradient))
        terms["gram"] = sum(parts) / len(roles)
        total = terms["gram"]
    elif cfg.name == "pmrl":
        t = pmrl_terms(*[emb[m] for m in mods], tau_sv=cfg.tau_sv, tau_reg=temps["main"],
                       present=mask(mods))
        terms["sv"], terms["reg"] = t["sv"], t["reg"]
        total = t["sv"] + cfg.reg_weight * t["reg"]
    else:
        pairs = pair_list(mods, cfg.pairs)
        terms["infonce"] = sum(infonce_loss(emb[a], emb[b], temps["main"],
                                            label_smoothing=cfg.label_smoothing,
                                            present=mask((a, b)))
                               for a, b in pairs) / len(pairs)
        total = terms["infonce"]
    if cfg.name != "infonce" and not cfg.pure and cfg.pair_weight > 0:
        pairs = pair_list(mods, cfg.pair_set)
        terms["pair"] = sum(infonce_loss(emb[a], emb[b], temps["pair"],
                                         label_smoothing=cfg.label_smoothing,
                                         present=mask((a, b)))
                            for a, b in pairs) / len(pairs)
        weight = cfg.pair_weight
        if cfg.pair_decay:
            weight *= 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
        terms["pair_weight"] = weight
        total = total + weight * terms["pair"]
    terms["loss"] = total
    return terms


def diagnostics(emb: dict, mods: list[str], present: dict | None = None) -> dict[str, float]:
    """Batch statistics that show how a run trains (or collapses): ``cos/a-b`` is the
    mean cosine of matching rows of two modalities (alignment, signed; over the clips
    with both), ``spread/m`` the mean cosine between different rows of one modality
    (1 = collapsed)."""
    import torch

    out = {}
    with torch.no_grad():
        for a, b in combinations(mods, 2):
            both = slice(None) if present is None else present[a] & present[b]
            cos = (emb[a][both] * emb[b][both]).sum(-1)
            out[f"cos/{a}-{b}"] = float(cos.mean()) if cos.numel() else float("nan")
        for m in mods:
            x = emb[m].float() if present is None else emb[m][present[m]].float()
            n = x.shape[0]
            s = x.sum(0)
            out[f"spread/{m}"] = float(((s @ s) - n) / max(n * (n - 1), 1))
    return out


def temperature_names(cfg: LossConfig) -> dict[str, float]:
    names = {"main": cfg.temperature}
    if cfg.name != "infonce" and not cfg.pure and cfg.pair_weight > 0:
        names["pair"] = cfg.temperature
    return names


def lr_factor(step: int, total: int, warmup: int, min_lr: float) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return min_lr + (1 - min_lr) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


# --------------------------------------------------------------------------- train
def train_heads(features: str | Path, out_dir: str | Path, cfg: TrainHeadConfig, *,
                progress: bool = True, overwrite: bool = False) -> TrainResult:
    """Train one projection head per modality on a feature cache and evaluate them.

    Args:
        features: the feature cache (HDF5, see ``mmprep.features``).
        out_dir: the run folder; it gets ``heads.safetensors``, ``config.json``,
            ``train.log``, ``report.png`` and, last, ``metrics.json``.
        cfg: the objective, heads, optimiser, data and runtime settings.
        progress: draw a progress bar.
        overwrite: replace an existing run in ``out_dir`` (refused otherwise).

    Returns the run's metrics (``metrics.json``'s content).
    """
    import torch
    from tqdm import tqdm

    from mmprep.heads.evaluate import evaluate
    from mmprep.heads.model import AlignmentHeads, save_heads
    from mmprep.heads.report import write_report

    out_dir = Path(out_dir)
    if (out_dir / "heads.safetensors").exists() and not overwrite:
        raise MmprepError(f"{out_dir} already holds a run (overwrite=True, --overwrite, "
                          "replaces it)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    t_start = time.perf_counter()

    with FeatureSource(features, cfg.data.modalities, loading=cfg.data.loading) as source:
        mods = resolve_modalities(source.modalities, cfg)
        clips = choose_clips(source, cfg, mods)
        batch_size = min(cfg.optim.batch_size, len(clips["train"]))
        steps_per_epoch = len(clips["train"]) // batch_size
        total_steps = steps_per_epoch * cfg.optim.epochs
        warmup = int(cfg.optim.warmup * total_steps)

        h = cfg.head
        model = AlignmentHeads({m: source.dims[m] for m in mods}, out_dim=h.out_dim, kind=h.kind,
                               hidden_dim=h.hidden_dim, dropout=h.dropout,
                               input_norm=h.input_norm, temperatures=temperature_names(cfg.loss),
                               temperature_form=cfg.loss.temperature_form)
        if h.input_norm == "standardize":
            for m in mods:
                mean, std = input_statistics(source, m, clips["train"], rng)
                model.heads[m].set_statistics(torch.from_numpy(mean).float(),
                                              torch.from_numpy(std).float())
        model.to(device)
        for p in model.temperature_params.values():
            p.requires_grad_(cfg.loss.learn_temperature)
        # raw temperatures are weight-decayed like the weights (the GRAM authors' setting)
        raw = {id(p) for p in model.temperature_params.values()
               if cfg.loss.temperature_form == "raw"}
        decay = [p for n, p in model.named_parameters()
                 if p.requires_grad and (p.ndim >= 2 or id(p) in raw)]
        no_decay = [p for n, p in model.named_parameters()
                    if p.ndim < 2 and p.requires_grad and id(p) not in raw]
        optim = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.optim.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.optim.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            optim, lambda s: lr_factor(s, total_steps, warmup, cfg.optim.min_lr))
        amp = autocast(device, cfg.precision)

        out_dir.mkdir(parents=True, exist_ok=True)
        log_path = out_dir / "train.log"
        history: list[dict[str, Any]] = []
        window: dict[str, list[float]] = {}
        step = 0
        loop_seconds = 0.0
        has = {m: source.has(m) for m in mods}
        train_modality_clips = {m: int(has[m][clips["train"]].sum()) for m in mods}
        seen_clips = 0
        with open(log_path, "w", encoding="utf-8") as log:
            log.write(json.dumps({
                "event": "start", "mmprep_version": __version__, "loss": cfg.loss.name,
                "recipe": cfg.recipe, "pure": cfg.loss.pure, "modalities": mods,
                "train_clips": int(len(clips["train"])), "train_modality_clips":
                train_modality_clips, "eval_clips": int(len(clips["eval"])),
                "steps": total_steps, "batch_size": batch_size, "device": str(device),
                "data": "in memory" if source.in_memory else "streamed"}) + "\n")
            bar = tqdm(total=total_steps, disable=not progress, unit="step",
                       desc=f"train-head {cfg.loss.name}", dynamic_ncols=True)
            for epoch in range(cfg.optim.epochs):
                model.train()
                t_epoch = time.perf_counter()
                for batch, has_batch in source.epoch_batches(clips["train"], batch_size, rng):
                    x = {m: torch.from_numpy(v).to(device, non_blocking=True)
                         for m, v in batch.items()}
                    present = None
                    if not all(h.all() for h in has_batch.values()):
                        present = {m: torch.from_numpy(h).to(device) for m, h in
                                   has_batch.items()}
                    seen_clips += len(next(iter(batch.values())))
                    with amp:
                        emb = model(x)
                    temps = {n: model.temperature(n) for n in model.temperature_params}
                    terms = loss_terms(emb, mods, cfg.loss, temps, step / max(1, total_steps),
                                       present)
                    optim.zero_grad(set_to_none=True)
                    terms["loss"].backward()
                    if cfg.optim.grad_clip:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                    optim.step()
                    sched.step()
                    model.clamp_temperatures(cfg.loss.temperature_min, cfg.loss.temperature_max)
                    step += 1
                    terms = {k: v.detach() if hasattr(v, "detach") else v
                             for k, v in terms.items()}
                    for k, v in terms.items():
                        window.setdefault(k, []).append(float(v))
                    if step % cfg.log_every == 0 or step == total_steps:
                        rec = {"event": "train", "step": step, "epoch": epoch + 1,
                               **{k: float(np.mean(v)) for k, v in window.items()},
                               **diagnostics(emb, mods, present),
                               "lr": sched.get_last_lr()[0],
                               **{f"tau_{n}": float(t.detach()) for n, t in temps.items()}}
                        if not math.isfinite(rec["loss"]):
                            raise MmprepError(f"loss is not finite at step {step}; "
                                              "try a lower optim.lr (--lr) or precision fp32")
                        history.append(rec)
                        window = {}
                        log.write(json.dumps(rec) + "\n")
                        log.flush()
                        bar.set_postfix(loss=f"{rec['loss']:.3f}", epoch=epoch + 1)
                    bar.update(1)
                loop_seconds += time.perf_counter() - t_epoch
                if cfg.data.eval_every and (epoch + 1) % cfg.data.eval_every == 0:
                    val = clips["val"][: cfg.data.val_max_clips]
                    res = evaluate(model, source, val, mods, device=device)
                    rec = {"event": "val", "step": step, "epoch": epoch + 1,
                           "val_mean_R@1": res.mean_r1}
                    history.append(rec)
                    log.write(json.dumps(rec) + "\n")
            bar.close()
            train_seconds = time.perf_counter() - t_start
            result = evaluate(model, source, clips["eval"], mods, device=device,
                              complete_only=cfg.data.complete_only)
            log.write(json.dumps({"event": "eval", "clips": result.clips,
                                  "mean_R@1": result.mean_r1,
                                  "R@1": {k: v["R@1"] for k, v in
                                          {**result.pairs, **result.tuples}.items()}}) + "\n")
        split_desc = (f"holdout {cfg.data.holdout}" if cfg.data.holdout > 0
                      else cfg.data.eval_split)
        meta = {
            "format": "mmprep-heads", "version": 1, "mmprep_version": __version__,
            "modalities": mods, "input_dims": {m: source.dims[m] for m in mods},
            "item_level": [m for m in mods if source.is_item_level(m)],
            "features": str(Path(features).resolve()), "config_hash": config_hash(cfg),
        }
    model.cpu()
    save_heads(out_dir / "heads.safetensors", model, cfg, meta)
    atomic_write_bytes(out_dir / "config.json",
                       (json.dumps({**meta, "config": to_dict(cfg)}, indent=1) + "\n").encode())
    metrics = TrainResult(
        loss=cfg.loss.name, pure=cfg.loss.pure, eval_split=split_desc,
        train_clips=int(len(clips["train"])), steps=step,
        train_seconds=round(train_seconds, 2), loop_seconds=round(loop_seconds, 3),
        samples_per_second=round(step * batch_size / max(loop_seconds, 1e-9), 1),
        final_temperatures={n: float(model.temperature(n).detach())
                            for n in model.temperature_params},
        recipe=cfg.recipe, train_modality_clips=train_modality_clips,
        clips_per_epoch=seen_clips // cfg.optim.epochs,
        eval=result, history=history,
    )
    write_report(out_dir / "report.png", metrics)
    # written last: a run folder with metrics.json is complete
    atomic_write_bytes(out_dir / "metrics.json", (metrics.to_json() + "\n").encode())
    return metrics
