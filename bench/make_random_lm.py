"""Save a random-weight Qwen2 text LM of a chosen size, for memory benchmarks on real-sized weights.

    .venv/bin/python bench/make_random_lm.py /tmp/lm310m --hidden 1024 --layers 24
    .venv/bin/python bench/bench_training_steps.py refcache --model /tmp/lm310m --steps 3

It uses the tiny models' byte-level tokenizer, so sequences stay short; the weights dominate memory,
which is what the cached-vs-resident reference comparison is about (one fp32 copy of the weights).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from engine.tiny_models import SPECIAL_TOKENS, _set_generation_ids, build_tokenizer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--layers", type=int, default=24)
    a = p.parse_args(argv)
    tok = build_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=a.hidden,
        intermediate_size=int(a.hidden * 2.75),
        num_hidden_layers=a.layers,
        num_attention_heads=a.hidden // 64,
        num_key_value_heads=a.hidden // 64,
        max_position_embeddings=4096,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    _set_generation_ids(model, ids)
    model.save_pretrained(a.out)
    tok.save_pretrained(a.out)
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.0f} M parameters -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
