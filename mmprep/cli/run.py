"""``mmprep run``: a whole declared chain, extract -> embed -> train-head, resumable."""

from __future__ import annotations

import click

from mmprep.cli.options import handle_errors, progress_option, show_progress


@click.command("run")
@click.argument("pipeline")
@click.argument("manifest", required=False)
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False),
              help="Output folder: raw/, shards/, features.h5, runs/LOSS/, results.json, "
                   "results.md, report.png.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Set any field of a section (run, extract, embed, train_head), e.g. "
                   "--set embed.device=cpu --set train_head.optim.epochs=5 "
                   "--set run.losses=[gram,infonce].")
@click.option("--until", type=click.Choice(["extract", "embed", "train-head"]),
              help="Stop after this step (default: the pipeline's run.until).")
@click.option("--redo", type=click.Choice(["extract", "embed", "train-head"]),
              help="Redo this step from scratch, and every step after it.")
@click.option("--overwrite", is_flag=True,
              help="Start the whole chain afresh (sample data included).")
@click.option("--workers", type=click.IntRange(0),
              help="Extract worker processes (default: one per core).")
@click.option("--device", help="Device of embed and train-head: auto (default: CUDA when "
                               "available), cpu, cuda, cuda:N.")
@click.option("--print-config", is_flag=True,
              help="Print the resolved chain (every section, defaults filled in) and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print results.json to stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or step notes.")
@progress_option
@handle_errors
def run(pipeline, manifest, out_dir, overrides, until, redo, overwrite, workers, device,
        print_config, as_json, quiet, progress_mode):
    """Run the chain declared by PIPELINE (a preset name or a YAML file with run,
    extract, embed and train_head sections) on MANIFEST, or on the pipeline's own input
    (run.manifest, or run.sample_data synthetic clips): extract shards, embed them with
    frozen encoders, train one set of heads per loss in run.losses, and print the
    retrieval results side by side (also OUT/results.md, OUT/report.png).

    Rerunning the same command resumes: finished steps whose settings and inputs are
    unchanged are skipped, an interrupted step resumes. Changed extract or embed
    settings are refused unless --redo STEP or --overwrite; train-head runs whose
    settings changed are retrained.

    \b
    Examples:
      mmprep run quickstart -o demo
      mmprep run quickstart -o demo --set run.sample_data=400 --set train_head.optim.epochs=60
      mmprep run my-chain.yaml videos.csv -o out --device cuda --until embed
    """
    from mmprep.chain import ChainOptions, format_results, load_chain, run_chain
    from mmprep.config import dump_yaml

    overrides = list(overrides)
    if until:
        overrides.append(f"run.until={until.replace('-', '_')}")
    if device:
        overrides += [f"embed.device={device}", f"train_head.device={device}"]
    chain = load_chain(pipeline, overrides, manifest=manifest)
    if print_config:
        click.echo(dump_yaml(chain.to_dict()), nl=False)
        return
    if not out_dir:
        raise click.UsageError("give the output folder with -o/--out")

    def log(msg: str) -> None:
        if not quiet:
            click.echo(f"[mmprep run] {msg}", err=True)

    opts = ChainOptions(overwrite=overwrite, workers=workers,
                        progress=show_progress(progress_mode, quiet), log=log)
    summary = run_chain(chain, out_dir, opts, redo=redo.replace("-", "_") if redo else None)
    if as_json:
        click.echo(summary.to_json())
        return
    if summary.results is not None:
        click.echo(format_results(summary.results))
        click.echo(f"\nruns in {out_dir}/runs/, table in {out_dir}/results.md, figure in "
                   f"{out_dir}/report.png ({summary.seconds:.0f} s)", err=True)
    else:
        click.echo(f"stopped after {chain.run.until} ({summary.seconds:.0f} s); outputs "
                   f"in {out_dir}", err=True)
