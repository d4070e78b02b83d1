"""Planning an embed run: which shards, what each part holds, what is already done."""

from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mmprep import __version__
from mmprep.config import config_hash
from mmprep.embed.config import EmbedConfig
from mmprep.embed.data import DecodeSpec, ShardTask
from mmprep.embed.encode import Layout
from mmprep.encoders.base import Encoder
from mmprep.errors import ConfigError, MmprepError
from mmprep.features import ModalitySpec, layout_signature, read_keys, read_layout
from mmprep.shards.folder import read_stats
from mmprep.shards.format import STATS_SUFFIX, stem_of_part

POOLING = {
    "video": "mean over the clip's frames",
    "audio": "mean over the clip's mel slices; clips without audio: zeros, audio_mask false",
    "text": "one row per caption",
}


def _stats_keys(stats: list[dict[str, Any]], folder: Path) -> dict[str, list[str]]:
    """tar path -> its keys, from the shards' stats files."""
    out: dict[str, list[str]] = {}
    for s in stats:
        keys = s.get("keys", [])
        start = 0
        for part in s.get("files", []):
            n = int(part.get("samples", 0))
            out[str((folder / part["file"]).resolve())] = keys[start : start + n]
            start += n
    return out


def resolve_shards(inputs: list[str]) -> list[tuple[str, list[str] | None]]:
    """(tar path, keys or None) for a folder of complete shards, tar files, globs or
    brace patterns (``shard-{000000..000009}.tar``), in the order given."""
    from braceexpand import braceexpand

    found: list[tuple[str, list[str] | None]] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            stats = [s for s in read_stats(path) if s.get("files")]
            if not stats:
                raise MmprepError(f"no complete shards in {path} (run `mmprep extract` first; "
                                  f"a shard is complete when its {STATS_SUFFIX} file exists)")
            keys = _stats_keys(stats, path.resolve())
            found.extend((p, keys[p]) for p in keys)
            continue
        names = [n for pat in braceexpand(item) for n in (sorted(glob.glob(os.path.expanduser(
            pat))) if glob.has_magic(pat) else [os.path.expanduser(pat)])]
        if not names:
            raise MmprepError(f"no shard matches {item!r}")
        for name in names:
            p = Path(name)
            if not p.is_file():
                raise MmprepError(f"shard not found: {p}")
            stem = stem_of_part(p.name)
            stats_file = p.with_name(stem + STATS_SUFFIX)
            keys = None
            if stats_file.is_file():
                try:
                    stats = json.loads(stats_file.read_text(encoding="utf-8"))
                    keys = _stats_keys([stats], p.parent.resolve()).get(str(p.resolve()))
                except (OSError, json.JSONDecodeError):
                    keys = None
            found.append((str(p.resolve()), keys))
    seen: set[str] = set()
    unique = [(p, k) for p, k in found if not (p in seen or seen.add(p))]
    if not unique:
        raise MmprepError("no shards given")
    return unique


def load_encoders(cfg: EmbedConfig) -> dict[str, Any]:
    from mmprep.encoders import load_encoder

    if not cfg.encoders:
        raise ConfigError("no encoder given: set video_encoder, audio_encoder and/or text_encoder "
                          "(--video-encoder ...; e.g. efficientnet-lite0, minilm; see "
                          "`mmprep embed --list-encoders`)")
    return {m: load_encoder(spec, m) for m, spec in cfg.encoders.items()}


def build_layout(encoders: dict[str, Encoder], cfg: EmbedConfig,
                 probe: dict[str, Any]) -> Layout:
    """Check every encoder against the shards' metadata; the modalities of the cache."""
    plans = {m: enc.input.plan(probe, cfg.strict) for m, enc in encoders.items()}
    frames = None
    if cfg.video_tokens and "video" in encoders:
        frames = (probe.get("video") or {}).get("num_frames")
        if not frames or probe["video"].get("sampling") not in ("uniform", "random"):
            raise MmprepError("video_tokens needs the same number of frames in every clip "
                              "(extract with video.sampling uniform or random)")
    video, text = encoders.get("video"), encoders.get("text")
    decode = DecodeSpec(
        video=plans.get("video"), audio=plans.get("audio"), text=plans.get("text"),
        video_size=video.input.size if video is not None else None,
        tokens=text.input if text is not None else None,
        trim_tokens=text.trim_tokens if text is not None else True,
        frames_per_clip=frames, pipeline_hash=probe.get("pipeline_hash"),
        batch_size=cfg.batch_size,
    )
    mods: dict[str, ModalitySpec] = {}
    for m, enc in encoders.items():
        prep = {
            "encoder": enc.describe(),
            "shard": plans[m].shard,
            "shard_pipeline_hash": probe.get("pipeline_hash"),
            "conversions": plans[m].conversions,
            "pooling": POOLING[m],
            "precision": cfg.precision,
        }
        attrs = {"encoder": enc.spec, "weights_sha256": enc.weights_sha256(),
                 "preprocessing": prep, "preprocessing_hash": config_hash(prep),
                 "notes": enc.notes}
        mods[m] = ModalitySpec(
            dim=enc.dim, item_level=m == "text", mask=m == "audio",
            tokens=frames if m == "video" else None, captions=m == "text" and cfg.captions,
            attrs=attrs)
    root = {"created_by": f"mmprep embed {__version__}",
            "embed_content_hash": cfg.content_hash(),
            "shards_pipeline_hash": probe.get("pipeline_hash") or "",
            "shards_pipeline": probe.get("pipeline") or ""}
    return Layout(modalities=mods, attrs=root, decode=decode, dtype=cfg.dtype)


