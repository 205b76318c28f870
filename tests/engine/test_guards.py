"""Small-model generation guards (engine.guards): copy ban, echo cutting, prompt-word bonus, settings."""

from __future__ import annotations

import pytest
import torch

from engine.errors import InputError
from engine.guards import (
    KeepWords,
    PromptPenalty,
    SequenceBan,
    content_words,
    copy_ban,
    cut_echoes,
    function_word_ids,
    label_ban,
    resolve_settings,
    word_starts,
)
from engine.models import PRESETS, default_params
from engine.tasks import TASK3_TEMPLATE
from engine.types import GenerationParams

TOKYO = (
    "A stylish woman walks down a Tokyo street filled with warm glowing neon and animated city signage. "
    "She wears a black leather jacket, a long red dress, and black boots, and carries a black purse."
)


def test_sequence_ban_forbids_only_the_completing_token_of_its_request():
    # request 0 bans (1, 2, 3); request 1 bans (7, 8); two rows per request (e.g. 2 sampled candidates)
    ban = SequenceBan([[(1, 2, 3)], [(7, 8)]], rows_per_request=2)
    input_ids = torch.tensor([[5, 1, 2], [5, 2, 1], [9, 1, 2], [9, 9, 7]])
    scores = ban(input_ids, torch.zeros(4, 10))
    assert scores[0].tolist() == [0, 0, 0, float("-inf"), 0, 0, 0, 0, 0, 0]
    assert (scores[1] == 0).all()  # (2, 1) is not the banned prefix
    assert (scores[2] == 0).all()  # row 2 belongs to request 1, which does not ban (1, 2, 3)
    assert scores[3, 8] == float("-inf") and (scores[3, :8] == 0).all()


def _copycat(tokenizer, source: list[int], processor, steps: int) -> list[int]:
    """A greedy 'model' that always wants to continue the source text: it scores the token that follows
    the longest match of its output's tail in the source 10, everything else 0."""
    out: list[int] = []
    vocab = len(tokenizer)
    for _ in range(steps):
        scores = torch.zeros(1, vocab)
        nxt = source[len(out)] if len(out) < len(source) else source[0]
        scores[0, nxt] = 10.0
        scores[0, tokenizer(" dog")["input_ids"][0]] = 1.0  # its second choice
        if processor is not None:
            scores = processor(torch.tensor([[0, *out]]), scores)
        out.append(int(scores.argmax()))
    return out


def test_the_copy_ban_stops_a_model_that_copies_the_tokyo_example(tiny_lm):
    tok = tiny_lm.lm.tokenizer
    source = tok(TOKYO, add_special_tokens=False)["input_ids"]
    free = _copycat(tok, source, None, 20)
    assert free == source[:20]  # unguarded, it copies word for word
    guarded = _copycat(tok, source, SequenceBan([copy_ban(tok, 3, 6)]), 20)
    runs = {tuple(source[i : i + 6]) for i in range(len(source) - 5)}
    assert not any(tuple(guarded[i : i + 6]) in runs for i in range(len(guarded) - 5))
    assert guarded[:5] == source[:5]  # shorter runs stay allowed


def test_copy_ban_covers_a_sentence_copied_at_the_start_of_the_output(tiny_lm):
    tok = tiny_lm.lm.tokenizer
    banned = copy_ban(tok, 3, 6)
    # the model starts its reply without the space the sentence has inside the template
    start = tok("She wears sunglasses and red lipstick.", add_special_tokens=False)["input_ids"]
    assert tuple(start[:6]) in banned
    assert "She wears sunglasses and red lipstick." in TASK3_TEMPLATE


def test_runs_of_the_users_own_prompt_stay_allowed(tiny_lm):
    tok = tiny_lm.lm.tokenizer
    prompt = "A stylish woman walks down a Tokyo street"
    run = tuple(tok(" " + prompt, add_special_tokens=False)["input_ids"][:6])
    assert run in copy_ban(tok, 3, 6)
    assert run not in copy_ban(tok, 3, 6, short_prompt=prompt)


