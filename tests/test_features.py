"""The feature cache: whole-file and incremental writing, merging, reading back."""

from __future__ import annotations

import numpy as np
import pytest

from mmprep.errors import MmprepError
from mmprep.features import (
    FeatureSet,
    FeatureWriter,
    Modality,
    ModalitySpec,
    merge_features,
    read_features,
    read_keys,
    read_layout,
    write_features,
)

ATTRS = {"encoder": "x", "weights_sha256": "ab", "preprocessing_hash": "cd",
         "preprocessing": {"size": 8}}


def specs(tokens: int | None = None) -> dict[str, ModalitySpec]:
    return {
        "video": ModalitySpec(dim=3, tokens=tokens, attrs=ATTRS),
        "audio": ModalitySpec(dim=2, mask=True, attrs=ATTRS),
        "text": ModalitySpec(dim=4, item_level=True, captions=True, attrs=ATTRS),
    }


def batch(keys: list[str], seed: int, tokens: int | None = None) -> dict:
    rng = np.random.default_rng(seed)
    n = len(keys)
    owners = np.repeat(np.arange(n), 2)
    return {
        "keys": keys, "split": ["train"] * n,
        "data": {"video": rng.random((n, 3)), "audio": rng.random((n, 2)),
                 "text": rng.random((2 * n, 4))},
        "masks": {"audio": np.arange(n) % 2 == 0},
        "owners": {"text": owners},
        "captions": {"text": [f"{k} caption {j}" for k in keys for j in range(2)]},
        "tokens": {"video": rng.random((n, tokens, 3))} if tokens else {},
    }


def write(path, batches: list[dict], tokens: int | None = None):
    with FeatureWriter(path, specs(tokens), attrs={"note": "t"}) as w:
        for b in batches:
            w.append(b["keys"], b["split"], b["data"], masks=b["masks"], owners=b["owners"],
                     captions=b["captions"], tokens=b["tokens"])
    return path


def test_writer_appends_batches_and_reads_back(tmp_path):
    b1, b2 = batch(["a", "b"], 0, tokens=2), batch(["c"], 1, tokens=2)
    path = write(tmp_path / "f.h5", [b1, b2], tokens=2)
    assert not (tmp_path / "f.h5.tmp").exists()
    fs = read_features(path)
    assert fs.keys == ["a", "b", "c"]
    np.testing.assert_allclose(fs.modalities["video"].data,
                               np.concatenate([b1["data"]["video"], b2["data"]["video"]]),
                               rtol=1e-6)
    assert fs.modalities["video"].data.dtype == np.float32
    # Owners of the second batch are shifted to its clip rows.
    assert fs.modalities["text"].owner.tolist() == [0, 0, 1, 1, 2, 2]
    assert fs.modalities["text"].captions[4] == "c caption 0"
    assert fs.modalities["audio"].mask.tolist() == [True, False, True]
    assert fs.modalities["audio"].attrs["encoder"] == "x"
    assert fs.attrs["format"] == "mmprep-features" and fs.attrs["note"] == "t"
    layout = read_layout(path)
    assert layout["rows"] == 3 and layout["modalities"]["video"]["tokens"] == 2
    assert layout["modalities"]["text"]["item_level"] is True


def test_writer_failure_leaves_no_file(tmp_path):
    path = tmp_path / "f.h5"
    with pytest.raises(MmprepError, match="duplicate key"):
        write(path, [batch(["a", "b"], 0), batch(["b"], 1)])
    assert not path.exists() and not (tmp_path / "f.h5.tmp").exists()
    with pytest.raises(MmprepError, match="owners"):
        b = batch(["a"], 0)
        b["owners"]["text"] = np.array([0, 3])
        write(path, [b])


def test_merge_keeps_order_and_remaps_owners(tmp_path):
    p1 = write(tmp_path / "p1.h5", [batch(["a", "b"], 0)])
    p2 = write(tmp_path / "p2.h5", [batch(["c"], 1), batch(["d"], 2)])
    out = merge_features([p1, p2], tmp_path / "all.h5", attrs={"who": "merge"})
    fs = read_features(out)
    assert fs.keys == ["a", "b", "c", "d"]
    assert fs.modalities["text"].owner.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert fs.modalities["text"].captions == [f"{k} caption {j}" for k in "abcd"
                                             for j in range(2)]
    ref = read_features(p2)
    np.testing.assert_array_equal(fs.modalities["text"].data[4:], ref.modalities["text"].data)
    assert fs.attrs["who"] == "merge" and "note" not in fs.attrs
    with pytest.raises(MmprepError, match="in both"):
        merge_features([p1, p1], tmp_path / "dup.h5")
    # The merged file can be a source of the next merge (written to a temporary first).
    p3 = write(tmp_path / "p3.h5", [batch(["e"], 3)])
    merge_features([out, p3], out)
    assert read_keys(out) == ["a", "b", "c", "d", "e"]


def test_merge_refuses_different_encoders(tmp_path):
    p1 = write(tmp_path / "p1.h5", [batch(["a"], 0)])
    other = specs()
    other["video"] = ModalitySpec(dim=3, attrs={**ATTRS, "encoder": "y"})
    with FeatureWriter(tmp_path / "p2.h5", other) as w:
        b = batch(["b"], 1)
        w.append(b["keys"], b["split"], b["data"], masks=b["masks"], owners=b["owners"],
                 captions=b["captions"])
    with pytest.raises(MmprepError, match="cannot merge"):
        merge_features([p1, tmp_path / "p2.h5"], tmp_path / "x.h5")


def test_write_features_still_works(tmp_path):
    fs = FeatureSet(keys=["a", "b"], split=np.array(["train", "test"]), modalities={
        "video": Modality(np.ones((2, 3)), attrs={"encoder": "e"}),
        "text": Modality(np.zeros((3, 2)), owner=np.array([0, 1, 1]), captions=["x", "y", "z"]),
    })
    path = write_features(tmp_path / "w.h5", fs)
    back = read_features(path)
    assert back.keys == ["a", "b"] and back.rows("test").tolist() == [1]
    assert back.modalities["text"].owner.tolist() == [0, 1, 1]
    assert read_layout(path)["modalities"]["video"]["attrs"]["encoder"] == "e"
