"""``mmprep bench heads``: the fast losses against naive references, as ratios.

Every ratio compares two measurements taken in the same run on the same inputs, so it
holds on a shared, noisy machine where absolute times do not. Each timing is the
median of ``repeats`` runs (a single run when one takes over 5 s).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any


def timed(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Median seconds of ``fn()`` (one warm-up call first; one run if it is slow)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    if first > 5.0 or repeats <= 1:
        return first
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _unit(b: int, d: int, gen):
    import torch

    return torch.nn.functional.normalize(torch.randn(b, d, generator=gen), dim=-1)


def bench_gram(sizes=(1024, 4096), ks=(3, 4, 5), dim=512, naive_rows=128, repeats=3,
               seed=0) -> list[dict[str, Any]]:
    """gram_volumes vs (a) explicit per-pair Gram matrices + torch.det (timed on
    ``naive_rows`` anchor rows and scaled to B rows: its cost is linear in the rows it
    processes) and (b) the GRAM authors' formulation (dot-product matrices + one
    batched torch.det), all float32 forward."""
    import torch

    from mmprep.heads.losses import gram_volumes
    from mmprep.heads.reference import gram_volumes_dots, gram_volumes_naive

    gen = torch.Generator().manual_seed(seed)
    rows = []
    for b in sizes:
        for k in ks:
            a = _unit(b, dim, gen)
            others = [_unit(b, dim, gen) for _ in range(k - 1)]
            r = min(naive_rows, b)
            with torch.no_grad():
                t_fast = timed(partial(gram_volumes, a, *others), repeats)
                t_dots = timed(partial(gram_volumes_dots, a, *others), repeats)
                chunk = max(1, 2**23 // (b * k * dim))
                t_naive = timed(partial(gram_volumes_naive, a[:r], *others, chunk=chunk), 1)
                t_naive *= b / r
                fast = gram_volumes(a[:r], *others)
                ref32 = gram_volumes_naive(a[:r], *others, chunk=chunk)
                ref64 = gram_volumes_naive(a[:r].double(), *[o.double() for o in others],
                                           chunk=chunk)
            rows.append({
                "B": b, "k": k, "dim": dim, "fast_s": t_fast, "naive_s": t_naive,
                "dots_s": t_dots, "speedup_vs_naive": t_naive / t_fast,
                "speedup_vs_dots": t_dots / t_fast,
                "max_abs_diff_vs_naive_fp32": float((fast - ref32).abs().max()),
                "max_abs_diff_vs_naive_fp64": float((fast.double() - ref64).abs().max()),
                "naive_rows_timed": r,
            })
    return rows


def _fwd(fn, ms):
    import torch

    with torch.no_grad():
        fn(*ms)


def _fwd_bwd(fn, ms):
    import torch

    s, u = fn(*ms)
    torch.autograd.grad(s.sum() + u.sum(), ms)


def _loss_fwd_bwd(fn, ms):
    import torch

    torch.autograd.grad(fn(*ms, tau_sv=0.1, tau_reg=0.07), ms)


def bench_pmrl(sizes=(1024, 4096), ks=(3, 4, 5), dim=512, repeats=3, seed=0
               ) -> list[dict[str, Any]]:
    """The singular spectrum (sigma, u) from eigh of the k x k Gram matrix vs a batched
    torch.linalg.svd of the D x k matrices, forward and forward+backward; and the whole
    pmrl_loss vs the same loss built on the SVD (both include the shared B x B
    contrastive term over u)."""
    import torch

    from mmprep.heads.losses import pmrl_loss, singular_spectrum
    from mmprep.heads.reference import pmrl_loss_svd

    def svd_spectrum(*ms):
        u, s, _ = torch.linalg.svd(torch.stack(ms, -1), full_matrices=False)
        return s, u[:, :, 0]

    gen = torch.Generator().manual_seed(seed)
    rows = []
    for b in sizes:
        for k in ks:
            ms = [_unit(b, dim, gen).requires_grad_() for _ in range(k)]
            row = {"B": b, "k": k, "dim": dim}
            row["spectrum_fwd_s"] = timed(partial(_fwd, singular_spectrum, ms), repeats)
            row["svd_fwd_s"] = timed(partial(_fwd, svd_spectrum, ms), repeats)
            row["spectrum_fwd_bwd_s"] = timed(partial(_fwd_bwd, singular_spectrum, ms), repeats)
            row["svd_fwd_bwd_s"] = timed(partial(_fwd_bwd, svd_spectrum, ms), repeats)
            row["loss_fwd_bwd_s"] = timed(partial(_loss_fwd_bwd, pmrl_loss, ms), repeats)
            row["svd_loss_fwd_bwd_s"] = timed(partial(_loss_fwd_bwd, pmrl_loss_svd, ms), repeats)
            row["speedup_fwd"] = row["svd_fwd_s"] / row["spectrum_fwd_s"]
            row["speedup_fwd_bwd"] = row["svd_fwd_bwd_s"] / row["spectrum_fwd_bwd_s"]
            row["speedup_loss_fwd_bwd"] = row["svd_loss_fwd_bwd_s"] / row["loss_fwd_bwd_s"]
            with torch.no_grad():
                s1, u1 = singular_spectrum(*ms)
                s2, _ = svd_spectrum(*ms)
            row["max_abs_diff_sigma"] = float((s1 - s2).abs().max())
            rows.append(row)
    return rows


def bench_epoch(samples=100_000, batch_size=256, seed=0, work_dir=None,
                losses=("infonce", "gram", "pmrl"), stream=True) -> dict[str, Any]:
    """One training epoch over ``samples`` generated clips per loss, in memory and (for
    gram) streamed from the HDF5 file; samples/s and ratios to infonce in memory."""
    from mmprep.heads.config import TrainHeadConfig
    from mmprep.heads.train import train_heads
    from mmprep.synthetic.features import FeatureGenConfig, write_sample_features

    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        tmp = Path(tmp)
        feats = tmp / "features.h5"
        test = min(1000, max(50, samples // 10))
        gen = FeatureGenConfig(n=samples + test, test=test, val=0, captions=2, seed=seed)
        t0 = time.perf_counter()
        write_sample_features(feats, gen)
        gen_s = time.perf_counter() - t0
        runs = []
        plan = [(name, "memory") for name in losses]
        if stream:
            plan.append(("gram", "stream"))
        for name, loading in plan:
            cfg = TrainHeadConfig()
            cfg.loss.name = name
            cfg.optim.epochs = 1
            cfg.optim.batch_size = batch_size
            cfg.data.loading = loading
            cfg.seed = seed
            m = train_heads(feats, tmp / f"{name}-{loading}", cfg, progress=False)
            runs.append({"loss": name, "loading": loading, "steps": m["steps"],
                         "loop_seconds": m["loop_seconds"],
                         "samples_per_second": m["steps"] * batch_size / m["loop_seconds"]})
    base = next(r for r in runs if r["loss"] == "infonce" and r["loading"] == "memory")
    for r in runs:
        r["relative_to_infonce"] = r["samples_per_second"] / base["samples_per_second"]
    return {"samples": samples, "batch_size": batch_size, "generate_seconds": gen_s,
            "runs": runs}
