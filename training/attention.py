"""Vision attention in one call per layer, registered through transformers' attention interface.

Qwen2-VL / Qwen2.5-VL / Qwen3-VL vision towers attend within blocks: each windowed layer within
windows of 8x8 patches, each full-attention layer within one frame pair (the blocks are cu_seqlens).
How the installed transformers (5.17 and 5.20 read) dispatches, in `Qwen2_5_VLVisionAttention.forward`:
- `is_flash_attention_requested(config)`, i.e. the substring "flash" in the vision config's
  `_attn_implementation`: ONE call of the registered function with `cu_seq_lens_q/k` and `max_length_q/k`;
- any other name (sdpa, eager, flex_attention): `torch.split` by cu_seqlens and one call per block -
  ~12.6k SDPA launches per 8-video training step (docs/benchmarks.md, GPU check).
So `BLOCK_ATTENTION` carries "flash" in its name and is set on the vision sub-config only: the text
decoder keeps sdpa (its causal masks are built per implementation name; a "flash" name would change them).

The function computes every block of a layer in one kernel call:
- CUDA, bf16/fp16, torch's varlen flash attention present: `varlen_attn` on the packed tokens (no padding);
- otherwise SDPA over the blocks stacked as a batch: a free view when all blocks have one length (the
  full-attention layers: one block per frame pair), else blocks gathered into (B, L_max) with a key mask.
The model code stays stock; engine never imports this (training switches a loaded model over).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F

#: The registered name. It must contain "flash": that substring is what routes the vision tower's
#: attention through one call with cu_seqlens instead of a Python loop over blocks (module docstring).
BLOCK_ATTENTION = "vidprompter_flash_blocks"

#: model_type values whose vision attention takes cu_seqlens in one call under a "flash" name.
SUPPORTED_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")

VISION_ATTENTION_MODES = ("blocks", "stock")


def _varlen_attn():
    """torch's varlen flash attention (torch >= 2.9, CUDA only), or None."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def pick_kernel(query: torch.Tensor) -> str:
    """'varlen' (packed flash attention) where it runs - CUDA, half precision - else 'sdpa'."""
    half = query.dtype in (torch.float16, torch.bfloat16)
    return "varlen" if query.is_cuda and half and _varlen_attn() is not None else "sdpa"


