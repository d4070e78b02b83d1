"""The base of mmprep's typed results (extract, embed, inspect, train, evaluate, run,
benchmarks).

A result is a dataclass: read its fields as attributes, ``to_dict()`` gives the plain
JSON-safe form the commands print with ``--json`` and the run folders store, and
``to_json()`` the text. Results can also be read like that JSON (``result["ok"]``,
``"ok" in result``), so code written against the printed form keeps working.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any


def plain(value: Any) -> Any:
    """JSON-safe data from results, dataclasses, tuples and numpy scalars."""
    if isinstance(value, Result):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        try:
            return value.item()
        except (TypeError, ValueError):
            return value
    return value


def json_name(name: str) -> dict[str, str]:
    """Field metadata giving the field another name in the JSON form (``mean_R@1``)."""
    return {"json": name}


def _names(obj) -> dict[str, str]:
    """JSON name -> attribute name of a result's fields."""
    return {f.metadata.get("json", f.name): f.name for f in dataclasses.fields(obj)}


class Result:
    """Mixin for result dataclasses; see the module docs."""

    def to_dict(self) -> dict[str, Any]:
        out = {key: plain(getattr(self, attr)) for key, attr in _names(self).items()}
        out.update({k: plain(v) for k, v in self.derived().items()})
        return out

    def derived(self) -> dict[str, Any]:
        """Computed values that belong in the JSON form (e.g. rates)."""
        return {}

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    # read-only mapping access, as the JSON form
    def __getitem__(self, key: str) -> Any:
        names = _names(self)
        if key in names:
            return getattr(self, names[key])
        derived = self.derived()
        if key in derived:
            return derived[key]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except (KeyError, TypeError):
            return False
        return True

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self) -> list[str]:
        return list(_names(self)) + list(self.derived())
