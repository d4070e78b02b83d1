"""``mmprep bench``: reproducible speed measurements, reported as ratios."""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click command; imported only when used.
BENCH_COMMANDS: dict[str, str] = {
    "decode": "mmprep.cli.bench_media:decode",
    "extract": "mmprep.cli.bench_media:extract",
    "scale": "mmprep.cli.bench_media:scale",
    "embed": "mmprep.cli.bench_embed:embed",
    "heads": "mmprep.cli.bench_heads:bench_heads",
    "loader": "mmprep.cli.bench_loader:loader",
}


class _LazyBench(click.Group):
    def list_commands(self, ctx):
        return list(BENCH_COMMANDS)

    def get_command(self, ctx, name):
        target = BENCH_COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=_LazyBench)
def bench():
    """Benchmarks. Each compares mmprep with a baseline measured in the same run."""