def test_label_ban_forbids_writing_output_colon(tiny_lm):
    tok = tiny_lm.lm.tokenizer
    ban = SequenceBan([label_ban(tok)])
    ids = tok("\nOutput:", add_special_tokens=False)["input_ids"]
    scores = ban(torch.tensor([ids[:-1]]), torch.zeros(1, len(tok)))
    assert scores[0, ids[-1]] == float("-inf")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("A fluffy cat leaps up.\nOutput: A cat jumps onto a table.", "A fluffy cat leaps up."),
        ("Output: A fluffy cat leaps up.", "A fluffy cat leaps up."),
        ("**Output:** A fluffy cat leaps up.", "A fluffy cat leaps up."),
        ("Input: A cat jumps onto a table.\nOutput: A fluffy cat leaps up.", "A fluffy cat leaps up."),
        ("A fluffy cat leaps up. Input: A dog.", "A fluffy cat leaps up."),
        ("A cat jumps onto a table. The tabby lands softly.", "The tabby lands softly."),
        ("The tabby lands softly. A cat jumps onto a table.", "The tabby lands softly."),
        ("A cat jumps onto a table.", "A cat jumps onto a table."),  # nothing else left: kept
        ("The output of the cat's leap:\nit lands.", "The output of the cat's leap:\nit lands."),
        ("Line one.\n\nLine two.", "Line one.\n\nLine two."),
    ],
)
def test_cut_echoes(raw, clean):
    assert cut_echoes(raw, "A cat jumps onto a table.") == clean


def test_a_streamed_partial_keeps_its_last_sentence_until_it_is_final():
    text = "The tabby lands softly. A cat jumps onto a table."
    assert cut_echoes(text, "A cat jumps onto a table.", final=False) == text


def test_keep_words_boosts_each_unwritten_prompt_word_once(tiny_lm):
    tok = tiny_lm.lm.tokenizer
    assert content_words("A dog runs in the park.") == ["dog", "runs", "park"]
    starts = word_starts(tok, ["dog", "red"])
    dog, red = tok(" dog")["input_ids"][0], tok(" red")["input_ids"][0]
    assert starts == [{dog}, {red}]  # " Dog" starts with a bare "Ġ" piece in this tokenizer: not boosted
    keep = KeepWords([starts], bonus=2.0)
    first = keep(torch.tensor([[1, 2]]), torch.zeros(1, len(tok)))  # the prompt: 2 tokens, nothing written yet
    assert first[0, dog] == 2.0 and first[0, red] == 2.0 and first.sum() == 4.0
    later = keep(torch.tensor([[1, 2, dog]]), torch.zeros(1, len(tok)))  # " dog" written
    assert later[0, dog] == 0.0 and later[0, red] == 2.0


def test_prompt_penalty_spares_function_words(tiny_lm):
    # tokens 0, 1, 3 were seen; 3 is a function word: positive scores / 2, negative * 2, the rest as is
    penalty = PromptPenalty(2.0, exempt=[3])
    scores = penalty(torch.tensor([[0, 1, 3]]), torch.tensor([[2.0, -1.0, 3.0, 0.5]]))
    assert scores.tolist() == [[1.0, -2.0, 3.0, 0.5]]
    tok = tiny_lm.lm.tokenizer
    assert tok(" the")["input_ids"][0] in function_word_ids(tok)


def test_the_penalty_spares_the_end_of_turn_so_a_finished_text_can_end(tiny_lm):
    """The chat template closes every turn of the prompt with <|im_end|>, so the prompt penalty divided the
    end-of-turn logit by 1.2 at every step: SmolLM2 (and every fine-tune of it) ran each output to the token
    budget and trailed off into noun lists ("The sea. The sky. The sun."). The end of turn is now exempt."""
    from engine.guards import GuardSettings

    tok = tiny_lm.lm.tokenizer
    eos = tok.eos_token_id
    settings = GuardSettings(enabled=True, copy_ngram=0, min_new_tokens=0, readable_only=False)
    params = GenerationParams(max_new_tokens=8, repetition_penalty=1.2)
    penalty = next(
        p for p in tiny_lm._generate_kwargs([], params, settings)["logits_processor"] if isinstance(p, PromptPenalty)
    )
    other = 5 if eos != 5 else 6
    scores = torch.zeros(1, len(tok))
    scores[0, eos], scores[0, other] = 2.0, 1.9
    out = penalty(torch.tensor([[eos, 7]]), scores)  # the prompt holds the end of turn; `other` is unseen
    assert int(out.argmax()) == eos and float(out[0, eos]) == 2.0


