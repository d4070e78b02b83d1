"""``mmprep completion SHELL``: print the shell completion script."""

from __future__ import annotations

import click


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell):
    """Print the completion script for SHELL.

    \b
    bash:  eval "$(mmprep completion bash)"        (add to ~/.bashrc)
    zsh:   eval "$(mmprep completion zsh)"         (add to ~/.zshrc)
    fish:  mmprep completion fish > ~/.config/fish/completions/mmprep.fish
    """
    from click.shell_completion import get_completion_class

    from mmprep.cli import cli

    cls = get_completion_class(shell)
    click.echo(cls(cli, {}, "mmprep", "_MMPREP_COMPLETE").source())
