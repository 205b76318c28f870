"""The faithfulness metric on hand-written cases: kept, dropped, moved to another object, contradicted."""

from __future__ import annotations

import pytest

from engine.errors import InputError
from engine.faithfulness import paired_diff_ci, parse_elements, score_text, summarize
from engine.faithfulness.autotag import autotag
from engine.faithfulness.rank import rank_value, ranked
from engine.faithfulness.score import bootstrap_ci

FOX = parse_elements(
    [
        {"kind": "object", "value": "fox"},
        {"kind": "color", "value": "red", "object": "fox"},
        {"kind": "object", "value": "bench"},
        {"kind": "relation", "value": "under", "subject": "fox", "object": "bench"},
        {"kind": "scene", "value": "park"},
        {"kind": "style", "value": "watercolor painting"},
        {"kind": "action", "value": "sleep", "subject": "fox"},
    ]
)


def statuses(text: str, elements=FOX) -> dict[str, str]:
    return {e.label(): s for e, s in score_text(text, elements).statuses}


def test_a_faithful_paraphrase_keeps_every_element():
    s = score_text("A red fox naps beneath a wooden bench in a quiet park. Soft watercolour washes.", FOX)
    assert s.all_kept and s.kept == s.total == 7 and s.missing() == []


def test_dropped_elements_are_named():
    got = statuses("A red fox sleeps under a bench in a park.")
    assert got["style watercolor painting"] == "dropped"
    assert [k for k, v in got.items() if v != "kept"] == ["style watercolor painting"]


def test_a_colour_moved_to_another_object_is_moved_not_kept():
    got = statuses("A fox sleeps under a red bench in a park, watercolor.")
    assert got["color red on fox"] == "moved"


def test_another_colour_on_the_object_contradicts():
    got = statuses("A blue fox sleeps under a bench in a park, watercolor.")
    assert got["color red on fox"] == "contradicted"


def test_a_colour_after_a_link_is_bound():
    assert (
        statuses("The fox is bright red. It sleeps under a bench in a park, watercolor.")["color red on fox"] == "kept"
    )


def test_the_opposite_side_contradicts_and_the_inverse_phrasing_keeps():
    assert statuses("A red fox sleeps on top of a bench in a park, watercolor.")["relation fox under bench"] == (
        "contradicted"
    )
    assert statuses("A bench stands above a sleeping red fox in a park, watercolor.")["relation fox under bench"] == (
        "kept"
    )


def test_left_and_right_inverse_and_opposite():
    tags = parse_elements([{"kind": "relation", "value": "left of", "subject": "cat", "object": "dog"}])
    assert statuses("The cat sits to the left of the dog.", tags)["relation cat left of dog"] == "kept"
    assert statuses("The dog sits to the right of the cat.", tags)["relation cat left of dog"] == "kept"
    assert statuses("The cat sits to the right of the dog.", tags)["relation cat left of dog"] == "contradicted"
    assert statuses("The dog is on the left of the cat.", tags)["relation cat left of dog"] == "contradicted"
    assert statuses("A cat and a dog.", tags)["relation cat left of dog"] == "dropped"


def test_counts_kept_in_words_or_digits_and_contradicted():
    tags = parse_elements([{"kind": "count", "value": "three", "object": "dog"}])
    assert statuses("Three small brown dogs play.", tags)["count 3 on dog"] == "kept"
    assert statuses("3 dogs play.", tags)["count 3 on dog"] == "kept"
    assert statuses("Two dogs play.", tags)["count 3 on dog"] == "contradicted"
    assert statuses("Dogs play.", tags)["count 3 on dog"] == "dropped"
    pair = parse_elements([{"kind": "count", "value": 2, "object": "dog"}])
    assert statuses("A pair of dogs play.", pair)["count 2 on dog"] == "kept"


def test_multi_word_objects_are_not_their_head_noun():
    tags = parse_elements([{"kind": "object", "value": "dog"}])
    assert statuses("A hot dog on a plate.", tags)["object dog"] == "dropped"
    assert statuses("A puppy next to a hot dog.", tags)["object dog"] == "kept"  # a listed synonym
    teddy = parse_elements(
        [{"kind": "object", "value": "teddy bear"}, {"kind": "color", "value": "orange", "object": "teddy bear"}]
    )
    got = statuses("An orange teddy bear sits on a shelf.", teddy)
    assert got == {"object teddy bear": "kept", "color orange on teddy bear": "kept"}


