"""The Ray executor: one Ray task per shard, retried when a node fails.

``ray`` is imported only here. Each task runs the local pool on its shard inside the
Ray worker (so per-sample timeouts still apply) and writes the shard into the output
folder, which must therefore be reachable from every node (a shared file system or an
fsspec URL such as ``s3://...``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from mmprep.config import from_dict, to_dict
from mmprep.errors import MmprepError
from mmprep.extract.executors.local import run_local
from mmprep.extract.options import PoolOptions, RayOptions
from mmprep.extract.sample import ExtractConfig
from mmprep.manifest import Sample


def _shard_task(index: int, samples: list[dict], cfg_data: dict, store_url: str,
                pool_data: dict, fail_fast: bool, extra: dict | None) -> dict[str, Any]:
    from mmprep.storage import open_store

    cfg = from_dict(ExtractConfig, cfg_data)
    chunk = [Sample.from_dict(s) for s in samples]
    stats = run_local([(index, chunk)], cfg, open_store(store_url), pool=PoolOptions(**pool_data),
                      fail_fast=fail_fast, extra_stats=extra)
    return stats[0]


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise MmprepError(
            "executor 'ray' needs Ray, which is not installed: pip install 'mmprep[ray]'"
        ) from exc
    return ray


def run_ray(
    todo: list[tuple[int, list[Sample]]],
    cfg: ExtractConfig,
    store_url: str,
    *,
    ray_opts: RayOptions | None = None,
    pool: PoolOptions | None = None,
    fail_fast: bool = False,
    on_shard: Callable[[dict[str, Any]], None] | None = None,
    extra_stats: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run each shard of ``todo`` as a Ray task; returns their stats."""
    ray = _import_ray()
    opts = ray_opts or RayOptions()
    if not ray.is_initialized():
        ray.init(address=opts.address, ignore_reinit_error=True, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    resources = ray.cluster_resources()
    for name, wanted in (("CPU", opts.cpus_per_task), ("GPU", opts.gpus_per_task)):
        have = float(resources.get(name, 0))
        if wanted > have:
            raise MmprepError(
                f"each Ray task asks for {wanted:g} {name}(s) but the cluster has {have:g}; "
                f"lower {name.lower()}s_per_task (--ray-{name.lower()}s) or add nodes"
            )
    workers = pool.workers if pool and pool.workers is not None else max(1, int(opts.cpus_per_task))
    pool_data = asdict(pool or PoolOptions())
    pool_data["workers"] = workers
    task = ray.remote(_shard_task).options(
        num_cpus=opts.cpus_per_task, num_gpus=opts.gpus_per_task, max_retries=opts.retries,
        retry_exceptions=False,
    )
    cfg_data = to_dict(cfg)
    pending = {
        task.remote(index, [s.to_dict() for s in chunk], cfg_data, store_url, pool_data,
                    fail_fast, extra_stats): index
        for index, chunk in todo
    }
    finished = []
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            pending.pop(ref)
            try:
                stats = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, MmprepError):
                    raise MmprepError(str(cause)) from exc
                raise MmprepError(f"a Ray task failed: {exc}") from exc
            finished.append(stats)
            if on_shard:
                on_shard(stats)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return finished
