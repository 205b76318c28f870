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
vocabulary 150k wide. Summed response log-probs (S,) come from `label_logps` (default): the LM head's
inputs (S, R_max+1, Hd) are scored in tiles of positions x vocabulary, forward and backward, so not even
the (S, R_max+1, V) logits exist (engine.encoding.gather_logps on the logits is the chunked=False path).
The PairIndex of each term then points into those S entries. Identical sequences are scored once.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.encoding import IGNORE_INDEX, collate_for_logps, encode_prompt_part, gather_logps
from engine.models import LoadedModel
from engine.tasks import Request
from engine.types import Task, VideoMeta
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
    rows: dict[str, list[tuple[int, int, int]]] = {t: [] for t in TERMS}  # + any other term (kto_kl)
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
            rows.setdefault(term, []).append((local[pref], local[disp], b))
        anchor.append((local[0], local[0], b))
    pairs = {t: _index(r) for t, r in rows.items()}
    return FlatBatch(seqs, keys, pairs, _index(anchor), len(examples))


def to_request(seq: TrainSeq, frames_dir: Path) -> Request:
    frames = None
    meta = None
    if seq.video is not None:
        frames = np.load(frames_dir / seq.video)  # a writable copy: the processor wraps it in a tensor
        meta = VideoMeta(**seq.video_meta) if seq.video_meta else None
    return Request(task=Task.parse(seq.task), short_prompt=seq.short_prompt, frames=frames, video_meta=meta)


class PromptCache:
    """Encoded prompts (token ids + processed video tensors) by (task, short prompt, video file), LRU.

    An HDPO example's chosen, rejected and response-hallucinated sequences share one conditioning,
    so without this each micro-batch decodes and preprocesses the same frames several times, and
    every epoch tokenises everything again. max_items bounds memory: a processed 16-frame 448² video
    is ~77 MB of float32 patches, so the default keeps a few micro-batches' worth, not the dataset.
    Thread-safe: prefetch workers (training.feed) share it; a prompt two workers miss at once is encoded
    twice (same result), never half-stored.
    """

    def __init__(self, max_items: int = 64) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple, dict[str, torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, lm: LoadedModel, seq: TrainSeq, frames_dir: Path) -> dict[str, torch.Tensor]:
        key = (seq.task, seq.short_prompt, seq.video)
        with self._lock:
            part = self._items.get(key)
            if part is not None:
                self.hits += 1
                self._items.move_to_end(key)
                return part
            self.misses += 1
        part = encode_prompt_part(lm, to_request(seq, frames_dir))  # outside the lock: workers overlap
        with self._lock:
            self._items[key] = part
            if len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return part


def encode(
    lm: LoadedModel,
    seqs: list[TrainSeq],
    frames_dir: Path,
    align: bool = True,
    cache: PromptCache | None = None,
    multiple: int = 1,
) -> dict[str, Any]:
    """The (S, L) log-prob batch, built on the CPU (DataLoader workers can run it).

    align=True gives the response-aligned layout plus `keep` (see the module docstring); `multiple` rounds
    its prompt and response widths up (align_responses). cache: reuse encoded prompts across sequences,
    micro-batches and epochs (see PromptCache).
    """
    cpu_lm = replace(lm, model=None, device="cpu")
    cache = cache or PromptCache(max_items=len(seqs) + 1)  # at least: shared prompts within this batch
    parts = [cache.get(cpu_lm, s, frames_dir) for s in seqs]
    batch: dict[str, Any] = collate_for_logps(cpu_lm, parts, [s.response for s in seqs])
    if align:
        aligned, keep = align_responses(batch, lm.tokenizer.pad_token_id, multiple)
        batch = {**aligned, "keep": keep}
    return batch


def token_counts(batch: dict[str, Any]) -> torch.Tensor:
    """(S,) float32: response tokens per row (EOS included), the lengths IPO and SFT average over. Read
    from the labels, so it needs no forward and matches the cached reference log-probs' sums."""
    return (batch["labels"] != IGNORE_INDEX).sum(1).float()


