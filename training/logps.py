"""Per-sequence log-probs for HDPO: every sequence of a micro-batch in one concatenated forward.

Batch layout (example-major, the order `Example.seqs` keeps):
    rows = [ex0.chosen, ex0.rejected_1..k, ex0.y_h, ex0.(x+H, y_g), ex0.task-displaced...,
            ex1.chosen, ...]                                                   S rows in all
engine.encoding.encode_for_logps builds each row as [prompt | response | <eos> | pad] (labels -100
outside the response); video rows carry their frames, text rows none. `align_responses` then shifts
every row right so all responses start at one column P:
    input_ids (S, L) = [pad ... | prompt_i | response_i | <eos> | pad ...],  L = P + R_max
so the LM head only runs on the last R_max + 1 positions (`logits_to_keep`): logits (S, R_max+1, V)
instead of (S, L, V) - a video prompt is hundreds of tokens, a response tens to hundreds, and the
vocabulary 150k wide. Summed response log-probs (S,) come from engine.encoding.gather_logps; the
PairIndex of each term then points into those S entries. Identical sequences are scored once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.encoding import IGNORE_INDEX, collate_for_logps, encode_prompt_part, gather_logps
from engine.models import LoadedModel
from engine.tasks import Request
from engine.types import VideoMeta
from training.config import TERMS
from training.data import Example, TrainSeq
from training.losses import PairIndex


@dataclass
class FlatBatch:
    """A micro-batch flattened: S unique sequences, their keys, and each term's pairs into them."""

    seqs: list[TrainSeq]
    keys: list[str]
    pairs: dict[str, PairIndex]
    anchor: PairIndex
    n_examples: int
    encoded: dict[str, torch.Tensor] | None = None
    """engine.encoding batch on CPU (input_ids, attention_mask, labels, video tensors), if pre-encoded."""


def _index(rows: list[tuple[int, int, int]]) -> PairIndex:
    t = torch.tensor(rows, dtype=torch.long).reshape(-1, 3)
    return PairIndex(pref=t[:, 0], disp=t[:, 1], example=t[:, 2])


def flatten(examples: list[Example]) -> FlatBatch:
    """Flatten examples into unique sequences (deduplicated by content key) and pair indices."""
    seqs: list[TrainSeq] = []
    keys: list[str] = []
    where: dict[str, int] = {}
    rows: dict[str, list[tuple[int, int, int]]] = {t: [] for t in TERMS}
    anchor: list[tuple[int, int, int]] = []
    for b, example in enumerate(examples):
        local = []
        for seq in example.seqs:
            key = seq.key()
            if key not in where:
                where[key] = len(seqs)
                seqs.append(seq)
                keys.append(key)
            local.append(where[key])
        for term, pref, disp in example.pairs:
            rows[term].append((local[pref], local[disp], b))
        anchor.append((local[0], local[0], b))
    pairs = {t: _index(r) for t, r in rows.items()}
    return FlatBatch(seqs, keys, pairs, _index(anchor), len(examples))


def to_request(seq: TrainSeq, frames_dir: Path) -> Request:
    frames = None
    meta = None
    if seq.video is not None:
        frames = np.load(frames_dir / seq.video)  # a writable copy: the processor wraps it in a tensor
        meta = VideoMeta(**seq.video_meta) if seq.video_meta else None
    return Request(task=seq.task, short_prompt=seq.short_prompt, frames=frames, video_meta=meta)


