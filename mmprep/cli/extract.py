"""``mmprep extract``: manifest -> WebDataset shards."""

from __future__ import annotations

import click

from mmprep.cli.options import (
    ConfigOption,
    collect_config_values,
    config_options,
    handle_errors,
    parse_size,
    progress_option,
    show_progress,
)
from mmprep.cli.run_options import build_run_options, report, run_options
from mmprep.extract import ExtractConfig
from mmprep.manifest import FORMATS

EXTRACT_OPTIONS = [
    # video
    ConfigOption(("--frames",), "video.num_frames", "Frames per clip (uniform/random).", int),
    ConfigOption(("--sampling",), "video.sampling",
                 "uniform: middle of N equal segments; random: one random frame per segment "
                 "(seeded); fps: frames at --fps; keyframes: the stream's keyframes."),
    ConfigOption(("--fps",), "video.fps", "Frame rate for --sampling fps.", float),
    ConfigOption(("--max-frames",), "video.max_frames", "Cap for fps/keyframes sampling.", int),
    ConfigOption(("--size",), "video.size", "Output frame size in pixels (see --resize).", int),
    ConfigOption(("--resize",), "video.resize",
                 "shorter-side: shorter side = size; center-crop: then crop size x size; "
                 "pad: longer side = size, letterboxed; none: keep decoded size."),
    ConfigOption(("--frame-format",), "video.format",
                 "jpg: KEY.fNNN.jpg members; raw: one uint8 KEY.frames.npy (N,H,W,3)."),
    ConfigOption(("--jpeg-quality",), "video.jpeg_quality", "JPEG quality 1-100.", int),
    ConfigOption(("--no-video",), "video.enabled", "Skip frames (audio/text only).",
                 flag_value=False),
    ConfigOption(("--decoder-threads",), "video.threads",
                 "Video decoder threads per clip (0: FFmpeg decides; unset: 1 below about "
                 "480p, from 480p up each worker's share of the cores).", int),
    # audio
    ConfigOption(("--no-audio",), "audio.enabled", "Skip audio features.", flag_value=False),
    ConfigOption(("--sample-rate",), "audio.sample_rate", "Resample audio to this rate.", int),
    ConfigOption(("--mel",), "audio.features",
                 "fbank: Kaldi-compatible filter banks; melspectrogram: torchaudio + log; "
                 "panns: PANNs CNN14's log-mel (dB, Slaney filters 50 Hz-14 kHz)."),
    ConfigOption(("--mel-bins",), "audio.mel_bins", "Number of mel bins.", int),
    ConfigOption(("--mel-window-ms",), "audio.window_ms", "Analysis window (ms).", float),
    ConfigOption(("--mel-hop-ms",), "audio.hop_ms", "Hop between frames (ms).", float),
    ConfigOption(("--mel-mean",), "audio.mean", "Normalisation: (x - mean) / std.", float),
    ConfigOption(("--mel-std",), "audio.std", "Normalisation: (x - mean) / std.", float),
    ConfigOption(("--mel-frames",), "audio.target_frames",
                 "Pad/cut features to this many frames (e.g. 1024).", int),
    ConfigOption(("--mel-slices",), "audio.slices", "With --mel-frames: slices per clip.", int),
    ConfigOption(("--max-audio-seconds",), "audio.max_seconds",
                 "Decoded audio longer than this is an error record (bounds memory).", float),
    ConfigOption(("--missing-audio",), "audio.missing",
                 "Clips without audio: zeros (all-zero features), omit (no KEY.mel.npy) or "
                 "error (error record)."),
    # text
    ConfigOption(("--tokenizer",), "text.tokenizer",
                 "bert-base-uncased (packaged), clip, or a tokenizer.json / vocab.txt path.",
                 str),
    ConfigOption(("--max-tokens",), "text.max_length", "Tokens per caption (padded).", int),
    ConfigOption(("--max-captions",), "text.max_captions", "Keep at most N captions.", int),
    ConfigOption(("--allow-no-caption",), "text.missing",
                 "Keep clips without any caption instead of recording an error.",
                 flag_value="keep"),
    # shards
    ConfigOption(("--shard-size",), "shards.samples_per_shard", "Samples per shard.", int),
    ConfigOption(("--shard-name",), "shards.name", "Shard file prefix (NAME-000000.tar).", str),
    ConfigOption(("--seed",), "seed", "Seed for random frame/slice sampling.", int),
    ConfigOption(("--max-sample-mb",), "max_sample_mb",
                 "A sample whose members would exceed this size is an error record "
                 "(nothing larger is allocated).", float),
]


