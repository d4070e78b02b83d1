"""``mmprep pipelines``: list and show the shipped presets."""

from __future__ import annotations

import click

from mmprep.cli.options import handle_errors


@click.group()
def pipelines():
    """List and show pipeline presets (YAML files usable with --pipeline)."""


@pipelines.command("list")
def list_cmd():
    """Print each preset's name, steps and description."""
    from mmprep.presets import list_presets

    for p in list_presets():
        click.echo(f"{p['name']:<14} [{', '.join(p['steps'])}]")
        click.echo(click.wrap_text(p["description"], initial_indent="    ",
                                   subsequent_indent="    ", width=88))


@pipelines.command("show")
@click.argument("name")
@click.option("--resolved", is_flag=True,
              help="Print the full extract config with every default filled in.")
@handle_errors
def show_cmd(name, resolved):
    """Print preset NAME (or a pipeline YAML path)."""
    from mmprep.presets import resolve_pipeline

    path = resolve_pipeline(name)
    if not resolved:
        click.echo(path.read_text(encoding="utf-8"), nl=False)
        return
    from mmprep.config import dump_yaml
    from mmprep.extract.sample import ExtractConfig
    from mmprep.presets import build_config

    click.echo(dump_yaml(build_config(ExtractConfig, "extract", pipeline=name)), nl=False)
