"""Shared fixtures: small media generated once per session under pytest's tmp dir."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config, items):
    """GPU tests skip on CPU machines, unless MMPREP_REQUIRE_GPU=1 makes them fail."""
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        has_gpu = False
    if has_gpu or os.environ.get("MMPREP_REQUIRE_GPU") == "1":
        return
    skip = pytest.mark.skip(reason="no CUDA device (set MMPREP_REQUIRE_GPU=1 to fail instead)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def indexed_clip(media_dir):
    """10 s, 24 fps, 128x96 H.264 + AAC; frame i shows code i; keyframe every 24 frames."""
    from mmprep.synthetic.media import make_indexed_clip

    return make_indexed_clip(media_dir / "indexed.mp4", 240, fps=24, gop=24)


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory):
    from mmprep.synthetic.clips import write_sample_data

    out = tmp_path_factory.mktemp("sample_data")
    return write_sample_data(out, 6, seed=1, seconds=1.0, fps=8)
