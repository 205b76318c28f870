"""Turning (request, response) pairs into model batches: one layout for generation, one for log-probs.

Log-prob batches are built prompt-by-prompt then right-padded:
    input_ids  (B, L)  = [prompt tokens | response tokens | <eos> | pad ...]
    labels     (B, L)  = -100 on prompt and pad positions, the token id elsewhere
Prompt and response are tokenised separately (as TRL does) so the response tokens are the same
whatever the conditioning: the viewer and HDPO compare log pi(y | x, q) across inputs for one y.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from engine.models import LoadedModel
from engine.tasks import Request, build_messages

IGNORE_INDEX = -100
# Keys that run along the sequence and must be padded; everything else (pixel values, grids) concatenates.
_SEQ_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids")


def prompt_text(lm: LoadedModel, request: Request) -> str:
    messages = build_messages(request, video_model=lm.is_video)
    return lm.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def _video_kwargs(requests: list[Request]) -> dict[str, Any]:
    """Frames are already sampled: tell the processor their real fps/indices instead of assuming 24 fps."""
    metas = []
    for r in requests:
        if r.frames is None:
            continue
        m = r.video_meta
        fps = m.fps if m else 24.0
        idx = m.sampled_indices if m and m.sampled_indices else list(range(len(r.frames)))
        metas.append({"fps": fps, "total_num_frames": m.total_frames if m else len(r.frames), "frames_indices": idx})
    return {"video_metadata": metas, "do_sample_frames": False} if metas else {}


def encode_prompts(lm: LoadedModel, requests: list[Request], padding_side: str = "left") -> dict[str, torch.Tensor]:
    """A generation batch: left-padded prompts (+ video tensors for video LMs)."""
    texts = [prompt_text(lm, r) for r in requests]
    tok = lm.tokenizer
    tok.padding_side = padding_side
    if lm.is_video:
        videos = [r.frames for r in requests if r.frames is not None]
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if videos:
            kwargs["videos"] = videos
            kwargs["videos_kwargs"] = _video_kwargs(requests)
        batch = lm.processor(**kwargs)
    else:
        batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    return {k: v.to(lm.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _response_ids(lm: LoadedModel, response: str) -> list[int]:
    tok = lm.tokenizer
    ids = tok(response, add_special_tokens=False)["input_ids"]
    return list(ids) + [tok.eos_token_id]  # the end of turn is part of the response


def encode_for_logps(lm: LoadedModel, requests: list[Request], responses: list[str]) -> dict[str, torch.Tensor]:
    """A log-prob batch in the layout of the module docstring, on lm.device."""
    if len(requests) != len(responses):
        raise ValueError(f"{len(requests)} requests but {len(responses)} responses")
    return collate_for_logps(lm, [encode_prompt_part(lm, r) for r in requests], responses)


def collate_for_logps(
    lm: LoadedModel, parts: list[dict[str, torch.Tensor]], responses: list[str]
) -> dict[str, torch.Tensor]:
    """Prompts already encoded by `encode_prompt_part` (a caller may cache them) + responses -> batch."""
    resp = [_response_ids(lm, y) for y in responses]
    return _collate(parts, resp, lm.tokenizer.pad_token_id, lm.device)


def encode_prompt_part(lm: LoadedModel, request: Request) -> dict[str, torch.Tensor]:
    """One prompt, unpadded (1, Lp), with its video tensors: the unit encode_for_logps collates."""
    return encode_prompts(lm, [request], padding_side="right")


def _collate(parts: list[dict], resp: list[list[int]], pad_id: int, device: str) -> dict[str, torch.Tensor]:
    lengths = [p["input_ids"].shape[1] + len(r) for p, r in zip(parts, resp, strict=True)]
    width = max(lengths)
    b = len(parts)
    input_ids = torch.full((b, width), pad_id, dtype=torch.long)
    attention = torch.zeros((b, width), dtype=torch.long)
    labels = torch.full((b, width), IGNORE_INDEX, dtype=torch.long)
    extra_seq = {k: torch.zeros((b, width), dtype=torch.long) for k in _SEQ_KEYS[2:] if any(k in p for p in parts)}
    for i, (p, r) in enumerate(zip(parts, resp, strict=True)):
        lp = p["input_ids"].shape[1]
        full = torch.cat([p["input_ids"][0].cpu(), torch.tensor(r, dtype=torch.long)])
        input_ids[i, : len(full)] = full
        attention[i, : len(full)] = 1
        labels[i, lp : len(full)] = full[lp:]
        for k, t in extra_seq.items():
            if k in p:
                t[i, :lp] = p[k][0].cpu()  # response tokens are text (type 0)
    batch = {"input_ids": input_ids, "attention_mask": attention, "labels": labels, **extra_seq}
    # Video tensors of the examples that have one, in batch order (text-only rows contribute none).
    for k in dict.fromkeys(k for p in parts for k in p):
        if k not in _SEQ_KEYS:
            batch[k] = torch.cat([p[k].cpu() for p in parts if k in p], dim=0)
    return {k: v.to(device) for k, v in batch.items()}


def gather_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of label-token log-probs per sequence.

    logits (B, L, V), labels (B, L) with IGNORE_INDEX on masked positions -> (B,) float32.
    Position t predicts token t+1, so logits[:, :-1] pairs with labels[:, 1:].
    """
    logits = logits[:, :-1].float()
    labels = labels[:, 1:]
    mask = labels != IGNORE_INDEX
    safe = labels.masked_fill(~mask, 0)
    # log_softmax then gather; logsumexp form avoids materialising a second (B, L, V) tensor.
    token_logps = torch.gather(logits, 2, safe.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return (token_logps * mask).sum(-1)


def frames_of(requests: list[Request]) -> list[np.ndarray]:
    return [r.frames for r in requests if r.frames is not None]
