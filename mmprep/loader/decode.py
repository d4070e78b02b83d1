"""One sample's tar members -> one training item.

Frames are chosen before any JPEG is decoded: the clip ``[start, end]`` is cut into
``num_frames`` equal segments and each segment takes one stored frame by its recorded
timestamp: ``uniform`` the one nearest the segment's middle, ``random`` one of the
frames inside the segment (drawn by ``rng``); a segment without a stored frame takes
the nearest one (so a clip that stores fewer frames repeats some).
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import torch

from mmprep.shards.format import CAPTION, MASK, MEL, META, RAW_FRAMES, TOKENS, frame_members


class BadSample(Exception):
    """The sample cannot be read; the message names the member or field."""


def _field(meta: dict, *path: str):
    obj: Any = meta
    for name in path:
        if not isinstance(obj, dict) or name not in obj:
            raise BadSample(f"KEY.json has no field {'.'.join(path)!r}")
        obj = obj[name]
    return obj


def _npy(members: dict[str, bytes], suffix: str) -> np.ndarray:
    if suffix not in members:
        raise BadSample(f"member KEY.{suffix} is missing")
    try:
        return np.load(io.BytesIO(members[suffix]), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadSample(f"KEY.{suffix} is not a readable .npy array: {exc}") from exc


def choose_frames(times: list[float], start: float, end: float, num_frames: int | None,
                  sampling: str, rng: np.random.Generator) -> list[int]:
    """Indices of the stored frames to use (see the module's docstring)."""
    n = len(times)
    if num_frames is None or n == 0:
        return list(range(n))
    t = np.asarray(times, dtype=np.float64)
    if not end > start:
        start, end = float(t.min()), float(t.max()) + 1e-6
    edges = np.linspace(start, end, num_frames + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = np.flatnonzero((t >= lo) & (t < hi))
        if sampling == "random" and inside.size:
            out.append(int(rng.choice(inside)))
        else:
            pool = inside if inside.size else np.arange(n)
            out.append(int(pool[np.argmin(np.abs(t[pool] - (lo + hi) / 2))]))
    return out


def decode_item(key: str, members: dict[str, bytes], *, num_frames: int | None,
                sampling: str, captions: str, decode_frames: bool, uint8: bool,
                rng: np.random.Generator) -> dict[str, Any]:
    """The item of one sample (fields documented on ``ShardDataset``)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    if META not in members:
        raise BadSample("member KEY.json is missing (not a shard written by mmprep extract?)")
    try:
        meta = json.loads(members[META])
    except (ValueError, RecursionError) as exc:
        raise BadSample(f"KEY.json is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise BadSample(f"KEY.json is a JSON {type(meta).__name__}, not an object")
    item: dict[str, Any] = {"__key__": key, "meta": meta}

    # text first, so the random draws come in a fixed order
    if "text" in meta:
        ids = _npy(members, TOKENS)
        if ids.ndim != 2:
            raise BadSample(f"KEY.tok.npy has shape {ids.shape}, expected (captions, tokens)")
        mask = (_npy(members, MASK) if MASK in members
                else np.arange(ids.shape[1])[None] < np.asarray(
                    _field(meta, "text", "lengths"), dtype=np.int64)[:, None])
        if mask.shape != ids.shape:
            raise BadSample(f"KEY.mask.npy has shape {mask.shape}, KEY.tok.npy {ids.shape}")
        texts = _field(meta, "captions")
        if not isinstance(texts, list) or len(texts) != ids.shape[0]:
            raise BadSample(f"field 'captions' does not match KEY.tok.npy's {ids.shape[0]} rows")
        ids_t = torch.from_numpy(ids.astype(np.int64))
        mask_t = torch.from_numpy(np.asarray(mask, dtype=bool))
        if captions == "all":
            item.update(text_ids=ids_t, text_mask=mask_t, caption=list(texts))
        elif ids.shape[0] == 0:
            item.update(text_ids=torch.zeros(ids.shape[1], dtype=torch.long),
                        text_mask=torch.zeros(ids.shape[1], dtype=torch.bool), caption="")
        else:
            c = int(rng.integers(ids.shape[0])) if captions == "random" else 0
            item.update(text_ids=ids_t[c], text_mask=mask_t[c], caption=texts[c])
    elif CAPTION in members:
        item["caption"] = members[CAPTION].decode("utf-8", "replace")

    if "video" in meta:
        video = meta["video"]
        times = _field(meta, "video", "frame_timestamps")
        if not isinstance(times, list):
            raise BadSample("field 'video.frame_timestamps' is not a list")
        chosen = choose_frames(times, float(_field(meta, "start")), float(_field(meta, "end")),
                               num_frames, sampling, rng)
        item["frame_times"] = torch.tensor([float(times[i]) for i in chosen],
                                           dtype=torch.float64)
        names = frame_members(members)
        if video.get("format") == "raw":
            arr = _npy(members, RAW_FRAMES)
            if arr.ndim != 4 or arr.shape[0] != len(times) or arr.dtype != np.uint8:
                raise BadSample(f"KEY.frames.npy is {arr.dtype} {arr.shape}, expected uint8 "
                                f"({len(times)}, H, W, 3)")
            x = torch.from_numpy(np.ascontiguousarray(arr[chosen])).permute(0, 3, 1, 2)
        else:
            if len(names) != len(times):
                raise BadSample(f"{len(names)} frame members for {len(times)} timestamps "
                                "(a member KEY.fNNN.jpg is missing)")
            if not decode_frames:
                item["jpeg"] = [members[names[i]] for i in chosen]
                x = None
            else:
                frames = []
                for i in chosen:
                    try:
                        buf = torch.frombuffer(bytearray(members[names[i]]), dtype=torch.uint8)
                        frames.append(decode_jpeg(buf, mode=ImageReadMode.RGB))
                    except RuntimeError as exc:
                        raise BadSample(f"KEY.{names[i]} is not a decodable JPEG: {exc}"
                                        ) from exc
                x = torch.stack(frames) if frames else torch.zeros(0, 3, 0, 0, dtype=torch.uint8)
        if x is not None:
            item["video"] = x if uint8 else normalize(x, video.get("mean"), video.get("std"))

    if "audio" in meta:
        bins = int(_field(meta, "audio", "mel_bins"))
        if meta.get("has_audio") and MEL in members:
            mel = _npy(members, MEL).astype(np.float32, copy=False)
            valid = meta["audio"].get("valid_frames") or [mel.shape[-2]]
            frames_axis = np.arange(mel.shape[-2])
            if mel.ndim == 2:
                mask = frames_axis < int(valid[0])
            else:
                mask = frames_axis[None] < np.asarray(valid, dtype=np.int64)[:, None]
            item["audio"] = torch.from_numpy(np.ascontiguousarray(mel))
            item["audio_mask"] = torch.from_numpy(np.asarray(mask, dtype=bool))
        elif meta.get("has_audio"):
            raise BadSample("field 'has_audio' is true but member KEY.mel.npy is missing")
        else:  # no audio: zero frames (the batch pads it, with a False mask)
            shape = meta["audio"].get("shape")
            shape = ([int(d) for d in shape[:-2]] if isinstance(shape, list) and len(shape) > 2
                     else [])
            item["audio"] = torch.zeros(*shape, 0, bins)
            item["audio_mask"] = torch.zeros(*shape, 0, dtype=torch.bool)
    return item


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (T, 3, H, W) -> float32 in [0, 1], then ``(x - mean) / std`` when recorded."""
    out = x.to(torch.float32)
    if mean is None or std is None:
        return out.div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    return out.sub_(m).div_(s)  # (x / 255 - mean) / std in two passes
