"""The ``mmprep`` command: a click group whose commands are imported only when used.

Command modules stay light at import time (no torch), so ``mmprep --help`` is fast.
"""

from __future__ import annotations

import importlib

import click

from mmprep import __version__

# name -> "module:attribute"; the one place commands are registered.
COMMANDS: dict[str, str] = {
    "sample-data": "mmprep.cli.sample_data:sample_data",
    "extract": "mmprep.cli.extract:extract",
    "inspect": "mmprep.cli.shards_cmds:inspect",
    "retry-failed": "mmprep.cli.shards_cmds:retry_failed",
    "embed": "mmprep.cli.embed:embed",
    "sample-features": "mmprep.cli.sample_features:sample_features",
    "train-head": "mmprep.cli.heads:train_head",
    "eval-head": "mmprep.cli.heads:eval_head",
    "project": "mmprep.cli.heads:project",
    "run": "mmprep.cli.run:run",
    "pipelines": "mmprep.cli.pipelines:pipelines",
    "bench": "mmprep.cli.bench:bench",
    "doctor": "mmprep.cli.doctor:doctor",
    "completion": "mmprep.cli.completion:completion",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"],
                                              "max_content_width": 100,
                                              "show_default": True})
@click.version_option(__version__, "--version", "-V", prog_name="mmprep")
def cli() -> None:
    """mmprep: raw video/audio/text datasets to training-ready multimodal artifacts.

    \b
    Typical chain:
      mmprep sample-data demo/raw --n 16
      mmprep extract demo/raw/manifest.jsonl -o demo/shards --pipeline gram-vast
      mmprep embed demo/shards -o demo/feats.h5 --pipeline quickstart   # its encoders
      mmprep train-head demo/feats.h5 --loss gram -o demo/runs/gram

    \b
    The whole chain from one YAML file (here the built-in quickstart):
      mmprep run quickstart -o demo/chain

    Run `mmprep COMMAND --help` for each command's options.
    """


def main() -> None:
    cli(prog_name="mmprep")
