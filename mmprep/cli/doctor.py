"""``mmprep doctor``: check the environment and say what to fix."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mmprep.cli.options import EXIT_ENVIRONMENT, EXIT_OK, handle_errors


@click.command()
@click.option("--path", type=click.Path(file_okay=False, path_type=Path), default=".",
              metavar="DIR",
              help="Folder whose free disk space is checked: where outputs will go; it "
                   "need not exist yet.  [default: the current folder]")
@click.option("--timeout", type=click.FloatRange(min=1), default=120, show_default=True,
              help="Seconds allowed in all for the child processes that import torch, "
                   "torchvision and torchaudio.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as JSON instead of the table.  [default: the table]")
@handle_errors
def doctor(path, timeout, as_json):
    """Check that this environment can run mmprep, and say what to fix.

    Checks Python, the torch/torchvision/torchaudio triple (imported in a child process,
    so a broken install cannot crash doctor), PyAV and FFmpeg's codecs, the required
    packages, the packaged encoder weights, the GPU, the optional extras, free disk space
    and CPU cores.

    Exits with 0 when the main job (extract) can run, even with warnings; with 4 when a
    required check failed (see "To fix").

    \b
    Examples:
      mmprep doctor
      mmprep doctor --path /data/out --json | jq '.checks[] | select(.status != "ok")'
    """
    from mmprep.environment.doctor import format_report, run_doctor

    report = run_doctor(path, timeout=timeout)
    click.echo(report.to_json() if as_json else format_report(report))
    sys.exit(EXIT_OK if report.ok else EXIT_ENVIRONMENT)
