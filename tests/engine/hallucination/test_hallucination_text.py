"""Response / prompt hallucination: categories, counts, offsets, agreement, determinism, skip rules."""

import json

import pytest

from engine.errors import InputError
from engine.hallucination import lexicon as lx
from engine.hallucination import text as T
from engine.hallucination.text import (
    CATEGORIES,
    TextHallucinationConfig,
    hallucinate_text,
    hallucinate_texts,
)

ALL = TextHallucinationConfig(min_words=64, max_words=64)  # swap every candidate

# (caption, every (original word, category) a full swap must touch, in text order)
EXPECTED = [
    (
        "Two boys are throwing a white ball to the left.",
        [("Two", "number"), ("boys", "noun"), ("throwing", "verb"), ("white", "color"), ("ball", "noun"),
         ("left", "direction")],
    ),
    (
        "An old man holds an umbrella and walks slowly down the stairs.",
        [("man", "noun"), ("holds", "verb"), ("umbrella", "noun"), ("walks", "verb"), ("down", "direction"),
         ("stairs", "noun")],
    ),
    (
        "A dozen children sit on the grass in a park.",
        [("dozen", "number"), ("children", "noun"), ("sit", "verb"), ("grass", "noun"), ("park", "noun")],
    ),
    (
        "He left the room and turned right now.",  # "left" is a verb here, "right now" is not a side
        [("room", "noun"), ("turned", None)],
    ),
]  # fmt: skip


def _words(edit):
    """The swapped word itself (an edit may also cover a fixed "a"/"an" before it)."""
    return edit.original.split()[-1]


@pytest.mark.parametrize("caption, expected", EXPECTED)
def test_full_swap_touches_exactly_the_expected_words(caption, expected):
    result = hallucinate_text(caption, ALL, seed=0)
    want = [(w, c) for w, c in expected if c is not None]
    assert [(_words(e), e.category) for e in result.edits] == want


def _distinct(edits) -> int:
    """How many distinct original words (by lemma) the edits swap."""
    return len({T.get_nlp()(_words(e).lower())[-1].lemma_ for e in edits})


def test_edit_count_category_and_offsets_on_real_captions(captions):
    for caption in captions:
        for seed in range(10):
            result = hallucinate_text(caption, seed=seed)
            assert 1 <= _distinct(result.edits) <= 5 and len(result.edits) >= _distinct(result.edits), caption
            ends = -1
            for e in result.edits:
                assert e.category in CATEGORIES
                assert caption[e.start : e.end] == e.original  # offsets index the original
                assert e.start >= ends  # sorted, no overlap
                ends = e.end
                assert _words(e).lower() != e.replacement.split()[-1].lower()
            assert T._apply(caption, result.edits) == result.text


def test_count_range_is_respected():
    caption = "Two boys and three girls throw a white ball and a red cup to the left of a green car."
    for seed in range(20):
        n = _distinct(hallucinate_text(caption, TextHallucinationConfig(min_words=2, max_words=3), seed).edits)
        assert 2 <= n <= 3
    assert len(hallucinate_text(caption, TextHallucinationConfig(min_words=4, max_words=4), 1).edits) == 4


def _coarse(tok) -> str | None:
    """Coarse category a re-tagger sees: closed classes by word list, nouns and verbs by POS."""
    lower = tok.lower_
    if lower.isdigit() or lower in T._NUMBERS or tok.lemma_.lower() in T._NUMBERS:
        return "number"
    if lower in T._COLORS:
        return "color"
    if lower in T._DIRECTIONS:
        return "direction"
    return {"NOUN": "noun", "VERB": "verb"}.get(tok.pos_)


def test_retagging_new_text_gives_same_category(captions, nlp):
    agree = total = 0
    for caption in captions:
        old = nlp(caption, disable=["ner"])
        for seed in range(10):
            result = hallucinate_text(caption, seed=seed)
            new = nlp(result.text, disable=["ner"])
            for e, (a, b) in zip(result.edits, result.new_spans(), strict=True):
                tok = new.char_span(a, b, alignment_mode="expand")[-1]
                before = old.char_span(e.start, e.end, alignment_mode="expand")[-1]
                same_tag = e.category not in ("noun", "verb") or tok.tag_ == before.tag_  # NNS stays NNS, VBD...
                agree += _coarse(tok) == e.category and same_tag
                total += 1
    # The small tagger re-reads a few swapped words differently ("jumps -> sprints" as NNS); measured ~95 %.
    assert agree / total >= 0.9, f"{agree}/{total}"


