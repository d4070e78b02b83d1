"""Several devices: one spawned process per device, each with its own model load.

The shard tasks are dealt round-robin to the devices; every process runs
``embed_shards`` on its share (writing one part file per shard) and reports progress
through a queue. The caller merges the parts. Executors (local pool, Ray, SLURM) can
do the same with their own processes: ``embed_shards`` is the unit of work.
"""

from __future__ import annotations

import dataclasses
import os
import queue as queue_mod
from collections.abc import Callable

from mmprep.embed.config import EmbedConfig
from mmprep.embed.data import ShardTask
from mmprep.embed.encode import Layout, ShardsResult
from mmprep.errors import MmprepError


def _child(rank: int, device: str, tasks: list[ShardTask], layout: Layout, cfg: EmbedConfig,
           q, fail_fast: bool) -> None:
    try:
        from mmprep.device import resolve_device
        from mmprep.embed.encode import embed_shards
        from mmprep.embed.plan import load_encoders

        encoders = load_encoders(cfg)
        result = embed_shards(tasks, encoders, layout, cfg, device=resolve_device(device),
                              on_batch=lambda c, e: q.put(("batch", c, e)),
                              fail_fast=fail_fast)
        q.put(("done", rank, result))
    except MmprepError as exc:
        q.put(("error", rank, str(exc)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, then re-raised
        q.put(("error", rank, f"{type(exc).__name__}: {exc}"))
        raise


def embed_on_devices(
    tasks: list[ShardTask],
    layout: Layout,
    cfg: EmbedConfig,
    devices: list[str],
    *,
    on_batch: Callable[[int, int], None] | None = None,
    fail_fast: bool = False,
) -> ShardsResult:
    """Run ``embed_shards`` for ``tasks`` in one spawned process per device."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    shares = [tasks[i :: len(devices)] for i in range(len(devices))]
    if cfg.threads is None and all(d == "cpu" for d in devices):
        # CPU processes share the cores instead of each taking all of them.
        per_process = (os.cpu_count() or 1) // len(devices) - cfg.num_workers("cpu")
        cfg = dataclasses.replace(cfg, threads=max(1, per_process))
    procs = []
    for rank, (device, share) in enumerate(zip(devices, shares)):
        if share:
            p = ctx.Process(target=_child, args=(rank, device, share, layout, cfg, q,
                                                 fail_fast), daemon=False)
            p.start()
            procs.append((rank, device, p))
    total = ShardsResult()
    running = {rank for rank, _, _ in procs}
    try:
        while running:
            try:
                msg = q.get(timeout=1.0)
            except queue_mod.Empty:
                for rank, device, p in procs:
                    if rank in running and p.exitcode not in (None, 0):
                        raise MmprepError(f"the process for {device} died (exit code "
                                          f"{p.exitcode})") from None
                continue
            kind = msg[0]
            if kind == "batch" and on_batch is not None:
                on_batch(msg[1], msg[2])
            elif kind == "done":
                res: ShardsResult = msg[2]
                total.clips += res.clips
                total.captions += res.captions
                total.errors.extend(res.errors)
                total.parts.extend(res.parts)
                total.seconds = max(total.seconds, res.seconds)
                running.discard(msg[1])
            elif kind == "error":
                raise MmprepError(f"{devices[msg[1]]}: {msg[2]}")
    finally:
        for _, _, p in procs:
            if p.is_alive() and running:
                p.terminate()
            p.join()
    return total
