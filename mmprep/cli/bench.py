"""``mmprep bench``: reproducible speed measurements, reported as ratios."""

from __future__ import annotations

import click


@click.group()
def bench():
    """Benchmarks. Each compares mmprep with a baseline measured in the same run."""
