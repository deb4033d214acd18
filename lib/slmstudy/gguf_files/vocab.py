"""A byte-level BPE vocabulary of the config's size, for llama.cpp's "gpt2" tokenizer.

The study feeds prompts as token ids, so the vocabulary only has to load (llama.cpp
``llama_vocab::impl::load``: ``tokenizer.ggml.model``, ``.pre``, ``.tokens``,
``.token_type``, ``.merges`` are read, tokens must be unique, their count must be
the embedding's row count) and detokenize. It is built to be a *consistent* BPE
vocabulary all the same, with about as many entries as the real one, so that the
metadata weighs about what the real file's does:

* ids 0..255: the 256 byte-level symbols of GPT-2's ``bytes_to_unicode`` (id = byte);
* then filler words over a..z, shortest first (aa, ab, ..., zzz, aaaa, ...), each
  made by one merge "<word minus last letter> <last letter>" of two earlier tokens,
  so every merge is valid and text tokenizes;
* from the first bos/eos id of config.json to the end: control tokens, with the
  family's real names where the study knows them (so llama.cpp finds the
  end-of-generation tokens by name, as it does for real files).

Qwen2's real vocabulary is exactly this shape (256 bytes + 151,387 merges =
151,643 ordinary tokens, then the specials and padding up to 151,936).
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gguf import GGUFWriter, TokenType

# Per family: tokenizer.ggml.pre (llama-vocab.cpp maps both to their real
# pre-tokenizers), whether llama.cpp should add BOS, and real special-token names.
_FAMILIES: dict[str, dict[str, Any]] = {
    "qwen2": {
        "pre": "qwen2",
        "add_bos": False,
        "specials": {151643: "<|endoftext|>", 151644: "<|im_start|>", 151645: "<|im_end|>"},
    },
    "llama": {
        "pre": "llama-bpe",
        "add_bos": True,
        "specials": {128000: "<|begin_of_text|>", 128001: "<|end_of_text|>",
                     128006: "<|start_header_id|>", 128007: "<|end_header_id|>",
                     128008: "<|eom_id|>", 128009: "<|eot_id|>"},
    },
}


@dataclass(frozen=True)
class Vocab:
    pre: str
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    bos_id: int
    eos_id: int
    add_bos: bool

    def add_to(self, writer: GGUFWriter) -> None:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(self.pre)
        writer.add_token_list(self.tokens)
        writer.add_token_types(self.token_types)
        writer.add_token_merges(self.merges)
        writer.add_bos_token_id(self.bos_id)
        writer.add_eos_token_id(self.eos_id)
        writer.add_add_bos_token(self.add_bos)


def byte_symbols() -> list[str]:
    """GPT-2's bytes_to_unicode, indexed by byte: printable Latin-1 bytes stand for
    themselves, the others are shifted to U+0100 onwards in byte order."""
    printable = set(range(ord("!"), ord("~") + 1)) | set(range(ord("¡"), ord("¬") + 1)) | set(range(ord("®"), ord("ÿ") + 1))
    out, shifted = [], 0
    for b in range(256):
        if b in printable:
            out.append(chr(b))
        else:
            out.append(chr(256 + shifted))
            shifted += 1
    return out


def _filler_words() -> Iterator[str]:
    for length in itertools.count(2):
        for letters in itertools.product(string.ascii_lowercase, repeat=length):
            yield "".join(letters)


def build_vocab(cfg: dict[str, Any]) -> Vocab:
    family = cfg["model_type"]
    if family not in _FAMILIES:
        raise ValueError(f"no vocabulary recipe for model_type {family!r}; known: {', '.join(_FAMILIES)}")
    fam = _FAMILIES[family]
    size = int(cfg["vocab_size"])
    eos = cfg["eos_token_id"]
    eos_ids = [int(e) for e in (eos if isinstance(eos, list) else [eos])]
    bos_id = int(cfg["bos_token_id"])
    first_special = min([bos_id, *eos_ids])
    if not 256 < first_special < size:
        raise ValueError(f"special token ids {bos_id}, {eos_ids} leave no room for a vocabulary of {size}")

    tokens = byte_symbols()
    merges: list[str] = []
    for word in itertools.islice(_filler_words(), first_special - 256):
        tokens.append(word)
        merges.append(f"{word[:-1]} {word[-1]}")
    specials = fam["specials"]
    tokens += [specials.get(i, f"<|reserved_special_token_{i - first_special}|>") for i in range(first_special, size)]
    types = [int(TokenType.NORMAL)] * first_special + [int(TokenType.CONTROL)] * (size - first_special)
    if len(set(tokens)) != size:  # llama.cpp refuses duplicates
        raise AssertionError("generated vocabulary has duplicate tokens")
    return Vocab(pre=fam["pre"], tokens=tokens, token_types=types, merges=merges,
                 bos_id=bos_id, eos_id=eos_ids[0], add_bos=fam["add_bos"])
