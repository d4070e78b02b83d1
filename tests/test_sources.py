"""Manifests to samples: formats, paths, keys, grouping, bad rows."""

from __future__ import annotations

import gzip
import io
import json
import sys

import pytest

from mmprep.errors import MmprepError, UsageError
from mmprep.manifest import Columns, read_manifest, sanitize_key


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_list_captions_and_extra_columns(tmp_path):
    m = write(tmp_path / "m.csv",
              'video,caption,split,label\n'
              'a.mp4,"[""one"", ""two""]",train,7\n'
              'sub/b.mp4,single caption,test,8\n')
    samples = read_manifest(m)
    assert [s.key for s in samples] == ["a", "b"]
    assert samples[0].captions == ["one", "two"]
    assert samples[1].captions == ["single caption"]
    assert samples[0].source == str(tmp_path / "a.mp4")
    assert samples[1].source == str(tmp_path / "sub" / "b.mp4")
    assert samples[0].split == "train" and samples[0].meta == {"label": "7"}


def test_tsv_jsonl_json_and_gzip_agree(tmp_path):
    rows = [{"video": "x.mp4", "caption": ["hi there"], "key": "k1"},
            {"video": "y.mp4", "caption": "bye", "key": "k2"}]
    write(tmp_path / "m.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    write(tmp_path / "m.json", json.dumps(rows))
    write(tmp_path / "m.tsv", 'video\tcaption\tkey\nx.mp4\t["hi there"]\tk1\ny.mp4\tbye\tk2\n')
    (tmp_path / "m.jsonl.gz").write_bytes(gzip.compress((tmp_path / "m.jsonl").read_bytes()))
    results = [
        [(s.key, s.source, s.captions) for s in read_manifest(tmp_path / name)]
        for name in ("m.jsonl", "m.json", "m.tsv", "m.jsonl.gz")
    ]
    assert all(r == results[0] for r in results)
    assert results[0][0] == ("k1", str(tmp_path / "x.mp4"), ["hi there"])


def test_stdin_manifest_resolves_against_cwd(tmp_path, monkeypatch):
    data = b'{"video": "clip.mp4", "caption": "a caption"}\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    monkeypatch.chdir(tmp_path)
    samples = read_manifest("-")
    assert samples[0].source == str(tmp_path / "clip.mp4")
    assert samples[0].key == "clip"


def test_folder_with_sidecar_captions(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "a.txt").write_text("first caption\n\nsecond caption\n")
    (tmp_path / "sub" / "b.webm").write_bytes(b"")
    (tmp_path / "notes.md").write_text("ignored")
    samples = read_manifest(tmp_path)
    assert [s.key for s in samples] == ["a", "sub_b"]
    assert samples[0].captions == ["first caption", "second caption"]
    assert samples[1].captions == []


def test_keys_are_sanitised():
    for raw in ["../../etc/passwd", "a.b.c", ".hidden", "with space", "ünïcödé", "a/b\\c",
                "ctrl\x00\x1b[31m", "-rf", "", "x" * 500, "日本"]:
        key = sanitize_key(raw)
        assert key and "/" not in key and "." not in key and ".." not in key
        assert not key.startswith(("-", ".")) and len(key) <= 120
        assert all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    assert sanitize_key("a.b") == "a_b"
    assert sanitize_key("x" * 500) != sanitize_key("x" * 499 + "y")


def test_colliding_keys_get_suffixes(tmp_path):
    m = write(tmp_path / "m.jsonl",
              '{"video": "d1/v.mp4", "caption": "a"}\n'
              '{"video": "d2/v.mp4", "caption": "b"}\n'
              '{"video": "d3/v.mp4", "caption": "c"}\n')
    assert [s.key for s in read_manifest(m)] == ["v", "v-1", "v-2"]


def test_rows_of_the_same_clip_are_merged(tmp_path):
    m = write(tmp_path / "m.csv",
              "key,video,caption\nv1,v1.mp4,a dog\nv2,v2.mp4,a cat\nv1,v1.mp4,a puppy\n")
    samples = read_manifest(m)
    assert [(s.key, s.captions, s.lines) for s in samples] == [
        ("v1", ["a dog", "a puppy"], [2, 4]), ("v2", ["a cat"], [3])]


def test_duplicate_key_for_another_video_is_an_error_record(tmp_path):
    m = write(tmp_path / "m.csv", "key,video,caption\nv1,a.mp4,x\nv1,b.mp4,y\n")
    samples = read_manifest(m)
    assert len(samples) == 2
    assert samples[0].error is None
    assert "duplicate key 'v1'" in samples[1].error


def test_start_end_make_distinct_clip_keys(tmp_path):
    m = write(tmp_path / "m.csv",
              "video,caption,start,end\nlong.mp4,a,0,5\nlong.mp4,b,5,10.5\nlong.mp4,c,,\n")
    samples = read_manifest(m)
    assert [s.key for s in samples] == ["long_0-5000", "long_5000-10500", "long"]
    assert (samples[1].start, samples[1].end) == (5.0, 10.5)
    assert samples[2].start is None


def test_bad_rows_become_error_samples(tmp_path):
    m = write(tmp_path / "m.jsonl",
              '{"video": "ok.mp4", "caption": "fine"}\n'
              'this is not json\n'
              '{"caption": "no video"}\n'
              '{"video": "t.mp4", "start": "abc"}\n'
              '{"video": "t.mp4", "start": 5, "end": 2}\n'
              '[1, 2]\n')
    samples = read_manifest(m)
    assert len(samples) == 6
    assert samples[0].error is None
    messages = [s.error for s in samples[1:]]
    assert all(messages)
    assert "invalid JSON" in messages[0] and "line 2" in messages[0]
    assert "no media path" in messages[1]
    assert "not a number" in messages[2]
    assert "must be after" in messages[3]
    assert "expected a JSON object" in messages[4]
    assert len({s.key for s in samples}) == 6


def test_non_utf8_caption_survives_to_the_text_stage(tmp_path):
    m = tmp_path / "m.csv"
    m.write_bytes(b"video,caption\na.mp4,caf\xe9 noir\n")
    samples = read_manifest(m)
    assert samples[0].captions[0].encode("utf-8", "surrogateescape") == b"caf\xe9 noir"


def test_custom_columns_and_root(tmp_path):
    m = write(tmp_path / "m.csv", "clip_path,sentence,vid\nx.mp4,hello,id_9\n")
    samples = read_manifest(m, root="/data", columns=Columns(video="clip_path", key="vid"))
    assert samples[0].source == "/data/x.mp4"
    assert samples[0].key == "id_9" and samples[0].captions == ["hello"]


def test_urls_are_kept_as_is(tmp_path):
    m = write(tmp_path / "m.csv", "video,caption\nhttps://example.org/v/clip.mp4?x=1,hi\n")
    s = read_manifest(m)[0]
    assert s.source == "https://example.org/v/clip.mp4?x=1" and s.key == "clip"


def test_missing_manifest_and_empty_folder(tmp_path):
    with pytest.raises(MmprepError, match="cannot read manifest"):
        read_manifest(tmp_path / "nope.csv")
    with pytest.raises(MmprepError, match="no media files"):
        read_manifest(tmp_path)


# -- one path per line, unusable manifests, keys as given ----------------------------

def test_path_per_line_is_a_manifest_format(tmp_path):
    (tmp_path / "clips").mkdir()
    paths = [tmp_path / "clips" / f"c{i}.mp4" for i in range(3)]
    listing = write(tmp_path / "list", "".join(f"{p}\n" for p in paths) + "\n")
    for fmt in (None, "txt"):  # sniffed from the content, or asked for
        samples = read_manifest(listing, fmt=fmt)
        assert [s.key for s in samples] == ["c0", "c1", "c2"]
        assert [s.source for s in samples] == [str(p) for p in paths]
        assert all(s.error is None and s.captions == [] for s in samples)
    relative = write(tmp_path / "rel.txt", "clips/c0.mp4\nhttps://example.org/a/b.webm?x=1\n")
    samples = read_manifest(relative)
    assert samples[0].source == str(tmp_path / "clips" / "c0.mp4")
    assert samples[1].source == "https://example.org/a/b.webm?x=1" and samples[1].key == "b"


def test_path_per_line_on_stdin(tmp_path, monkeypatch):
    data = b"a.mp4\nsub/b.mkv\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    monkeypatch.chdir(tmp_path)
    samples = read_manifest("-")
    assert [s.key for s in samples] == ["a", "b"]
    assert samples[1].source == str(tmp_path / "sub" / "b.mkv")


def test_csv_with_a_header_is_not_mistaken_for_a_path_list(tmp_path):
    m = write(tmp_path / "m", "video,caption\nx.mp4,hello\n")
    (s,) = read_manifest(m)
    assert s.key == "x" and s.captions == ["hello"]


@pytest.mark.parametrize("content, reason", [
    (b"video,caption\n", "holds no samples"),
    (b"", "holds no samples"),
    (b"\n\n  \n", "holds no samples"),
    (bytes(range(256)) * 8, "not a text file"),
    (b"\x89PNG\r\n\x1a\n" + bytes(200), "not a text file"),
    (b"[1, 2", "not valid JSON"),
    (b"\x1f\x8b\x08\x00broken", "broken gzip"),
    (b"PAR1 not really parquet PAR1", "Parquet"),
])
def test_unusable_manifests_are_usage_errors(tmp_path, content, reason):
    m = tmp_path / "manifest"
    m.write_bytes(content)
    with pytest.raises(UsageError, match=reason):
        read_manifest(m)


def test_missing_manifest_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read manifest"):
        read_manifest(tmp_path / "nope.csv")


def test_safe_keys_are_kept_as_given(tmp_path):
    # 'a.b' cleans to 'a_b', which another row gives explicitly: the given key wins
    m = write(tmp_path / "m.jsonl",
              '{"key": "a.b", "video": "1.mp4"}\n'
              '{"key": "a_b", "video": "2.mp4"}\n'
              '{"video": "d/a_b.mp4"}\n'
              '{"key": "Clip-07_x", "video": "3.mp4"}\n')
    assert [s.key for s in read_manifest(m)] == ["a_b-1", "a_b", "a_b-2", "Clip-07_x"]