def test_a_preset_sets_the_fewest_new_tokens_before_the_end_of_turn():
    """With the end of turn no longer taxed, the base SmolLM2 ends some answers after one line (7 words):
    its preset asks for a few sentences first; a request may set its own, and a short budget caps it."""
    small = PRESETS["smollm2-135m"]
    assert small.min_new_tokens > 0
    assert resolve_settings(GenerationParams(max_new_tokens=192), small).min_new_tokens == small.min_new_tokens
    assert resolve_settings(GenerationParams(max_new_tokens=16), small).min_new_tokens == 16
    assert resolve_settings(GenerationParams(max_new_tokens=192, min_new_tokens=0), small).min_new_tokens == 0


def test_settings_take_the_presets_defaults_unless_the_request_sets_them():
    small, large, rand = PRESETS["smollm2-135m"], PRESETS["qwen2.5-vl-3b"], PRESETS["tiny-random-vlm"]
    params = GenerationParams(max_new_tokens=40)
    assert resolve_settings(params, small).enabled and resolve_settings(params, small).copy_ngram == 6
    assert not resolve_settings(params, large).enabled  # real large presets decode plainly
    assert resolve_settings(GenerationParams(guards=True), large).copy_ngram == 6  # unless asked
    off = resolve_settings(GenerationParams(guards=False), small)
    assert (off.enabled, off.copy_ngram, off.keep_words) == (False, 0, 0.0)
    assert resolve_settings(params, rand).min_new_tokens == 40


def test_default_params_sample_for_smollm2_and_beam_search_elsewhere():
    small = default_params("smollm2-135m", 3, max_new_tokens=64)
    assert (small.do_sample, small.num_beams, small.num_return_sequences, small.max_new_tokens) == (True, 1, 3, 64)
    assert small.temperature == PRESETS["smollm2-135m"].temperature
    large = default_params("qwen2.5-vl-3b", 3)
    assert (large.do_sample, large.num_beams, large.num_return_sequences) == (False, 3, 3)


def test_guard_fields_are_validated():
    with pytest.raises(InputError, match="copy_ngram must be 0"):
        GenerationParams(copy_ngram=1)
    with pytest.raises(InputError, match="min_new_tokens must be in 0..max_new_tokens"):
        GenerationParams(max_new_tokens=8, min_new_tokens=9)
    with pytest.raises(InputError, match="keep_words"):
        GenerationParams(keep_words=-1.0)


def test_vllm_gets_the_same_bans_as_bad_words(tiny_lm):
    from engine.backends.vllm_backend import VLLMBackend
    from engine.guards import readable_token_ids
    from engine.tasks import Request

    backend = object.__new__(VLLMBackend)  # no vLLM on this machine: only the options it would pass
    backend.tokenizer = tiny_lm.lm.tokenizer
    settings = resolve_settings(GenerationParams(max_new_tokens=9), PRESETS["tiny-random-lm"])
    kwargs = backend.guard_kwargs(Request(3, "A stylish woman walks down a Tokyo street"), settings)
    assert "Output:" in kwargs["bad_words"] and "walks confidently and casually. The street" in kwargs["bad_words"]
    assert "stylish woman walks down a Tokyo" not in kwargs["bad_words"]  # the user's own words
    assert kwargs["min_tokens"] == 9 and kwargs["allowed_token_ids"] == readable_token_ids(tiny_lm.lm.tokenizer)
