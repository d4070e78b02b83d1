"""examples/heads_table.py turns run folders into the README table."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def fake_eval(r1: float) -> dict:
    pairs = {f"{a}->{b}": {"R@1": r1} for a in ("text", "video", "audio")
             for b in ("text", "video", "audio") if a != b}
    return {"pairs": pairs, "tuples": {"text->(video,audio)": {"R@1": r1 / 2}}}


def test_table_groups_seeds_and_sign_blind_rows(tmp_path, capsys):
    runs = tmp_path / "runs"
    for name, r1 in [("gram-s0", 0.5), ("gram-s1", 0.7), ("gram-pure-s0", 0.1)]:
        (runs / name).mkdir(parents=True)
        (runs / name / "metrics.json").write_text(json.dumps({"eval": fake_eval(r1)}))
    (runs / "gram-pure-s0" / "eval-volume.json").write_text(json.dumps(fake_eval(0.3)))
    mod = runpy.run_path(str(EXAMPLES / "heads_table.py"))
    mod["main"]([str(runs)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| run | seeds | text→video")
    body = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:]}
    assert "0.600 ± 0.100" in body["gram"] and "| 2 |" in body["gram"]
    assert "| 0.100 |" in body["gram-pure"]
    assert "| 0.300 |" in body["gram-pure, sign-blind pairs"]
    assert body["gram"].rstrip(" |").endswith("0.300 ± 0.050")
