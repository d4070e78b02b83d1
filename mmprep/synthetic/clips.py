"""Synthetic clips whose pictures, sounds and captions share hidden attributes.

Each clip draws four attributes: shape, colour, motion and speed. The picture shows a
shape of that colour moving that way at that speed; the sound's timbre follows the
shape, its pitch the colour, its pitch contour the motion and its beep rate the speed;
the captions describe them with varied words. Any two modalities therefore predict each
other, so an alignment model has something real to learn. Everything is deterministic
given the seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmprep.synthetic.media import encode_clip

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {
    "red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 80, 230),
    "yellow": (235, 215, 40), "purple": (150, 60, 200), "orange": (245, 140, 30),
}
MOTIONS = ("left", "right", "up", "down")
SPEEDS = ("slow", "fast")

PITCH = dict(zip(COLOURS, (262.0, 330.0, 392.0, 494.0, 587.0, 698.0)))
BEATS_PER_S = {"slow": 2.0, "fast": 6.0}

_WORDS = {
    "circle": ["circle", "ball", "round disc"], "square": ["square", "box", "block"],
    "triangle": ["triangle", "wedge", "three-sided shape"], "diamond": ["diamond", "rhombus"],
    "red": ["red", "crimson"], "green": ["green", "emerald"], "blue": ["blue", "navy"],
    "yellow": ["yellow", "golden"], "purple": ["purple", "violet"], "orange": ["orange", "amber"],
    "left": ["moves left", "drifts to the left", "slides leftwards"],
    "right": ["moves right", "drifts to the right", "slides rightwards"],
    "up": ["rises", "moves up", "floats upwards"], "down": ["falls", "moves down", "sinks"],
    "slow": ["slowly", "gently", "calmly"], "fast": ["quickly", "rapidly", "fast"],
}
_SOUND = {"circle": "pure", "square": "buzzing", "triangle": "soft", "diamond": "bright"}
_RHYTHM = {"slow": ["beeps slowly", "pulses lazily"], "fast": ["beeps rapidly", "pulses quickly"]}
_TEMPLATES = (
    "a {colour} {shape} {motion} {speed}",
    "{speed_cap}, a {colour} {shape} {motion} while a {sound} tone {rhythm}",
    "the {shape} is {colour} and it {motion} {speed}",
    "a {sound} tone {rhythm} as the {colour} {shape} {motion}",
)


@dataclass(frozen=True)
class ClipSpec:
    key: str
    shape: str
    colour: str
    motion: str
    speed: str
    x0: float
    y0: float
    phase: float


def _mask(shape: str, h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= r * 1.1
    # triangle pointing up
    return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)


def render_frames(spec: ClipSpec, n: int, w: int, h: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    background = (40 + rng.integers(0, 25, size=(h, w, 1))).astype(np.uint8).repeat(3, axis=2)
    travel = 0.35 if spec.speed == "slow" else 0.8
    dx, dy = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[spec.motion]
    r = min(w, h) * 0.16
    colour = np.array(COLOURS[spec.colour], dtype=np.uint8)
    frames = []
    for i in range(n):
        p = i / max(1, n - 1)
        cx = (spec.x0 + dx * travel * p) % 1.0 * w
        cy = (spec.y0 + dy * travel * p) % 1.0 * h
        img = background.copy()
        img[_mask(spec.shape, h, w, cx, cy, r)] = colour
        frames.append(img)
    return frames


def render_audio(spec: ClipSpec, seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    t = np.arange(int(seconds * rate)) / rate
    f0 = PITCH[spec.colour]
    contour = {
        "up": f0 * (1 + 0.5 * t / seconds),
        "down": f0 * (1.5 - 0.5 * t / seconds),
        "left": f0 * (1 + 0.04 * np.sin(2 * np.pi * 6 * t)),
        "right": np.full_like(t, f0),
    }[spec.motion]
    phase = 2 * np.pi * np.cumsum(contour) / rate + spec.phase
    if spec.shape == "circle":
        wave = np.sin(phase)
    elif spec.shape == "square":
        wave = np.sign(np.sin(phase)) * 0.6
    elif spec.shape == "triangle":
        wave = 2 / np.pi * np.arcsin(np.sin(phase))
    else:
        wave = ((phase / (2 * np.pi)) % 1.0) * 2 - 1
    beat = BEATS_PER_S[spec.speed]
    envelope = (np.sin(2 * np.pi * beat * t) > -0.2).astype(np.float32)
    audio = 0.35 * wave * envelope + 0.01 * rng.standard_normal(t.shape)
    return audio.astype(np.float32)[None, :]


def captions_for(spec: ClipSpec, rng: np.random.Generator, count: int) -> list[str]:
    order = rng.permutation(len(_TEMPLATES))[:count]
    out = []
    for i in order:
        words = {a: str(rng.choice(_WORDS[getattr(spec, a)]))
                 for a in ("shape", "colour", "motion", "speed")}
        words["speed_cap"] = words["speed"].capitalize()
        words["sound"] = _SOUND[spec.shape]
        words["rhythm"] = str(rng.choice(_RHYTHM[spec.speed]))
        out.append(_TEMPLATES[i].format(**words))
    return out


def write_sample_data(
    out_dir: str | Path,
    n: int = 16,
    *,
    seed: int = 0,
    seconds: float = 2.0,
    fps: int = 12,
    size: tuple[int, int] = (160, 120),
    sample_rate: int = 16000,
    captions_per_clip: int = 2,
    test_fraction: float = 0.25,
    manifest_format: str = "jsonl",
    progress: bool = False,
) -> Path:
    """Write ``n`` clips under ``out_dir/clips`` and a manifest; returns its path."""
    out_dir = Path(out_dir)
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    n_test = int(round(n * test_fraction))
    rows = []
    iterator = range(n)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="sample-data", unit="clip")
    for i in iterator:
        spec = ClipSpec(
            key=f"clip{i:06d}",
            shape=str(rng.choice(SHAPES)), colour=str(rng.choice(list(COLOURS))),
            motion=str(rng.choice(MOTIONS)), speed=str(rng.choice(SPEEDS)),
            x0=float(rng.uniform(0.2, 0.8)), y0=float(rng.uniform(0.2, 0.8)),
            phase=float(rng.uniform(0, 2 * np.pi)),
        )
        clip_seed = seed * 100_003 + i
        frames = render_frames(spec, int(round(seconds * fps)), w, h, clip_seed)
        audio = render_audio(spec, seconds, sample_rate, clip_seed)
        rel = f"clips/{spec.key}.mp4"
        encode_clip(out_dir / rel, frames, fps=fps, audio=audio, sample_rate=sample_rate, gop=fps)
        rows.append({
            "key": spec.key, "video": rel,
            "caption": captions_for(spec, rng, captions_per_clip),
            "split": "test" if i >= n - n_test else "train",
            "shape": spec.shape, "colour": spec.colour, "motion": spec.motion,
            "speed": spec.speed,
        })
    return write_manifest(rows, out_dir, manifest_format)


MANIFEST_FORMATS = ("jsonl", "csv", "tsv")


def write_manifest(rows: list[dict], out_dir: Path, manifest_format: str) -> Path:
    if manifest_format == "jsonl":
        path = out_dir / "manifest.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path
    import csv

    delim = "\t" if manifest_format == "tsv" else ","
    path = out_dir / f"manifest.{manifest_format}"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delim)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()})
    return path
