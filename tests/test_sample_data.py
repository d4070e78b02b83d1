"""sample-data: deterministic clips whose picture, sound and captions agree."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from mmprep.cli import cli
from mmprep.media.audio import decode_audio
from mmprep.media.video import VideoConfig, sample_frames
from mmprep.synthetic.clips import _WORDS as WORDS
from mmprep.synthetic.clips import COLOURS, PITCH, write_sample_data


def test_same_seed_same_files(tmp_path):
    a = write_sample_data(tmp_path / "a", 3, seed=7, seconds=1.0)
    b = write_sample_data(tmp_path / "b", 3, seed=7, seconds=1.0)
    c = write_sample_data(tmp_path / "c", 3, seed=8, seconds=1.0)
    assert a.read_text() == b.read_text() != c.read_text()
    for name in ("clip000000.mp4", "clip000002.mp4"):
        assert (a.parent / "clips" / name).read_bytes() == (b.parent / "clips" / name).read_bytes()


def test_modalities_share_the_hidden_attributes(sample_data):
    rows = [json.loads(x) for x in sample_data.read_text().splitlines()]
    for row in rows:
        clip = sample_data.parent / row["video"]
        # Picture: the most saturated pixels have the attribute's colour.
        fs = sample_frames(clip, VideoConfig(size=None, resize="none", num_frames=1))
        px = fs.frames[0].reshape(-1, 3).astype(int)
        saturated = px[(px.max(axis=1) - px.min(axis=1)) > 100]
        colour = min(COLOURS, key=lambda c: np.abs(saturated.mean(0) - COLOURS[c]).sum())
        assert colour == row["colour"]
        # Sound: the strongest frequency is the colour's pitch (moves that glide skip).
        if row["motion"] == "right":
            wave = decode_audio(clip, 16000).samples
            spectrum = np.abs(np.fft.rfft(wave))
            peak = np.fft.rfftfreq(wave.size, 1 / 16000)[spectrum.argmax()]
            assert abs(peak - PITCH[row["colour"]]) < 8
        # Captions: every caption names the shape's colour (or its synonym) somewhere.
        assert len(row["caption"]) == 2
        for attr in ("colour", "shape"):
            assert all(any(w in cap for w in WORDS[row[attr]]) for cap in row["caption"])
        assert row["split"] in ("train", "test")


def test_cli_sample_data(tmp_path):
    result = CliRunner().invoke(cli, ["sample-data", str(tmp_path / "d"), "--n", "2",
                                      "--seconds", "0.5", "--format", "csv", "--size", "64x48"])
    assert result.exit_code == 0, result.output
    manifest = tmp_path / "d" / "manifest.csv"
    assert manifest.is_file() and len(manifest.read_text().splitlines()) == 3
    bad = CliRunner().invoke(cli, ["sample-data", str(tmp_path / "e"), "--size", "64-48"])
    assert bad.exit_code == 2 and "WIDTHxHEIGHT" in bad.output
