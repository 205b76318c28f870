"""engine.budgets: counts under each target's tokenizer (exact where it is local, an estimate that says so
elsewhere), where the target cuts, fitting a text to a budget, and the generator's token budget."""

from __future__ import annotations

import math

import open_clip
import pytest

from engine.budgets import ESTIMATE_FACTORS, REFERENCE_TEXT, TARGETS, Budgets, get_target
from engine.errors import InputError
from engine.t2v.presets import T2V_PRESETS

SENTENCE = "A golden retriever runs along a sunlit beach at sunset. "


def clip_tokens(text: str) -> int:
    return len(open_clip.SimpleTokenizer().encode(text)) + 2


def test_targets_take_their_limits_from_the_t2v_presets() -> None:
    assert TARGETS["clip-l"].max_tokens == 77
    assert TARGETS["cogvideox-2b"].max_tokens == T2V_PRESETS["cogvideox-2b"].max_tokens == 226
    assert TARGETS["wan2.1-t2v-1.3b"].max_tokens == 512
    assert not any(name.startswith("tiny-random") for name in TARGETS)  # random pipelines are no target
    with pytest.raises(InputError, match="unknown target 'sd-xl': pick one of clip-l, "):
        get_target("sd-xl")


def test_clip_count_is_exact_and_the_cut_falls_after_the_last_word_that_fits() -> None:
    text = SENTENCE * 8  # 12 BPE tokens a sentence: 96 + 2 > 77
    m = Budgets().measure(text, "clip-l")
    assert m.exact and m.tokens == clip_tokens(text) == 98 and m.over == 21
    read, beyond = text[: m.fits_chars], text[m.fits_chars :]
    assert clip_tokens(read) <= 77 < clip_tokens(text[: m.fits_chars + len(beyond.split()[0]) + 1])
    assert read == SENTENCE * 6 + "A golden retriever"  # 6 x 12 + 3 + 2 = 77; "runs" would make 78
    assert Budgets().measure(SENTENCE, "clip-l").fits_chars == len(SENTENCE)


def test_fit_cuts_after_the_last_whole_sentence() -> None:
    text = SENTENCE * 8
    fitted, how = Budgets().fit(text, "clip-l")
    assert fitted == (SENTENCE * 6).strip() and how == "cut after sentence 6 (the next one would pass 77)"
    long_one = "a " * 100
    fitted, how = Budgets().fit(long_one, "clip-l")
    assert fitted == ("a " * 75).strip() and how == "cut inside the first sentence: it alone passes 77"
    assert Budgets().fit(SENTENCE, "clip-l") == (SENTENCE, "fits")


def test_without_a_local_tokenizer_the_count_is_an_estimate_that_says_how(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    for name in ("VIDPROMPTER_TOKENIZER_COGVIDEOX_2B", "VIDPROMPTER_T2V_COGVIDEOX_2B"):
        monkeypatch.delenv(name, raising=False)
    m = Budgets().measure(SENTENCE, "cogvideox-2b")
    assert not m.exact and m.tokens == math.ceil(12 * ESTIMATE_FACTORS["t5"]) + 1 == 15
    assert m.method.startswith("estimate: CLIP BPE tokens x 1.15 + 1 end token; T5-XXL's tokenizer is not on")
    assert "set VIDPROMPTER_TOKENIZER_COGVIDEOX_2B" in m.method and "VIDPROMPTER_T2V_COGVIDEOX_2B" in m.method


def test_a_local_pipeline_folder_gives_the_exact_count(monkeypatch) -> None:
    from engine.t2v.tiny import ensure_tiny_t2v

    folder = ensure_tiny_t2v("tiny-random-cogvideox")  # a real T5Tokenizer, built offline, in a diffusers layout
    monkeypatch.delenv("VIDPROMPTER_TOKENIZER_COGVIDEOX_2B", raising=False)
    monkeypatch.setenv("VIDPROMPTER_T2V_COGVIDEOX_2B", str(folder))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
    m = Budgets().measure(SENTENCE, "cogvideox-2b")
    assert m.exact and m.tokens == len(tokenizer(SENTENCE).input_ids)
    assert m.method == f"T5 tokenizer in {folder / 'tokenizer'}"


def test_a_tokenizer_folder_that_is_not_one_is_an_estimate_with_the_reason(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("VIDPROMPTER_TOKENIZER_COGVIDEOX_2B", str(tmp_path))  # an empty folder
    m = Budgets().measure(SENTENCE, "cogvideox-2b")
    assert not m.exact and f"the tokenizer in {tmp_path} cannot load here" in m.method


def test_generator_budget_converts_through_the_reference_text() -> None:
    words = len(REFERENCE_TEXT.split())
    tokens, ratio = Budgets().generator_tokens("clip-l", lambda text: len(text.split()))  # a 1-token-per-word LM
    assert ratio == pytest.approx(words / (clip_tokens(REFERENCE_TEXT) - 2))
    assert tokens == math.floor(75 * ratio)


def test_empty_text_is_one_line() -> None:
    with pytest.raises(InputError, match="nothing to count: the text is empty"):
        Budgets().measure("  ", "clip-l")