def test_inflection_and_agreement():
    result = hallucinate_text("Two boys were throwing balls.", ALL, seed=4)
    by_cat = {e.category: e.replacement for e in result.edits}
    assert by_cat["verb"].endswith("ing")
    assert by_cat["number"].lower() != "one"
    nouns = [e.replacement for e in result.edits if e.category == "noun"]
    assert all(n in {T._inflect(w, "NNS", "noun") for w in lx.alternatives(lx.NOUNS, *T._NOUNS[b])} for n, b in
               zip(nouns, ("boy", "ball"), strict=True))  # fmt: skip


@pytest.mark.parametrize("caption", ["She has an orange bag.", "She has a white cat."])
def test_article_is_fixed_before_new_word(caption):
    seen = set()
    for seed in range(40):
        result = hallucinate_text(caption, TextHallucinationConfig(1, 5, ("color",)), seed)
        for e in result.edits:
            words = e.replacement.split()
            if len(words) == 2:  # the edit widened over the article
                assert words[0].lower() == ("an" if T._wants_an(words[1]) else "a")
                seen.add(words[0].lower())
            else:  # article left alone: it must already fit
                before = result.text[: result.text.index(e.replacement)].split()[-1].lower()
                assert before in ("a", "an") and before == ("an" if T._wants_an(e.replacement) else "a")
    assert seen == ({"a"} if "orange" in caption else {"an"})  # orange -> "a" red; white -> "an" orange


def test_case_punctuation_and_whitespace_kept():
    caption = "Two  dogs,\n  run left!\tTHREE cats."
    result = hallucinate_text(caption, ALL, seed=2)
    assert [e.category for e in result.edits] == ["number", "noun", "verb", "direction", "number", "noun"]
    # Everything between the edits is untouched, byte for byte.
    gaps = [caption[a.end : b.start] for a, b in zip(result.edits, result.edits[1:], strict=False)]
    assert gaps == ["  ", ",\n  ", " ", "!\t", " "] and result.text.endswith(".")
    first, fifth = result.edits[0].replacement, result.edits[4].replacement
    assert first[0].isupper() and first[1:].islower() and fifth.isupper()


def test_skips_proper_nouns_entities_years_auxiliaries_and_one():
    caption = "In 2024 one man from the White House has visited the Golden Gate Bridge with John."
    for seed in range(20):
        for e in hallucinate_text(caption, seed=seed).edits:
            assert e.original in ("man", "visited"), e


def test_ner_option_protects_entities():
    config = TextHallucinationConfig(min_words=64, max_words=64, use_ner=True)
    result = hallucinate_text("Two soldiers walk past Red Square in 1999.", config, seed=0)
    assert [(e.original, e.category) for e in result.edits] == [("Two", "number"), ("soldiers", "noun"),
                                                                 ("walk", "verb")]  # fmt: skip


def test_nothing_to_swap_is_a_documented_noop():
    result = hallucinate_text("It is what it is.", seed=3)
    assert result.text == "It is what it is." and result.edits == []
    assert result.to_json() == {"text": "It is what it is.", "edits": []}


@pytest.mark.parametrize("bad", ["", "   \n", None])
def test_empty_text_is_an_input_error(bad):
    with pytest.raises(InputError):
        hallucinate_text(bad)


def test_bad_config_and_seed():
    with pytest.raises(InputError):
        TextHallucinationConfig(min_words=0)
    with pytest.raises(InputError):
        TextHallucinationConfig(min_words=3, max_words=2)
    with pytest.raises(InputError):
        TextHallucinationConfig(categories=("adverb",))
    with pytest.raises(InputError):
        TextHallucinationConfig(categories=())
    with pytest.raises(InputError):
        hallucinate_text("Two dogs.", seed=-1)
    with pytest.raises(InputError):
        hallucinate_texts(["Two dogs.", "A cat."], seeds=[1])


