"""``mmprep import-features``: features from another pipeline into a feature cache."""

from __future__ import annotations

import click

from mmprep.cli.options import handle_errors


@click.command("import-features")
@click.argument("source", type=click.Path())
@click.option("-o", "--out", "out_file", required=True, type=click.Path(dir_okay=False),
              help="The feature cache (HDF5) to write.")
@click.option("--format", "fmt", type=click.Choice(["auto", "npz", "npy", "parquet",
                                                    "safetensors"]),
              default="auto", show_default=True,
              help="Input format; auto: from the name (a folder is npy).")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32",
              show_default=True, help="Stored dtype of the embeddings.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@handle_errors
def import_features(source, out_file, fmt, dtype, overwrite, as_json):
    """Convert SOURCE (.npz, a folder of .npy files, .parquet or .safetensors) into a
    feature cache for train-head / eval-head.

    Arrays are named as the cache's datasets: keys (unique, one per clip), optional
    split, one (N, D) array per modality (video, audio, ...), and optional
    <m>_mask (false: the clip lacks m), <m>_owner (item-level rows such as text: the
    clip row of each) and <m>_caption. Parquet: one row per clip, a key column, a list
    column per modality (a list of lists for item-level ones). Safetensors: keys and
    split as JSON lists in the metadata.

    \b
    Example:
      mmprep import-features my_feats.npz -o feats.h5 && mmprep train-head feats.h5 -o runs/gram
    """
    from mmprep.features.importer import import_features as run

    summary = run(source, out_file, fmt=fmt, overwrite=overwrite, dtype=dtype)
    if as_json:
        click.echo(summary.to_json())
        return
    mods = ", ".join(f"{m} {v['rows']}x{v['dim']}" + (" (item-level)" if v["item_level"] else "")
                     + (f" ({v['missing']} clips missing)" if v["missing"] else "")
                     for m, v in summary.modalities.items())
    splits = ", ".join(f"{k or '(none)'} {v}" for k, v in summary.splits.items())
    click.echo(f"wrote {summary.out}: {summary.rows} clips; {mods}; splits: {splits}")
