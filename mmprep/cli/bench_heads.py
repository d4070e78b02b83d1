"""``mmprep bench heads``: GRAM volumes, PMRL spectrum and a training epoch."""

from __future__ import annotations

import json

import click

from mmprep.cli.options import handle_errors


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

    from mmprep.bench.heads import bench_epoch, bench_gram, bench_pmrl

    if threads:
        torch.set_num_threads(threads)
    parts = set(only) or {"gram", "pmrl", "epoch"}
    out = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    if "gram" in parts:
        out["gram_volumes"] = bench_gram(_ints(sizes), _ints(ks), dim, naive_rows, repeats)
    if "pmrl" in parts:
        out["pmrl"] = bench_pmrl(_ints(sizes), _ints(ks), dim, repeats)
    if "epoch" in parts and epoch_samples:
        out["epoch"] = bench_epoch(epoch_samples)
    if out_file:
        with open(out_file, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
    click.echo(json.dumps(out, indent=1) if as_json else format_bench(out))


def format_bench(out: dict) -> str:
    lines = []
    if "gram_volumes" in out:
        lines.append("gram_volumes, float32 forward (x = times faster than the reference)")
        lines.append(f"{'B':>6}{'k':>3}{'vs per-pair det':>17}{'vs dots+det':>13}"
                     f"{'max |diff| fp64':>17}")
        for r in out["gram_volumes"]:
            lines.append(f"{r['B']:>6}{r['k']:>3}{r['speedup_vs_naive']:>16.1f}x"
                         f"{r['speedup_vs_dots']:>12.1f}x{r['max_abs_diff_vs_naive_fp64']:>17.1e}")
    if "pmrl" in out:
        lines.append("PMRL: eigh of k x k vs batched SVD of D x k")
        lines.append(f"{'B':>6}{'k':>3}{'spectrum fwd':>14}{'fwd+bwd':>10}{'whole loss':>12}")
        for r in out["pmrl"]:
            lines.append(f"{r['B']:>6}{r['k']:>3}{r['speedup_fwd']:>13.1f}x"
                         f"{r['speedup_fwd_bwd']:>9.1f}x{r['speedup_loss_fwd_bwd']:>11.1f}x")
    if "epoch" in out:
        e = out["epoch"]
        lines.append(f"one epoch over {e['samples']} clips, batch {e['batch_size']}")
        for r in e["runs"]:
            lines.append(f"  {r['loss']:<8}{r['loading']:<8}{r['samples_per_second']:>10.0f} "
                         f"samples/s  ({r['relative_to_infonce']:.2f}x infonce)")
    return "\n".join(lines)
