"""The shard contract: file names, tar member names and the per-sample layout.

Shard ``NAME-000042`` is ``NAME-000042.tar`` (further parts ``NAME-000042_1.tar``, ...
when a size cap splits it), ``NAME-000042.index.json`` (its sample table, see
``mmprep.shards.index``) and ``NAME-000042.stats.json``, its completion marker, written
last. ``NAME-wids.json`` lists a folder's complete shards for ``wids``. One
sample is one key; its members are ``KEY.SUFFIX`` with the suffixes below. Every reader
and writer of shards in mmprep takes these names from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Version of the per-sample layout (members and KEY.json fields). 2: every KEY.json field
# keeps one type across samples (start/end always numbers, split/warnings strings, the
# same audio keys with or without audio); format_version and num_warnings added.
SAMPLE_FORMAT_VERSION = 2

TAR_SUFFIX = ".tar"
STATS_SUFFIX = ".stats.json"
INDEX_SUFFIX = ".index.json"  # NAME-000042.index.json: the shard's sample table
WIDS_SUFFIX = "-wids.json"  # NAME-wids.json: the folder's shards, as wids opens them
TMP_SUFFIX = ".tmp"

# member suffixes (the part of a member name after the key and its dot)
META = "json"  # KEY.json: metadata
CAPTION = "txt"  # KEY.txt: the first caption
MEL = "mel.npy"  # KEY.mel.npy: log-mel features
TOKENS = "tok.npy"  # KEY.tok.npy: int32 token ids, one row per caption
MASK = "mask.npy"  # KEY.mask.npy: uint8 attention mask
RAW_FRAMES = "frames.npy"  # KEY.frames.npy: uint8 (N, H, W, 3), with --frame-format raw
_FRAME = re.compile(r"f(\d{3,})\.jpg")  # KEY.f000.jpg, KEY.f001.jpg, ...


@dataclass
class ShardConfig:
    """How samples are grouped into shard files."""

    name: str = "shard"  # file prefix: NAME-000000.tar
    samples_per_shard: int = 1000
    max_bytes: int | None = None  # split a shard's tar into parts above this size

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", self.name):
            raise ValueError(
                f"shard name {self.name!r} must start with a letter or digit and contain "
                "only letters, digits, '_' and '-'"
            )
        if self.samples_per_shard < 1:
            raise ValueError("samples_per_shard must be >= 1")
        if self.max_bytes is not None and self.max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")


def shard_stem(name: str, index: int) -> str:
    return f"{name}-{index:06d}"


def part_name(name: str, index: int, part: int) -> str:
    stem = shard_stem(name, index)
    return f"{stem}{TAR_SUFFIX}" if part == 0 else f"{stem}_{part}{TAR_SUFFIX}"


def stats_name(name: str, index: int) -> str:
    return f"{shard_stem(name, index)}{STATS_SUFFIX}"


def index_name(name: str, index: int) -> str:
    return f"{shard_stem(name, index)}{INDEX_SUFFIX}"


def wids_name(name: str) -> str:
    return f"{name}{WIDS_SUFFIX}"


def stem_of_part(file_name: str) -> str:
    """``NAME-000042_1.tar`` -> ``NAME-000042``."""
    return file_name.removesuffix(TAR_SUFFIX).split("_", 1)[0]


def frame_member(index: int) -> str:
    return f"f{index:03d}.jpg"


def is_frame_member(suffix: str) -> bool:
    return _FRAME.fullmatch(suffix) is not None


def frame_members(suffixes) -> list[str]:
    """The JPEG frame members among ``suffixes``, in frame order."""
    return sorted((s for s in suffixes if is_frame_member(s)),
                  key=lambda s: int(_FRAME.fullmatch(s).group(1)))


def split_member(name: str) -> tuple[str, str] | None:
    """``dir/KEY.SUFFIX`` -> (KEY, SUFFIX); None for a name without a suffix. The key
    ends at the first dot, as WebDataset reads it."""
    key, dot, suffix = name.rsplit("/", 1)[-1].partition(".")
    return (key, suffix) if dot and key and suffix else None


def expected_members(meta: dict[str, Any]) -> set[str]:
    """The member suffixes a complete sample has, from its own ``KEY.json``."""
    want = {META, CAPTION}
    video = meta.get("video")
    if video:
        if video.get("format") == "raw":
            want.add(RAW_FRAMES)
        else:
            want |= {frame_member(i) for i in range(int(video.get("num_frames", 0)))}
    audio = meta.get("audio")
    shape = audio.get("shape") if isinstance(audio, dict) else None
    if shape and all(int(d) > 0 for d in shape):  # [0, bins]: omitted (no audio)
        want.add(MEL)
    text = meta.get("text")
    if text:
        want.add(TOKENS)
        if text.get("attention_mask", True):
            want.add(MASK)
    return want
