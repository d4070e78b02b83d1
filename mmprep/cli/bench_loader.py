"""``mmprep bench loader``."""

from __future__ import annotations

import click

from mmprep.cli.options import handle_errors


@click.command("loader")
@click.option("-n", "--clips", default=64, show_default=True, type=click.IntRange(1),
              help="Generated sample clips, extracted with --pipeline (cached).")
@click.option("--shards", type=click.Path(exists=True, file_okay=False),
              help="Use this extract output folder instead of generated clips.")
@click.option("--pipeline", default="gram-vast", show_default=True,
              help="Extract preset for the generated clips.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1))
@click.option("--workers", default="1,2", show_default=True,
              help="Comma-separated DataLoader worker counts to measure.")
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1),
              help="Interleaved rounds of each measurement; medians are reported.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def loader(clips, shards, pipeline, batch_size, workers, rounds, as_json):
    """mmprep.loader vs a hand-written webdataset pipeline doing the same work (JPEG
    decode, stack, normalise, pad tokens, batch), with 1 and 2 workers, in one run;
    and random access (the shard index, wids) vs streaming the tars."""
    from mmprep.bench.loader import bench_loader
    from mmprep.errors import UsageError

    try:
        counts = tuple(int(w) for w in workers.split(","))
    except ValueError:
        raise UsageError(f"--workers {workers!r}: give counts like 1,2") from None
    if any(w < 0 for w in counts):
        raise UsageError("--workers: counts must be >= 0")
    r = bench_loader(clips, batch_size=batch_size, workers=counts, rounds=rounds,
                     pipeline=pipeline, shards=shards)
    if as_json:
        click.echo(r.to_json())
        return
    click.echo(f"data      {r.clips} clips in {r.shards} shards, {r.bytes / 1e6:.1f} MB, "
               f"{r.frames_per_clip} frames/clip, batch {r.batch_size}, {r.rounds} rounds")
    for row in r.rows:
        click.echo(f"workers {row.workers}  mmprep {row.mmprep_samples_per_s:.1f} samples/s "
                   f"({row.mmprep_mb_per_s:.1f} MB/s), webdataset "
                   f"{row.baseline_samples_per_s:.1f} samples/s "
                   f"({row.baseline_mb_per_s:.1f} MB/s): {row.ratio:.2f}x")
    wids = (f"{r.wids_random_samples_per_s:.0f}" if r.wids_random_samples_per_s is not None
            else "n/a (wids not installed)")
    click.echo(f"raw members, samples/s: streaming {r.streaming_samples_per_s:.0f}, random "
               f"via the index {r.index_random_samples_per_s:.0f}, random via wids {wids}")
    click.echo(f"machine   {r.machine}")
