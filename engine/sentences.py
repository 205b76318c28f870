"""Sentence splitting for detailed prompts: rule-based, offsets into the original text, no model.

A detailed text-to-video prompt is a paragraph of 2-10 sentences. A sentence ends at ``.``, ``!``, ``?`` or
``…`` (runs such as ``?!`` or ``...`` count once), followed by closing quotes or brackets, then whitespace,
or at a line break. It does not end:
- inside a number or a dotted word: ``3.5 m``, ``e.g.,`` (no whitespace after the dot);
- after a title or a Latin abbreviation: ``Dr. Lee``, ``e.g. a cat``, ``approx. two``, ``vs. the wind``;
- after a capital initial: ``J. R. R. Tolkien``;
- before a lower-case word after ``a.m.`` / ``p.m.`` / ``etc.`` (before a capital they end the sentence).

Why rules and not spaCy's parser or sentencizer: the sentencizer splits ``Dr. Lee`` and ``e.g. A``; the
parser costs ~5 ms a sentence and a model load; these rules are exact on the cases above (tests) and
cost microseconds. A fragment with no letter or digit (a stray ``...``) joins the sentence before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Words that a full stop never ends a sentence after (lower-cased, inner dots kept: "e.g").
NEVER_FINAL = frozenset(
    "mr mrs ms dr prof st mt ft sr jr vs approx fig figs no nos vol e.g i.e cf al ca incl esp dept est".split()
)
#: Words after which a full stop ends the sentence only when a capital or a digit follows.
FINAL_BEFORE_CAPITAL = frozenset("etc a.m p.m".split())
# A sentence end: one or more terminal marks, any closing quotes/brackets, then whitespace or the end.
_END = re.compile(r"([.!?…]+)([\"'”’)\]»]*)(?=\s|$)")
_LINE_BREAK = re.compile(r"\n\s*")
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")
_HAS_CONTENT = re.compile(r"\w")


@dataclass(frozen=True)
class Sentence:
    """One sentence: its text (stripped) and where it sits in the original text (``text[start:end]``)."""

    text: str
    start: int
    end: int


def split_sentences(text: str) -> list[Sentence]:
    """The sentences of `text`, in order, each with its [start, end) span; [] for blank text."""
    cuts = sorted({*_sentence_ends(text), *_line_ends(text)})
    pieces: list[tuple[int, int]] = []
    start = 0
    for cut in [*cuts, len(text)]:
        if cut > start:
            pieces.append((start, cut))
        start = max(start, cut)
    return _merge_fragments(text, [_strip(text, a, b) for a, b in pieces])


def _sentence_ends(text: str) -> list[int]:
    """Offsets just after each sentence-ending mark (and its closing quotes) that is a real end."""
    ends = []
    for match in _END.finditer(text):
        if _is_end(text, match):
            ends.append(match.end())
    return ends


def _is_end(text: str, match: re.Match[str]) -> bool:
    marks = match.group(1)
    if marks != ".":  # "!", "?", "…", "...", "?!": always an end
        return True
    word = _WORD_BEFORE.search(text, 0, match.start())
    if word is None:
        return True  # after a digit or a symbol: "costs 5." ends
    before = word.group(1).lower().rstrip(".")
    following = text[match.end() :].lstrip()[:1]
    if before in NEVER_FINAL:
        return False
    if len(word.group(1)) == 1 and word.group(1).isupper() and following[:1].isupper():
        return False  # "J. Smith": an initial
    if before in FINAL_BEFORE_CAPITAL:
        return not following or following.isupper() or following.isdigit()
    return True


def _line_ends(text: str) -> list[int]:
    """A line break ends a sentence (bullet lists, one shot per line)."""
    return [m.start() for m in _LINE_BREAK.finditer(text)]


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _merge_fragments(text: str, spans: list[tuple[int, int]]) -> list[Sentence]:
    """Spans as Sentences; an empty span is dropped and one without a letter or digit joins the previous."""
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if start == end:
            continue
        if merged and not _HAS_CONTENT.search(text, start, end):
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return [Sentence(text[a:b], a, b) for a, b in merged]