_ALIGN_KEYS = ("input_ids", "attention_mask", "labels", "mm_token_type_ids", "token_type_ids")


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def align_responses(
    batch: dict[str, torch.Tensor], pad_id: int, multiple: int = 1
) -> tuple[dict[str, torch.Tensor], int]:
    """Left-pad prompts so every response starts at the same column; returns (batch, keep).

    keep = R_max + 1: the last `keep` positions hold every response token and the position that
    predicts its first token. Prompt start = first label position (labels are -100 on the prompt).
    multiple > 1 rounds the prompt width P and R_max up to multiples of it (masked padding, label -100):
    micro-batches then come in a few shapes, which torch.compile and CUDA graphs reuse, where exact
    widths would give each batch its own; the log-probs do not change.
    """
    labels = batch["labels"]  # (S, L)
    is_resp = labels != IGNORE_INDEX
    lengths = batch["attention_mask"].sum(1)  # (S,) prompt + response tokens
    starts = is_resp.float().argmax(1)  # (S,) first response column
    prompt_max = _round_up(int(starts.max()), multiple)
    resp_max = _round_up(int((lengths - starts).max()), multiple)
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


#: Shortest common prompt prefix worth a shared forward (below it the extra call costs more than it saves).
MIN_SHARED_PREFIX = 16
_TEXT_KEYS = {"input_ids", "attention_mask", "labels", "keep"}


def split_shared_prefix(batch: dict[str, torch.Tensor], minimum: int = MIN_SHARED_PREFIX) -> dict[str, Any] | None:
    """The aligned text batch as (one shared prefix, the rows after it), or None where that does not pay.

    Every Task-3 row starts with the same ~310-token instruction; the rows of an HDPO micro-batch differ only
    in their last ~20 prompt tokens and their responses. In: the align_responses layout
    [pad | prompt_i | response_i] (S, L). Out: {"prefix": (1, P) ids every prompt starts with (at most each
    prompt's length - 1, so each row keeps the position that predicts its first response token), "input_ids"
    (S, L - c) [pad | prompt_i[P:] | response_i], "attention_mask" (S, P + L - c) [ones(P) | mask_i],
    "position_ids" (S, L - c) = P + the row's real tokens before, "labels" (S, L - c), "keep"}, where c is
    the column of the row with the most padding at which its prompt's P-th token sat (so responses stay
    aligned). Video batches (processor tensors ride along) and batches without a long common prefix: None.
    """
    if set(batch) - _TEXT_KEYS or "keep" not in batch:
        return None
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    first = mask.float().argmax(1)  # (S,) first real column (rows are left-padded)
    resp = (labels != IGNORE_INDEX).float().argmax(1)  # (S,) first response column: the same in every row
    prompts = [ids[i, first[i] : resp[i]].tolist() for i in range(ids.shape[0])]
    p = min(len(x) for x in prompts) - 1
    for row in prompts[1:]:
        p = min(p, next((j for j, (a, b) in enumerate(zip(prompts[0], row, strict=False)) if a != b), p))
    if p < minimum:
        return None
    cut = int(first.min()) + p  # columns before this hold only padding or prefix tokens in every row
    rows_mask = mask[:, cut:].clone()
    rows_ids = ids[:, cut:].clone()
    for i in range(ids.shape[0]):  # prefix tokens of rows with less padding sit after `cut`: mask them out
        start = int(first[i]) + p  # the row's first token after the prefix
        rows_mask[i, : max(0, start - cut)] = 0
    position = (p + rows_mask.cumsum(1) - 1).clamp(min=0)
    full_mask = torch.cat([torch.ones(ids.shape[0], p, dtype=mask.dtype), rows_mask], dim=1)
    return {
        "prefix": torch.tensor([prompts[0][:p]], dtype=ids.dtype),
        "input_ids": rows_ids,
        "attention_mask": full_mask,
        "position_ids": position,
        "labels": labels[:, cut:],
        "keep": batch["keep"],
    }


def _prefix_cache(model: Any, prefix: torch.Tensor, rows: int) -> Any:
    """The prefix's KV cache, computed once (with gradients when enabled) and repeated for `rows` rows."""
    from transformers.cache_utils import DynamicCache

    inner = _unwrap(model)
    cache = DynamicCache(config=inner.config)
    model(input_ids=prefix, past_key_values=cache, use_cache=True, logits_to_keep=1)
    cache.batch_repeat_interleave(rows)
    return cache


