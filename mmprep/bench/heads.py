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
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from mmprep.bench import machine_description
from mmprep.results import Result


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


@dataclass
class GramRow(Result):
    """gram_volumes on one (B, k, dim), float32 forward: median seconds of it and of the
    two references, the ratios, and its largest difference from the naive reference."""

    B: int
    k: int
    dim: int
    fast_s: float
    naive_s: float  # scaled to B rows from ``naive_rows_timed`` rows
    dots_s: float
    speedup_vs_naive: float
    speedup_vs_dots: float
    max_abs_diff_vs_naive_fp32: float
    max_abs_diff_vs_naive_fp64: float
    naive_rows_timed: int


@dataclass
class GramBench(Result):
    """gram_volumes against (a) per-pair Gram matrices + torch.det and (b) the GRAM
    authors' dot products + one batched torch.det, one row per (B, k). The goal ratios
    are each row's ``speedup_vs_naive`` and ``speedup_vs_dots``."""

    rows: list[GramRow]
    machine: str


def bench_gram(sizes=(1024, 4096), ks=(3, 4, 5), dim=512, naive_rows=128, repeats=3,
               seed=0) -> GramBench:
    """gram_volumes vs (a) explicit per-pair Gram matrices + torch.det (timed on
    ``naive_rows`` anchor rows and scaled to B rows: its cost is linear in the rows it
    processes) and (b) the GRAM authors' formulation (dot-product matrices + one
    batched torch.det), all float32 forward, on the CPU.

    Args:
        sizes: batch sizes B.
        ks: numbers of modalities k.
        dim: embedding dimension D.
        naive_rows: anchor rows the per-pair reference is timed on.
        repeats: runs per timing; the median is reported.
        seed: seed of the random unit vectors.
    """
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
            rows.append(GramRow(
                B=b, k=k, dim=dim, fast_s=t_fast, naive_s=t_naive, dots_s=t_dots,
                speedup_vs_naive=t_naive / t_fast, speedup_vs_dots=t_dots / t_fast,
                max_abs_diff_vs_naive_fp32=float((fast - ref32).abs().max()),
                max_abs_diff_vs_naive_fp64=float((fast.double() - ref64).abs().max()),
                naive_rows_timed=r,
            ))
    return GramBench(rows=rows, machine=machine_description())


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


@dataclass
class PmrlRow(Result):
    """The PMRL spectrum and loss on one (B, k, dim): median seconds of the eigh-based
    versions and of the SVD references, the ratios (reference / eigh), and the largest
    difference between the two spectra."""

    B: int
    k: int
    dim: int
    spectrum_fwd_s: float
    svd_fwd_s: float
    spectrum_fwd_bwd_s: float
    svd_fwd_bwd_s: float
    loss_fwd_bwd_s: float
    svd_loss_fwd_bwd_s: float
    speedup_fwd: float
    speedup_fwd_bwd: float
    speedup_loss_fwd_bwd: float
    max_abs_diff_sigma: float


@dataclass
class PmrlBench(Result):
    """The singular spectrum from eigh of the k x k Gram matrix against a batched SVD of
    the D x k matrices, one row per (B, k). The goal ratios are each row's
    ``speedup_fwd``, ``speedup_fwd_bwd`` and ``speedup_loss_fwd_bwd``."""

    rows: list[PmrlRow]
    machine: str


def bench_pmrl(sizes=(1024, 4096), ks=(3, 4, 5), dim=512, repeats=3, seed=0) -> PmrlBench:
    """The singular spectrum (sigma, u) from eigh of the k x k Gram matrix vs a batched
    torch.linalg.svd of the D x k matrices, forward and forward+backward; and the whole
    pmrl_loss vs the same loss built on the SVD (both include the shared B x B
    contrastive term over u). On the CPU.

    Args:
        sizes: batch sizes B.
        ks: numbers of modalities k.
        dim: embedding dimension D.
        repeats: runs per timing; the median is reported.
        seed: seed of the random unit vectors.
    """
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
            t = {
                "spectrum_fwd_s": timed(partial(_fwd, singular_spectrum, ms), repeats),
                "svd_fwd_s": timed(partial(_fwd, svd_spectrum, ms), repeats),
                "spectrum_fwd_bwd_s": timed(partial(_fwd_bwd, singular_spectrum, ms), repeats),
                "svd_fwd_bwd_s": timed(partial(_fwd_bwd, svd_spectrum, ms), repeats),
                "loss_fwd_bwd_s": timed(partial(_loss_fwd_bwd, pmrl_loss, ms), repeats),
                "svd_loss_fwd_bwd_s": timed(partial(_loss_fwd_bwd, pmrl_loss_svd, ms),
                                            repeats),
            }
            with torch.no_grad():
                s1, u1 = singular_spectrum(*ms)
                s2, _ = svd_spectrum(*ms)
            rows.append(PmrlRow(
                B=b, k=k, dim=dim, **t,
                speedup_fwd=t["svd_fwd_s"] / t["spectrum_fwd_s"],
                speedup_fwd_bwd=t["svd_fwd_bwd_s"] / t["spectrum_fwd_bwd_s"],
                speedup_loss_fwd_bwd=t["svd_loss_fwd_bwd_s"] / t["loss_fwd_bwd_s"],
                max_abs_diff_sigma=float((s1 - s2).abs().max()),
            ))
    return PmrlBench(rows=rows, machine=machine_description())


@dataclass
class EpochRun(Result):
    """One training epoch with one loss and one way of loading the features."""

    loss: str
    loading: str  # memory or stream
    steps: int
    loop_seconds: float
    samples_per_second: float
    relative_to_infonce: float  # samples/s over infonce's in memory


@dataclass
class HeadsEpochBench(Result):
    """One training epoch over ``samples`` generated clips per loss (and gram streamed
    from the HDF5 file), one run each. The goal ratio is each run's
    ``relative_to_infonce`` (its samples/s over infonce's, in memory)."""

    samples: int
    batch_size: int
    generate_seconds: float  # writing the generated feature cache
    runs: list[EpochRun]
    machine: str


def bench_epoch(samples=100_000, batch_size=256, seed=0, work_dir=None,
                losses=("infonce", "gram", "pmrl"), stream=True) -> HeadsEpochBench:
    """One training epoch over ``samples`` generated clips per loss, in memory and (for
    gram) streamed from the HDF5 file; samples/s and ratios to infonce in memory.

    Args:
        samples: training clips generated (plus a test split of ``samples // 10``,
            between 50 and 1000).
        batch_size: training batch size.
        seed: seed of the generated features and of training.
        work_dir: folder for the temporary feature cache and runs (default: the
            system's temporary folder).
        losses: losses trained in memory; one of them must be ``infonce``.
        stream: also train gram streaming from the HDF5 file.
    """
    from mmprep.device import resolve_device
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
        measured = []
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
            measured.append((name, loading, m["steps"], m["loop_seconds"],
                             m["steps"] * batch_size / m["loop_seconds"]))
    base = next(sps for name, loading, *_, sps in measured
                if name == "infonce" and loading == "memory")
    runs = [EpochRun(loss=name, loading=loading, steps=steps, loop_seconds=loop_s,
                     samples_per_second=sps, relative_to_infonce=sps / base)
            for name, loading, steps, loop_s, sps in measured]
    return HeadsEpochBench(samples=samples, batch_size=batch_size, generate_seconds=gen_s,
                           runs=runs,
                           machine=machine_description(resolve_device(TrainHeadConfig().device)))