class PromptCache:
    """Encoded prompts (token ids + processed video tensors) by (task, short prompt, video file), LRU.

    An HDPO example's chosen, rejected and response-hallucinated sequences share one conditioning,
    so without this each micro-batch decodes and preprocesses the same frames several times, and
    every epoch tokenises everything again. max_items bounds memory: a processed 16-frame 448² video
    is ~77 MB of float32 patches, so the default keeps a few micro-batches' worth, not the dataset.
    """

    def __init__(self, max_items: int = 64) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple, dict[str, torch.Tensor]] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, lm: LoadedModel, seq: TrainSeq, frames_dir: Path) -> dict[str, torch.Tensor]:
        key = (seq.task, seq.short_prompt, seq.video)
        part = self._items.get(key)
        if part is not None:
            self.hits += 1
            self._items.move_to_end(key)
            return part
        self.misses += 1
        part = encode_prompt_part(lm, to_request(seq, frames_dir))
        self._items[key] = part
        if len(self._items) > self.max_items:
            self._items.popitem(last=False)
        return part


def encode(
    lm: LoadedModel, seqs: list[TrainSeq], frames_dir: Path, align: bool = True, cache: PromptCache | None = None
) -> dict[str, Any]:
    """The (S, L) log-prob batch, built on the CPU (DataLoader workers can run it).

    align=True gives the response-aligned layout plus `keep` (see the module docstring).
    cache: reuse encoded prompts across sequences, micro-batches and epochs (see PromptCache).
    """
    cpu_lm = replace(lm, model=None, device="cpu")
    cache = cache or PromptCache(max_items=len(seqs) + 1)  # at least: shared prompts within this batch
    parts = [cache.get(cpu_lm, s, frames_dir) for s in seqs]
    batch: dict[str, Any] = collate_for_logps(cpu_lm, parts, [s.response for s in seqs])
    if align:
        batch, keep = align_responses(batch, lm.tokenizer.pad_token_id)
        batch["keep"] = keep
    return batch


_ALIGN_KEYS = ("input_ids", "attention_mask", "labels", "mm_token_type_ids", "token_type_ids")


def align_responses(batch: dict[str, torch.Tensor], pad_id: int) -> tuple[dict[str, torch.Tensor], int]:
    """Left-pad prompts so every response starts at the same column; returns (batch, keep).

    keep = R_max + 1: the last `keep` positions hold every response token and the position that
    predicts its first token. Prompt start = first label position (labels are -100 on the prompt).
    """
    labels = batch["labels"]  # (S, L)
    is_resp = labels != IGNORE_INDEX
    lengths = batch["attention_mask"].sum(1)  # (S,) prompt + response tokens
    starts = is_resp.float().argmax(1)  # (S,) first response column
    prompt_max = int(starts.max())
    resp_max = int((lengths - starts).max())
    width = prompt_max + resp_max
    out = {}
    for key, value in batch.items():
        if key not in _ALIGN_KEYS:
            out[key] = value
            continue
        fill = pad_id if key == "input_ids" else (IGNORE_INDEX if key == "labels" else 0)
        new = torch.full((value.shape[0], width), fill, dtype=value.dtype)
        for i in range(value.shape[0]):
            shift = prompt_max - int(starts[i])
            n = int(lengths[i])
            new[i, shift : shift + n] = value[i, :n]
        out[key] = new
    return out, resp_max + 1


def forward_logps(model: Any, batch: dict[str, torch.Tensor], device: torch.device | str) -> torch.Tensor:
    """One forward over an encoded batch -> summed response log-probs (S,), float32.

    With a `keep` entry (from align_responses) only the last `keep` positions get logits.
    Differentiable unless called under torch.no_grad / inference_mode.
    """
    batch = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    labels = batch.pop("labels")
    keep = batch.pop("keep", None)
    if keep is None:
        return gather_logps(model(**batch, use_cache=False).logits, labels)  # logits (S, L, V)
    logits = model(**batch, use_cache=False, logits_to_keep=int(keep)).logits  # (S, keep, V)
    return gather_logps(logits, labels[:, -int(keep) :])


def sequence_logps(model: Any, lm: LoadedModel, seqs: list[TrainSeq], frames_dir: Path, device) -> torch.Tensor:
    """Encode + forward in one go: (S,)."""
    return forward_logps(model, encode(lm, seqs, frames_dir), device)
