"""Pipeline presets: YAML files in ``pipelines/`` (shipped inside the package).

A pipeline file has a ``name``, a ``description`` and one section per step
(``extract``, and for whole chains ``embed`` and ``train_head``). ``--pipeline`` takes a
preset name or a path to such a file; command-line options override its values.

``base: NAME_OR_PATH`` makes a pipeline start from another one: its sections are merged
key by key over the base's (mappings are merged, other values replaced), so a variant
states only what it changes. Normalisation statistics may be named (``mean: clip``, see
``mmprep.media.norms``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmprep.config import apply_overrides, from_dict, load_yaml, set_path
from mmprep.errors import ConfigError


def preset_dir() -> Path:
    return Path(__file__).resolve().parent / "pipelines"


def list_presets() -> list[dict[str, Any]]:
    """Name, description and steps of every shipped preset."""
    out = []
    for path in sorted(preset_dir().glob("*.yaml")):
        data = load_pipeline(str(path))
        steps = [k for k in ("extract", "embed", "train_head") if k in data]
        out.append({
            "name": data.get("name", path.stem),
            "description": " ".join(str(data.get("description", "")).split()),
            "steps": steps,
            "path": str(path),
        })
    return out


def resolve_pipeline(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"pipeline file not found: {path}")
        return path
    candidate = preset_dir() / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    names = ", ".join(p["name"] for p in list_presets())
    raise ConfigError(f"unknown pipeline {name_or_path!r} (presets: {names}; or give a .yaml path)")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_pipeline(name_or_path: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """A pipeline's content, with its ``base`` (if any) merged under it."""
    path = resolve_pipeline(name_or_path)
    key = str(path.resolve())
    if key in _seen:
        raise ConfigError(f"pipeline {name_or_path!r}: its base chain loops ({path})")
    data = load_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base must be a preset name or a YAML path")
    if not Path(base).is_absolute() and (base.endswith((".yaml", ".yml")) or "/" in base):
        base = str(path.parent / base)
    parent = load_pipeline(base, (*_seen, key))
    parent.pop("name", None)
    parent.pop("description", None)
    return _merge(parent, data)


def build_config(
    cls: type,
    section: str,
    *,
    pipeline: str | None = None,
    values: dict[str, Any] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
):
    """Config ``cls`` from a pipeline's ``section``, then ``values`` (dotted paths from
    command-line options), then ``KEY=VALUE`` overrides; validated strictly."""
    data: dict[str, Any] = {}
    name = None
    if pipeline:
        doc = load_pipeline(pipeline)
        data = dict(doc.get(section) or {})
        name = doc.get("name", Path(pipeline).stem)
    for dotted, value in (values or {}).items():
        set_path(data, dotted, value)
    data = apply_overrides(data, overrides)
    if name is not None and "pipeline" in getattr(cls, "__dataclass_fields__", {}):
        data.setdefault("pipeline", name)
    return from_dict(cls, data)
