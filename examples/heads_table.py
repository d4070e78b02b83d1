"""Print the README results table from train-head run folders (metrics.json).

Runs named NAME-sSEED are grouped by NAME and shown as mean +- std over seeds. Runs with
an eval-volume.json (eval-head --pair-score volume) get a second, sign-blind row.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from statistics import mean, pstdev

COLUMNS = ["text->video", "video->text", "text->audio", "audio->text", "video->audio",
           "audio->video", "text->(video,audio)"]


def rows_of(folder: Path):
    groups: dict[str, list[dict]] = {}
    for run in sorted(p for p in folder.iterdir() if (p / "metrics.json").is_file()):
        name = re.sub(r"-s\d+$", "", run.name)
        if folder.name != "runs":
            name = f"{name} ({folder.name.removeprefix('runs-')})"
        m = json.loads((run / "metrics.json").read_text())
        groups.setdefault(name, []).append(m["eval"])
        vol = run / "eval-volume.json"
        if vol.is_file():
            groups.setdefault(f"{name}, sign-blind pairs", []).append(json.loads(vol.read_text()))
    return groups


def cell(evals: list[dict], key: str) -> str:
    section = "tuples" if key.startswith("text->(") else "pairs"
    vals = [e[section][key]["R@1"] for e in evals if key in e[section]]
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.3f}"
    return f"{mean(vals):.3f} ± {pstdev(vals):.3f}"


def main(folders: list[str]) -> None:
    print("| run | seeds | " + " | ".join(c.replace("->", "→") for c in COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for folder in folders:
        for name, evals in rows_of(Path(folder)).items():
            print(f"| {name} | {len(evals)} | " + " | ".join(cell(evals, c) for c in COLUMNS)
                  + " |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["demo/heads/runs"])
