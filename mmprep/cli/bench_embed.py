"""``mmprep bench embed``."""

from __future__ import annotations

from typing import get_args

import click

from mmprep.cli.options import handle_errors
from mmprep.device import Precision


@click.command("embed")
@click.option("-n", "--clips", default=64, show_default=True, type=click.IntRange(1),
              help="Generated sample clips, extracted with --pipeline (cached).")
@click.option("--shards", type=click.Path(exists=True, file_okay=False),
              help="Use this folder of shards instead of generated clips.")
@click.option("--pipeline", default="gram-vast", show_default=True,
              help="Extract preset for the generated clips.")
@click.option("--video-encoder", default="efficientnet-lite0", show_default=True,
              help="Video encoder spec ('none' to skip).")
@click.option("--audio-encoder", default="efficientnet-lite0", show_default=True,
              help="Audio encoder spec ('none' to skip).")
@click.option("--text-encoder", default="minilm", show_default=True,
              help="Text encoder spec ('none' to skip).")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1))
@click.option("--device", default="auto", show_default=True)
@click.option("--precision", default="fp32", show_default=True,
              type=click.Choice(get_args(Precision)))
@click.option("--workers", type=click.IntRange(0), help="DataLoader workers (default: auto).")
@click.option("--repeat", default=3, show_default=True, type=click.IntRange(1),
              help="Runs of each measurement; medians are reported.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def embed(clips, shards, pipeline, video_encoder, audio_encoder, text_encoder, batch_size,
          device, precision, workers, repeat, as_json):
    """Embed throughput in one run: the encoders alone on preloaded (decoded) batches vs
    end to end from the shards (DataLoader decoding + forward passes + HDF5 writing),
    same shards, encoders, batch size, device and precision. The goal on a GPU is
    end-to-end >= 90% of model-only."""
    from mmprep.bench.embed import bench_embed

    def spec(s):
        return None if s is None or s.lower() == "none" else s

    r = bench_embed(clips, video_encoder=spec(video_encoder), audio_encoder=spec(audio_encoder),
                    text_encoder=spec(text_encoder), batch_size=batch_size, device=device,
                    precision=precision, workers=workers, repeat=repeat, pipeline=pipeline,
                    shards=shards)
    if as_json:
        click.echo(r.to_json())
        return
    rows = [
        ("data", f"{r.clips} clips in {r.shards} shards, {r.frames_per_clip} frames/clip"),
        ("encoders", ", ".join(f"{m}={s}" for m, s in r.encoders.items())),
        ("device", f"{r.device} ({r.device_name}), batch {r.batch_size}, "
                   f"{r.precision}, {r.workers} loader worker(s)"),
        ("loader only", f"{r.loader_clips_per_s:.2f} clips/s"),
        ("model only", f"{r.model_only_clips_per_s:.2f} clips/s ({r.model_only_s:.2f} s)"),
        ("end to end", f"{r.end_to_end_clips_per_s:.2f} clips/s ({r.end_to_end_s:.2f} s)"
                       f" = {100 * r.end_to_end_vs_model_only:.1f}% of model-only"),
        ("machine", r.machine),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        click.echo(f"{k:<{width}}  {v}")
