"""``retry-failed``: reprocess only the failed samples of an extract output.

The failed samples (their full manifest rows are kept in the error records) go into new
shards numbered after the planned ones, with the same config. A sample that succeeds
on retry leaves ``errors.jsonl``; one that fails again gets its new error record there.
"""

from __future__ import annotations

import time

from mmprep.config import from_dict
from mmprep.errors import MmprepError
from mmprep.extract.run import RunOptions, RunSummary, run_shards, summarize
from mmprep.extract.sample import ExtractConfig
from mmprep.manifest import Sample
from mmprep.shards.folder import (
    RUN_FILE,
    FolderLock,
    current_failures,
    missing_shards,
    open_output,
    planned_count,
    read_record,
    read_stats,
)


def retry_failed(out_dir, opts: RunOptions | None = None) -> tuple[RunSummary, int]:
    """Retry the failed samples of an extract output into new shards.

    Args:
        out_dir: the extract output folder (its ``extract.json`` gives the config).
        opts: how the run goes (the executor is local or ray).

    Returns the summary and how many samples were retried.
    """
    opts = opts or RunOptions()
    store = open_output(out_dir)
    with FolderLock(store, what="mmprep retry-failed"):
        return _retry(store, opts)


def _retry(store, opts: RunOptions) -> tuple[RunSummary, int]:
    record = read_record(store)
    if record is None or not isinstance(record.get("config"), dict):
        raise MmprepError(f"{store.url} has no readable {RUN_FILE}: not an mmprep extract "
                          "output")
    cfg = from_dict(ExtractConfig, record["config"])
    name, per = cfg.shards.name, cfg.shards.samples_per_shard
    all_stats = [s for s in read_stats(store) if s.get("name") == name]
    planned = planned_count(record["samples"], per)
    done = {s["index"] for s in all_stats}
    missing = missing_shards(record, all_stats)
    if missing:
        raise MmprepError(f"{len(missing)} planned shard(s) are not complete yet (first: "
                          f"{missing[0]}); rerun the extract command first")
    failures = current_failures(all_stats)
    retryable = [e for e in failures if e.get("sample") and e["stage"] != "manifest"]
    samples = []
    for e in retryable:
        try:  # read back from a file: checked like a manifest row (keys above all)
            samples.append(Sample.from_dict(e["sample"]))
        except (TypeError, ValueError) as exc:
            raise MmprepError(f"{store.url}: an error record of shard(s) on disk is not a "
                              f"valid sample ({exc}); was a stats file edited?") from exc
    first = max([planned, *(i + 1 for i in done)])
    todo = [(first + i // per, samples[i : i + per]) for i in range(0, len(samples), per)]
    t0 = time.perf_counter()
    if todo:
        opts.executor = "ray" if opts.executor == "ray" else "local"
        run_shards(todo, cfg, store, opts, desc="retry",
                   extra_stats={"retry": True,
                                "manifest_fingerprint": record.get("manifest_fingerprint")})
    summary = summarize(store, cfg, record["samples"], planned + len(todo), planned, samples,
                        time.perf_counter() - t0)
    return summary, len(samples)
