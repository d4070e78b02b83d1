"""``mmprep bench decode`` and ``mmprep bench extract``."""

from __future__ import annotations

import click

from mmprep.cli.options import handle_errors
from mmprep.results import Result


def _print(result: Result, as_json: bool, rows: list[tuple[str, str]]) -> None:
    if as_json:
        click.echo(result.to_json())
        return
    width = max(len(k) for k, _ in rows)
    for label, value in rows:
        click.echo(f"{label:<{width}}  {value}")


@click.command("decode")
@click.argument("video", required=False, type=click.Path(dir_okay=False))
@click.option("--frames", default=8, show_default=True, type=click.IntRange(1),
              help="Frames to sample (uniform).")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(0),
              help="Decoder threads for every method (0: FFmpeg decides).")
@click.option("--repeat", default=3, show_default=True, type=click.IntRange(1),
              help="Runs per method; the median is reported.")
@click.option("--no-ffmpeg", is_flag=True, help="Skip the ffmpeg command-line baseline.")
@click.option("--suite", is_flag=True,
              help="Compare with torchcodec, decord and OpenCV (mmprep[bench]) on the five "
                   "generated file types and an audio file, in interleaved rounds.")
@click.option("--scale", default=1.0, show_default=True, type=click.FloatRange(0.01, 10),
              help="--suite: length of the generated files, times the full length.")
