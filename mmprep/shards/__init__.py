"""WebDataset shards, the public contract between extract and any trainer.

``format``: file and member names, the per-sample layout and its version; ``writer``:
deterministic tar parts; ``folder``: the output folder (run record, stats files,
planned and missing shards, failures, ``errors.jsonl``); ``reader``: samples of a tar;
``validate``: ``mmprep inspect``.
"""

from mmprep.shards.folder import (
    ERRORS_FILE,
    RUN_FILE,
    current_failures,
    read_record,
    read_stats,
    shard_files,
    write_errors,
)
from mmprep.shards.format import (
    SAMPLE_FORMAT_VERSION,
    STATS_SUFFIX,
    TMP_SUFFIX,
    ShardConfig,
    expected_members,
    part_name,
    shard_stem,
    split_member,
    stats_name,
)
from mmprep.shards.reader import probe_meta, tar_samples
from mmprep.shards.validate import InspectReport, format_report, inspect_path
from mmprep.shards.writer import ShardWriter, clear_shard, npy_bytes

__all__ = [
    "ERRORS_FILE",
    "RUN_FILE",
    "SAMPLE_FORMAT_VERSION",
    "STATS_SUFFIX",
    "TMP_SUFFIX",
    "InspectReport",
    "ShardConfig",
    "ShardWriter",
    "clear_shard",
    "current_failures",
    "expected_members",
    "format_report",
    "inspect_path",
    "npy_bytes",
    "part_name",
    "probe_meta",
    "read_record",
    "read_stats",
    "shard_files",
    "shard_stem",
    "split_member",
    "stats_name",
    "tar_samples",
    "write_errors",
]
