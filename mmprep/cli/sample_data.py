"""``mmprep sample-data``: synthetic clips with learnable cross-modal structure."""

from __future__ import annotations

import click

from mmprep.cli.options import handle_errors, progress_option, show_progress
from mmprep.synthetic.clips import MANIFEST_FORMATS

MAX_SIDE = 4096
MAX_CLIP_BYTES = 2 * 2**30


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not WIDTHxHEIGHT (e.g. 160x120)") from None
    if w < 16 or h < 16:
        raise click.BadParameter("frames must be at least 16x16")
    if w > MAX_SIDE or h > MAX_SIDE:
        raise click.BadParameter(f"frames must be at most {MAX_SIDE}x{MAX_SIDE} (generated "
                                 "clips are held in memory while they are encoded)")
    return w, h


@click.command("sample-data")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("-n", "--n", "count", default=16, show_default=True, type=click.IntRange(1),
              help="Number of clips.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--seconds", default=2.0, show_default=True, type=click.FloatRange(0.5, 600),
              help="Clip length.")
@click.option("--fps", default=12, show_default=True, type=click.IntRange(1, 120),
              help="Frame rate.")
@click.option("--size", default="160x120", show_default=True, help="WIDTHxHEIGHT.")
@click.option("--captions", "captions_per_clip", default=2, show_default=True,
              type=click.IntRange(1, 4), help="Captions per clip.")
@click.option("--test-fraction", default=0.25, show_default=True,
              type=click.FloatRange(0, 1), help="Share of clips in split 'test'.")
@click.option("--format", "manifest_format", default="jsonl", show_default=True,
              type=click.Choice(MANIFEST_FORMATS), help="Manifest format.")
@progress_option
@handle_errors
def sample_data(out_dir, count, seed, seconds, fps, size, captions_per_clip, test_fraction,
                manifest_format, progress_mode):
    """Write N synthetic H.264/AAC clips and a manifest to OUT_DIR.

    Each clip's picture (shape, colour, motion, speed), sound (timbre, pitch, contour,
    beat rate) and captions come from the same hidden attributes, which are also
    written to the manifest as columns. Same seed, same files.

    \b
    Example:
      mmprep sample-data demo/raw --n 64 && mmprep extract demo/raw/manifest.jsonl -o demo/shards
    """
    from mmprep.synthetic.clips import write_sample_data

    w, h = _size(size)
    frame_bytes = seconds * fps * w * h * 3
    if frame_bytes > MAX_CLIP_BYTES:
        raise click.BadParameter(
            f"each generated clip would hold {frame_bytes / 2**30:.1f} GB of frames in "
            f"memory (at most {MAX_CLIP_BYTES / 2**30:.0f} GB): use a smaller --size, --fps "
            "or --seconds")
    path = write_sample_data(
        out_dir, count, seed=seed, seconds=seconds, fps=fps, size=(w, h),
        captions_per_clip=captions_per_clip, test_fraction=test_fraction,
        manifest_format=manifest_format, progress=show_progress(progress_mode),
    )
    click.echo(str(path))
