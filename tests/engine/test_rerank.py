"""Over-generate, tidy, drop the degenerate, rerank (engine.rerank) and the Studio's reranked stream."""

from __future__ import annotations

import threading

from engine.rerank import dropped_summary, rerank, tidy
from engine.service import Studio
from engine.types import GenerationParams

CLEAN = (
    "A golden retriever leaps for a red frisbee on a sunny beach while waves roll in behind it. "
    "The camera tracks the dog at a low angle. Warm evening light gives the sand a soft glow."
)
NOUN_LIST = "The Dog runs on Beach. A smart cat with a beautiful coat. The ocean waves. The Sunset. The sky."
REPEATS = "A dog plays on a beach. The sea. The sea. The sea. The sea."


def test_tidy_cuts_at_the_first_repeat_junk_or_late_fragment_and_an_unfinished_end():
    assert tidy(NOUN_LIST) == ("The Dog runs on Beach. A smart cat with a beautiful coat.", ["fragment"])
    assert tidy(REPEATS) == ("A dog plays on a beach. The sea.", ["repeat"])
    assert tidy("A cat sleeps on a mat. Then the E.A.M.A.L.E. appears.") == ("A cat sleeps on a mat.", ["junk"])
    assert tidy(CLEAN + " Then the dog turns and runs toward the") == (CLEAN, ["unfinished"])
    assert tidy(CLEAN) == (CLEAN, [])


def test_rerank_puts_the_faithful_clean_candidate_first_and_drops_junk():
    ranked = rerank(["The sea. The sea.", NOUN_LIST, CLEAN], "a dog catches a frisbee on a beach")
    assert ranked[0].text == CLEAN and ranked[0].dropped is None
    assert ranked[-1].dropped == "fragment sentences"  # "The sea." alone: its second copy was cut
    assert dropped_summary(ranked) == "1 dropped (fragment sentences)"


class Scripted:
    """A streaming backend double: each candidate i is texts[i], written out word by word."""

    model_name, random_weights = "double", False

    def __init__(self, texts: list[str]) -> None:
        self.texts, self.asked = texts, []

    def stream(self, request, params: GenerationParams, stop: threading.Event):
        self.asked.append(params.num_return_sequences)
        rows = [self.texts[i % len(self.texts)] for i in range(params.num_return_sequences)]
        longest = max(len(t.split()) for t in rows)
        for n in range(1, longest + 1):
            yield [" ".join(t.split()[:n]) for t in rows]

    def generate(self, requests, params):
        return [list(self.texts[: params.num_return_sequences])]


def test_a_reranked_stream_draws_more_streams_the_first_and_ends_with_the_best():
    backend = Scripted([REPEATS, NOUN_LIST, CLEAN, "The sky. The sky. The sky."])
    studio = Studio(backends={"double": backend})
    params = GenerationParams(do_sample=True, temperature=0.7, num_return_sequences=2, max_new_tokens=64)
    items = list(
        studio.stream_task(3, short_prompt="a dog catches a frisbee on a beach", model="double", params=params, draw=8)
    )
    assert backend.asked == [8]
    assert all(len(item) == 2 for item in items[:-1])  # while drawing, the first two stream
    final = items[-1]
    assert final[0] == CLEAN and len(final) == 2 and "The sea. The sea." not in " ".join(final)
    assert "dropped" in final.dropped and final.flagged == ["", ""]
    plain = list(studio.stream_task(3, short_prompt="a dog", model="double", params=params))
    assert backend.asked[-1] == 2 and plain[-1] == [REPEATS, NOUN_LIST]  # no draw: as generated


def test_the_draw_fits_the_per_request_budget():
    from engine.turns import ModelTurns, TurnsConfig

    backend = Scripted([CLEAN])
    studio = Studio(backends={"double": backend})
    studio.turns = ModelTurns(TurnsConfig(max_token_rows=2048))
    long = GenerationParams(do_sample=True, temperature=0.7, num_return_sequences=2, max_new_tokens=512)
    list(studio.stream_task(3, short_prompt="a dog", model="double", params=long, draw=8))
    assert backend.asked[-1] == 4  # 4 x 512 = the 2,048 budget: not refused for asking 2


def test_a_backend_that_sets_stop_when_its_stream_ends_still_gets_reranked():
    """TransformersBackend.stream sets the stop event in its `finally` (an abandoned iterator must not leave
    the worker decoding): that is not the user stopping the run."""

    class SetsStop(Scripted):
        def stream(self, request, params, stop):
            try:
                yield from super().stream(request, params, stop)
            finally:
                stop.set()

    backend = SetsStop([REPEATS, NOUN_LIST, CLEAN])
    studio = Studio(backends={"double": backend})
    params = GenerationParams(do_sample=True, temperature=0.7, num_return_sequences=2, max_new_tokens=64)
    stop = threading.Event()
    stream = studio.stream_task(3, short_prompt="a dog", model="double", params=params, draw=8, stop=stop)
    *_, (final, stopped) = ((item, stop.is_set()) for item in stream)  # what a caller reads with each item
    assert hasattr(final, "dropped") and final[0] == CLEAN
    assert stopped is False  # the final item does not look like the user's Stop


def test_focus_ends_a_target_once_every_element_is_said_and_the_word_cap_or_a_fragment_is_reached():
    from engine.faithfulness.tags import parse_elements
    from engine.rerank import focus

    objects = [{"kind": "object", "value": "dog"}, {"kind": "object", "value": "frisbee"}]
    tags = parse_elements([*objects, {"kind": "scene", "value": "beach"}])
    drift = (
        "A dog runs across the sand. It leaps for a frisbee on a sunny beach. "
        "The camera follows it at a low angle. The beauty of the sea. A man in a hat watches from a boat."
    )
    # Every element is said by sentence 2; sentence 3 fits; "The beauty of the sea." (5 words) ends the target.
    assert focus(drift, tags, "a dog catches a frisbee on a beach", max_words=40) == (
        "A dog runs across the sand. It leaps for a frisbee on a sunny beach. The camera follows it at a low angle."
    )
    # The cap: nothing past the first 2 sentences fits 20 words.
    two = "A dog runs across the sand. It leaps for a frisbee on a sunny beach."
    assert focus(drift, tags, None, max_words=20) == two
    # Sentences before the last element are kept whatever the cap: the elements come first.
    assert focus(drift, tags, None, max_words=5).endswith("sunny beach.")
    # A sentence that moves an element elsewhere ends the target before it.
    side = {"kind": "relation", "value": "left of", "subject": "dog", "object": "frisbee"}
    left = parse_elements([*[e.as_dict() for e in tags], side])
    first = "A dog sits to the left of a frisbee on a sunny beach."
    assert focus(first + " Then the dog runs to the right of the frisbee.", left, None, max_words=40) == first
    # A text that never says every element is returned as it was: focus never makes a target less faithful.
    assert focus("A cat sleeps. The sea.", tags, None, max_words=40) == "A cat sleeps. The sea."
