"""WebDataset shards, the public contract between extract and any trainer.

``format``: file and member names, the per-sample layout and its version; ``writer``:
deterministic tar parts; ``folder``: the output folder (run record, stats files,
planned and missing shards, failures, ``errors.jsonl``); ``reader``: samples of a tar;
``validate``: ``mmprep inspect``.

The names below are imported from their module on first use.
"""

from __future__ import annotations

from mmprep.lazy import lazy_names

_NAMES = {
    "ERRORS_FILE": "mmprep.shards.folder",
    "RUN_FILE": "mmprep.shards.folder",
    "current_failures": "mmprep.shards.folder",
    "read_record": "mmprep.shards.folder",
    "read_stats": "mmprep.shards.folder",
    "shard_files": "mmprep.shards.folder",
    "write_errors": "mmprep.shards.folder",
    "SAMPLE_FORMAT_VERSION": "mmprep.shards.format",
    "STATS_SUFFIX": "mmprep.shards.format",
    "ShardConfig": "mmprep.shards.format",
    "TMP_SUFFIX": "mmprep.shards.format",
    "expected_members": "mmprep.shards.format",
    "part_name": "mmprep.shards.format",
    "shard_stem": "mmprep.shards.format",
    "split_member": "mmprep.shards.format",
    "stats_name": "mmprep.shards.format",
    "probe_meta": "mmprep.shards.reader",
    "tar_samples": "mmprep.shards.reader",
    "InspectReport": "mmprep.shards.validate",
    "format_report": "mmprep.shards.validate",
    "inspect_path": "mmprep.shards.validate",
    "ShardWriter": "mmprep.shards.writer",
    "clear_shard": "mmprep.shards.writer",
    "npy_bytes": "mmprep.shards.writer",
}
__all__ = sorted(_NAMES)


__getattr__, __dir__ = lazy_names("mmprep.shards", _NAMES, globals())
