"""Captions: Unicode clean-up and tokenization with HF ``tokenizers``.

Tokenizers are named by spec strings, resolved by the ``TOKENIZERS`` registry:

- ``bert-base-uncased`` (aliases ``bert``, ``minilm``): the BERT uncased WordPiece vocab
  shipped inside mmprep (identical to the one of all-MiniLM-L6-v2);
- ``clip``: the CLIP byte-level BPE, built from the vocab file ``open_clip_torch`` ships;
- ``PATH/tokenizer.json`` or ``PATH/vocab.txt`` or a folder holding one of them (``hf:DIR``
  is accepted too).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

from mmprep.errors import ConfigError, SampleError


@dataclass
class TextConfig:
    """Caption clean-up and tokenization options."""

    enabled: bool = True
    tokenizer: str = "bert-base-uncased"
    max_length: int = 40  # tokens per caption, special tokens included
    normalize: Literal["NFC", "NFKC", "none"] = "NFC"
    lowercase: bool | None = None  # None: the tokenizer's own convention
    attention_mask: bool = True  # also write KEY.mask.npy
    max_captions: int | None = None  # keep at most this many captions per clip
    max_chars: int = 10000  # longer captions are cut (and a warning recorded)
    missing: Literal["error", "keep"] = "error"  # clip with no non-empty caption

    def __post_init__(self) -> None:
        if self.max_length < 2:
            raise ValueError("max_length must be >= 2")
        if self.max_captions is not None and self.max_captions < 1:
            raise ValueError("max_captions must be >= 1")
        if self.max_chars < 1:
            raise ValueError("max_chars must be >= 1")


_WS = re.compile(r"\s+")
_CONTROL = ("Cc", "Zl", "Zp")  # control characters and line/paragraph separators


def clean_caption(text: str, cfg: TextConfig) -> tuple[str, list[str]]:
    """Normalise one caption; returns the text and warnings about what was changed."""
    warnings: list[str] = []
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        # Bytes that were not valid UTF-8 (read with surrogateescape).
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        warnings.append("invalid UTF-8 bytes replaced with U+FFFD")
    if cfg.normalize != "none":
        text = unicodedata.normalize(cfg.normalize, text)
    text = "".join(" " if unicodedata.category(ch) in _CONTROL else ch for ch in text)
    text = _WS.sub(" ", text).strip()
    if len(text) > cfg.max_chars:
        warnings.append(f"caption cut from {len(text)} to {cfg.max_chars} characters")
        text = text[: cfg.max_chars]
    if cfg.lowercase:
        text = text.lower()
    return text, warnings


def clean_captions(captions: list[str], cfg: TextConfig) -> tuple[list[str], list[str]]:
    """Clean, drop empty ones, cap the count; raises if none is left and missing=error."""
    out: list[str] = []
    warnings: list[str] = []
    for i, raw in enumerate(captions):
        text, warn = clean_caption(raw, cfg)
        warnings.extend(f"caption {i}: {w}" for w in warn)
        if text:
            out.append(text)
        else:
            warnings.append(f"caption {i}: empty after clean-up, dropped")
    if cfg.max_captions is not None and len(out) > cfg.max_captions:
        out = out[: cfg.max_captions]
    if not out and cfg.missing == "error":
        raise SampleError("text", "no non-empty caption (text.missing=keep keeps such clips)")
    return out, warnings


@dataclass
class Tokenized:
    ids: np.ndarray  # (n_captions, max_length) int32
    mask: np.ndarray  # (n_captions, max_length) uint8
    truncated: list[bool]


class CaptionTokenizer:
    """A ``tokenizers.Tokenizer`` configured for fixed-length, padded output."""

    def __init__(self, tok, name: str, pad_id: int, max_length: int):
        self.tok = tok
        self.name = name
        self.pad_id = pad_id
        self.max_length = max_length
        tok.no_truncation()
        tok.no_padding()

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    def __call__(self, captions: list[str]) -> Tokenized:
        n, length = len(captions), self.max_length
        ids = np.full((n, length), self.pad_id, dtype=np.int32)
        mask = np.zeros((n, length), dtype=np.uint8)
        truncated = []
        for i, enc in enumerate(self.tok.encode(c) for c in captions):
            row = enc.ids
            if len(row) > length:
                # Keep the final special token (SEP / end-of-text) when cutting.
                specials = enc.special_tokens_mask
                tail = row[-1:] if specials and specials[-1] else []
                row = row[: length - len(tail)] + tail
                truncated.append(True)
            else:
                truncated.append(False)
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return Tokenized(ids=ids, mask=mask, truncated=truncated)

    def decode(self, ids, mask=None) -> str:
        """Text of one row of ids (padding dropped by ``mask``, or trailing pad ids)."""
        ids = [int(t) for t in np.asarray(ids).reshape(-1)]
        if mask is not None:
            ids = [t for t, m in zip(ids, np.asarray(mask).reshape(-1)) if m]
        else:
            while ids and ids[-1] == self.pad_id:
                ids.pop()
        return self.tok.decode(ids, skip_special_tokens=True)


def _packaged_vocab() -> Path:
    return Path(str(resources.files("mmprep") / "assets" / "bert-base-uncased-vocab.txt"))


@functools.lru_cache(maxsize=8)
def _wordpiece(vocab: Path, lowercase: bool):
    """A WordPiece tokenizer of ``vocab`` (loaded once per process: ``CaptionTokenizer``
    only turns truncation and padding off, so every caller may share it)."""
    from tokenizers import BertWordPieceTokenizer

    return BertWordPieceTokenizer(
        str(vocab), lowercase=lowercase, clean_text=True, handle_chinese_chars=True,
        strip_accents=None,
    )._tokenizer


def _bert(spec: str, lowercase: bool | None):
    return _wordpiece(_packaged_vocab(), True if lowercase is None else lowercase), "[PAD]"


def _clip(spec: str, lowercase: bool | None):
    try:
        import open_clip
    except ImportError as exc:
        raise ConfigError(
            "tokenizer 'clip' needs the CLIP BPE vocab shipped by open_clip_torch: "
            "pip install 'mmprep[clip]'"
        ) from exc
    vocab = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    return build_clip_bpe(vocab), None


def _from_path(spec: str, lowercase: bool | None):
    from tokenizers import Tokenizer

    path = Path(spec.removeprefix("hf:")).expanduser()
    if path.is_dir():
        for name in ("tokenizer.json", "vocab.txt"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise ConfigError(f"no tokenizer.json or vocab.txt in {path}")
    if not path.is_file():
        raise ConfigError(
            f"unknown tokenizer {spec!r}: not a registered name ({', '.join(TOKENIZERS)}) "
            "and no such file; give a tokenizer.json, a vocab.txt or a folder with one"
        )
    if path.suffix == ".json":
        tok = Tokenizer.from_file(str(path))
        pad = tok.padding["pad_token"] if tok.padding else None
        return tok, pad
    return _wordpiece(path, True if lowercase is None else lowercase), "[PAD]"


TOKENIZERS: dict[str, Callable] = {
    "bert-base-uncased": _bert,
    "bert": _bert,
    "minilm": _bert,
    "clip": _clip,
}


@functools.lru_cache(maxsize=8)
def get_tokenizer(
    spec: str, max_length: int = 40, lowercase: bool | None = None
) -> CaptionTokenizer:
    """Resolve a tokenizer spec (see module docs) into a ready ``CaptionTokenizer``."""
    factory = TOKENIZERS.get(spec, _from_path)
    tok, pad_token = factory(spec, lowercase)
    pad_id = 0
    if pad_token is not None and tok.token_to_id(pad_token) is not None:
        pad_id = tok.token_to_id(pad_token)
    return CaptionTokenizer(tok, spec, pad_id, max_length)


def tokenize(captions: list[str], cfg: TextConfig) -> Tokenized:
    """Token ids and masks of ``captions``, one row each.

    Args:
        captions: the (cleaned) captions.
        cfg: the tokenizer, its length and casing.
    """
    return get_tokenizer(cfg.tokenizer, cfg.max_length, cfg.lowercase)(captions)


# -- CLIP byte-level BPE -----------------------------------------------------------------

_CLIP_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def build_clip_bpe(vocab_gz: Path):
    """The CLIP tokenizer (lower-cased byte-level BPE, 49408 tokens) as a ``Tokenizer``."""
    import gzip

    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    with gzip.open(vocab_gz) as fh:
        lines = fh.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    units = list(_bytes_to_unicode().values())
    vocab = units + [u + "</w>" for u in units] + ["".join(m) for m in merges]
    vocab += ["<start_of_text>", "<end_of_text>"]
    model = models.BPE(
        vocab={v: i for i, v in enumerate(vocab)},
        merges=merges,
        end_of_word_suffix="</w>",
        continuing_subword_prefix="",
        fuse_unk=False,
    )
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.Sequence(
        [decoders.ByteLevel(), decoders.Replace("</w>", " "), decoders.Strip(" ", 0, 1)]
    )
    sot, eot = len(vocab) - 2, len(vocab) - 1
    tok.add_special_tokens(["<start_of_text>", "<end_of_text>"])
    tok.post_processor = TemplateProcessing(
        single="<start_of_text> $A <end_of_text>",
        special_tokens=[("<start_of_text>", sot), ("<end_of_text>", eot)],
    )
    return tok