@click.command()
@click.argument("manifest", type=str)
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder for shards, stats and errors.jsonl.")
@click.option("--pipeline", help="Preset name (see `mmprep pipelines list`) or YAML path.")
@click.option("--format", "manifest_format",
              type=click.Choice(FORMATS),
              help="Manifest format (default: from the file name or content).")
@click.option("--root", type=click.Path(file_okay=False),
              help="Folder that relative media paths are resolved against "
                   "(default: the manifest's folder; the current folder for stdin).")
@click.option("--video-column", help="Column with the media path (default: video).")
@click.option("--caption-column", help="Column with the caption(s) (default: caption).")
@click.option("--key-column", help="Column with the sample key (default: key).")
@config_options(ExtractConfig, EXTRACT_OPTIONS)
@click.option("--max-shard-bytes",
              help="Split a shard into tar parts of at most this size, e.g. 1GB (a "
                   "single larger sample gets a part of its own; default: no limit).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Set any config field, e.g. --set audio.slice_sampling=random.")
@click.option("--overwrite", is_flag=True, help="Delete existing shards and start fresh.")
@run_options
@click.option("--fail-fast", is_flag=True, help="Stop at the first failing sample.")
@click.option("--print-config", is_flag=True, help="Print the resolved config and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar (--progress never).")
@progress_option
@handle_errors
def extract(manifest, out_dir, pipeline, manifest_format, root, video_column, caption_column,
            key_column, max_shard_bytes, overrides, overwrite, fail_fast, print_config,
            as_json, quiet, progress_mode, **kwargs):
    """Decode videos, sample frames, compute log-mel audio features, tokenize captions
    and pack everything into WebDataset shards.

    MANIFEST is a CSV/TSV/JSONL/JSON/Parquet file (optionally .gz), a folder of media
    files with same-stem .txt caption sidecars, or - for stdin. Columns: video (path,
    relative to the manifest's folder), caption (string or list), and optionally key,
    start/end (seconds), split; other columns are kept in the metadata.

    Rerunning the same command resumes: finished shards are skipped. Failed samples are
    listed in OUT/errors.jsonl and in each shard's stats file.

    \b
    Examples:
      mmprep extract videos.csv -o shards/ --pipeline gram-vast
      find clips -name '*.mp4' | sed 's/^/{"video":"/; s/$/"}/' | \\
          mmprep extract - -o shards/ --allow-no-caption
    """
    from mmprep.config import dump_yaml
    from mmprep.extract import extract as run_extract
    from mmprep.extract.sample import ExtractConfig
    from mmprep.manifest import Columns, read_manifest
    from mmprep.presets import build_config

    values = collect_config_values(kwargs)
    if max_shard_bytes is not None:
        values["shards.max_bytes"] = parse_size(max_shard_bytes)
    cfg = build_config(ExtractConfig, "extract", pipeline=pipeline, values=values,
                       overrides=overrides)
    if print_config:
        click.echo(dump_yaml(cfg), nl=False)
        return
    samples = read_manifest(
        manifest, fmt=manifest_format, root=root,
        columns=Columns(video=video_column, caption=caption_column, key=key_column),
    )
    opts = build_run_options(kwargs, overwrite=overwrite, fail_fast=fail_fast,
                             progress=show_progress(progress_mode, quiet))
    summary = run_extract(samples, out_dir, cfg, opts)
    report(summary, opts, as_json)
