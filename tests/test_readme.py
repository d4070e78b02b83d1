"""The README's Python examples run as written (in a folder holding the tour's inputs)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def block_using(*needles: str) -> str:
    found = [b for b in python_blocks() if all(n in b for n in needles)]
    assert len(found) == 1, f"expected one README block with {needles}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    """What the 5-minute tour leaves behind: demo/raw and a 15 s clip.mp4 with sound."""
    from mmprep.synthetic.clips import write_sample_data
    from mmprep.synthetic.media import encode_clip, tone

    folder = tmp_path_factory.mktemp("readme")
    write_sample_data(folder / "demo" / "raw", 8, seconds=1.0, fps=8)
    frames = [np.full((48, 64, 3), (7 * i) % 255, np.uint8) for i in range(15 * 8)]
    encode_clip(folder / "clip.mp4", frames, fps=8, audio=tone(15.0))
    return folder


def test_every_python_block_is_covered():
    assert len(python_blocks()) == 6


def test_readme_python_examples_run_in_order(tour, monkeypatch):
    monkeypatch.chdir(tour)
    order = [block_using("mmprep.run_extract", "run_chain"),  # writes demo/shards, demo/chain
             block_using("from mmprep.loader import"),          # reads demo/shards
             block_using("EmbedOptions(resume=True)"),          # writes demo/features.h5
             block_using("import webdataset as wds"),           # reads both
             block_using('attrs["preprocessing_hash"]'),
             block_using("a minimal feature cache", "text_owner")]  # writes minimal.h5
    assert sorted(order) == sorted(python_blocks())
    for code in order:
        namespace: dict = {"__name__": "readme"}
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    assert (tour / "demo" / "chain" / "results.json").is_file()
    assert (tour / "demo" / "features.h5").is_file()
    from mmprep.features.source import FeatureSource

    with FeatureSource(tour / "minimal.h5") as src:  # the minimal schema reads as a cache
        assert sorted(src.modalities) == ["audio", "text", "video"] and len(src) == 64
        assert 0 < src.has("audio").sum() < 64 and src.split_counts() == {"test": 16,
                                                                          "train": 48}
