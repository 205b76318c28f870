"""The one HDPO pair builder: which (preferred, displaced) sequences each term compares (paper 3.3)."""

import numpy as np
import pytest

from engine.errors import InputError
from engine.hallucination import PairConfig, PairSeq, Perturbations, build_pairs, hallucinate_frames, hallucinate_text
from engine.hallucination.pairs import NONE, ORIGINAL, PERTURBED, Augmenters, derive_seed
from engine.hallucination.text import TextHallucinationConfig
from engine.hallucination.video import VideoHallucinationConfig

CHOSEN = "Two boys in white shirts throw a red ball to the left."
PROMPT = "boys throw a ball"
REJECTED = ["a scene", "camera camera", "bright dark"]


def _frames(t: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (t, 24, 32, 3), dtype=np.uint8)


def _upper(text: str, lo: int, hi: int, seed: int) -> tuple[str, list]:
    """A spaCy-free text augmenter: upper-cases the first word (a visible, deterministic change)."""
    first, _, rest = text.partition(" ")
    return f"{first.upper()} {rest}".strip(), [{"seed": seed, "words": [lo, hi]}]


def _invert(frames, shuffle, paste, crop, seed) -> tuple[np.ndarray, list]:
    return 255 - np.asarray(frames), [{"op": "invert", "seed": seed}]


FAKE = Augmenters(text=_upper, frames=_invert)


def _terms(result) -> list[tuple[str, PairSeq, PairSeq]]:
    return [(term, result.seqs[p], result.seqs[d]) for term, p, d in result.pairs]


def test_task1_compares_chosen_with_rejected_swapped_response_and_perturbed_video():
    frames = _frames()
    out = build_pairs(1, PROMPT, frames, CHOSEN, REJECTED, seed=3, augmenters=FAKE)
    chosen = PairSeq(1, CHOSEN, None, ORIGINAL)  # Task 1 sees the video only: no short prompt
    assert out.seqs == [
        chosen,
        PairSeq(1, "a scene", None, ORIGINAL),  # num_rejected = 2: the third rejected is not used
        PairSeq(1, "camera camera", None, ORIGINAL),
        PairSeq(1, "TWO boys in white shirts throw a red ball to the left.", None, ORIGINAL),
        PairSeq(1, CHOSEN, None, PERTURBED),
    ]
    assert out.pairs == [
        ("dpo", 0, 1),
        ("dpo", 0, 2),
        ("response_hallucination", 0, 3),
        ("input_hallucination", 0, 4),
    ]
    np.testing.assert_array_equal(out.perturbed_frames, 255 - frames)
    assert [out.label(i) for i in range(4)] == [
        "rejected response 1",
        "rejected response 2",
        "response hallucination",
        "input hallucination (video)",
    ]
    assert out.records["seed"] == 3 and out.records["input_hallucination_video"][0]["op"] == "invert"


@pytest.mark.parametrize(
    ("task2_input", "frames", "prompt"),
    [
        ("video", PERTURBED, PROMPT),
        ("prompt", ORIGINAL, "BOYS throw a ball"),
        ("both", PERTURBED, "BOYS throw a ball"),
    ],
)
def test_task2_input_hallucination_perturbs_what_the_config_says(task2_input, frames, prompt):
    config = PairConfig(task2_input=task2_input, terms=("input_hallucination",))
    out = build_pairs(2, PROMPT, _frames(), CHOSEN, [], config, augmenters=FAKE)
    assert out.seqs == [PairSeq(2, CHOSEN, PROMPT, ORIGINAL), PairSeq(2, CHOSEN, prompt, frames)]
    assert out.pairs == [("input_hallucination", 0, 1)]
    assert (out.perturbed_frames is not None) == (frames == PERTURBED)
    assert out.label(0) == {"video": "input hallucination (video)", "prompt": "input hallucination (prompt)"}.get(
        task2_input, "input hallucination (video + prompt)"
    )


def test_task3_with_a_video_adds_the_task_displaced_conditionings_eq_12_13():
    config = PairConfig(terms=("input_hallucination", "task_hallucination"))
    out = build_pairs(3, PROMPT, _frames(), CHOSEN, REJECTED, config, augmenters=FAKE)
    assert _terms(out) == [
        # Eq. 11: Task 3's input is the short prompt only: it is the prompt that is swapped
        ("input_hallucination", PairSeq(3, CHOSEN, PROMPT, NONE), PairSeq(3, CHOSEN, "BOYS throw a ball", NONE)),
        # Eq. 12-13: the Task-3 response under the Task-1 and Task-2 conditioning of its sample
        ("task_hallucination", PairSeq(3, CHOSEN, PROMPT, NONE), PairSeq(1, CHOSEN, None, ORIGINAL)),
        ("task_hallucination", PairSeq(3, CHOSEN, PROMPT, NONE), PairSeq(2, CHOSEN, PROMPT, ORIGINAL)),
    ]
    assert out.perturbed_frames is None
    assert [out.label(1), out.label(2)] == ["task displaced: task 1", "task displaced: task 2"]


def test_text_only_task3_has_no_task_hallucination_and_disabled_terms_have_no_pairs():
    out = build_pairs(3, PROMPT, None, CHOSEN, REJECTED, augmenters=FAKE)
    assert [t for t, _, _ in out.pairs] == ["dpo", "dpo", "response_hallucination", "input_hallucination"]
    only_dpo = build_pairs(3, PROMPT, None, CHOSEN, REJECTED, PairConfig(terms=("dpo",), num_rejected=3))
    assert [(t, only_dpo.seqs[d].response) for t, _, d in only_dpo.pairs] == [("dpo", r) for r in REJECTED]


