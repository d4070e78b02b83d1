"""``mmprep train-head``, ``eval-head`` and ``project``: alignment heads on feature caches."""

from __future__ import annotations

from typing import get_args

import click

from mmprep.cli.options import (
    ConfigOption,
    collect_config_values,
    config_options,
    handle_errors,
    progress_option,
    show_progress,
)
from mmprep.heads.config import Device, PairScore, TrainHeadConfig

TRAIN_OPTIONS = [
    # objective
    ConfigOption(("--recipe",), "recipe",
                 "A paper's own training settings, under any option given here: gram-paper "
                 "(text-anchored GRAM volume loss, label smoothing 0.1, raw learnable "
                 "temperature 0.07 with weight decay and no clamp, stop-gradient on the "
                 "gathered side) or pmrl-paper (tau_sv 0.05, fixed tau_reg 0.1). See the "
                 "README."),
    ConfigOption(("--loss",), "loss.name",
                 "gram: contrastive GRAM volume (anchor vs tuple of the others); pmrl: "
                 "singular-value loss + leading-vector contrast; infonce: pairwise CLIP "
                 "baseline."),
    ConfigOption(("--anchor",), "loss.anchor",
                 "Anchor modality of GRAM, of InfoNCE, and of the tuple retrieval.", str),
    ConfigOption(("--pure",), "loss.pure",
                 "Paper formula, mmprep settings: the papers' loss exactly (no pairwise "
                 "InfoNCE term, GRAM anchored on --anchor only) with mmprep's optimisation "
                 "settings (log temperature, clamps, no label smoothing, full gradient). "
                 "--recipe gives the papers' settings too.",
                 flag_value=True),
    ConfigOption(("--stop-gradient",), "loss.stop_gradient",
                 "gram: no gradient through the gathered side of each direction (the GRAM "
                 "authors' all-gather).", flag_value=True),
    ConfigOption(("--temperature-form",), "loss.temperature_form",
                 "log: learn log(tau), clamped, no weight decay; raw: learn tau itself, "
                 "weight-decayed, unclamped (the GRAM authors')."),
    ConfigOption(("--pair-weight",), "loss.pair_weight",
                 "gram/pmrl: weight of the added pairwise InfoNCE term (0: off).", float),
    ConfigOption(("--pair-set",), "loss.pair_set",
                 "gram/pmrl: pairs of that InfoNCE term: anchor (each modality with the "
                 "anchor) or all pairs."),
    ConfigOption(("--gram-anchors",), "loss.gram_anchors",
                 "gram: anchor (the paper: only --anchor anchors the volume loss) or all "
                 "(average the loss over every modality as anchor)."),
    ConfigOption(("--pairs",), "loss.pairs",
                 "infonce: anchor (each modality with the anchor) or all pairs."),
    ConfigOption(("--temperature",), "loss.temperature",
                 "Initial temperature of the contrastive logits.", float),
    ConfigOption(("--fixed-temperature",), "loss.learn_temperature",
                 "Keep the temperatures fixed instead of learning them.", flag_value=False),
    ConfigOption(("--label-smoothing",), "loss.label_smoothing",
                 "Label smoothing of the cross-entropies.", float),
    ConfigOption(("--tau-sv",), "loss.tau_sv",
                 "pmrl: temperature of the singular-value softmax.", float),
    ConfigOption(("--reg-weight",), "loss.reg_weight",
                 "pmrl: weight of the leading-singular-vector contrastive term.",
                 float),
    # heads
    ConfigOption(("--head",), "head.kind",
                 "Head architecture: linear, or mlp (Linear-GELU-Linear)."),
    ConfigOption(("--out-dim",), "head.out_dim", "Shared output dimension.", int),
    ConfigOption(("--hidden-dim",), "head.hidden_dim", "MLP hidden width.", int),
    ConfigOption(("--dropout",), "head.dropout", "MLP dropout.", float),
    ConfigOption(("--input-norm",), "head.input_norm",
                 "standardize: per-dimension mean/std of the training rows; l2: unit rows; "
                 "none."),
    # optimisation
    ConfigOption(("--epochs",), "optim.epochs", "Training epochs.", int),
    ConfigOption(("--batch-size",), "optim.batch_size", "Clips per step.", int),
    ConfigOption(("--lr",), "optim.lr", "Peak AdamW learning rate.", float),
    ConfigOption(("--weight-decay",), "optim.weight_decay", "AdamW weight decay.",
                 float),
    ConfigOption(("--warmup",), "optim.warmup",
                 "Share of steps with linear warmup before the cosine decay.",
                 float),
    # data
    ConfigOption(("--train-split",), "data.train_split", "Split to train on.",
                 str),
    ConfigOption(("--eval-split",), "data.eval_split", "Split to evaluate on.",
                 str),
    ConfigOption(("--holdout",), "data.holdout",
                 "Ignore the cache's splits and hold out this share of clips (by key hash) "
                 "for evaluation, e.g. 0.1.", float),
    ConfigOption(("--loading",), "data.loading",
                 "memory: load the features; stream: read batches from the HDF5 file; auto: "
                 "memory when they fit in half the RAM."),
    ConfigOption(("--complete-only",), "data.complete_only",
                 "Train and evaluate only on clips with every modality (default: every "
                 "clip with two or more, each loss and table masked).", flag_value=True),
    ConfigOption(("--eval-every",), "data.eval_every",
                 "Evaluate on (up to 1000 clips of) the val split every N epochs; 0: only at "
                 "the end.", int),
    # runtime
    ConfigOption(("--seed",), "seed", "Random seed.", int),
    ConfigOption(("--device",), "device", "auto (CUDA when available), cpu or cuda."),
    ConfigOption(("--precision",), "precision",
                 "fp32, or bf16 autocast for the heads (losses stay fp32/fp64)."),
    ConfigOption(("--threads",), "threads", "CPU threads for torch (0: default).", int),
]