def test_deterministic_per_seed_and_varies_across_seeds(captions):
    caption = captions[0]
    assert hallucinate_text(caption, seed=7) == hallucinate_text(caption, seed=7)
    assert len({hallucinate_text(caption, seed=s).text for s in range(10)}) >= 8


def test_batched_equals_single(captions):
    batch = hallucinate_texts(captions, seeds=list(range(len(captions))))
    assert batch == [hallucinate_text(c, seed=s) for s, c in enumerate(captions)]
    assert hallucinate_texts(captions[:2], seeds=5) == [hallucinate_text(c, seed=5) for c in captions[:2]]


def test_categories_filter(captions):
    config = TextHallucinationConfig(categories=("color",))
    for seed in range(5):
        assert {e.category for e in hallucinate_text(captions[0], config, seed).edits} == {"color"}


def test_to_json_shape():
    payload = hallucinate_text("Two boys are throwing a white ball.", seed=1).to_json()
    assert set(payload) == {"text", "edits"}
    assert all(set(e) == {"start", "end", "original", "replacement", "category"} for e in payload["edits"])
    json.dumps(payload)


@pytest.mark.parametrize("table", [lx.NOUNS, lx.VERBS, lx.COLORS, lx.DIRECTIONS, lx.NUMBERS])
def test_lexicon_groups_are_disjoint_and_alternatives_exclude_synonyms(table):
    seen: dict[str, str] = {}
    for cls, groups in table.items():
        for g, group in enumerate(groups):
            for word in group:
                assert word not in seen or seen[word] != cls, f"{word} twice in {cls}"
                seen[word] = cls
                assert not set(group) & set(lx.alternatives(table, cls, g))
            assert len(groups) >= 2, f"{cls} has nothing to contrast with"


def test_hypernyms_are_never_swapped_in(captions):
    for caption in captions:
        for seed in range(10):
            for e in hallucinate_text(caption, seed=seed).edits:
                assert e.replacement.split()[-1].lower() not in {"person", "people", "vehicle", "room", "device"}


@pytest.mark.slow
def test_same_output_in_another_process_with_another_hash_seed(captions):
    import os
    import subprocess
    import sys

    code = (
        "import json, sys; from engine.hallucination import hallucinate_text as h; "
        "print(json.dumps(h(sys.argv[1], seed=9).to_json()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", code, captions[0]], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == hallucinate_text(captions[0], seed=9).to_json()


# ---- issue 12 item 8: plausible errors, not nonsense -------------------------------------------------

# Camera and shot vocabulary, written out here (not imported) so the test checks the code's list.
CAMERA_WORDS = {"camera", "shot", "angle", "close-up", "pan", "zoom", "tracking", "frame", "dolly", "tilt", "aerial",
                "footage", "lens", "focus", "drone", "tripod", "video", "scene", "clip"}  # fmt: skip

# (caption, every (original word, category) a full swap must touch): camera language is never touched.
CAMERA_CASES = [
    ("The camera slowly pans left as a dog runs across the field.",
     [("dog", "noun"), ("runs", "verb"), ("field", "noun")]),
    ("The camera slowly pans to the right and tilts up, following a dog that runs to the left.",
     [("dog", "noun"), ("runs", "verb"), ("left", "direction")]),
    ("The camera moves up to the sky as two birds fly down.",
     [("two", "number"), ("birds", "noun"), ("fly", "verb"), ("down", "direction")]),
    ("A close up of a cat, shot from above, then the camera zooms in on its left paw.",
     [("cat", "noun"), ("left", "direction")]),
    ("The video opens with a wide shot of a beach, and the scene cuts to a man holding a camera.",
     [("beach", "noun"), ("man", "noun"), ("holding", "verb")]),
    ("A drone shot glides over the forest while the camera slowly rotates clockwise.", [("forest", "noun")]),
    ("The depth of field is shallow, and the rack focus shifts from the cup to the field of view.",
     [("cup", "noun")]),
    ("A chef cut the bread while the camera stays still.",  # the verb "cut" is no film cut
     [("chef", "noun"), ("cut", "verb"), ("bread", "noun")]),
]  # fmt: skip


@pytest.mark.parametrize("caption, expected", CAMERA_CASES)
def test_camera_language_is_not_scene_content(caption, expected):
    result = hallucinate_text(caption, ALL, seed=0)
    assert [(_words(e), e.category) for e in result.edits] == expected