def block_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    cu_seq_lens_q: torch.Tensor | None = None,
    cu_seq_lens_k: torch.Tensor | None = None,
    max_length_q: int | None = None,
    max_length_k: int | None = None,
    is_causal: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention within the blocks given by cu_seqlens, all blocks in one kernel call.

    query, key, value (1, H, N, D): the packed tokens of every block; cu_seq_lens_q (B+1,) int32 block
    boundaries (0, ..., N). Returns ((1, N, H, D), None), the layout transformers' attention functions use.
    """
    if cu_seq_lens_q is None:
        raise ValueError(
            f"{BLOCK_ATTENTION} attends within cu_seqlens blocks and got none: set it on a vision tower only "
            "(training.attention.set_vision_attention), not on the text decoder"
        )
    if attention_mask is not None or is_causal:
        raise ValueError(f"{BLOCK_ATTENTION} is non-causal block attention; it takes no attention mask")
    if cu_seq_lens_k is not None and cu_seq_lens_k is not cu_seq_lens_q:  # the vision tower passes one tensor
        raise ValueError(f"{BLOCK_ATTENTION} is self-attention: cu_seq_lens_k must be cu_seq_lens_q")
    if max_length_q is None:  # transformers passes it under a "flash" name; compute it otherwise (one sync)
        max_length_q = int((cu_seq_lens_q[1:] - cu_seq_lens_q[:-1]).max())
    dropout = dropout if module.training else 0.0
    if pick_kernel(query) == "varlen" and dropout == 0.0:
        return _varlen(query, key, value, cu_seq_lens_q, int(max_length_q), scaling), None
    return _stacked_sdpa(query, key, value, cu_seq_lens_q, int(max_length_q), scaling, dropout), None


def _varlen(q, k, v, cu: torch.Tensor, max_len: int, scale: float | None) -> torch.Tensor:
    fn = _varlen_attn()
    d = q.shape[-1]
    kwargs = {}
    if scale is not None and "scale" in inspect.signature(fn).parameters:
        kwargs["scale"] = scale
    elif scale is not None and abs(scale - d**-0.5) > 1e-9:  # older torch: no scale argument, 1/sqrt(D) built in
        q = q * (scale * d**0.5)
    packed = [t[0].transpose(0, 1).contiguous() for t in (q, k, v)]  # (N, H, D) each
    cu = cu.to(torch.int32)
    out = fn(*packed, cu, cu, max_len, max_len, **kwargs)  # (N, H, D)
    return out.unsqueeze(0)


def _stacked_sdpa(q, k, v, cu: torch.Tensor, max_len: int, scale: float | None, dropout: float) -> torch.Tensor:
    """The blocks as a batch of one SDPA call: (1, H, N, D) -> (1, N, H, D)."""
    _, h, n, d = q.shape
    blocks = cu.numel() - 1
    if blocks * max_len == n:  # every block has max_len tokens: a view, no mask, no padding
        q, k, v = (t[0].unflatten(1, (blocks, max_len)).transpose(0, 1) for t in (q, k, v))  # (B, H, L, D)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scale)  # (B, H, L, D)
        return out.transpose(1, 2).reshape(1, n, h, d)
    cu = cu.to(device=q.device, dtype=torch.long)
    starts, lengths = cu[:-1], cu[1:] - cu[:-1]  # (B,)
    offsets = torch.arange(max_len, device=q.device)
    valid = offsets < lengths[:, None]  # (B, L): real tokens; the rest is padding
    # Padding slots point at some real token (clamped index) and are masked as keys; their query rows are
    # dropped below, so they get no gradient.
    index = (starts[:, None] + offsets).clamp(max=n - 1)  # (B, L) into the packed tokens
    q, k, v = (t[0][:, index].transpose(0, 1) for t in (q, k, v))  # (B, H, L, D)
    mask = valid[:, None, None, :]  # (B, 1, 1, L): keys of the own block only
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=scale)  # (B, H, L, D)
    # Back to packed order without a host sync: token i sits in block b(i) at offset i - start(b).
    block_of = torch.repeat_interleave(torch.arange(blocks, device=q.device), lengths, output_size=n)  # (N,)
    where = block_of * max_len + torch.arange(n, device=q.device) - starts[block_of]  # (N,)
    return out.transpose(1, 2).reshape(blocks * max_len, h, d).index_select(0, where).unsqueeze(0)


def register_block_attention() -> str:
    """Register BLOCK_ATTENTION in transformers' AttentionInterface (idempotent); returns the name."""
    from transformers import AttentionInterface

    AttentionInterface.register(BLOCK_ATTENTION, block_attention_forward)
    return BLOCK_ATTENTION


def _unwrap(model: Any) -> Any:
    """The transformers model inside DDP / accelerate (`.module`) and PEFT (`get_base_model`) wrappers."""
    while hasattr(model, "module"):
        model = model.module
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def vision_attention(model: Any) -> str | None:
    """The vision tower's attention implementation, or None for a model without one."""
    vision = getattr(_unwrap(model).config, "vision_config", None)
    return None if vision is None else vision._attn_implementation


def set_vision_attention(model: Any, mode: str) -> bool:
    """Switch a loaded VLM's vision tower to "blocks" (BLOCK_ATTENTION) or back to "stock" (sdpa).

    Returns whether the model now runs block attention. A text model, an architecture outside
    SUPPORTED_MODEL_TYPES, or a tower already on a flash implementation (varlen: one call per layer
    already) is left as it is. The text decoder's implementation is never touched.
    """
    if mode not in VISION_ATTENTION_MODES:
        raise ValueError(f"vision attention must be one of {VISION_ATTENTION_MODES}, got {mode!r}")
    inner = _unwrap(model)
    current = vision_attention(inner)
    if current is None or inner.config.model_type not in SUPPORTED_MODEL_TYPES:
        return False
    if mode == "stock":
        if current == BLOCK_ATTENTION:
            inner.set_attn_implementation({"vision_config": "sdpa"})
        return False
    if current != BLOCK_ATTENTION and "flash" in (current or ""):
        return False
    register_block_attention()
    inner.set_attn_implementation({"vision_config": BLOCK_ATTENTION})
    return True
