"""The heads commands through click's CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from mmprep.cli import cli

GEN = ["--n", "400", "--test", "80", "--val", "20", "--captions", "2", "--set",
       "dims={video: 24, audio: 32, text: 16}", "--set", "hidden_dim=64"]
TRAIN = ["--epochs", "2", "--batch-size", "32", "--hidden-dim", "32", "--out-dim", "16", "-q"]


@pytest.fixture(scope="module")
def feats(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "f.h5"
    res = CliRunner().invoke(cli, ["sample-features", str(path), *GEN])
    assert res.exit_code == 0, res.output
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_commands_are_registered_and_documented():
    res = run("--help")
    for name in ("train-head", "eval-head", "project", "sample-features"):
        assert name in res.output
    res = run("train-head", "--help")
    assert res.exit_code == 0
    for opt in ("--loss", "--anchor", "--pure", "--pair-weight", "--temperature",
                "--label-smoothing", "--holdout", "--loading", "--precision", "--device"):
        assert opt in res.output
    assert "heads" in run("bench", "--help").output


def test_cli_modules_do_not_import_torch():
    code = ("import sys, mmprep.cli.heads, mmprep.cli.sample_features, mmprep.cli.bench_heads;"
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_train_eval_project_chain(feats, tmp_path):
    out = tmp_path / "run"
    res = run("train-head", feats, "--loss", "gram", "-o", out, *TRAIN, "--json")
    assert res.exit_code == 0, res.output
    trained = json.loads(res.stdout)
    assert set(trained["pairs"]) == {f"{a}->{b}" for a in ("text", "video", "audio")
                                     for b in ("text", "video", "audio") if a != b}
    res = run("eval-head", out, feats, "--json", "-o", tmp_path / "eval.json")
    assert res.exit_code == 0, res.output
    evaluated = json.loads(res.stdout)
    assert evaluated["pairs"] == trained["pairs"]
    assert json.loads((tmp_path / "eval.json").read_text())["pairs"] == trained["pairs"]
    res = run("eval-head", out, feats)
    assert "text->(video,audio)" in res.output and "R@1" in res.output
    res = run("project", out, feats, "-o", tmp_path / "aligned.h5")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "aligned.h5").is_file()
    res = run("project", out, feats, "-o", tmp_path / "aligned.h5")
    assert res.exit_code == 1 and "exists" in res.output
    res = run("train-head", feats, "-o", out, *TRAIN)
    assert res.exit_code == 1 and "already holds a run" in res.output


def test_print_config_and_overrides(feats, tmp_path):
    res = run("train-head", feats, "-o", tmp_path / "r", "--loss", "pmrl", "--pure",
              "--set", "optim.min_lr=0.0", "--modalities", "text,video", "--print-config")
    assert res.exit_code == 0, res.output
    assert "name: pmrl" in res.output and "pure: true" in res.output
    assert "min_lr: 0.0" in res.output and "- video" in res.output


@pytest.mark.parametrize("args,code,message", [
    (["--eval-split", "nope"], 1, "split 'nope' not found"),
    (["--modalities", "text,depth"], 1, "no modality depth"),
    (["--anchor", "depth"], 2, "anchor"),
    (["--loss", "triplet"], 2, "triplet"),
    (["--set", "optim.batch_size=1"], 2, "batch_size"),
])
def test_bad_inputs_give_one_line_errors(feats, tmp_path, args, code, message):
    res = run("train-head", feats, "-o", tmp_path / "r", *TRAIN, *args)
    assert res.exit_code == code, res.output
    assert message in res.output
    assert "Traceback" not in res.output


def test_missing_files(tmp_path):
    res = run("train-head", tmp_path / "none.h5", "-o", tmp_path / "r")
    assert res.exit_code == 1 and "not found" in res.output
    res = run("eval-head", tmp_path, tmp_path / "none.h5")
    assert res.exit_code == 1 and "not a train-head run" in res.output


def test_sample_features_rejects_bad_values(tmp_path):
    res = run("sample-features", tmp_path / "f.h5", "--n", "10", "--test", "10")
    assert res.exit_code == 2 and "test + val" in res.output


def test_bench_heads_small(tmp_path):
    res = run("bench", "heads", "--only", "gram", "--only", "pmrl", "--sizes", "64",
              "--k", "3,4", "--dim", "32", "--naive-rows", "16", "--repeats", "1", "--json",
              "-o", tmp_path / "b.json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [(r["B"], r["k"]) for r in out["gram_volumes"]] == [(64, 3), (64, 4)]
    for r in out["gram_volumes"]:
        assert r["max_abs_diff_vs_naive_fp64"] < 1e-5
        assert r["speedup_vs_naive"] == pytest.approx(r["naive_s"] / r["fast_s"])
        assert r["fast_s"] > 0 and r["naive_s"] > 0
    assert all(r["max_abs_diff_sigma"] < 1e-5 for r in out["pmrl"])
    assert json.loads((tmp_path / "b.json").read_text()) == out
    res = run("bench", "heads", "--only", "gram", "--sizes", "32", "--k", "3", "--dim", "16",
              "--repeats", "1")
    assert "vs per-pair det" in res.output