def test_tags_outside_the_vocabulary_match_their_own_words():
    tags = parse_elements(
        [
            {"type": "object", "name": "golden retriever"},
            {"kind": "style", "value": "in the style of Wong Kar-wai"},
            {"kind": "scene", "value": "neon alley"},
            {"kind": "action", "value": "chasing"},
        ]
    )
    text = "A retriever chases a ball down a neon-lit alley, framed like a Wong Kar-wai film."
    assert all(s == "kept" for s in statuses(text, tags).values())
    assert statuses("A dog runs.", tags)["style in the style of Wong Kar-wai"] == "dropped"


def test_bad_tags_are_one_line_errors():
    with pytest.raises(InputError, match="unknown tag kind"):
        parse_elements([{"kind": "mood", "value": "happy"}])
    with pytest.raises(InputError, match="needs the object"):
        parse_elements([{"kind": "color", "value": "red"}])
    with pytest.raises(InputError, match="not a number"):
        parse_elements([{"kind": "count", "value": "many", "object": "dog"}])
    with pytest.raises(InputError, match="left of / right of"):
        parse_elements([{"kind": "relation", "value": "near", "subject": "a", "object": "b"}])


def test_summary_counts_every_kind_words_and_copying():
    texts = [
        "A red fox naps beneath a bench in a park, watercolor painting.",  # all kept
        "A blue fox sleeps under a bench in a park.",  # colour contradicted, style dropped
        "Directly expand the following Input (brief description of a video) to Output. A red fox sleeps.",
    ]
    summary = summarize([score_text(t, FOX) for t in texts])
    assert summary.n == 3 and summary.keep_all == pytest.approx(100 / 3, abs=0.01)
    assert summary.per_kind["color"] == pytest.approx(200 / 3, abs=0.01)
    assert summary.contradicted["color"] == pytest.approx(100 / 3, abs=0.01)
    assert summary.copy_rate == pytest.approx(100 / 3, abs=0.01)  # the third copies the instruction
    assert summary.keep_all_ci[0] <= summary.keep_all <= summary.keep_all_ci[1]


def test_bootstrap_intervals_cover_the_mean_and_shrink_with_n():
    small = bootstrap_ci([1.0, 0.0] * 10, seed=1)
    large = bootstrap_ci([1.0, 0.0] * 500, seed=1)
    assert small[0] < 0.5 < small[1] and large[0] < 0.5 < large[1]
    assert large[1] - large[0] < small[1] - small[0]
    diff, (lo, hi) = paired_diff_ci([1.0] * 30 + [0.0] * 10, [0.0] * 40, seed=0)
    assert diff == pytest.approx(0.75) and 0.5 < lo <= hi <= 1.0


def test_ranking_puts_faithful_then_rich_first():
    texts = [
        "A fox.",
        "A red fox sleeps under a bench in a park, watercolor. The fox. The fox. The fox.",
        "A red fox naps beneath a bench in a quiet park at dusk, painted in soft watercolor. The fur glows "
        "against the wet grass while the camera slowly pushes in. Leaves drift across the path.",
    ]
    order = [i for i, _ in ranked(texts, FOX, None)]
    assert order == [2, 1, 0]
    values = [rank_value(s) for _, s in ranked(texts, FOX, None)]
    assert values == sorted(values, reverse=True)


def test_autotag_reads_the_vocabulary_off_a_short_prompt():
    got = {e.label() for e in autotag("two black cats to the left of a green umbrella on a beach, surrealism style")}
    assert got == {
        "object cat",
        "count 2 on cat",
        "color black on cat",
        "object umbrella",
        "color green on umbrella",
        "relation cat left of umbrella",
        "scene beach",
        "style surrealism",
    }
    assert {e.label() for e in autotag("A woman walking, in the style of Wong Kar-wai")} == {
        "object woman",
        "style Wong Kar-wai",
        "action walk",
    }
