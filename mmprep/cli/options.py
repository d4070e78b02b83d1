"""Shared option helpers: config-override options, error handling, exit codes."""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

import click

from mmprep.errors import ConfigError, EnvironmentProblem, MmprepError, UsageError

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
        except (ConfigError, UsageError) as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except EnvironmentProblem as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(EXIT_ENVIRONMENT)
        except MmprepError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(EXIT_FAILED)
        except BrokenPipeError:  # e.g. `mmprep inspect ... | head`
            sys.exit(EXIT_OK)
        except OSError as exc:  # the file system: disk full, read-only, permissions, I/O
            where = f" ({exc.filename})" if exc.filename else ""
            click.echo(f"Error: {exc.strerror or exc}{where}", err=True)
            sys.exit(EXIT_FAILED)
        except KeyboardInterrupt:
            click.echo("Interrupted; rerun the same command to resume.", err=True)
            sys.exit(130)

    return wrapper


@dataclass(frozen=True)
class ConfigOption:
    """A command-line option that sets one dotted config field when given.

    Its type, its choices (from a ``Literal``) and the ``[default: ...]`` shown in
    ``--help`` are read from the config dataclass, so they are defined once.
    """

    decls: tuple[str, ...]
    path: str
    help: str
    type: Any = None  # None: from the field's type hint
    flag_value: Any = None  # for flags: the value set when the flag is present

    @property
    def dest(self) -> str:
        return "cfg__" + self.path.replace(".", "__")


def _click_type(hint: Any) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else hint
        origin = get_origin(hint)
    if origin is Literal:
        return click.Choice([str(a) for a in get_args(hint)])
    if hint in (int, float, str):
        return hint
    raise TypeError(f"no command-line type for {hint!r}: give ConfigOption.type")


def format_default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(format_default(v) for v in value)
    return str(value)


def with_default(help_text: str, value: Any) -> str:
    """``help_text`` with ``[default: value]`` appended (unless it already says one)."""
    if "default" in help_text.lower():
        return help_text
    return f"{help_text} [default: {format_default(value)}]"


def config_options(cls: type, options: list[ConfigOption]) -> Callable:
    """Add ``options`` (fields of dataclass ``cls``) to a command; they arrive in
    ``kwargs`` and are collected by ``collect_config_values``. Unset options (None) leave
    the pipeline's value alone."""
    from mmprep.config import field_info

    def decorator(func: Callable) -> Callable:
        for opt in reversed(options):
            hint, default = field_info(cls, opt.path)
            if opt.flag_value is not None:
                func = click.option(*opt.decls, opt.dest, flag_value=opt.flag_value,
                                    default=None, help=opt.help)(func)
            else:
                func = click.option(*opt.decls, opt.dest, type=opt.type or _click_type(hint),
                                    default=None, help=with_default(opt.help, default))(func)
        return func

    return decorator


PROGRESS_MODES = ("auto", "always", "never")


def progress_option(func: Callable) -> Callable:
    """``--progress auto|always|never`` (one definition for every long-running command)."""
    return click.option(
        "--progress", "progress_mode", type=click.Choice(PROGRESS_MODES), default="auto",
        show_default=True,
        help="Progress bars on stderr: auto shows them only when stderr is a terminal "
             "(not in logs or pipes).")(func)


def show_progress(mode: str, quiet: bool = False) -> bool:
    """Resolve ``--progress`` (and ``-q``) to on/off."""
    if quiet or mode == "never":
        return False
    if mode == "always":
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


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