@click.command("train-head")
@click.argument("features", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder: heads.safetensors, config.json, metrics.json, train.log, "
                   "report.png.")
@config_options(TrainHeadConfig, TRAIN_OPTIONS)
@click.option("--modalities", help="Comma-separated modalities to align (default: all in "
                                   "the cache), e.g. text,video,audio.")
@click.option("--pipeline", help="Preset name or YAML path; its train_head: section is the "
                                 "base config.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Set any config field, e.g. --set optim.min_lr=0.0.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run in the folder.")
@click.option("--print-config", is_flag=True, help="Print the resolved config and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json's eval part as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar (--progress never).")
@progress_option
@handle_errors
def train_head(features, out_dir, modalities, pipeline, overrides, overwrite, print_config,
               as_json, quiet, progress_mode, **kwargs):
    """Train one projection head per modality on a feature cache (HDF5) with the GRAM,
    PMRL or pairwise InfoNCE objective, then evaluate any-to-any retrieval on the
    held-out split.

    FEATURES is a feature cache written by `mmprep embed`, `mmprep sample-features` or
    `mmprep import-features` (or any HDF5 file with the documented datasets). Every clip
    with two or more modalities trains, each loss masked to what the clip has
    (--complete-only: only complete clips); with several captions per clip, one is
    drawn per step.

    \b
    Examples:
      mmprep sample-features feats.h5
      mmprep train-head feats.h5 --loss gram -o runs/gram
      mmprep train-head feats.h5 --loss pmrl --pure -o runs/pmrl-pure
      mmprep train-head feats.h5 --loss infonce --anchor text -o runs/infonce
      mmprep train-head feats.h5 --recipe gram-paper -o runs/gram-paper
    """
    from mmprep.config import dump_yaml
    from mmprep.heads.config import RECIPES
    from mmprep.presets import build_config

    values = collect_config_values(kwargs)
    if values.get("recipe"):
        values = {**RECIPES[values["recipe"]], **values}
    if modalities:
        values["data.modalities"] = [m.strip() for m in modalities.split(",") if m.strip()]
    cfg = build_config(TrainHeadConfig, "train_head", pipeline=pipeline, values=values,
                       overrides=overrides)
    if print_config:
        click.echo(dump_yaml(cfg), nl=False)
        return
    from mmprep.heads.train import train_heads

    metrics = train_heads(features, out_dir, cfg, progress=show_progress(progress_mode, quiet),
                          overwrite=overwrite)
    if as_json:
        click.echo(metrics.eval.to_json())
    else:
        click.echo(format_eval(metrics.eval, f"{metrics.eval_split} split"))
        click.echo(f"trained {metrics.steps} steps in {metrics.train_seconds:.1f} s; "
                   f"run written to {out_dir}", err=True)


@click.command("eval-head")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("features", type=click.Path(dir_okay=False))
@click.option("--split", help="Split to evaluate (default: the run's eval split or holdout).")
@click.option("--device", type=click.Choice(get_args(Device)), default="auto",
              show_default=True)
@click.option("--pair-score", type=click.Choice(get_args(PairScore)), default="cosine",
              show_default=True,
              help="Score of the pairwise retrieval: cosine, or the two-vector GRAM volume "
                   "sqrt(1 - cos^2), which ignores the sign of the vectors like the GRAM and "
                   "PMRL objectives do.")
@click.option("--complete-only/--all-clips", default=None,
              help="Evaluate only clips with every modality, or every clip with two or "
                   "more (each table over the clips with its modalities) [default: as the "
                   "run trained].")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False),
              help="Also write the JSON results to this file.")
@handle_errors
def eval_head(run_dir, features, split, device, pair_score, complete_only, as_json, out_file):
    """Any-to-any retrieval of a train-head run on FEATURES: R@1/5/10 and median rank
    for every ordered pair of modalities (cosine) and anchor <-> tuple of the other
    modalities scored by GRAM volume.

    Multi-caption convention: text -> clip uses every caption as a query; clip -> text
    is a hit at K when any of the clip's captions ranks within the top K. Ties count
    against the query. Each pair is scored over the clips that have both modalities,
    each tuple over the clips that have all; every R@K comes with a 95% bootstrap
    interval over the clips.

    \b
    Example:
      mmprep eval-head runs/gram feats.h5 --split test --json
    """
    from mmprep.heads.evaluate import evaluate_run

    result = evaluate_run(run_dir, features, split=split, device=device, pair_score=pair_score,
                          complete_only=complete_only)
    if out_file:
        with open(out_file, "w", encoding="utf-8") as f:
            f.write(result.to_json() + "\n")
    if as_json:
        click.echo(result.to_json())
    else:
        click.echo(format_eval(result, f"{result.split} split"))


