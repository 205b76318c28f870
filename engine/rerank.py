"""Over-generate, tidy, drop the degenerate, rerank: the demo's detailed prompts (Task 3), torch-free.

A small model sampled K times writes some good paragraphs and some that trail off into fragments ("The sea.
The sea."), letter runs or copies of the instruction. The demo draws more candidates than it shows, then:

1. `tidy`: each candidate keeps its sentences up to the first that repeats an earlier one, contains a junk run
   or is a fragment of at most 3 words after the text's first two sentences; a last sentence cut off by the
   budget (no closing mark) goes too. What is left reads as written: nothing is rewritten.
2. drop: a tidied candidate that is still degenerate (engine.text_quality.degenerate: empty, junk, a repeat,
   an instruction copy, mostly fragments) is not shown and cannot be queued for labelling.
3. rank the rest by faithfulness to the short prompt's elements (engine.faithfulness: tags read off the
   prompt), then the share of its content words kept, then richness; the best n are shown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.faithfulness.rank import elements_for
from engine.faithfulness.score import FaithScore, rank_key, score_text
from engine.faithfulness.tags import Element
from engine.sentences import split_sentences
from engine.text_quality import FRAGMENT_WORDS, degenerate, word_list

_JUNK = re.compile(r"(?:\b[A-Za-z]\.){3,}|\b[A-Z]{2,}\b(?:\W+\b[A-Z]{2,}\b){2,}|\b[A-Z]{8,}\b")
_CLOSED = re.compile(r"[.!?…][\"'”’)\]]*$")


@dataclass
class Ranked:
    """One candidate after tidying: its text, what was cut, and its score (None when dropped)."""

    text: str
    original: str
    score: FaithScore
    dropped: str | None = None
    """Why it is not shown (engine.text_quality.degenerate), or None."""
    cut: list[str] = field(default_factory=list)
    """Why sentences were cut: "repeat", "junk", "fragment", "unfinished"."""


def tidy(text: str) -> tuple[str, list[str]]:
    """(the text up to its first repeated, junk or late-fragment sentence, why it was cut there)."""
    sentences = split_sentences(text)
    kept: list[str] = []
    seen: set[str] = set()
    why: list[str] = []
    for i, s in enumerate(sentences):
        norm = " ".join(w.lower() for w in word_list(s.text))
        if not norm:
            continue
        if norm in seen:
            why.append("repeat")
            break
        if _JUNK.search(s.text):
            why.append("junk")
            break
        if i >= 2 and len(norm.split()) <= FRAGMENT_WORDS:
            why.append("fragment")
            break
        seen.add(norm)
        kept.append(s.text)
    if kept and not why and not _CLOSED.search(kept[-1]) and len(kept) > 1:
        kept.pop()  # the budget cut the last sentence off mid-way
        why.append("unfinished")
    return " ".join(kept), why


#: A sentence after the tagged elements with fewer words than this ends a focused target: the noun-phrase
#: fragments ("The beauty of the sea.") a small model trails off into.
FOCUS_MIN_WORDS = 6


def focus(text: str, elements: Sequence[Element], short_prompt: str | None, max_words: int) -> str:
    """A training target that says the short prompt's elements and then stops: the shortest run of leading
    sentences that keeps every tagged element, then the next sentences while the text stays within
    `max_words`, no sentence is shorter than FOCUS_MIN_WORDS and none contradicts an element. A text that
    never keeps every element is returned as it was (focus never makes a target less faithful).
    Self-distilled targets of a 135M model drift after their first sentences into unrelated people and noun
    lists; a model fine-tuned on the whole drift learns to drift (issue 21: 74 % repeated sentences after SFT
    on untrimmed targets)."""
    sentences = [s.text for s in split_sentences(text)]
    prefixes = (" ".join(sentences[:k]) for k in range(1, len(sentences) + 1))
    said = next((k for k, p in enumerate(prefixes, 1) if score_text(p, elements, short_prompt).all_kept), None)
    if said is None:
        return text
    kept = sentences[:said]
    words = len(word_list(" ".join(kept)))
    for sentence in sentences[said:]:
        n = len(word_list(sentence))
        if n < FOCUS_MIN_WORDS or words + n > max_words:
            break
        if not score_text(" ".join([*kept, sentence]), elements, short_prompt).all_kept:
            break  # it contradicts an element (another colour, the other side): the target ends before it
        kept.append(sentence)
        words += n
    return " ".join(kept)


def rerank(texts: Sequence[str], short_prompt: str | None, tags=None) -> list[Ranked]:
    """Every candidate tidied and scored, best first; dropped ones last (their `dropped` says why)."""
    elements = elements_for(short_prompt, tags)
    out = []
    for original in texts:
        text, cut = tidy(original)
        score = score_text(text, elements, short_prompt)
        out.append(Ranked(text, original, score, degenerate(score.reader), cut))
    return sorted(out, key=_order, reverse=True)


def _order(r: Ranked) -> tuple:
    """Shown before dropped; then every tagged element kept, the share kept, fewer contradictions; then the
    share of the prompt's content words kept (words the vocabulary does not tag), then richness."""
    all_kept, share, contradictions, richness = rank_key(r.score)
    return (r.dropped is None, all_kept, share, contradictions, round(r.score.reader.kept_content, 6), richness)


def dropped_summary(ranked: Sequence[Ranked]) -> str:
    """ "2 dropped (repeated sentence, junk run)" or ""."""
    reasons = [r.dropped for r in ranked if r.dropped]
    if not reasons:
        return ""
    counts = {reason: reasons.count(reason) for reason in dict.fromkeys(reasons)}
    return (
        f"{len(reasons)} dropped (" + ", ".join(f"{k}" + (f" x{v}" if v > 1 else "") for k, v in counts.items()) + ")"
    )


#: Most candidates a reranked stream draws (rows of one batched generate).
MAX_DRAW = 16


class Reranked(list):
    """The final candidates of a reranked stream (a list of texts, best first) plus `dropped`: what was left
    out and why ("2 dropped (repeated sentence)"), and `cut`: per shown text, the sentences tidied away."""

    dropped: str = ""
    cut: list[list[str]]
    flagged: list[str]
    """Per shown text, why it is degenerate ("" for a clean one): only when every candidate was."""


def reranked(texts: list[str], short_prompt: str | None, shown: int) -> Reranked:
    """The `shown` best clean texts (tidied), or the least bad ones each flagged when every one is degenerate."""
    ranked = rerank(texts, short_prompt)
    keep = [r for r in ranked if r.dropped is None and r.text.strip()][:shown]
    if not keep:  # every one degenerate: show the least bad, each flagged with why
        keep = [r for r in ranked if r.text.strip()][:shown]
    out = Reranked(r.text for r in keep)
    out.dropped = dropped_summary(ranked)
    out.cut = [r.cut for r in keep]
    out.flagged = [r.dropped or "" for r in keep]
    return out
