"""Which clips a train-head run trains, validates and evaluates on.

By default every clip with at least two of the run's modalities (the losses and the
evaluation mask what a clip lacks); ``data.complete_only`` keeps only the clips with
all of them."""

from __future__ import annotations

import zlib

import numpy as np

from mmprep.errors import ConfigError, MmprepError
from mmprep.features.source import FeatureSource
from mmprep.heads.config import TrainHeadConfig

MIN_TRAIN_CLIPS = 8
MIN_EVAL_CLIPS = 2


# --------------------------------------------------------------------------- setup
def resolve_modalities(source_modalities: list[str], cfg: TrainHeadConfig) -> list[str]:
    """The run's modalities, anchor first; checks the anchor and the count."""
    mods = list(cfg.data.modalities or source_modalities)
    anchor = cfg.loss.anchor
    if anchor not in mods:
        raise ConfigError(f"loss.anchor: {anchor!r} is not among the modalities "
                          f"({', '.join(mods)}); choose one with loss.anchor (--anchor)")
    if len(mods) < 2:
        raise ConfigError("need at least two modalities to align")
    return [anchor] + [m for m in mods if m != anchor]


def held_out(keys: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Deterministic per-key choice of the held-out share (stable when rows change)."""
    salt = str(seed).encode()
    h = np.array([zlib.crc32(salt + k.encode("utf-8")) for k in keys], dtype=np.float64)
    return h / 2**32 < fraction


def choose_clips(source: FeatureSource, cfg: TrainHeadConfig, mods: list[str],
                 *, need_train: bool = True) -> dict[str, np.ndarray]:
    """Clip rows for train / eval / val: clips with two or more of ``mods`` (all of
    them with ``data.complete_only``)."""
    d = cfg.data
    usable = source.usable_clips(mods, at_least=None if d.complete_only else 2)
    need = f"all of {', '.join(mods)}" if d.complete_only else f"two of {', '.join(mods)}"
    if d.holdout > 0:
        is_eval = held_out(source.keys, d.holdout, cfg.seed)
        out = {"train": np.flatnonzero(usable & ~is_eval), "eval": np.flatnonzero(usable & is_eval)}
        out["val"] = out["eval"]
    else:
        counts = source.split_counts()
        listed = ", ".join(f"{k or '(empty)'} ({v})" for k, v in sorted(counts.items()))
        names = [("train", d.train_split)] if need_train else []
        names.append(("eval", d.eval_split))
        out = {}
        for role, name in names:
            if name not in counts:
                hint = "; or hold out a share of the clips with data.holdout (--holdout 0.1)"
                raise MmprepError(f"split {name!r} not found in {source.path.name} "
                                  f"(splits: {listed}){hint}")
            out[role] = np.flatnonzero(usable & (source.split == name))
        out["val"] = (np.flatnonzero(usable & (source.split == d.val_split))
                      if d.val_split in counts else out["eval"])
    if need_train and len(out["train"]) < MIN_TRAIN_CLIPS:
        raise MmprepError(f"only {len(out['train'])} training clips with {need} "
                          f"(need at least {MIN_TRAIN_CLIPS})")
    if len(out["eval"]) < MIN_EVAL_CLIPS:
        raise MmprepError(f"only {len(out['eval'])} evaluation clips with {need} "
                          f"(need at least {MIN_EVAL_CLIPS})")
    return out