def expected_signature(layout: Layout) -> dict[str, Any]:
    return {
        name: {"dim": m.dim, "item_level": m.item_level, "mask": m.mask, "tokens": m.tokens,
               "captions": m.captions, "dtype": layout.dtype,
               "encoder": m.attrs["encoder"], "weights_sha256": m.attrs["weights_sha256"],
               "preprocessing_hash": m.attrs["preprocessing_hash"]}
        for name, m in layout.modalities.items()
    }


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changes = []
    if list(old) != list(new):
        changes.append(f"modalities {', '.join(old) or '-'} -> {', '.join(new) or '-'}")
    labels = {"encoder": "encoder", "weights_sha256": "weights", "preprocessing_hash":
              "preprocessing", "dim": "dimension", "tokens": "per-frame tokens",
              "captions": "caption text", "dtype": "dtype", "mask": "mask",
              "item_level": "layout"}
    for name in new:
        if name not in old:
            continue
        for field_name, label in labels.items():
            a, b = old[name].get(field_name), new[name].get(field_name)
            if a != b:
                detail = f" ({a} -> {b})" if field_name in ("encoder", "dtype", "dim") else ""
                changes.append(f"{name} {label} changed{detail}")
    return changes


def existing_signature(path: Path) -> dict[str, Any]:
    try:
        return layout_signature(read_layout(path))
    except MmprepError as exc:
        raise MmprepError(f"{exc} (overwrite=True, --overwrite, replaces it)") from exc


def part_path(parts_dir: Path, shard: str) -> Path:
    digest = hashlib.sha1(str(Path(shard).resolve()).encode()).hexdigest()[:10]
    return parts_dir / f"{Path(shard).name.removesuffix('.tar')}-{digest}.h5"


def plan_tasks(
    shards: list[tuple[str, list[str] | None]],
    layout: Layout,
    parts_dir: Path,
    done_keys: set[str],
) -> tuple[list[ShardTask], list[Path], list[int]]:
    """(tasks to run, parts to merge in shard order, reused part indices).

    A part is reused when it was made with the same encoders and preprocessing from a
    shard of the same size and shares no key with ``done_keys``; stale parts are deleted,
    parts of a different run are an error.
    """
    want = expected_signature(layout)
    tasks: list[ShardTask] = []
    parts: list[Path] = []
    reused: list[int] = []
    for index, (path, keys) in enumerate(shards):
        part = part_path(parts_dir, path)
        if part.is_file():
            try:
                lay = read_layout(part)
            except MmprepError:
                part.unlink()
            else:
                changes = describe_changes(layout_signature(lay), want)
                if changes:
                    raise MmprepError(
                        f"{parts_dir} holds parts of an interrupted run with other settings "
                        f"({'; '.join(changes)}); overwrite=True (--overwrite) discards them")
                same_shard = lay["attrs"].get("shard_bytes") == os.path.getsize(path)
                if same_shard and not (done_keys and set(read_keys(part)) & done_keys):
                    parts.append(part)
                    reused.append(index)
                    continue
                part.unlink()
        if keys is not None and all(k in done_keys for k in keys):
            continue
        skip = frozenset(k for k in keys if k in done_keys) if keys is not None else (
            frozenset(done_keys))
        tasks.append(ShardTask(index=index, path=path, keys=keys, skip=skip, part=str(part)))
        parts.append(part)
    order = {str(part_path(parts_dir, p)): i for i, (p, _) in enumerate(shards)}
    parts.sort(key=lambda p: order[str(p)])
    return tasks, parts, reused
