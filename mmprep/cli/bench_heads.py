"""``mmprep bench heads``: GRAM volumes, PMRL spectrum and a training epoch."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from mmprep.cli.options import handle_errors

if TYPE_CHECKING:
    from mmprep.bench.heads import GramBench, HeadsEpochBench, PmrlBench


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of integers") from None


@click.command("heads")
@click.option("--sizes", default="1024,4096", show_default=True, help="Batch sizes B.")
@click.option("--k", "ks", default="3,4,5", show_default=True, help="Numbers of modalities.")
@click.option("--dim", default=512, show_default=True, type=click.IntRange(2), help="D.")
@click.option("--naive-rows", default=128, show_default=True, type=click.IntRange(1),
              help="Anchor rows the per-pair torch.det reference is timed on (scaled to B).")
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(1))
@click.option("--epoch-samples", default=100_000, show_default=True, type=click.IntRange(0),
              help="Clips in the training-epoch benchmark (0: skip it).")
@click.option("--only", type=click.Choice(["gram", "pmrl", "epoch"]), multiple=True,
              help="Run only these parts (repeatable).")
@click.option("--threads", default=0, type=click.IntRange(0),
              help="torch CPU threads (0: default).")
@click.option("--json", "as_json", is_flag=True, help="Print all measurements as JSON.")
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False),
              help="Also write the JSON to this file.")
@handle_errors
def bench_heads(sizes, ks, dim, naive_rows, repeats, epoch_samples, only, threads, as_json,
                out_file):
    """gram_volumes vs the naive per-pair torch.det reference and the GRAM authors'
    dot-product + torch.det formulation; the PMRL spectrum (eigh of k x k) vs batched
    SVD; one training epoch per loss over --epoch-samples generated clips. Ratios of
    timings taken in this run.

    \b
    Example:
      mmprep bench heads --json -o bench.json
    """
    import torch

    from mmprep.bench import machine_description
    from mmprep.bench.heads import bench_epoch, bench_gram, bench_pmrl

    if threads:
        torch.set_num_threads(threads)
    parts = set(only) or {"gram", "pmrl", "epoch"}
    out = {"threads": torch.get_num_threads(), "torch": torch.__version__,
           "machine": machine_description()}
    gram = pmrl = epoch = None
    if "gram" in parts:
        gram = bench_gram(_ints(sizes), _ints(ks), dim, naive_rows, repeats)
        out["gram_volumes"] = gram.to_dict()["rows"]
    if "pmrl" in parts:
        pmrl = bench_pmrl(_ints(sizes), _ints(ks), dim, repeats)
        out["pmrl"] = pmrl.to_dict()["rows"]
    if "epoch" in parts and epoch_samples:
        epoch = bench_epoch(epoch_samples)
        out["epoch"] = epoch.to_dict()
    text = json.dumps(out, indent=1)
    if out_file:
        with open(out_file, "w", encoding="utf-8") as f:
            f.write(text)
    click.echo(text if as_json else format_bench(gram, pmrl, epoch, out["machine"]))


def format_bench(gram: GramBench | None, pmrl: PmrlBench | None,
                 epoch: HeadsEpochBench | None, machine: str) -> str:
    lines = [f"machine: {machine}"]
    if gram is not None:
        lines.append("gram_volumes, float32 forward (x = times faster than the reference)")
        lines.append(f"{'B':>6}{'k':>3}{'vs per-pair det':>17}{'vs dots+det':>13}"
                     f"{'max |diff| fp64':>17}")
        for r in gram.rows:
            lines.append(f"{r.B:>6}{r.k:>3}{r.speedup_vs_naive:>16.1f}x"
                         f"{r.speedup_vs_dots:>12.1f}x{r.max_abs_diff_vs_naive_fp64:>17.1e}")
    if pmrl is not None:
        lines.append("PMRL: eigh of k x k vs batched SVD of D x k")
        lines.append(f"{'B':>6}{'k':>3}{'spectrum fwd':>14}{'fwd+bwd':>10}{'whole loss':>12}")
        for r in pmrl.rows:
            lines.append(f"{r.B:>6}{r.k:>3}{r.speedup_fwd:>13.1f}x"
                         f"{r.speedup_fwd_bwd:>9.1f}x{r.speedup_loss_fwd_bwd:>11.1f}x")
    if epoch is not None:
        lines.append(f"one epoch over {epoch.samples} clips, batch {epoch.batch_size}"
                     f" ({epoch.machine})")
        for r in epoch.runs:
            lines.append(f"  {r.loss:<8}{r.loading:<8}{r.samples_per_second:>10.0f} "
                         f"samples/s  ({r.relative_to_infonce:.2f}x infonce)")
    return "\n".join(lines)