@click.command("project")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("features", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out_file", required=True, type=click.Path(dir_okay=False),
              help="Output feature cache (HDF5) of projected, unit-norm embeddings.")
@click.option("--device", type=click.Choice(get_args(Device)), default="auto",
              show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@handle_errors
def project(run_dir, features, out_file, device, overwrite):
    """Apply a run's heads to every row of FEATURES and write the result with the same
    schema (keys, split, one dataset per modality, text_owner, captions, masks), so any
    tool can re-score the aligned embeddings.

    \b
    Example:
      mmprep project runs/gram feats.h5 -o aligned.h5
    """
    from mmprep.heads.evaluate import project_run

    click.echo(str(project_run(run_dir, features, out_file, device=device,
                               overwrite=overwrite)))


def format_eval(result, where: str) -> str:
    coverage = result.get("coverage") or {}
    lines = [f"retrieval on {result['clips']} clips ({where}, pairs scored by "
             f"{result.get('pair_score', 'cosine')}); rows: "
             + ", ".join(f"{m} {n}" for m, n in result["rows"].items())
             + ("; coverage: " + ", ".join(f"{m} {c:.1%}" for m, c in coverage.items())
                if coverage else ""),
             f"{'query -> gallery':<26}{'clips':>6}{'queries':>8}{'R@1':>7}{'95% CI':>15}"
             f"{'R@5':>7}{'R@10':>7}{'MdR':>6}"]
    for section in ("pairs", "tuples"):
        if section == "tuples" and result["tuples"]:
            lines.append("GRAM volume tuples:")
        for name, m in result[section].items():
            ci = m.get("R@1_ci")
            ci_text = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
            lines.append(f"{name:<26}{m.get('clips', ''):>6}{m['queries']:>8}{m['R@1']:>7.3f}"
                         f"{ci_text:>15}{m['R@5']:>7.3f}{m['R@10']:>7.3f}"
                         f"{m['median_rank']:>6.1f}")
    lines.append(f"mean pairwise R@1: {result['mean_R@1']:.3f}")
    return "\n".join(lines)


@click.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@click.argument("features", type=click.Path(dir_okay=False))
@click.option("--split", help="Split to evaluate (default: the runs' eval split or holdout).")
@click.option("--device", type=click.Choice(get_args(Device)), default="auto",
              show_default=True)
@click.option("--pair-score", type=click.Choice(get_args(PairScore)), default="cosine",
              show_default=True, help="Score of the pairwise retrieval (as eval-head).")
@click.option("--complete-only/--all-clips", default=None,
              help="Only clips with every modality, or every clip with two or more "
                   "[default: as the runs trained].")
@click.option("--n-boot", type=click.IntRange(100), default=1000, show_default=True,
              help="Bootstrap resamples.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False),
              help="Also write the JSON results to this file.")
@handle_errors
def compare(run_a, run_b, features, split, device, pair_score, complete_only, n_boot, as_json,
            out_file):
    """Paired-bootstrap difference of R@1/5/10 between two train-head runs (A - B) on
    the same clips of FEATURES, with 95% intervals over the test clips: a difference
    is significant when its interval excludes 0.

    RUN_A and RUN_B may each be several run folders joined with commas (e.g. three
    seeds): their per-query hits are averaged before the comparison.

    \b
    Example:
      mmprep compare runs/gram runs/infonce feats.h5
      mmprep compare runs/gram-s0,runs/gram-s1 runs/infonce-s0,runs/infonce-s1 feats.h5
    """
    from mmprep.heads.compare import compare_runs

    result = compare_runs([r for r in run_a.split(",") if r], [r for r in run_b.split(",") if r],
                          features, split=split, device=device, pair_score=pair_score,
                          complete_only=complete_only, n_boot=n_boot)
    if out_file:
        with open(out_file, "w", encoding="utf-8") as f:
            f.write(result.to_json() + "\n")
    if as_json:
        click.echo(result.to_json())
        return
    click.echo(f"A: {run_a}\nB: {run_b}\n{result.clips} clips, {result.n_boot} paired "
               "bootstrap resamples over clips")
    click.echo(f"{'table':<26}{'K':>4}{'A':>8}{'B':>8}{'A - B':>8}{'95% CI':>18}  significant")
    for name, row in result.tables.items():
        for k in ("R@1", "R@5", "R@10"):
            d = row[k]
            ci = f"[{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]"
            click.echo(f"{name:<26}{k:>4}{d['a']:>8.3f}{d['b']:>8.3f}{d['diff']:>+8.3f}"
                       f"{ci:>18}  {'yes' if d['significant'] else 'no'}")
