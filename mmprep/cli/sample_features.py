"""``mmprep sample-features``: a synthetic feature cache with a known shared latent."""

from __future__ import annotations

import click

from mmprep.cli.options import ConfigOption, collect_config_values, config_options, handle_errors
from mmprep.synthetic.features import FeatureGenConfig

GEN_OPTIONS = [
    ConfigOption(("-n", "--n"), "n", "Number of clips.", int),
    ConfigOption(("--test",), "test", "Clips in split 'test'.", int),
    ConfigOption(("--val",), "val", "Clips in split 'val'; the rest are 'train'.", int),
    ConfigOption(("--captions",), "captions", "Captions (text rows) per clip.", int),
    ConfigOption(("--min-captions",), "min_captions",
                 "Draw each clip's caption count uniformly in [min, --captions].", int),
    ConfigOption(("--latent-dim",), "latent_dim", "Shared latent dimension.", int),
    ConfigOption(("--missing-audio",), "missing_audio",
                 "Share of clips without audio (audio_mask false).", float),
    ConfigOption(("--seed",), "seed", "Random seed.", int),
]


@click.command("sample-features")
@click.argument("out_file", type=click.Path(dir_okay=False))
@config_options(FeatureGenConfig, GEN_OPTIONS)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Set any generator field (mappings are replaced whole), e.g. "
                   "--set 'noise={video: 0.5, audio: 2.0, text: 0.5}'.")
@click.option("--print-config", is_flag=True, help="Print the generator config and exit.")
@handle_errors
def sample_features(out_file, overrides, print_config, **kwargs):
    """Write a synthetic feature cache (HDF5, the `embed` schema) to OUT_FILE.

    Each clip has a hidden shared latent (category centre + instance detail). Video
    (512-d), audio (768-d) and each of its captions (text, 384-d) observe a noisy copy
    of it (audio the noisiest), mixed with a private nuisance latent through a
    different random nonlinear network per modality, plus feature noise. Splits train /
    val / test. Same seed, same file.

    \b
    Example:
      mmprep sample-features feats.h5 && mmprep train-head feats.h5 -o runs/gram
    """
    from mmprep.config import dump_yaml
    from mmprep.presets import build_config
    from mmprep.synthetic.features import FeatureGenConfig, write_sample_features

    cfg = build_config(FeatureGenConfig, "sample_features",
                       values=collect_config_values(kwargs), overrides=overrides)
    if print_config:
        click.echo(dump_yaml(cfg), nl=False)
        return
    click.echo(str(write_sample_features(out_file, cfg)))
