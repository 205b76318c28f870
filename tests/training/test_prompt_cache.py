"""The prompt cache: each conditioning is encoded once however many sequences share it, and a cached
batch is identical to an uncached one."""

import torch

from engine.models import load_model
from tests.training.test_data import _materialise
from training.data import load_examples
from training.logps import PromptCache, encode, flatten


def test_cached_encoding_is_identical_and_encodes_each_conditioning_once(full_export, tmp_path):
    path = _materialise(full_export, tmp_path / "d")
    examples = load_examples(path)
    flat = flatten(examples)
    lm = load_model("tiny-random-vlm")
    frames_dir = path.parent / "frames"
    conditionings = {(s.task, s.short_prompt, s.video) for s in flat.seqs}
    assert len(conditionings) < len(flat.seqs)  # chosen / rejected / y_h share one (x, q)

    cache = PromptCache(max_items=1000)
    cached = encode(lm, flat.seqs, frames_dir, cache=cache)
    assert cache.misses == len(conditionings) and cache.hits == len(flat.seqs) - len(conditionings)
    again = encode(lm, flat.seqs, frames_dir, cache=cache)  # a second epoch: nothing re-encoded
    assert cache.misses == len(conditionings)

    fresh = encode(lm, flat.seqs, frames_dir)
    for batch in (cached, again):
        assert batch.keys() == fresh.keys()
        for key, value in fresh.items():
            assert torch.equal(batch[key], value) if isinstance(value, torch.Tensor) else batch[key] == value


def test_lru_bound(full_export, tmp_path):
    path = _materialise(full_export, tmp_path / "d")
    flat = flatten(load_examples(path))
    cache = PromptCache(max_items=2)
    encode(load_model("tiny-random-vlm"), flat.seqs, path.parent / "frames", cache=cache)
    assert len(cache._items) == 2
