"""Streaming generation, the stop event, the prompt-prefix cache and random-weight output length."""

from __future__ import annotations

import threading

import torch

from engine.backends.transformers_backend import TransformersBackend
from engine.encoding import encode_prompts
from engine.tasks import Request
from engine.types import GenerationParams

SAMPLED = GenerationParams(max_new_tokens=12, do_sample=True, num_return_sequences=3, seed=5)


def test_streaming_yields_growing_prefixes_that_end_in_the_final_texts(tiny_lm):
    request = Request(3, "A dog runs on the beach.")
    items = list(tiny_lm.stream(request, SAMPLED))
    assert len(items) > 3 and all(len(texts) == 3 for texts in items)
    for before, after in zip(items, items[1:], strict=False):
        assert all(a.startswith(b) for b, a in zip(before, after, strict=True))
    assert items[-1] == tiny_lm.generate([request], SAMPLED)[0]  # the same seed gives run_task's texts
    assert len({*items[-1]}) == 3


def test_a_stop_event_set_before_the_first_step_ends_after_one_token(tiny_lm, monkeypatch):
    new_tokens = []
    real = tiny_lm.lm.model.generate

    def spy(**kwargs):
        ids = real(**kwargs)
        new_tokens.append(ids.shape[1] - kwargs["input_ids"].shape[1])
        return ids

    monkeypatch.setattr(tiny_lm.lm.model, "generate", spy)
    stop = threading.Event()
    stop.set()
    items = list(tiny_lm.stream(Request(3, "A dog runs."), GenerationParams(max_new_tokens=50), stop))
    assert new_tokens == [1]  # the criterion is checked after every decoding step
    assert items[-1][0]  # what was generated comes back


def test_a_stop_from_another_thread_ends_generation_early(tiny_lm, monkeypatch):
    seen = _new_token_ids(tiny_lm, monkeypatch)
    stop = threading.Event()
    params = GenerationParams(max_new_tokens=400, do_sample=True, num_return_sequences=2, seed=1)
    stream = tiny_lm.stream(Request(3, "A dog runs."), params, stop)
    next(stream)
    threading.Thread(target=stop.set).start()
    final = list(stream)[-1]
    # random-weight presets fill the asked length unless stopped
    assert 1 <= seen[0].shape[1] < 400
    assert all(final)


def test_leaving_the_iterator_stops_the_worker(tiny_lm):
    stream = tiny_lm.stream(Request(3, "A dog runs."), GenerationParams(max_new_tokens=400))
    next(stream)
    stream.close()
    assert not [t for t in threading.enumerate() if t.name == "vidprompter-stream"]


def test_beam_search_yields_once_at_the_end(tiny_lm):
    params = GenerationParams(max_new_tokens=6, num_beams=3, num_return_sequences=3)
    request = Request(3, "A dog runs.")
    assert list(tiny_lm.stream(request, params)) == [tiny_lm.generate([request], params)[0]]


def test_an_error_in_the_worker_reaches_the_caller(tiny_lm, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(tiny_lm.lm.model, "generate", broken)
    try:
        list(tiny_lm.stream(Request(3, "A dog runs."), GenerationParams(max_new_tokens=4)))
    except RuntimeError as exc:
        assert str(exc) == "out of memory"
    else:
        raise AssertionError("the worker's error was swallowed")


def test_the_prefix_cache_reuses_the_instruction_and_changes_no_output(tiny_lm):
    plain = TransformersBackend(tiny_lm.lm)
    plain._prefix = None
    cached = TransformersBackend(tiny_lm.lm)
    greedy = GenerationParams(max_new_tokens=8)
    beams = GenerationParams(max_new_tokens=8, num_beams=3, num_return_sequences=3)
    reused = []
    for prompt in ("A dog runs.", "A cat sleeps on a red sofa."):
        for params in (greedy, beams, SAMPLED):
            assert cached.generate([Request(3, prompt)], params) == plain.generate([Request(3, prompt)], params)
            reused.append(cached._prefix.reused)
    first_len = len(encode_prompts(tiny_lm.lm, [Request(3, "A dog runs.")])["input_ids"][0]) - 1
    second_len = len(cached._prefix.ids)
    assert reused[:3] == [0, first_len, first_len]  # the same prompt again: all of it
    # a new short prompt reuses the instruction: all but its own tail
    assert 0.9 * second_len < reused[3] < second_len and reused[4:] == [second_len, second_len]


def _new_token_ids(backend: TransformersBackend, monkeypatch) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    real = backend.lm.model.generate

    def spy(**kwargs):
        ids = real(**kwargs)
        seen.append(ids[:, kwargs["input_ids"].shape[1] :])
        return ids

    monkeypatch.setattr(backend.lm.model, "generate", spy)
    return seen


def test_random_weight_presets_write_the_asked_number_of_visible_tokens(tiny_lm, tiny_vlm, sample_video, monkeypatch):
    from engine.video import load_video

    frames, meta = load_video(sample_video, num_frames=8)
    cases = [
        (tiny_lm, Request(3, "A dog runs."), GenerationParams(max_new_tokens=12)),
        (tiny_vlm, Request(1, frames=frames, video_meta=meta), GenerationParams(max_new_tokens=12)),
        (tiny_vlm, Request(1, frames=frames, video_meta=meta), GenerationParams(max_new_tokens=3, num_beams=4)),
    ]
    for backend, request, params in cases:
        seen = _new_token_ids(backend, monkeypatch)
        texts = backend.generate([request], params)[0]
        special = set(backend.lm.tokenizer.all_special_ids)
        assert seen[-1].shape[1] == params.max_new_tokens  # no early end of text
        assert not special & set(seen[-1].flatten().tolist())
        assert all(t.strip() for t in texts)
        monkeypatch.undo()


def test_a_prompt_past_the_cache_limit_runs_uncached(tiny_lm):
    from engine.backends.prefix_cache import PrefixCache

    ids = encode_prompts(tiny_lm.lm, [Request(3, "A dog runs.")])["input_ids"]
    small = PrefixCache(tiny_lm.lm.model, max_tokens=10)
    assert small.prefill(ids) is None and small.supported and small.cache is None
    assert PrefixCache(tiny_lm.lm.model).prefill(ids).get_seq_length() == ids.shape[1] - 1
