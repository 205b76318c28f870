"""Reuse the KV cache of the last text prompt for the next one's common token prefix.

Every Task-3 prompt is the same ~310-token Figure-3 instruction with a different short prompt near the
end. Prefilling it for 3 sampled candidates costs seconds on a 2-core CPU (measured: 2-8 s under load),
most of the demo's time to first token; with the shared prefix cached, a request prefills only its own
~20 tokens, once, and the cache is repeated per candidate.

Text-only LMs with plain dynamic caches only (video LMs carry pixel inputs and multimodal positions;
sliding-window or linear-attention caches cannot be cropped back to a prefix).
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

#: Longer prompts (judge prompts around a long text) are not cached: one entry would hold their whole KV.
MAX_CACHED_TOKENS = 1024


class PrefixCache:
    """The cache of one prompt (minus its last token) and its token ids; thread-safe."""

    def __init__(self, model: Any, max_tokens: int = MAX_CACHED_TOKENS) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.supported = True
        """False once a model's cache proved not croppable (then callers stop asking)."""
        self.ids: list[int] = []
        self.cache: DynamicCache | None = None
        self.reused = 0
        """Tokens taken from the cache by the last `prefill` (for tests and benches)."""
        self._lock = threading.Lock()

    @torch.inference_mode()
    def prefill(self, input_ids: torch.Tensor) -> DynamicCache | None:
        """A fresh cache holding input_ids (1, L) minus the last token, or None when it cannot be cached
        (too long, or a cache type that cannot be cropped: then `supported` turns False).

        generate() then runs only the last prompt token (cache_position starts at L - 1).
        """
        ids = input_ids[0, :-1].tolist()
        if len(ids) > self.max_tokens:
            return None
        with self._lock:
            common = _common_prefix(ids, self.ids) if self.cache is not None else 0
            if self.cache is not None and common:
                cache = _cropped(self.cache, common)
            else:
                cache = DynamicCache(config=self.model.config)
            rest = input_ids[:, common:-1]
            if rest.shape[1]:
                self.model(input_ids=rest, past_key_values=cache, use_cache=True)
            if not _croppable(cache):
                self.ids, self.cache, self.supported = [], None, False
                return None
            self.ids, self.cache, self.reused = ids, copy.deepcopy(cache), common
            return cache

    @torch.inference_mode()
    def prefix(self, ids: list[int]) -> DynamicCache | None:
        """A fresh cache holding exactly `ids` (the tokens every row of a batch starts with), or None where
        it cannot be cached. Rows then differ only after it: see `shared_prefix_batch`."""
        if not ids:
            return None
        return self.prefill(torch.tensor([[*ids, ids[-1]]], dtype=torch.long, device=self.model.device))


def _cropped(cache: DynamicCache, length: int) -> DynamicCache:
    """A copy of `cache` holding its first `length` tokens."""
    cache = copy.deepcopy(cache)
    extra = cache.get_seq_length() - length
    if extra:
        cache.crop(-extra)
    return cache


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _croppable(cache: Any) -> bool:
    """Only plain full-attention dynamic layers keep every position, so a prefix can be cut back out."""
    return isinstance(cache, DynamicCache) and all(type(layer) is DynamicLayer for layer in cache.layers)


def common_prefix_length(rows: list[list[int]]) -> int:
    """Tokens every row starts with, leaving each row at least one token of its own (generate() must
    run the last prompt token to produce the first new one)."""
    n = min(len(r) for r in rows) - 1
    first = rows[0]
    for row in rows[1:]:
        n = min(n, _common_prefix(first, row))
    return max(0, n)


def shared_prefix_batch(rows: list[list[int]], pad_id: int) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """(prefix ids, input_ids (B, P + S), attention_mask (B, P + S)) for prompts that share a prefix.

    Layout: [prefix (P) | left padding | row suffix], so the prefix sits at the same columns in every row
    and one cache of it serves the batch; the mask zeroes the padding between prefix and suffix, and the
    positions (attention_mask.cumsum - 1, as generate() computes them) skip it, so each row reads
    exactly its own prompt. Plain left padding would shift the prefix by each row's padding.
    """
    p = common_prefix_length(rows)
    suffixes = [r[p:] for r in rows]
    width = max(len(s) for s in suffixes)
    ids = torch.full((len(rows), p + width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), p + width), dtype=torch.long)
    for i, s in enumerate(suffixes):
        ids[i, :p] = torch.tensor(rows[i][:p], dtype=torch.long)
        ids[i, p + width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, :p] = 1
        mask[i, p + width - len(s) :] = 1
    return rows[0][:p], ids, mask
