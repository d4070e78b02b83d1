"""Print the README tables on missing audio, recipes and paired intervals from the run
folders of examples/heads_missing.sh (OUT/runs-FEATURES/NAME-sSEED/metrics.json).

R@1 cells: mean over seeds, with the 95% bootstrap interval over test clips of seed 0
(one seed: its interval). Missing-audio ratios compare a run trained on the cache with
15% of the audio masked against the same settings trained on the complete cache, both
scored on the masked cache (so video->audio uses the same clips, those with audio).
Paired comparisons use `mmprep.heads.compare.compare_runs`
with every seed of each side. Also writes OUT/summary.json.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from statistics import mean

from mmprep.heads.compare import compare_runs
from mmprep.heads.evaluate import evaluate_run

COLUMNS = ["text->video", "video->text", "text->audio", "audio->text", "video->audio",
           "audio->video", "text->(video,audio)"]


def runs_of(folder: Path) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    if not folder.is_dir():
        return groups
    for run in sorted(p for p in folder.iterdir() if (p / "metrics.json").is_file()):
        groups.setdefault(re.sub(r"-s\d+$", "", run.name), []).append(run)
    return groups


def table(evals: list[dict], key: str) -> dict | None:
    section = "tuples" if key.startswith("text->(") else "pairs"
    found = [e[section][key] for e in evals if key in e[section]]
    return {"R@1": mean(m["R@1"] for m in found), "ci": found[0].get("R@1_ci"),
            "clips": found[0].get("clips"), "seeds": len(found)} if found else None


def cell(t: dict | None) -> str:
    if t is None:
        return "-"
    ci = f" [{t['ci'][0]:.3f}, {t['ci'][1]:.3f}]" if t.get("ci") else ""
    return f"{t['R@1']:.3f}{ci}"


def main(out: str) -> None:
    out = Path(out)
    summary: dict = {"tables": {}, "ratios": {}, "compare": {}}
    print("| features | run | seeds | " + " | ".join(c.replace("->", "→") for c in COLUMNS)
          + " |")
    print("|---|---|---|" + "---|" * len(COLUMNS))
    evals_by = {}
    for folder in sorted(out.glob("runs-*")):
        feats = folder.name.removeprefix("runs-")
        for name, runs in runs_of(folder).items():
            evals = [json.loads((r / "metrics.json").read_text())["eval"] for r in runs]
            evals_by[feats, name] = evals
            cells = {c: table(evals, c) for c in COLUMNS}
            summary["tables"][f"{feats}/{name}"] = cells
            print(f"| {feats} | {name} | {len(runs)} | "
                  + " | ".join(cell(cells[c]) for c in COLUMNS) + " |")
    print()
    print("| features | run | seeds | text→video R@1: trained with 15% of audio missing / "
          "on complete features (clips) | video→audio R@1, the same clips (with audio) |")
    print("|---|---|---|---|---|")
    for base, missing in (("complete", "missing15"), ("second", "second-missing15")):
        full_runs, miss_runs = runs_of(out / f"runs-{base}"), runs_of(out / f"runs-{missing}")
        for name in ("gram", "pmrl", "infonce", "gram-paper", "pmrl-paper"):
            if name not in full_runs or name not in miss_runs:
                continue
            n = min(len(full_runs[name]), len(miss_runs[name]))
            miss = [json.loads((r / "metrics.json").read_text())["eval"]
                    for r in miss_runs[name][:n]]
            # the complete-features heads scored on the same clips (the masked cache)
            full = [evaluate_run(r, out / f"{missing}.h5").to_dict()
                    for r in full_runs[name][:n]]
            row = {}
            for key in ("text->video", "video->audio"):
                a, b = table(miss, key), table(full, key)
                row[key] = {"ratio": a["R@1"] / b["R@1"], "missing": a["R@1"],
                            "complete": b["R@1"], "clips": a["clips"]}
            summary["ratios"][f"{base}/{name}"] = row
            tv, va = row["text->video"], row["video->audio"]
            print(f"| {base} | {name} | {n} | **{tv['ratio']:.3f}x** ({tv['missing']:.3f} / "
                  f"{tv['complete']:.3f}, {tv['clips']} clips) | **{va['ratio']:.3f}x** "
                  f"({va['missing']:.3f} / {va['complete']:.3f}, {va['clips']} clips) |")
    print()
    print("| features | A - B | seeds | table | A | B | A - B | 95% CI | significant |")
    print("|---|---|---|---|---|---|---|---|---|")
    for feats in ("complete", "missing15", "second", "second-missing15"):
        folder = out / f"runs-{feats}"
        if not folder.is_dir():
            continue
        groups = runs_of(folder)
        for a in ("gram", "pmrl"):
            if a not in groups or "infonce" not in groups:
                continue
            n = min(len(groups[a]), len(groups["infonce"]))
            res = compare_runs(groups[a][:n], groups["infonce"][:n], out / f"{feats}.h5")
            summary["compare"][f"{feats}/{a}-infonce"] = res.to_dict()
            for key in ("video->audio", "audio->video", "text->video"):
                d = res.tables[key]["R@1"]
                print(f"| {feats} | {a} - infonce | {n} | {key.replace('->', '→')} | "
                      f"{d['a']:.3f} | {d['b']:.3f} | {d['diff']:+.3f} | "
                      f"[{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] | "
                      f"{'yes' if d['significant'] else '**no**'} |")
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo/heads-missing")