@pytest.mark.parametrize("caption", ["The camera slowly pans left.", "The camera slowly zooms in on a clock."])
def test_camera_is_never_swapped_or_swapped_in(caption):
    for seed in range(200):
        for e in hallucinate_text(caption, seed=seed).edits:
            assert not {_words(e).lower(), e.replacement.split()[-1].lower()} & CAMERA_WORDS, (seed, e)


@pytest.mark.parametrize("table", [lx.NOUNS, lx.VERBS, lx.COLORS, lx.DIRECTIONS, lx.NUMBERS])
def test_lexicon_holds_no_camera_vocabulary(table):
    words = {w for groups in table.values() for group in groups for w in group}
    assert not words & CAMERA_WORDS


HYPHEN_CASES = [
    ("Close-up of a dog in a first-person shot.", [("dog", "noun")]),
    ("A man in a red t-shirt walks past a twenty-five story building.",
     [("man", "noun"), ("red", "color"), ("t-shirt", "noun"), ("walks", "verb"), ("building", "noun")]),
    ("A bird's-eye view of a well-lit street where a middle-aged woman turns counter-clockwise.",
     [("street", "noun"), ("woman", "noun"), ("counter-clockwise", "direction")]),
]  # fmt: skip


@pytest.mark.parametrize("caption, expected", HYPHEN_CASES)
def test_hyphenated_compounds_stay_whole(caption, expected):
    result = hallucinate_text(caption, ALL, seed=0)
    assert [(_words(e), e.category) for e in result.edits] == expected
    for seed in range(30):  # a whole compound may be replaced; a part of one never is
        for e in hallucinate_text(caption, seed=seed).edits:
            assert caption[e.start - 1 : e.start] != "-" and caption[e.end : e.end + 1] != "-", e
            assert "-" not in e.replacement or "-" in e.original


GOATS = (
    "An adorable goat grazes on the grass near a white fence. The goat appears calm. Later two goats walk away "
    "from the fence while the goat keeps chewing grass."
)


def test_one_original_word_gets_one_replacement_throughout():
    for seed in range(100):
        result = hallucinate_text(GOATS, seed=seed)
        by_word: dict[str, set[str]] = {}
        for e in result.edits:
            by_word.setdefault(_words(e).lower(), set()).add(e.replacement.split()[-1].lower())
        assert all(len(new) == 1 for new in by_word.values()), (seed, by_word)
        goats = [e for e in result.edits if _words(e).lower() in ("goat", "goats")]
        assert len(goats) in (0, 4), (seed, goats)  # every mention or none
        singular = {e.replacement.split()[-1].lower() for e in goats if _words(e) == "goat"}
        plural = {e.replacement.split()[-1].lower() for e in goats if _words(e) == "goats"}
        assert {T._inflect(w, "NNS", "noun") for w in singular} == plural


def test_word_bounds_count_distinct_original_words():
    for seed in range(40):
        result = hallucinate_text(GOATS, TextHallucinationConfig(min_words=2, max_words=2), seed)
        assert _distinct(result.edits) == 2, (seed, [(e.original, e.replacement) for e in result.edits])


def test_two_originals_never_merge_into_one():
    for seed in range(60):
        result = hallucinate_text("A dog chases a cat around a horse.", TextHallucinationConfig(3, 3, ("noun",)), seed)
        new = [e.replacement.split()[-1].lower() for e in result.edits]
        assert len(set(new)) == 3 and not set(new) & {"dog", "cat", "horse"}, (seed, new)


SENSE_CASES = [
    ("The dog appears to be a mixed breed with a white and brown coat.",
     [("dog", "noun"), ("white", "color"), ("brown", "color")]),
    ("The man is wearing a black coat.", [("man", "noun"), ("wearing", "verb"), ("black", "color"), ("coat", "noun")]),
    ("They stand at the foot of the hill, six feet apart, in the back of the room.",
     [("stand", "verb"), ("hill", "noun"), ("six", "number"), ("room", "noun")]),
    ("A couple of minutes later, the woman looks happy and looks up at a jet of water.",
     [("woman", "noun"), ("looks", "verb"), ("up", "direction"), ("water", "noun")]),
    ("They pass by several men, giving the viewer a sense of calm.", [("men", "noun")]),
    ("A woman in a red top stands on the top of the hill.",
     [("woman", "noun"), ("red", "color"), ("top", "noun"), ("stands", "verb"), ("hill", "noun")]),
    ("A dog runs from left to right past a fork in the road.", [("dog", "noun"), ("runs", "verb"), ("road", "noun")]),
]  # fmt: skip