def test_nothing_to_swap_and_identical_sequences_drop_their_pairs():
    # No swappable word in the response or the prompt (real spaCy), a one-frame video that a shuffle
    # cannot change, and a rejected response equal to the chosen one: no pair is left but none.
    config = PairConfig(paste_ratio=None)
    out = build_pairs(2, "It is what it is.", _frames(t=1), "It is what it is.", ["It is what it is."], config)
    assert out.seqs == [PairSeq(2, "It is what it is.", "It is what it is.", ORIGINAL)]
    assert out.pairs == [] and out.perturbed_frames is None and out.records == {"seed": 0}
    both = PairConfig(task2_input="both", paste_ratio=None)
    out = build_pairs(2, "It is what it is.", _frames(t=1), CHOSEN, [], both, augmenters=Augmenters(text=_upper))
    # the fake swaps the prompt's first word, the real shuffle still cannot: the prompt change alone
    assert _terms(out)[-1][2] == PairSeq(2, CHOSEN, "IT is what it is.", ORIGINAL)


def test_same_seed_gives_byte_identical_perturbations_drawn_with_per_term_seeds():
    frames = _frames(t=6)
    a = build_pairs(2, PROMPT, frames, CHOSEN, REJECTED, PairConfig(task2_input="both"), seed=11)
    b = build_pairs(2, PROMPT, frames.copy(), CHOSEN, REJECTED, PairConfig(task2_input="both"), seed=11)
    assert a.seqs == b.seqs and a.pairs == b.pairs and a.records == b.records
    assert a.perturbed_frames.tobytes() == b.perturbed_frames.tobytes()
    # what a second caller gets by drawing with the per-term seeds itself (the contract of the viewer)
    y_h = hallucinate_text(CHOSEN, TextHallucinationConfig(1, 5), seed=derive_seed(11, "response"))
    q_h = hallucinate_text(PROMPT, TextHallucinationConfig(1, 5), seed=derive_seed(11, "prompt"))
    v_h, _ = hallucinate_frames(frames, VideoHallucinationConfig(), seed=derive_seed(11, "video"))
    assert a.seqs[3] == PairSeq(2, y_h.text, PROMPT, ORIGINAL) and y_h.text != CHOSEN
    assert a.seqs[4] == PairSeq(2, CHOSEN, q_h.text, PERTURBED) and q_h.text != PROMPT
    assert a.perturbed_frames.tobytes() == v_h.tobytes()
    c = build_pairs(2, PROMPT, frames, CHOSEN, REJECTED, PairConfig(task2_input="both"), seed=12)
    assert c.perturbed_frames.tobytes() != a.perturbed_frames.tobytes()


def test_given_perturbations_are_used_as_they_are():
    def never(*args):
        raise AssertionError("a given perturbation must not be drawn again")

    other = _frames(seed=5)
    given = Perturbations(response="Two girls throw a red ball.", prompt="girls throw a ball", frames=other)
    out = build_pairs(1, PROMPT, _frames(), CHOSEN, [], seed=1, given=given, augmenters=Augmenters(never, never))
    assert _terms(out)[0][2] == PairSeq(1, "Two girls throw a red ball.", None, ORIGINAL)
    assert _terms(out)[1][2] == PairSeq(1, CHOSEN, None, PERTURBED)  # Task 1 has no prompt to swap
    assert out.perturbed_frames is other
    assert out.records["response_hallucination"] == out.records["input_hallucination"] == {"source": "given"}


def test_defaults_are_the_paper_settings_and_bad_input_is_one_clear_line():
    c = PairConfig()
    assert (c.response_words, c.prompt_words, c.paste_ratio, c.crop_keep) == ((1, 5), (1, 5), (1 / 3, 1 / 2), None)
    assert c.shuffle and c.task2_input == "video" and c.num_rejected == 2 and len(c.terms) == 4
    assert PairConfig(response_words=[1, 3], paste_ratio=[0.25, 0.5]) == PairConfig((1, 3), paste_ratio=(0.25, 0.5))
    cases = [
        (lambda: build_pairs(1, None, None, CHOSEN, []), "task 1 pairs need the sample's video frames"),
        (lambda: build_pairs(3, " ", None, CHOSEN, []), "task 3 pairs need the sample's short prompt"),
        (lambda: build_pairs(3, PROMPT, None, "", []), "need the chosen response"),
        (lambda: build_pairs(4, PROMPT, None, CHOSEN, []), "unknown task 4"),
        (lambda: build_pairs(3, PROMPT, None, CHOSEN, [], seed=-1), "seed must be a non-negative integer"),
        (lambda: build_pairs(1, None, np.zeros((2, 4, 4)), CHOSEN, []), "frames must be uint8 \\(T, H, W, 3\\)"),
        (lambda: PairConfig(task2_input="audio"), "task2_input must be one of video, prompt, both"),
        (lambda: PairConfig(response_words=(0, 2)), "response_words must be \\[min, max\\]"),
        (lambda: PairConfig(terms=("dpo", "kto")), "unknown HDPO term"),
        (lambda: PairConfig(paste_ratio=(0.6, 0.2)), "paste_ratio must satisfy"),
    ]
    for call, message in cases:
        with pytest.raises(InputError, match=message) as info:
            call()
        assert "\n" not in str(info.value)
