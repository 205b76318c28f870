"""Tiny random-weight models built from configs in code, for tests and offline pipeline checks.

They are saved to a cache folder and then loaded back through the same `from_pretrained` path as real
checkpoints, so tests exercise the real loading code. Their output is byte garbage by design: the UI
labels it "random weights — pipeline check only".
"""

from __future__ import annotations

import os
from pathlib import Path

from annotations.files import atomic_dir

#: Bump when the builders change, so stale caches are rebuilt rather than reused.
TINY_VERSION = "1"

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen-style chat template that understands string content and content lists with video/image parts.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}"
    "{% if c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_WORDS = (
    "a an the man woman boy girl dog cat bird horse car bus bike tree street city park beach river road "
    "walks runs jumps sits stands drives flies swims looks holds throws lifts smiles turns moves "
    "red blue green white black yellow left right up down one two three four five slowly quickly "
    "camera shot video scene light night day sunny rain snow close wide view style bright dark "
    "in on at with and of to from near behind front background foreground. , describe detailed prompt"
).split()


def cache_root() -> Path:
    """Where built models live: $VIDPROMPTER_CACHE or ~/.cache/vidprompter."""
    return Path(os.environ.get("VIDPROMPTER_CACHE", Path.home() / ".cache" / "vidprompter"))


def _corpus(n: int = 400) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(_WORDS, size=12)) for _ in range(n)]


def build_tokenizer():
    """A byte-level BPE (so any text round-trips) with the Qwen special tokens, ~400 tokens."""
    from tokenizers import Tokenizer, decoders, models, trainers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL_TOKENS, initial_alphabet=ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(_corpus(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHAT_TEMPLATE
    )


def _text_config(tokenizer) -> dict:
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )


def _build_vlm(out: Path) -> None:
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = build_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text_cfg = _text_config(tokenizer)
    # mrope_section must sum to head_dim / 2 = (64 / 4) / 2 = 8.
    text_cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    vision_cfg = dict(
        depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, fullatt_block_indexes=[1]
    )
    config = Qwen2_5_VLConfig(
        text_config=text_cfg,
        vision_config=vision_cfg,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config)
    _set_generation_ids(model, ids)
    # Small frames: 56^2..112^2 pixels per frame -> 8 frames give a few dozen video tokens.
    size = {"shortest_edge": 56 * 56, "longest_edge": 112 * 112}
    try:  # transformers >= 5.20 warns unless the per-frame pixel cap is chosen explicitly
        video_processor = Qwen2VLVideoProcessor(size=size, cap_pixels_per_frame=True)
    except TypeError:  # older 5.x (e.g. the GPU image's 5.17) has no such option
        video_processor = Qwen2VLVideoProcessor(size=size)
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        video_processor=video_processor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _build_lm(out: Path) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**_text_config(tokenizer), tie_word_embeddings=True))
    _set_generation_ids(model, ids)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _set_generation_ids(model, ids: dict[str, int]) -> None:
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = ids["<|endoftext|>"]


BUILDERS = {"tiny-random-vlm": _build_vlm, "tiny-random-lm": _build_lm}


def ensure_tiny_model(name: str, root: Path | None = None) -> Path:
    """Build (once) and return the folder of a tiny random model; safe against concurrent builders."""
    target = (root or cache_root()) / f"{name}-v{TINY_VERSION}"
    if (target / "config.json").exists():
        return target
    with atomic_dir(target, finished="config.json") as tmp:  # a concurrent builder either wins or finds the folder
        BUILDERS[name](tmp)
    return target
