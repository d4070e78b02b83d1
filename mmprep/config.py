"""Typed configuration: dataclasses, strict dict/YAML conversion, dotted overrides.

Every pluggable part of mmprep has a dataclass config. ``from_dict`` converts plain
data (from YAML, JSON or the command line) into those dataclasses and rejects unknown
keys and out-of-range choices with a message naming the field and the allowed values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from mmprep.errors import ConfigError

T = TypeVar("T")

__all__ = [
    "from_dict",
    "to_dict",
    "apply_overrides",
    "parse_override",
    "load_yaml",
    "dump_yaml",
    "config_hash",
    "choices_of",
    "field_info",
]


def choices_of(cls: type, field_name: str) -> tuple[str, ...]:
    """The allowed values of a ``Literal`` field, e.g. for click.Choice."""
    hint = get_type_hints(cls)[field_name]
    if get_origin(hint) in (Union, types.UnionType):
        hint = next(a for a in get_args(hint) if a is not type(None))
    return tuple(get_args(hint))


def field_info(cls: type, dotted: str) -> tuple[Any, Any]:
    """(type hint, default value) of the field at ``dotted`` (``"video.num_frames"``) of
    dataclass ``cls``: the one place the command line reads defaults and choices from."""
    obj: Any = cls()
    hint: Any = cls
    for part in dotted.split("."):
        hints = get_type_hints(type(obj))
        if part not in hints:
            raise KeyError(f"{type(obj).__name__} has no field {part!r} (from {dotted!r})")
        hint = hints[part]
        obj = getattr(obj, part)
    return hint, obj


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{path}: a value is required")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: invalid value {value!r}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            listed = ", ".join(repr(a) for a in allowed)
            raise ConfigError(f"{path}: {value!r} is not one of {listed}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, _path=path)
    if origin in (list, tuple):
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)}")
            return tuple(
                _convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args))
            )
        item = args[0] if args else Any
        items = [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{path}: cannot convert {value!r} to {_type_name(tp)}")


def from_dict(cls: type[T], data: dict[str, Any] | None, *, _path: str = "") -> T:
    """Build dataclass ``cls`` from plain data, strictly.

    Unknown keys are errors (with the list of known ones); missing keys take defaults.
    """
    data = dict(data or {})
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = _path or cls.__name__
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)} (known: {known})")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(value, hints[name], f"{_path}.{name}" if _path else name)
    try:
        obj = cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{_path or cls.__name__}: {exc}") from exc
    return obj


def to_dict(obj: Any) -> Any:
    """Plain (JSON/YAML-safe) data from a dataclass tree; tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as YAML (so ``8``, ``true``, ``[1,2]`` work)."""
    import yaml

    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.option=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {text!r} has no option name")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: typing.Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted ``key=value`` overrides applied."""
    out = json.loads(json.dumps(data))
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return out


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``dotted='a.b'``, creating sections as needed."""
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def dump_yaml(data: Any) -> str:
    import yaml

    return yaml.safe_dump(to_dict(data), sort_keys=False, allow_unicode=True)


def config_hash(obj: Any, length: int = 16) -> str:
    """Stable short hash of a config (canonical JSON of its plain form)."""
    blob = json.dumps(to_dict(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]