def forward_logps(
    model: Any,
    batch: dict[str, torch.Tensor],
    device: torch.device | str,
    chunked: bool = True,
    share_prefix: bool = False,
) -> torch.Tensor:
    """One forward over an encoded batch -> summed response log-probs (S,), float32.

    With a `keep` entry (from align_responses) only the last `keep` positions reach the LM head.
    chunked=True: the LM head's log-probs come from `label_logps` (tile by tile, no (S, keep, V) logits in
    forward or backward); a model whose head is not a plain bias-free linear map takes the logits path.
    share_prefix=True: a text batch whose prompts share a long prefix runs it once, then the rows on its
    cache (split_shared_prefix); the log-probs equal the plain forward's (to float rounding), and gradients
    flow through the shared prefix too. Differentiable unless called under torch.no_grad / inference_mode.
    """
    shared = split_shared_prefix(batch) if share_prefix else None
    if shared is not None:
        batch = shared
    batch = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    labels = batch.pop("labels")
    keep = batch.pop("keep", None)
    prefix = batch.pop("prefix", None)
    extra: dict[str, Any] = {"use_cache": False}
    if prefix is not None:
        extra = {"use_cache": True, "past_key_values": _prefix_cache(model, prefix, labels.shape[0])}
    head = output_head(model) if chunked else None
    if head is not None:
        with _lm_head_inputs(head) as seen:
            model(**batch, **extra, logits_to_keep=int(keep or 0))  # logits (S, keep, 0): not computed
        if len(seen) != 1:
            raise RuntimeError(f"the LM head ran {len(seen)} times in one forward; use chunked=False for this model")
        hidden = seen[0]  # (S, keep, Hd), or (S, L, Hd) without keep
        return label_logps(hidden, head.weight, labels[:, -hidden.shape[1] :])
    if keep is None:
        return gather_logps(model(**batch, **extra).logits, labels)  # logits (S, L, V)
    logits = model(**batch, **extra, logits_to_keep=int(keep)).logits  # (S, keep, V)
    return gather_logps(logits, labels[:, -int(keep) :])


def sequence_logps(model: Any, lm: LoadedModel, seqs: list[TrainSeq], frames_dir: Path, device) -> torch.Tensor:
    """Encode + forward in one go: (S,)."""
    return forward_logps(model, encode(lm, seqs, frames_dir), device)


# ------------------------------------------------------------- log-probs without the (S, keep, V) logits

#: Tile of the chunked log-prob kernel: label positions x vocabulary columns. Its fp32 logits (64 MiB on an
#: accelerator, 8 MiB on CPU) are the largest temporary; the (S, keep, V) tensor of the logits path never exists.
CHUNK_ROWS = 2048
CHUNK_VOCAB = 8192
#: On CPU a narrower tile keeps the softmax passes nearer the cache: forward + backward at V 151,936 took
#: 0.91-0.95 of the 8192-column time (bench/bench_logps_memory.py); on CUDA wide tiles
#: keep the kernel launches per step few.
CHUNK_VOCAB_CPU = 1024


def _unwrap(model: Any) -> Any:
    """The transformers model inside DDP / accelerate (`.module`) and PEFT (`get_base_model`) wrappers."""
    while hasattr(model, "module"):
        model = model.module
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def output_head(model: Any) -> torch.nn.Linear | None:
    """The LM head if its output is the logits as they are: a plain bias-free nn.Linear (not a LoRA layer),
    no final soft-capping or logit scale in the config. Otherwise None: take the logits path."""
    inner = _unwrap(model)
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    if type(head) is not torch.nn.Linear or head.bias is not None:
        return None
    for cfg in (inner.config, getattr(inner.config, "text_config", None)):
        if getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None) not in (None, 1, 1.0):
            return None
    return head


@contextlib.contextmanager
def _lm_head_inputs(head: torch.nn.Module):
    """Keep what the LM head is given and hand it an empty slice instead: the model's forward runs as
    usual up to the head, which then returns (S, 0, V) logits. A hook, not a patched forward, so DDP,
    accelerate and PEFT wrappers around the model see an ordinary call."""
    seen: list[torch.Tensor] = []

    def hook(_module, args):
        seen.append(args[0])  # (S, keep, Hd)
        return (args[0][..., :0, :],)

    handle = head.register_forward_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def label_logps(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, rows: int = CHUNK_ROWS, cols: int | None = None
) -> torch.Tensor:
    """gather_logps(hidden @ weight.T, labels) without the logits: summed label log-probs (S,), float32.

    hidden (S, K, Hd) LM-head inputs, weight (V, Hd), labels (S, K) with IGNORE_INDEX off the response.
    Position t predicts label t+1. Only the N positions that predict a label are scored, in tiles of
    rows x cols logits, in forward and again in backward (recomputed: nothing of size N x V is saved).
    Under autocast the tiles run in the autocast dtype, as the LM head would. cols None: CHUNK_VOCAB_CPU on
    CPU, CHUNK_VOCAB elsewhere.
    """
    cols = cols or (CHUNK_VOCAB_CPU if hidden.device.type == "cpu" else CHUNK_VOCAB)
    labels = labels[:, 1:]
    mask = labels != IGNORE_INDEX  # (S, K-1)
    x = hidden[:, :-1][mask]  # (N, Hd)
    owner = torch.arange(labels.shape[0], device=labels.device)[:, None].expand_as(labels)[mask]  # (N,) its row
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
    token = _LabelLogps.apply(x, weight, labels[mask], dtype, rows, cols)  # (N,)
    return torch.zeros(labels.shape[0], dtype=torch.float32, device=hidden.device).index_add(0, owner, token)