@click.option("--only", multiple=True, help="--suite: run only this file type (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def decode(video, frames, threads, repeat, no_ffmpeg, suite, scale, only, as_json):
    """Time mmprep's frame sampler against (a) PyAV decoding every frame, (b) the
    ffmpeg command line extracting the same frames (one seeking process per frame) and
    the floor (a minimal PyAV loop decoding only up to each target, non-reference
    frames skipped; rounds interleaved with mmprep's).

    Without VIDEO, a 60 s 1280x720 30 fps H.264 reference clip (keyframe every 2 s) is
    generated once and cached under ~/.cache/mmprep/bench.

    With --suite (or VIDEO and --suite), every method samples the same frames at 224 px
    and --repeat is the number of interleaved rounds; the table shows mmprep's median
    seconds and each peer's median as a ratio to it (above 1: mmprep is faster).
    """
    from mmprep.bench.decode import bench_decode, default_cache_dir, make_reference_clip

    if suite:
        _suite(video, frames, threads, repeat, scale, only, as_json)
        return
    if video is None:
        video = make_reference_clip(default_cache_dir() / "ref_60s_720p_gop2s.mp4", progress=True)
    r = bench_decode(video, frames=frames, threads=threads, repeat=repeat, ffmpeg=not no_ffmpeg)
    rows = [
        ("video", f"{r.video} ({r.duration_s} s, {r.resolution}, {r.codec})"),
        ("mmprep sampler", f"{r.mmprep_s:.3f} s ({r.mmprep_decoded_frames} of "
                           f"{r.stream_frames} frames decoded, {r.mmprep_seeks} seeks)"),
        ("(a) PyAV decode all", f"{r.pyav_decode_all_s:.3f} s -> mmprep is "
                                f"{r.speedup_vs_pyav_decode_all:.2f}x faster"
                                f" (same frames: {r.same_frames_as_pyav})"),
    ]
    rows.append(("floor", f"{r.floor_s:.3f} s ({r.floor_decoded_frames} frames decoded, "
                          f"same frames: {r.same_frames_as_floor}) -> mmprep / floor "
                          f"{r.mmprep_vs_floor:.2f} (goal <= 1.25)"))
    if r.ffmpeg_cli_s is not None:
        rows.append(("(b) ffmpeg CLI", f"{r.ffmpeg_cli_s:.3f} s -> mmprep is "
                                       f"{r.speedup_vs_ffmpeg_cli:.2f}x faster (max mean "
                                       f"abs pixel diff {r.max_mean_abs_diff_vs_ffmpeg})"))
    else:
        rows.append(("(b) ffmpeg CLI", "skipped (ffmpeg not found or --no-ffmpeg)"))
    rows.append(("machine", r.machine))
    _print(r, as_json, rows)


def _suite(video, frames, threads, rounds, scale, only, as_json) -> None:
    from pathlib import Path

    from mmprep.bench import machine_description
    from mmprep.bench.decode_suite import (
        SUITE,
        DecodeSuiteBench,
        bench_decode_suite,
        bench_file,
        table,
    )
    from mmprep.errors import UsageError

    unknown = [name for name in only if name not in SUITE]
    if unknown:
        raise UsageError(f"--only {unknown[0]!r} is not a suite file; one of: "
                         + ", ".join(repr(k) for k in SUITE))
    if video is not None:
        row = bench_file(Path(video).name, [Path(video)], frames=frames, threads=threads,
                         rounds=rounds)
        r = DecodeSuiteBench(frames=frames, threads=threads, rounds=rounds, scale=1.0,
                             files=[row], audio=None, machine=machine_description())
    else:
        r = bench_decode_suite(scale=scale, frames=frames, threads=threads, rounds=rounds,
                               only=list(only) or None, progress=not as_json)
    if as_json:
        click.echo(r.to_json())
        return
    click.echo(table(r))
    for f in r.files:
        for m in f.methods:
            if m.skipped:
                click.echo(f"{f.file}: {m.method} skipped ({m.skipped})")
    click.echo(f"machine: {r.machine}; {r.rounds} interleaved rounds, {r.threads} decoder "
               f"thread(s), {r.frames} frames per clip")


@click.command("extract")
@click.option("-n", "--clips", default=64, show_default=True, type=click.IntRange(1),
              help="Generated sample clips (320x240, 25 fps, H.264 + AAC).")
@click.option("--seconds", default=2.0, show_default=True, type=click.FloatRange(0.5),
              help="Clip length.")
@click.option("--pipeline", default="gram-vast", show_default=True, help="Extract preset.")
@click.option("--no-ffmpeg", is_flag=True, help="Skip the ffmpeg shell-loop baseline.")
@click.option("--no-script", is_flag=True,
              help="Skip the torchcodec + torchaudio + webdataset script baseline.")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(1),
              help="Interleaved rounds (mmprep, then each baseline); medians reported.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def extract(clips, seconds, pipeline, no_ffmpeg, no_script, repeat, as_json):
    """Extract throughput (clips/s, MB/s) on one CPU core, against a loop of ffmpeg
    commands writing each clip's frames (JPEG) and audio (16 kHz WAV) and against the
    same job scripted with torchcodec + torchaudio + webdataset (mmprep[bench]), on the
    same core."""
    from mmprep.bench.extract import bench_extract

    r = bench_extract(clips, seconds=seconds, pipeline=pipeline, ffmpeg=not no_ffmpeg,
                      script=not no_script, repeat=repeat)
    rows = [
        ("clips", f"{r.clips} x {r.clip_seconds} s ({r.input_mb} MB), "
                  f"pipeline {r.pipeline}, core {r.core}"),
        ("mmprep extract", f"{r.mmprep_s:.2f} s: {r.clips_per_s:.2f} clips/s, "
                           f"{r.input_mb_per_s:.2f} MB/s in, stages {r.stage_seconds}"),
    ]
    if r.ffmpeg_loop_s is not None:
        rows.append(("ffmpeg shell loop", f"{r.ffmpeg_loop_s:.2f} s: "
                                          f"{r.ffmpeg_loop_clips_per_s:.2f} clips/s -> "
                                          f"mmprep is {r.speedup_vs_ffmpeg_loop:.2f}x faster"))
    if r.script_s is not None:
        rows.append(("torchcodec script", f"{r.script_s:.2f} s: {r.script_clips_per_s:.2f} "
                                          f"clips/s -> mmprep is {r.speedup_vs_script:.2f}x "
                                          f"faster (goal >= 1.2x)"))
    else:
        rows.append(("torchcodec script", f"skipped ({r.script_skipped})"))
    rows.append(("machine", r.machine))
    _print(r, as_json, rows)


@click.command("scale")
@click.option("-n", "--clips", default=128, show_default=True, type=click.IntRange(4),
              help="Generated sample clips (320x240, 25 fps, H.264 + AAC).")
@click.option("--seconds", default=2.0, show_default=True, type=click.FloatRange(0.5))
@click.option("--pipeline", default="gram-vast", show_default=True, help="Extract preset.")
@click.option("--repeat", default=3, show_default=True, type=click.IntRange(1),
              help="Rounds (settings interleaved); the fastest run of each is reported.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def scale(clips, seconds, pipeline, repeat, as_json):
    """Throughput with 2 workers vs 1, and the overhead of the fault-tolerant runner
    (worker process, timeouts, ordered writing, stats) vs a bare in-process loop on one
    core."""
    from mmprep.bench.scale import bench_scale

    r = bench_scale(clips, seconds=seconds, pipeline=pipeline, repeat=repeat)
    rows = [
        ("clips", f"{r.clips} x {r.clip_seconds} s, pipeline {r.pipeline}"),
        ("bare loop, 1 core", f"{r.bare_loop_1core_s:.2f} s"),
        ("extract --workers 1, 1 core", f"{r.workers1_1core_s:.2f} s -> overhead "
                                        f"{r.overhead_pct:+.1f}%"),
        ("extract --workers 1", f"{r.workers1_s:.2f} s ({r.workers1_clips_per_s} clips/s)"),
        ("extract --workers 2", f"{r.workers2_s:.2f} s ({r.workers2_clips_per_s} clips/s) "
                                f"-> {r.speedup_2_vs_1:.2f}x"),
        ("machine", r.machine),
    ]
    _print(r, as_json, rows)
