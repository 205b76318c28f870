"""Tiny random text-to-video pipelines built in code from the real diffusers and transformers classes.

Each is saved as a diffusers pipeline folder (model_index.json + one sub-folder per component) in the cache
and loaded back through the same `from_pretrained(folder)` path as a real checkpoint. Sizes follow diffusers'
own fast tests (a 1-2 layer transformer, a 4-level VAE of width 8, a 2-layer T5 of width 32). Their clips are
noise: "random weights — pipeline check only".

The T5 tokenizer (CogVideoX, Wan) is built offline: a Unigram vocabulary written by hand (whole words score
higher than single characters, so common words are one token and any other text still tokenises), wrapped in
the real `T5Tokenizer` class. EasyAnimate's Qwen2 tokenizer is engine.tiny_models' byte-level BPE with a
Qwen chat template.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from annotations.files import atomic_dir
from engine.tiny_models import cache_root

#: Bump when a builder changes, so stale caches are rebuilt rather than reused.
TINY_T2V_VERSION = "1"

#: T5 encoder width; the transformers' text input width must match it.
TEXT_DIM = 32

_WORDS = (
    "a an the one two three man woman boy girl child people dog cat bird horse fish car bus bike boat train "
    "tree flower grass street city park beach river sea lake road mountain forest sky cloud sun moon rain snow "
    "walks runs jumps sits stands drives flies swims looks holds throws smiles turns moves plays dances "
    "red blue green white black yellow orange golden bright dark warm cold slowly quickly gently "
    "left right up down in on at with and of to from near behind front over under through across "
    "camera shot close wide view pan zoom scene light night day morning evening sunset style cinematic"
).split()


def build_t5_tokenizer():
    """A `T5Tokenizer` over ~150 pieces: <pad>=0, </s>=1, <unk>=2 (T5's layout), words, then characters."""
    from transformers import T5Tokenizer

    # Unigram scores are log-probabilities: "▁walks" (-2) beats "▁"+"w"+"a"+... (-8 - 10 x 5), so known
    # words are one token; unknown words fall back to one token per character.
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -8.0)]
    vocab += [("▁" + w, -2.0) for w in dict.fromkeys(_WORDS)]
    vocab += [(c, -10.0) for c in string.ascii_letters + string.digits + string.punctuation]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def _t5_config(tokenizer, umt5: bool = False):
    from transformers import T5Config, UMT5Config

    cls = UMT5Config if umt5 else T5Config
    # Not a declared field of transformers' dataclass T5 configs, which keep unknown keywords all the same.
    legacy: dict[str, Any] = {"decoder_start_token_id": 0}
    return cls(
        **legacy,
        vocab_size=len(tokenizer),
        d_model=TEXT_DIM,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
    )


def _build_cogvideox(out: Path) -> None:
    import torch
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )
    from transformers import T5EncoderModel

    tokenizer = build_t5_tokenizer()
    torch.manual_seed(0)
    text_encoder = T5EncoderModel(_t5_config(tokenizer))
    torch.manual_seed(1)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=4,
        attention_head_dim=8,  # inner dim 4 x 8 = 32; 3-D sincos positions need it divisible by 16
        in_channels=4,
        out_channels=4,
        time_embed_dim=2,
        text_embed_dim=TEXT_DIM,
        num_layers=1,
        sample_width=4,  # latent 4 x 4 -> 32 x 32 pixels (VAE 8x, patch 2)
        sample_height=4,
        sample_frames=9,  # (9 - 1) / 4 + 1 = 3 latent frames
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=226,  # CogVideoX's: the tiny pipeline refuses the same prompts as the real one
    )
    torch.manual_seed(2)
    vae = AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )
    scheduler = CogVideoXDDIMScheduler(timestep_spacing="trailing", prediction_type="v_prediction")
    pipe = CogVideoXPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )
    pipe.save_pretrained(out)


def _build_wan(out: Path) -> None:
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5EncoderModel

    tokenizer = build_t5_tokenizer()
    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(_t5_config(tokenizer, umt5=True))
    torch.manual_seed(1)
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    torch.manual_seed(2)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=TEXT_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    # Wan 2.1's own scheduler settings (flow matching, shift 3 for 480p).
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    pipe = WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )
    pipe.save_pretrained(out)


def _qwen2_vl_text_encoder(tokenizer):
    """A 2-layer Qwen2-VL of width 32 (EasyAnimate v5.1 reads its second-to-last hidden state)."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    from engine.tiny_models import SPECIAL_TOKENS

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text_config = dict(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_DIM,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        # mrope_section sums to head_dim / 2 = (32 / 4) / 2 = 4.
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]},
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    vision_config = dict(depth=1, embed_dim=16, hidden_size=TEXT_DIM, num_heads=2, mlp_ratio=2, patch_size=14)
    config = Qwen2VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    return Qwen2VLForConditionalGeneration(config)


def _build_easyanimate(out: Path) -> None:
    import torch
    from diffusers import (
        AutoencoderKLMagvit,
        EasyAnimatePipeline,
        EasyAnimateTransformer3DModel,
        FlowMatchEulerDiscreteScheduler,
    )

    from engine.tiny_models import build_tokenizer

    tokenizer = build_tokenizer()  # byte-level BPE with a Qwen chat template, as EasyAnimate's Qwen2 tokenizer
    torch.manual_seed(0)
    text_encoder = _qwen2_vl_text_encoder(tokenizer)
    torch.manual_seed(1)
    transformer = EasyAnimateTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,  # 3-D rotary split t/h/w = 4/6/6 needs a head_dim divisible by 8 with even thirds
        in_channels=4,
        out_channels=4,
        time_embed_dim=2,
        text_embed_dim=TEXT_DIM,
        num_layers=1,
        sample_width=16,
        sample_height=16,
        patch_size=2,
    )
    torch.manual_seed(2)
    vae = AutoencoderKLMagvit(
        in_channels=3,
        out_channels=3,
        down_block_types=("SpatialDownBlock3D",) + ("SpatialTemporalDownBlock3D",) * 3,
        up_block_types=("SpatialUpBlock3D",) + ("SpatialTemporalUpBlock3D",) * 3,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        spatial_group_norm=False,
    )
    pipe = EasyAnimatePipeline(
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        vae=vae,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )
    pipe.save_pretrained(out)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "tiny-random-cogvideox": _build_cogvideox,
    "tiny-random-wan": _build_wan,
    "tiny-random-easyanimate": _build_easyanimate,
}


def ensure_tiny_t2v(name: str, root: Path | None = None) -> Path:
    """Build (once) and return the pipeline folder of a tiny random T2V model; safe against concurrent builders."""
    target = (root or cache_root()) / f"{name}-v{TINY_T2V_VERSION}"
    if (target / "model_index.json").exists():
        return target
    with atomic_dir(target, finished="model_index.json") as tmp:  # a concurrent builder either wins or finds it
        quiet_progress_bars()
        BUILDERS[name](tmp)
    return target


def quiet_progress_bars() -> None:
    """No "Writing model shards" / "Loading weights" bars on the CLI's stderr."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    diffusers_logging.disable_progress_bar()
