"""Ranking candidates by faithfulness, then richness: best-of-N chosen responses, rejected beams, reranking.

The order is `engine.faithfulness.score.rank_key`'s: every tagged element kept, the share kept, fewer
contradictions, then richness (engine.text_quality). `rank_value` folds that order into one number that
sorts the same way, for stores that keep one score per response (mining's Score rows).
Tags come from the sample (the corpus' own); a short prompt without tags is tagged by
engine.faithfulness.autotag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.faithfulness.score import FaithScore, rank_key, score_text
from engine.faithfulness.tags import Element, parse_elements

#: Score names stored per response: the share of tagged elements kept (%), and the ranking value.
FAITHFULNESS = "faithfulness"
FAITH_RANK = "faithfulness-rank"


def elements_for(short_prompt: str | None, tags: Sequence[Mapping[str, Any]] | None) -> list[Element]:
    """The sample's tags, or (none stored) the tags read off its short prompt."""
    if tags:
        return parse_elements(list(tags))
    from engine.faithfulness.autotag import autotag

    return autotag(short_prompt or "")


def rank_value(s: FaithScore) -> float:
    """A number ordered as rank_key: 1000 for every element kept, + 100 x the share kept, - 1 per
    contradiction (<= 7 < the 14 points one more kept element of 7 is worth), + 0.1 x richness (< 1)."""
    return round(1000.0 * s.all_kept + 100.0 * s.kept_share - s.contradictions + 0.1 * s.richness, 6)


def score_all(texts: Sequence[str], elements: Sequence[Element], short_prompt: str | None) -> list[FaithScore]:
    return [score_text(t, elements, short_prompt) for t in texts]


def ranked(
    texts: Sequence[str], elements: Sequence[Element], short_prompt: str | None
) -> list[tuple[int, FaithScore]]:
    """(index, score) of each text, best first (ties keep the given order)."""
    scores = score_all(texts, elements, short_prompt)
    order = sorted(range(len(texts)), key=lambda i: rank_key(scores[i]), reverse=True)
    return [(i, scores[i]) for i in order]


def stored_scores(s: FaithScore) -> dict[str, float]:
    """What a response's Score rows keep: the share kept (%) and the ranking value."""
    return {FAITHFULNESS: round(100.0 * s.kept_share, 4), FAITH_RANK: rank_value(s)}