@pytest.mark.parametrize("caption, expected", SENSE_CASES)
def test_words_are_swapped_only_in_the_sense_their_group_assumes(caption, expected):
    result = hallucinate_text(caption, ALL, seed=0)
    assert [(_words(e), e.category) for e in result.edits] == expected


def test_glasses_worn_and_glasses_of_wine_get_their_own_kind():
    result = hallucinate_text("A woman wears glasses and holds two glasses of wine.", ALL, seed=0)
    worn, held = [e.replacement.split()[-1].lower() for e in result.edits if _words(e) == "glasses"]
    clothing = {T._inflect(w, "NNS", "noun") for g in lx.NOUNS["clothing"] for w in g}
    objects = {T._inflect(w, "NNS", "noun") for g in lx.NOUNS["object"] for w in g}
    assert worn in clothing and held in objects


@pytest.mark.slow
def test_misread_verbs_are_what_the_tagger_misreads(nlp):
    """Re-measure lx.MISREAD_VERBS: a verb form is misread when the tagger gives it another POS or tag
    in at least 2 of 6 plain caption frames."""
    from lemminflect import getInflection

    subjects = {"VBZ": ["A woman", "The old man", "A small dog", "The girl", "She", "The farmer"],
                "VBP": ["Two women", "The children", "They", "The dogs", "Three men", "We"]}  # fmt: skip
    rest = ["on a wooden bench.", "near the window.", "across the lawn.", "and smiles.", "in the kitchen.",
            "beside the fence."]  # fmt: skip
    lemmas = [w for groups in lx.VERBS.values() for group in groups for w in group]
    for tag, subs in subjects.items():
        forms = {w: w if tag == "VBP" else getInflection(w, tag=tag)[0] for w in lemmas}
        sents = [f"{s} {forms[w]} {r}" for w in lemmas for s, r in zip(subs, rest, strict=True)]
        docs = iter(nlp.pipe(sents, disable=["ner"]))
        misread = set()
        for w in lemmas:
            misses = 0
            for _ in subs:
                tok = next(t for t in next(docs) if t.text == forms[w])
                misses += tok.pos_ != "VERB" or tok.tag_ != tag
            if misses >= 2:
                misread.add(w)
        assert misread == lx.MISREAD_VERBS[tag], tag


def test_replacement_verbs_avoid_forms_the_tagger_misreads():
    for seed in range(40):
        for e in hallucinate_text("A woman sits on a bench.", TextHallucinationConfig(1, 1, ("verb",)), seed).edits:
            lemma = T.get_nlp()(f"She {e.replacement}.")[1].lemma_
            assert lemma not in lx.MISREAD_VERBS["VBZ"], e


def test_every_mention_is_an_option_that_reaches_the_pair_builder():
    from engine.hallucination import TextHallucinationConfig, hallucinate_text
    from engine.hallucination.pairs import PairConfig, build_pairs

    text = "The dog runs. The dog jumps. The dog sleeps."  # one noun, three mentions
    every = hallucinate_text(text, TextHallucinationConfig(min_words=1, max_words=1, categories=("noun",)), seed=0)
    first = hallucinate_text(
        text, TextHallucinationConfig(min_words=1, max_words=1, categories=("noun",), every_mention=False), seed=0
    )
    assert len(first.edits) == 1 and first.edits[0].original == every.edits[0].original
    assert len(every.edits) == 3  # each mention of the swapped word
    one = PairConfig(terms=("response_hallucination",), response_words=(1, 1), every_mention=False)
    all_ = PairConfig(terms=("response_hallucination",), response_words=(1, 1))
    dogs = "A dog, a dog and a dog."  # nothing else to swap
    seqs = {c.every_mention: build_pairs(3, "a dog", None, dogs, [], c, seed=3).seqs[1].response for c in (one, all_)}
    assert seqs[True].count("dog") == 0 and seqs[False].count("dog") == 2