def _spans(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _label_logit(z: torch.Tensor, labels: torch.Tensor, start: int) -> torch.Tensor:
    """z (n, c) logits of vocabulary columns [start, start + c) -> (n,) the label's logit, 0 if not there."""
    inside = (labels >= start) & (labels < start + z.shape[1])
    col = (labels - start).clamp(0, z.shape[1] - 1)
    return torch.where(inside, z.gather(1, col[:, None]).squeeze(1), 0.0)


def _add_matmul(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """out += a @ b, the product in a's dtype (the autocast dtype), accumulated in out's."""
    if a.dtype == out.dtype:
        out.addmm_(a, b)
    else:
        out.add_(a @ b)


class _LabelLogps(torch.autograd.Function):
    """log_softmax(x @ weight.T)[label] per row, tile by tile; backward recomputes each tile's logits."""

    @staticmethod
    def forward(ctx, x, weight, labels, dtype, rows, cols):
        # x (N, Hd), weight (V, Hd), labels (N,) in [0, V) -> (N,) float32
        n, vocab = x.shape[0], weight.shape[0]
        lse = torch.empty(n, dtype=torch.float32, device=x.device)  # (N,) logsumexp of each row's logits
        picked = torch.zeros(n, dtype=torch.float32, device=x.device)  # (N,) the label's logit
        with torch.autocast(x.device.type, enabled=False):
            for r in _spans(n, rows):
                xr, yr = x[r].to(dtype), labels[r]
                lse_r = torch.full((xr.shape[0],), -torch.inf, device=x.device)
                for c in _spans(vocab, cols):
                    z = (xr @ weight[c].to(dtype).T).float()  # (rows, cols): the one large temporary
                    lse_r = torch.logaddexp(lse_r, torch.logsumexp(z, dim=1))
                    picked[r] += _label_logit(z, yr, c.start)
                lse[r] = lse_r
        ctx.save_for_backward(x, weight, labels, lse)
        ctx.dtype, ctx.rows, ctx.cols = dtype, rows, cols
        return picked - lse

    @staticmethod
    def backward(ctx, grad):
        # grad (N,) dL/dlogp. d logp / d z = onehot(label) - softmax(z): per tile
        # g = grad * (onehot - softmax), then dx += g @ W_c and dW_c += g.T @ x_r.
        x, weight, labels, lse = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[:2]
        dx = torch.zeros(x.shape, dtype=torch.float32, device=x.device) if need_x else None
        dw = torch.zeros_like(weight) if need_w else None  # row chunks accumulate in the weights' dtype
        with torch.autocast(x.device.type, enabled=False):
            for r in _spans(x.shape[0], ctx.rows):
                xr, yr, gr = x[r].to(ctx.dtype), labels[r], grad[r].float()
                for c in _spans(weight.shape[0], ctx.cols):
                    wc = weight[c].to(ctx.dtype)
                    g = (xr @ wc.T).float()  # (rows, cols) logits again
                    g.sub_(lse[r][:, None]).exp_().mul_(-gr[:, None])  # -grad * softmax
                    inside = (yr >= c.start) & (yr < c.stop)
                    col = (yr - c.start).clamp(0, g.shape[1] - 1)
                    g.scatter_add_(1, col[:, None], torch.where(inside, gr, 0.0)[:, None])  # + grad at the label
                    g = g.to(ctx.dtype)
                    if need_x:
                        _add_matmul(dx[r], g, wc)
                    if need_w:
                        _add_matmul(dw[c], g.T, xr)
        return (dx.to(x.dtype) if need_x else None), dw, None, None, None, None
