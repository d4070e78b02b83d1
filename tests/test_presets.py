"""Presets: inheritance (base:) and named normalisation statistics."""

from __future__ import annotations

import pytest

from mmprep.config import from_dict
from mmprep.errors import ConfigError
from mmprep.extract import ExtractConfig
from mmprep.media.norms import AUDIO_NORMS, PIXEL_NORMS
from mmprep.presets import build_config, load_pipeline


def test_named_statistics_resolve_to_numbers():
    cfg = from_dict(ExtractConfig, {"video": {"mean": "clip", "std": "clip"},
                                    "audio": {"mean": "beats", "std": "beats"}})
    assert cfg.video.mean == PIXEL_NORMS["clip"][0] and cfg.video.std == PIXEL_NORMS["clip"][1]
    assert (cfg.audio.mean, cfg.audio.std) == (15.41663, 2 * 6.55582) == AUDIO_NORMS["beats"]
    spelled = from_dict(ExtractConfig, {"video": {"mean": list(PIXEL_NORMS["clip"][0]),
                                                  "std": list(PIXEL_NORMS["clip"][1])},
                                        "audio": {"mean": 15.41663, "std": 13.11164}})
    assert cfg.content_hash() == spelled.content_hash()  # the name is not what is hashed
    with pytest.raises(ConfigError, match="unknown pixel statistics 'clipp'.*known: clip"):
        from_dict(ExtractConfig, {"video": {"mean": "clipp"}})


def test_gram_vast_records_the_papers_statistics():
    cfg = build_config(ExtractConfig, "extract", pipeline="gram-vast")
    assert cfg.video.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert cfg.audio.mean == pytest.approx(15.41663) and cfg.audio.std == pytest.approx(13.11164)


def test_base_is_merged_under_a_variant(tmp_path):
    train = build_config(ExtractConfig, "extract", pipeline="gram-vast-train")
    base = build_config(ExtractConfig, "extract", pipeline="gram-vast")
    assert train.video.sampling == "random" and train.audio.slice_sampling == "random"
    assert train.pipeline == "gram-vast-train"
    train.video.sampling, train.audio.slice_sampling = "uniform", "uniform"
    train.pipeline = base.pipeline
    assert train == base  # everything else comes from the base
    (tmp_path / "mine.yaml").write_text("name: mine\nbase: gram-vast-train\n"
                                        "extract:\n  video:\n    num_frames: 4\n")
    mine = build_config(ExtractConfig, "extract", pipeline=str(tmp_path / "mine.yaml"))
    assert (mine.video.num_frames, mine.video.sampling, mine.video.size) == (4, "random", 224)


def test_base_loops_and_bad_bases_are_clear_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nbase: b.yaml\n")
    (tmp_path / "b.yaml").write_text("name: b\nbase: a.yaml\n")
    with pytest.raises(ConfigError, match="base chain loops"):
        load_pipeline(str(tmp_path / "a.yaml"))
    (tmp_path / "c.yaml").write_text("name: c\nbase: [1, 2]\n")
    with pytest.raises(ConfigError, match="base must be"):
        load_pipeline(str(tmp_path / "c.yaml"))
    (tmp_path / "d.yaml").write_text("name: d\nbase: no-such-preset\n")
    with pytest.raises(ConfigError, match="unknown pipeline"):
        load_pipeline(str(tmp_path / "d.yaml"))
