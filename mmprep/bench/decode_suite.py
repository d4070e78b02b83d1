"""``mmprep bench decode --suite``: mmprep's sampler against its peers on five file types.

The suite generates (once, cached) the five files of the table in the README: H.264
720p with a keyframe every 2 s and every 250 frames, 1080p H.264 with B-frames, 360p
VP9 and twenty 480p clips; ``scale`` shortens them all for a quick run. For each file
every method (``mmprep.bench.peers``) samples the same uniform target times at the same
224 px output; rounds are interleaved (each round runs every method once, in turn) and
each method's median is compared with mmprep's in the same run. The mean absolute pixel
difference to exact decoding (PyAV decoding every frame) is measured once per method at
native size, untimed. An audio row times decode + resample to 16 kHz mono against
torchcodec's ``AudioDecoder``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmprep.bench import machine_description
from mmprep.bench.decode import default_cache_dir, make_reference_clip
from mmprep.bench.peers import (
    METHODS,
    audio_mmprep,
    audio_torchcodec,
    pyav_decode_all,
    unavailable,
)
from mmprep.media.frames import plan_geometry
from mmprep.media.video import VideoConfig, target_times
from mmprep.results import Result

# name: (seconds, (width, height), codec, keyframe interval in frames (None: 2 s), clips)
SUITE = {
    "720p H.264, GOP 2 s": (60.0, (1280, 720), "libx264", None, 1),
    "720p H.264, GOP 250": (60.0, (1280, 720), "libx264", 250, 1),
    "1080p H.264, B-frames": (10.0, (1920, 1080), "libx264", None, 1),
    "360p VP9": (30.0, (640, 360), "libvpx-vp9", None, 1),
    "20 clips of 480p": (10.0, (854, 480), "libx264", None, 20),
}


def suite_files(scale: float = 1.0, cache: Path | None = None, progress: bool = False,
                only: list[str] | None = None) -> dict[str, list[Path]]:
    """The suite's files (generated once under ``cache``), ``scale`` times as long;
    ``only``: just these (keys of ``SUITE``)."""
    cache = Path(cache) if cache is not None else default_cache_dir()
    files = {}
    for name, (seconds, size, codec, gop, clips) in SUITE.items():
        if only is not None and name not in only:
            continue
        secs = max(1.0, round(seconds * scale, 2))
        ext = "webm" if codec == "libvpx-vp9" else "mp4"
        stem = f"{codec}_{size[0]}x{size[1]}_{secs:g}s_gop{gop or '2s'}"
        files[name] = [
            make_reference_clip(cache / f"{stem}_{i}.{ext}", seconds=secs, size=size,
                                codec=codec, gop_frames=gop, seed=i, progress=progress)
            for i in range(clips)
        ]
    return files


@dataclass(kw_only=True)
class MethodRow(Result):
    """One method on one file: median seconds over the rounds, the ratio to mmprep's
    median (above 1: mmprep is faster), frames decoded (None: the decoder does not
    say), mean absolute pixel difference to exact decoding (0..255), or why it was
    skipped."""

    method: str
    seconds: float | None = None
    ratio_to_mmprep: float | None = None
    frames_decoded: int | None = None
    mean_abs_diff: float | None = None
    skipped: str | None = None


@dataclass(kw_only=True)
class FileRow(Result):
    file: str
    paths: list[str]
    resolution: str
    codec: str
    seconds_per_clip: float
    targets: int
    output: str  # WIDTHxHEIGHT of every method's frames
    methods: list[MethodRow]
    # mmprep's median / the floor's (decode only up to each target, non-reference frames
    # skipped; goal <= 1.25); None when either did not run
    mmprep_vs_floor: float | None = None


@dataclass(kw_only=True)
class AudioRow(Result):
    """Decode + resample to 16 kHz mono of one AAC stereo file: mmprep vs torchcodec."""

    seconds_of_audio: float
    mmprep_s: float
    torchcodec_s: float | None = None
    ratio_to_mmprep: float | None = None  # torchcodec / mmprep (above 1: mmprep faster)
    max_abs_diff: float | None = None
    skipped: str | None = None


@dataclass(kw_only=True)
class DecodeSuiteBench(Result):
    """mmprep's frame sampler and its peers on the suite's files (see the module doc)."""

    frames: int
    threads: int
    rounds: int
    scale: float
    files: list[FileRow]
    audio: AudioRow | None
    machine: str


def _probe(path: Path) -> tuple[int, int, str, float]:
    import av

    with av.open(str(path)) as c:
        st = c.streams.video[0]
        dur = float(st.duration * st.time_base) if st.duration else c.duration / 1e6
        return st.codec_context.width, st.codec_context.height, st.codec_context.name, dur


def _mean_abs_diff(got: list[np.ndarray], ref: list[np.ndarray]) -> float:
    if len(got) != len(ref) or any(a.shape != b.shape for a, b in zip(got, ref)):
        return float("nan")
    return float(np.mean([np.abs(a.astype(np.int16) - b).mean() for a, b in zip(got, ref)]))


def bench_file(name: str, paths: list[Path], *, frames: int, threads: int, rounds: int,
               methods=None) -> FileRow:
    methods = METHODS if methods is None else methods
    width, height, codec, duration = _probe(paths[0])
    geom = plan_geometry(width, height, size=224, mode="shorter-side")
    size = (geom.scale_w, geom.scale_h)
    jobs = []  # (path, times)
    for p in paths:
        dur = _probe(p)[3]
        jobs.append((p, target_times(VideoConfig(num_frames=frames), 0.0, dur)))
    rows = {m.name: MethodRow(method=m.name) for m in methods}
    live = []
    refs = [pyav_decode_all(p, t, None, 1)[0] for p, t in jobs]  # exact decoding
    for m in methods:
        why = unavailable(m)
        if why is None:
            try:  # also warms the file cache; and measures what each method returns
                got = [m.run(p, t, None, threads)[0] for p, t in jobs]
                rows[m.name].mean_abs_diff = round(
                    float(np.mean([_mean_abs_diff(g, r) for g, r in zip(got, refs)])), 3)
                live.append(m)
            except Exception as exc:  # noqa: BLE001 - a peer failing on a file is a note
                why = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        rows[m.name].skipped = why
    times: dict[str, list[float]] = {m.name: [] for m in live}
    for _ in range(rounds):
        for m in live:
            t0 = time.perf_counter()
            decoded = [m.run(p, t, size, threads)[1] for p, t in jobs]
            times[m.name].append(time.perf_counter() - t0)
            if all(d is not None for d in decoded):
                rows[m.name].frames_decoded = int(sum(decoded))
    base = statistics.median(times["mmprep"]) if "mmprep" in times else None
    for method, ts in times.items():
        med = statistics.median(ts)
        rows[method].seconds = round(med, 4)
        if base:
            rows[method].ratio_to_mmprep = round(med / base, 2)
    floor = rows.get("floor")
    vs_floor = (round(base / floor.seconds, 2) if base and floor is not None and floor.seconds
                else None)
    return FileRow(file=name, paths=[str(p) for p in paths], resolution=f"{width}x{height}",
                   codec=codec, seconds_per_clip=round(duration, 2), targets=frames,
                   output=f"{size[0]}x{size[1]}", methods=list(rows.values()),
                   mmprep_vs_floor=vs_floor)


def make_audio_file(path: Path, seconds: float) -> Path:
    """AAC stereo at 44.1 kHz: two tones and a little noise."""
    from mmprep.synthetic.media import encode_clip, tone

    if path.exists():
        return path
    rng = np.random.default_rng(0)
    left, right = tone(seconds, 44100, 440.0)[0], tone(seconds, 44100, 660.0)[0]
    wave = np.stack([left, right]) + rng.normal(0, 0.01, (2, left.shape[0])).astype(np.float32)
    tmp = path.with_name(path.name + ".tmp.m4a")
    encode_clip(tmp, None, audio=wave, sample_rate=44100)
    tmp.replace(path)
    return path


def bench_audio(path: Path, rounds: int, seconds: float) -> AudioRow:
    from mmprep.bench.peers import Method

    why = unavailable(Method("torchcodec", audio_torchcodec, "torchcodec"))
    mm = audio_mmprep(path, 16000)
    tc = None
    if why is None:
        try:
            tc = audio_torchcodec(path, 16000)
        except Exception as exc:  # noqa: BLE001
            why = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    t_mm, t_tc = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        audio_mmprep(path, 16000)
        t_mm.append(time.perf_counter() - t0)
        if tc is not None:
            t0 = time.perf_counter()
            audio_torchcodec(path, 16000)
            t_tc.append(time.perf_counter() - t0)
    row = AudioRow(seconds_of_audio=seconds, mmprep_s=round(statistics.median(t_mm), 4),
                   skipped=why)
    if tc is not None:
        row.torchcodec_s = round(statistics.median(t_tc), 4)
        row.ratio_to_mmprep = round(row.torchcodec_s / row.mmprep_s, 2)
        n = min(len(mm), len(tc))
        row.max_abs_diff = float(np.abs(mm[:n] - tc[:n]).max()) if n else None
    return row


def table(result: DecodeSuiteBench) -> str:
    """The result as a Markdown table: per file and method, median seconds, the ratio to
    mmprep (above 1: mmprep is faster), frames decoded and mean abs pixel difference;
    the last column is mmprep's time over the floor's (goal: at most 1.25)."""
    names = [m.method for m in result.files[0].methods] if result.files else []
    lines = ["| file | " + " | ".join(names) + " | mmprep / floor |",
             "|---" * (len(names) + 2) + "|"]
    for f in result.files:
        cells = []
        for m in f.methods:
            if m.seconds is None:
                cells.append("skipped")
                continue
            cell = f"{m.seconds:.3f} s" if m.method == "mmprep" else f"{m.ratio_to_mmprep:.2f}x"
            if m.frames_decoded is not None:
                cell += f", {m.frames_decoded} fr"
            if m.mean_abs_diff:
                cell += f", diff {m.mean_abs_diff:g}"
            cells.append(cell)
        cells.append("-" if f.mmprep_vs_floor is None else f"{f.mmprep_vs_floor:.2f}")
        lines.append(f"| {f.file} ({f.seconds_per_clip:g} s) | " + " | ".join(cells) + " |")
    a = result.audio
    if a is not None:
        tc = (f"torchcodec {a.torchcodec_s:.3f} s ({a.ratio_to_mmprep:.2f}x, max diff "
              f"{a.max_abs_diff:.1g})" if a.torchcodec_s is not None else f"torchcodec {a.skipped}")
        lines.append(f"\naudio, {a.seconds_of_audio:g} s AAC stereo 44.1 kHz -> 16 kHz mono: "
                     f"mmprep {a.mmprep_s:.3f} s, {tc}")
    return "\n".join(lines)


def bench_decode_suite(*, scale: float = 1.0, frames: int = 8, threads: int = 1,
                       rounds: int = 5, only: list[str] | None = None, audio: bool = True,
                       cache: Path | None = None, progress: bool = False) -> DecodeSuiteBench:
    """Run the suite (see the module doc). ``only``: file names (keys of ``SUITE``) to
    run; ``scale``: file length factor (0.1 for a quick run)."""
    files = suite_files(scale, cache, progress, only)
    rows = [bench_file(name, paths, frames=frames, threads=threads, rounds=rounds)
            for name, paths in files.items()]
    audio_row = None
    if audio:
        secs = max(1.0, round(60.0 * scale, 2))
        base = Path(cache) if cache is not None else default_cache_dir()
        path = make_audio_file(base / f"aac_stereo_44k_{secs:g}s.m4a", secs)
        audio_row = bench_audio(path, rounds, secs)
    return DecodeSuiteBench(frames=frames, threads=threads, rounds=rounds, scale=scale,
                            files=rows, audio=audio_row, machine=machine_description())
