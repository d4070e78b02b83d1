"""Shared option helpers: config-override options, error handling, exit codes."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from mmprep.errors import ConfigError, MmprepError

EXIT_OK = 0
EXIT_FAILED = 1  # the command could not do its job (I/O error, a sample failed with --fail-fast)
EXIT_USAGE = 2  # bad option, bad config, bad input file format
# 3 (EXIT_TOO_MANY_FAILURES, mmprep.cli.run_options): more failures than --max-failure-rate
EXIT_ENVIRONMENT = 4  # the environment cannot run the job: a broken install; run mmprep doctor


def handle_errors(func: Callable) -> Callable:
    """Turn mmprep's user-facing errors into one-line messages and exit codes."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except MmprepError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(EXIT_FAILED)
        except BrokenPipeError:  # e.g. `mmprep inspect ... | head`
            sys.exit(EXIT_OK)
        except KeyboardInterrupt:
            click.echo("Interrupted; rerun the same command to resume.", err=True)
            sys.exit(130)

    return wrapper


@dataclass(frozen=True)
class ConfigOption:
    """A command-line option that sets one dotted config field when given."""

    decls: tuple[str, ...]
    path: str
    help: str
    type: Any = None
    flag_value: Any = None  # for flags: the value set when the flag is present

    @property
    def dest(self) -> str:
        return "cfg__" + self.path.replace(".", "__")


def config_options(options: list[ConfigOption]) -> Callable:
    """Add ``options`` to a command; they arrive in ``kwargs`` and are collected by
    ``collect_config_values``. Unset options (None) leave the pipeline's value alone."""

    def decorator(func: Callable) -> Callable:
        for opt in reversed(options):
            if opt.flag_value is not None:
                func = click.option(*opt.decls, opt.dest, flag_value=opt.flag_value,
                                    default=None, help=opt.help)(func)
            else:
                func = click.option(*opt.decls, opt.dest, type=opt.type, default=None,
                                    help=opt.help)(func)
        return func

    return decorator


def collect_config_values(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pop the ``cfg__a__b`` options from ``kwargs``; return {"a.b": value} for those set."""
    values = {}
    for name in [k for k in kwargs if k.startswith("cfg__")]:
        value = kwargs.pop(name)
        if value is not None:
            values[name[5:].replace("__", ".")] = value
    return values


def choice_of(cls: type, field: str) -> click.Choice:
    from mmprep.config import choices_of

    return click.Choice(choices_of(cls, field))


def parse_size(text: str | None) -> int | None:
    """'500MB', '2G', '1000000' -> bytes."""
    if text is None:
        return None
    units = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
    s = text.strip().lower().removesuffix("b").removesuffix("i")
    try:
        if s and s[-1] in units:
            return int(float(s[:-1]) * units[s[-1]])
        return int(float(s))
    except ValueError:
        raise ConfigError(f"cannot read size {text!r} (examples: 500MB, 2GB, 1000000)") from None
