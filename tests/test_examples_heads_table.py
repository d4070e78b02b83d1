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


def test_missing_audio_table_from_real_runs(tmp_path, capsys):
    """examples/heads_missing_table.py on tiny runs: ratios on the same clips and
    paired comparisons."""
    from mmprep.heads.config import TrainHeadConfig
    from mmprep.heads.train import train_heads
    from mmprep.synthetic.features import FeatureGenConfig, write_sample_features

    gen = dict(n=500, test=100, val=50, dims={"video": 24, "audio": 32, "text": 16},
               hidden_dim=32, captions=2, seed=0)
    write_sample_features(tmp_path / "complete.h5", FeatureGenConfig(**gen))
    write_sample_features(tmp_path / "missing15.h5",
                          FeatureGenConfig(**gen, missing_audio=0.15))
    for feats in ("complete", "missing15"):
        for loss in ("gram", "infonce"):
            cfg = TrainHeadConfig()
            cfg.loss.name, cfg.optim.epochs, cfg.optim.batch_size = loss, 1, 64
            cfg.head.out_dim = 16
            train_heads(tmp_path / f"{feats}.h5", tmp_path / f"runs-{feats}" / f"{loss}-s0",
                        cfg, progress=False)
    mod = runpy.run_path(str(EXAMPLES / "heads_missing_table.py"))
    mod["main"](str(tmp_path))
    out = capsys.readouterr().out
    assert "| complete | gram | 1 | **" in out and "1000" not in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    ratio = summary["ratios"]["complete/gram"]
    assert ratio["text->video"]["clips"] == 100 and ratio["video->audio"]["clips"] < 100
    cmp = summary["compare"]["missing15/gram-infonce"]["tables"]["video->audio"]["R@1"]
    assert cmp["ci"][0] <= cmp["diff"] <= cmp["ci"][1]
