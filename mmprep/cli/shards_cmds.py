"""``mmprep inspect`` and ``mmprep retry-failed``."""

from __future__ import annotations

import sys

import click

from mmprep.cli.options import EXIT_FAILED, handle_errors, progress_option, show_progress
from mmprep.cli.run_options import build_run_options, report, run_options


@click.command()
@click.argument("path")
@click.option("--deep", is_flag=True, help="Also decode every JPEG and array.")
@click.option("--write-errors", is_flag=True,
              help="Rebuild OUT/errors.jsonl from the shards' stats files (e.g. after a "
                   "SLURM job array).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handle_errors
def inspect(path, deep, write_errors, as_json):
    """Print counts, fields, shapes and failures of shards, and validate them.

    PATH is an extract output folder (or fsspec URL), a tar file, or a quoted glob of tar
    files. Checks that every tar is readable to the end, every sample is complete, no
    key is duplicated, and (for a folder) that stats files match their tars and every
    planned shard is done. Exits with code 1 when a problem is found.

    \b
    Examples:
      mmprep inspect demo/shards
      mmprep inspect 'demo/shards/shard-00000*.tar' --deep --json | jq .fields
    """
    from mmprep.shards.validate import format_report, inspect_path

    if write_errors:
        from mmprep.shards.folder import write_errors as rebuild

        rebuild(path)
    info = inspect_path(path, deep=deep)
    if as_json:
        click.echo(info.to_json())
    else:
        click.echo(format_report(info))
    if not info.valid:
        sys.exit(EXIT_FAILED)


@click.command("retry-failed")
@click.argument("out_dir")
@run_options
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar (--progress never).")
@progress_option
@handle_errors
def retry_failed(out_dir, as_json, quiet, progress_mode, **kwargs):
    """Reprocess only the failed samples of OUT_DIR into new shards.

    Uses the config recorded in OUT_DIR/extract.json. Samples that now succeed leave
    errors.jsonl; rows that were invalid in the manifest itself cannot be retried (fix
    the manifest and rerun extract with --overwrite).

    \b
    Example:
      mmprep retry-failed shards/ --sample-timeout 900
    """
    from mmprep.extract.retry import retry_failed as run_retry

    opts = build_run_options(kwargs, progress=show_progress(progress_mode, quiet))
    summary, retried = run_retry(out_dir, opts)
    if not as_json:
        click.echo(f"retried {retried} failed sample(s)", err=True)
    report(summary, opts, as_json)
