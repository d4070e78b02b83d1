"""``mmprep embed``: shards -> HDF5 feature cache with frozen encoders."""

from __future__ import annotations

import click

from mmprep.cli.options import (
    EXIT_FAILED,
    ConfigOption,
    collect_config_values,
    config_options,
    handle_errors,
    progress_option,
    show_progress,
)
from mmprep.embed.config import EmbedConfig

EMBED_OPTIONS = [
    ConfigOption(("--video-encoder",), "video_encoder",
                 "Encoder for the frames (pooled by mean per clip), e.g. efficientnet-lite0, "
                 "torchvision:resnet50@W.pth, open_clip:ViT-B-32@CKPT, hf:DIR; none: skip.",
                 str),
    ConfigOption(("--audio-encoder",), "audio_encoder",
                 "Encoder for the log-mel features, e.g. efficientnet-lite0 (image stand-in) "
                 "or hf:AST_DIR; none: skip.", str),
    ConfigOption(("--text-encoder",), "text_encoder",
                 "Encoder for the captions (one row each), e.g. minilm, open_clip:...@CKPT, "
                 "hf:DIR; none: skip.", str),
    ConfigOption(("--video-tokens",), "video_tokens",
                 "Also store per-frame embeddings as /video_tokens (N, frames, D).",
                 flag_value=True),
    ConfigOption(("--no-captions",), "captions", "Do not store the caption text.",
                 flag_value=False),
    ConfigOption(("--strict",), "strict",
                 "Refuse any preprocessing conversion (resizing frames, re-normalising, "
                 "re-tokenizing): the shards must match the encoders exactly.",
                 flag_value=True),
    ConfigOption(("--device",), "device",
                 "cpu, cuda, cuda:N or auto (default); a comma-separated list "
                 "(cuda:0,cuda:1) runs one process per device.", str),
    ConfigOption(("--batch-size",), "batch_size", "Clips per batch.", int),
    ConfigOption(("--precision",), "precision",
                 "fp32, or fp16 / bf16 autocast (bf16 is slow on CPUs without "
                 "native bf16)."),
    ConfigOption(("--workers",), "workers",
                 "DataLoader worker processes decoding shards (default: 1 on CPU, half "
                 "the cores up to 8 on GPU; 0: decode in the main process).", int),
    ConfigOption(("--prefetch",), "prefetch", "Batches each worker prepares ahead.",
                 int),
    ConfigOption(("--threads",), "threads",
                 "Torch threads for the models on CPU (default: cores minus workers).", int),
    ConfigOption(("--no-channels-last",), "channels_last",
                 "Keep CNN inputs in NCHW layout (channels-last is the default).",
                 flag_value=False),
    ConfigOption(("--compile",), "compile", "torch.compile the encoders (slow start).",
                 flag_value=True),
    ConfigOption(("--dtype",), "dtype", "Stored embedding dtype (default float32)."),
]


def list_encoders_text() -> str:
    from mmprep.encoders import list_encoders

    rows = list_encoders()
    width = max(len(r["syntax"]) for r in rows)
    lines = [f"{'spec':<{width}}  {'modalities':<19}  description"]
    lines += [f"{r['syntax']:<{width}}  {r['modalities']:<19}  {r['description']}" for r in rows]
    return "\n".join(lines)


@click.command()
@click.argument("shards", nargs=-1)
@click.option("-o", "--out", type=click.Path(dir_okay=False),
              help="Output feature cache (.h5).")
@click.option("--pipeline", help="Preset name or YAML path; its `embed:` section is used.")
@config_options(EmbedConfig, EMBED_OPTIONS)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Set any config field, e.g. --set batch_size=64.")
@click.option("--resume", is_flag=True,
              help="Add only the keys missing from an existing OUT (same encoders and "
                   "preprocessing required).")
@click.option("--overwrite", is_flag=True, help="Replace OUT and discard leftover parts.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first bad sample.")
@click.option("--list-encoders", is_flag=True, help="List the encoder spec syntax and exit.")
@click.option("--print-config", is_flag=True, help="Print the resolved config and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or notes.")
@progress_option
@handle_errors
def embed(shards, out, pipeline, overrides, resume, overwrite, fail_fast, list_encoders,
          print_config, as_json, quiet, progress_mode, **kwargs):
    """Embed extract's shards with frozen encoders into one HDF5 feature cache.

    SHARDS is a folder written by `mmprep extract` (its complete shards, in order), or
    tar files, globs and brace patterns (shard-{000000..000009}.tar). Rows of OUT are
    aligned by clip key: /keys, /split, /video, /audio (+ /audio_mask), /text with
    /text_owner (one row per caption). Encoders never train and never download.

    JPEG decoding and array loading run in DataLoader worker processes, overlapping
    with the forward passes. Each shard's rows are written to OUT.parts/ as soon as it
    is done and merged into OUT at the end: rerunning an interrupted command reuses them.

    \b
    Examples:
      mmprep embed shards/ -o feats.h5 --video-encoder efficientnet-lite0 \\
          --audio-encoder efficientnet-lite0 --text-encoder minilm
      mmprep embed shards/ -o feats.h5 --text-encoder minilm --resume
      mmprep embed 'shards/shard-{000000..000003}.tar' -o clip.h5 --device cuda \\
          --precision fp16 --video-encoder open_clip:ViT-B-32-quickgelu@/models/clip.pt
    """
    from mmprep.config import dump_yaml
    from mmprep.presets import build_config

    if list_encoders:
        click.echo(list_encoders_text())
        return
    values = collect_config_values(kwargs)
    cfg = build_config(EmbedConfig, "embed", pipeline=pipeline, values=values,
                       overrides=overrides)
    if print_config:
        click.echo(dump_yaml(cfg), nl=False)
        return
    if not shards:
        raise click.UsageError("give the shards (a folder or tar files)")
    if not out:
        raise click.UsageError("give the output file with -o/--out")
    from mmprep.embed import EmbedOptions
    from mmprep.embed import embed as run_embed

    log = None if quiet else (lambda msg: click.echo(f"note: {msg}", err=True))
    opts = EmbedOptions(resume=resume, overwrite=overwrite, fail_fast=fail_fast,
                        progress=show_progress(progress_mode, quiet), log=log)
    summary = run_embed(list(shards), out, cfg, opts)
    if as_json:
        click.echo(summary.to_json())
    else:
        click.echo(format_summary(summary), err=True)
    if summary.all_failed:
        raise SystemExit(EXIT_FAILED)


def format_summary(s) -> str:
    dims = ", ".join(f"{m} {d}-d" for m, d in s.modalities.items())
    lines = [f"{s.rows} clips in {s.out} ({dims})"]
    if s.embedded or s.failed:
        lines.append(f"embedded {s.embedded} clips ({s.captions} captions) from "
                     f"{s.shards - s.shards_skipped} of {s.shards} shard(s) in {s.seconds:.2f} "
                     f"s: {s.samples_per_second:.2f} samples/s")
    else:
        lines.append("nothing to embed: every key is already in the cache")
    if s.failed:
        lines.append(f"{s.failed} failed: see {s.errors_file}")
    return "\n".join(lines)
