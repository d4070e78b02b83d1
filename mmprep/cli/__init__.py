"""The ``mmprep`` command: a click group whose commands are imported only when used.

``COMMANDS`` registers each command with its one-line summary, so ``mmprep --help``
lists them without importing any command module; a command's module is imported when
the command (or its ``--help``) runs. Command modules stay free of torch at import time.
"""

from __future__ import annotations

import importlib

import click

from mmprep import __version__

# name -> ("module:attribute", one-line summary); the one place commands are registered.
COMMANDS: dict[str, tuple[str, str]] = {
    "sample-data": ("mmprep.cli.sample_data:sample_data",
                    "Write N synthetic H.264/AAC clips and a manifest."),
    "extract": ("mmprep.cli.extract:extract",
                "Decode, sample frames, audio features, tokens -> WebDataset shards."),
    "inspect": ("mmprep.cli.shards_cmds:inspect",
                "Validate shards; counts, fields, shapes and failures."),
    "retry-failed": ("mmprep.cli.shards_cmds:retry_failed",
                     "Reprocess only the failed samples of an extract output."),
    "embed": ("mmprep.cli.embed:embed",
              "Shards -> one HDF5 feature cache with frozen encoders."),
    "sample-features": ("mmprep.cli.sample_features:sample_features",
                        "Write a synthetic feature cache with a known shared latent."),
    "train-head": ("mmprep.cli.heads:train_head",
                   "Train GRAM / PMRL / InfoNCE projection heads on a feature cache."),
    "eval-head": ("mmprep.cli.heads:eval_head",
                  "Any-to-any retrieval of a train-head run (R@1/5/10, median rank)."),
    "project": ("mmprep.cli.heads:project",
                "Apply a run's heads to a feature cache, writing a new one."),
    "compare": ("mmprep.cli.heads:compare",
                "Paired-bootstrap R@K differences of two train-head runs, with intervals."),
    "import-features": ("mmprep.cli.import_features:import_features",
                        "Convert .npz / .npy folder / parquet / safetensors into a cache."),
    "run": ("mmprep.cli.run:run",
            "Run a declared chain extract -> embed -> train-head, resuming."),
    "pipelines": ("mmprep.cli.pipelines:pipelines", "List and show pipeline presets."),
    "bench": ("mmprep.cli.bench:bench", "Benchmarks, each against a baseline in the same run."),
    "doctor": ("mmprep.cli.doctor:doctor",
               "Check that this environment can run mmprep, and say what to fix."),
    "completion": ("mmprep.cli.completion:completion",
                   "Print the shell completion script (bash, zsh, fish)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        target, summary = entry
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        command.short_help = summary
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the registry: no command module is imported."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, summary) for name, (_, summary) in COMMANDS.items()])


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


INTERRUPTED = 130


def main() -> None:
    """Run the command line. Like click's standalone mode, except that Ctrl-C at any
    moment (even while a command is still being imported) ends with one line and exit
    code 130, the code of an interrupted command."""
    import sys

    try:
        cli.main(prog_name="mmprep", standalone_mode=False)
    except KeyboardInterrupt:
        click.echo("\nInterrupted; rerun the same command to resume.", err=True)
        sys.exit(INTERRUPTED)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            click.echo("Interrupted; rerun the same command to resume.", err=True)
            sys.exit(INTERRUPTED)
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(0)
