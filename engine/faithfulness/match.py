"""Does a detailed prompt keep each tagged element of its short prompt? (torch-free, spaCy-free)

The text is split into word tokens (lower case, letters and digits), each carrying its sentence and clause
(commas, semicolons and full stops end clauses). Objects are found as token sequences of their surface forms
(name, synonyms, plurals, multi-word names such as "teddy bear" or "hot dog"); when two forms overlap the
longer one wins, so "hot dog" is never a dog. Then, per element:

| kind     | kept when                                              | contradicted when                        |
|----------|--------------------------------------------------------|------------------------------------------|
| object   | a mention of it                                        | -                                        |
| color    | the colour is bound to a mention of the object: within | another colour is bound to it and the    |
|          | 3 words before it in its clause ("a bright red car"),  | tagged one never is; "moved" when the    |
|          | or after a link ("the car is red", "painted red")      | tagged colour sits on another object     |
| count    | the number (word or digit) within 3 words before a     | another number is bound to it and the    |
|          | mention ("three small dogs", "a pair of dogs")         | tagged one never is                      |
| relation | subject, a phrase of the relation, object, in one      | the other side is stated (A right of B,  |
|          | sentence within 8 words; or the inverse (B right of A) | or B left of A)                          |
| scene    | one of its phrases (beach: beach, shore, seashore ...) | -                                        |
| style    | one of its phrases (surrealism: surreal, surrealist..) | -                                        |
| action   | an inflection of the verb or a listed synonym          | -                                        |

A tag whose value is not in engine.faithfulness.vocab is matched by its own words: an object by its name,
its plural and, for a multi-word name, its head noun; a scene or style by all of its content words (stems:
"surrealism" matches "surreal"); an action by the inflections of its lemma.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar

from engine.faithfulness.tags import Element
from engine.faithfulness.vocab import (
    ACTION_SYNONYMS,
    COLORS,
    COUNTS,
    OBJECTS,
    RELATIONS,
    SCENES,
    STYLES,
    object_entry,
    phrase_entry,
)

STATUSES = ("kept", "dropped", "moved", "contradicted")
_TOKEN = re.compile(r"[a-z0-9]+|[.!?;:\n]|,")
_SENTENCE_END = {".", "!", "?", ";", ":", "\n"}
#: Words that end a noun phrase when looking back from an object for its colour or count.
_NP_STOP = {
    "and",
    "or",
    "but",
    "with",
    "of",
    "in",
    "on",
    "at",
    "by",
    "from",
    "to",
    "near",
    "under",
    "beside",
    "behind",
    "while",
    "is",
    "are",
    "was",
    "were",
    "as",
    "than",
    "that",
    "which",
    "who",
    "its",
    "their",
    "his",
    "her",
}
#: Words after an object that attach a colour to it ("the car is red", "a wall painted blue").
_LINKS = {
    "is",
    "are",
    "was",
    "were",
    "painted",
    "colored",
    "coloured",
    "dyed",
    "looks",
    "look",
    "appears",
    "appear",
    "seems",
    "seem",
    "all",
    "in",
}
_COUNT_SKIP = {"of"}  # "a pair of dogs", "a trio of birds"
_COLOR_WORDS = {word: name for name, words in COLORS.items() for word in words}
_COUNT_WORDS = {word: n for n, words in COUNTS.items() for word in words}
_STYLE_STOP = {"style", "styled", "in", "the", "of", "by", "a", "an", "as", "shot", "look", "aesthetic", "art"}
_STEM_SUFFIXES = ("istic", "ism", "ist", "ical", "ic", "ed", "ing", "es", "s")
MAX_RELATION_GAP = 8
BACK = 3


@dataclass(frozen=True)
class Tok:
    text: str
    sent: int
    clause: int


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    """Exclusive."""
    owner: str
    """The object name this mention belongs to."""


def tokenize(text: str) -> list[Tok]:
    """Word tokens of `text` with their sentence and clause numbers (punctuation is not a token)."""
    out: list[Tok] = []
    sent = clause = 0
    for m in _TOKEN.finditer(text.lower()):
        t = m.group()
        if t in _SENTENCE_END:
            sent, clause = sent + 1, clause + 1
        elif t == ",":
            clause += 1
        else:
            out.append(Tok(t, sent, clause))
    return out


def words(text: str) -> tuple[str, ...]:
    return tuple(t.text for t in tokenize(text))


# --------------------------------------------------------------------------- surface forms


def _plurals(noun: str) -> set[str]:
    from lemminflect import getInflection

    head = noun.split()[-1]
    forms = set(getInflection(head, "NNS") or ()) | {head + "s"}
    prefix = noun[: len(noun) - len(head)]
    return {prefix + f for f in forms}


@lru_cache(maxsize=4096)
def object_forms(name: str) -> frozenset[tuple[str, ...]]:
    """Token sequences that mention object `name` (vocabulary synonyms and plurals included)."""
    entry = object_entry(name)
    nouns = [entry.name, *entry.synonyms] if entry else [name.lower()]
    if entry is None and len(name.split()) > 1:
        nouns.append(name.split()[-1].lower())  # an unknown "golden retriever" is kept by "retriever"
    forms: set[str] = set()
    for noun in nouns:
        forms |= {noun} | _plurals(noun)
    return frozenset(words(f) for f in forms if words(f))


@lru_cache(maxsize=1)
def _vocab_forms() -> tuple[tuple[tuple[str, ...], str], ...]:
    """(form, owner) for every vocabulary object: mentions of untagged objects still block overlaps. A form
    that is also a colour word ("orange") is left out: untagged, it is far likelier the colour."""
    return tuple(
        (form, e.name) for e in OBJECTS for form in object_forms(e.name) if " ".join(form) not in _COLOR_WORDS
    )


def find_mentions(toks: Sequence[Tok], names: Iterable[str]) -> list[Span]:
    """Mentions of the vocabulary objects and of `names`, longest form first where two overlap."""
    by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    tagged = [(form, n) for n in names for form in object_forms(n)]
    for form, owner in (*tagged, *_vocab_forms()):  # tagged names first: they own a form both list
        by_first.setdefault(form[0], []).append((form, owner))
    texts = [t.text for t in toks]
    found: list[Span] = []
    for i, t in enumerate(texts):
        for form, owner in by_first.get(t, ()):
            if tuple(texts[i : i + len(form)]) == form:
                found.append(Span(i, i + len(form), owner))
    found.sort(key=lambda s: (-(s.end - s.start), s.start))
    taken: set[int] = set()
    kept = []
    for span in found:
        cells = set(range(span.start, span.end))
        if cells & taken:
            continue
        taken |= cells
        kept.append(span)
    kept.sort(key=lambda s: s.start)
    # A tagged object named by a colour word ("orange") right before another mention is that one's colour.
    return [
        s
        for i, s in enumerate(kept)
        if not (texts[s.start] in _COLOR_WORDS and i + 1 < len(kept) and kept[i + 1].start - s.end <= 2)
    ]


def _canon(name: str) -> str:
    entry = object_entry(name)
    return entry.name if entry else name.lower()


# --------------------------------------------------------------------------- bound attributes


V = TypeVar("V")


def _look_back(toks: Sequence[Tok], span: Span, starts: set[int], table: Mapping[str, V]) -> list[V]:
    """Attribute words (colours or counts, per `table`) within BACK words before a mention, same clause."""
    out: list[V] = []
    i, seen = span.start - 1, 0
    while i >= 0 and seen < BACK and toks[i].clause == toks[span.start].clause:
        word = toks[i].text
        if i in starts:  # another object's mention ends the phrase
            break
        if word in table:
            out.append(table[word])
        elif word in _NP_STOP and not (
            word in _COUNT_SKIP and i > 0 and toks[i - 1].text in ("pair", "couple", "trio")
        ):
            break
        i, seen = i - 1, seen + 1
    return out


def _look_ahead(toks: Sequence[Tok], span: Span, starts: set[int]) -> list[str]:
    """Colours linked after a mention: "the car is bright red", "a wall painted blue"."""
    if span.end >= len(toks) or toks[span.end].text not in _LINKS:
        return []
    out = []
    for i in range(span.end + 1, min(span.end + 4, len(toks))):
        if toks[i].clause != toks[span.start].clause or i in starts:
            break
        if toks[i].text in _COLOR_WORDS:
            out.append(_COLOR_WORDS[toks[i].text])
    return out


@dataclass
class Reading:
    """What a text says about objects: its tokens, mentions, and the colours / counts bound to each object."""

    toks: list[Tok]
    mentions: list[Span]
    colors: dict[str, set[str]] = field(default_factory=dict)
    counts: dict[str, set[int]] = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        return [t.text for t in self.toks]


def read(text: str, names: Iterable[str]) -> Reading:
    toks = tokenize(text)
    mentions = find_mentions(toks, names)
    starts = {i for s in mentions for i in range(s.start, s.end)}
    r = Reading(toks, mentions)
    for span in mentions:
        colors = _look_back(toks, span, starts, _COLOR_WORDS) + _look_ahead(toks, span, starts)
        r.colors.setdefault(span.owner, set()).update(map(str, colors))
        r.counts.setdefault(span.owner, set()).update(int(c) for c in _look_back(toks, span, starts, _COUNT_WORDS))
    return r


# --------------------------------------------------------------------------- per kind


def _status_bound(tagged: str | int, obj: str, bound: dict, others: Iterable[str]) -> str:
    mine = bound.get(obj, set())
    if tagged in mine:
        return "kept"
    if any(tagged in bound.get(o, set()) for o in others if o != obj):
        return "moved"
    return "contradicted" if mine else "dropped"


def _relation_phrases() -> list[tuple[tuple[str, ...], str]]:
    return sorted(((words(p), rel) for rel, (ps, _, _) in RELATIONS.items() for p in ps), key=lambda x: -len(x[0]))


_REL_PHRASES = _relation_phrases()


def _stated(between: list[str]) -> set[str]:
    """Relations a span of words states, longest phrase first ("on the left of" is left of, not on)."""
    taken: set[int] = set()
    out = set()
    for phrase, rel in _REL_PHRASES:
        n = len(phrase)
        for i in range(len(between) - n + 1):
            if tuple(between[i : i + n]) == phrase and not taken & set(range(i, i + n)):
                taken |= set(range(i, i + n))
                out.add(rel)
    return out


def relation_claims(r: Reading, a: str, b: str) -> set[str]:
    """Relations the text states for (a REL b), inverse statements (b INV a) normalised to a-first."""
    out: set[str] = set()
    for x in r.mentions:
        for y in r.mentions:
            if x.end > y.start or y.start - x.end > MAX_RELATION_GAP or r.toks[x.start].sent != r.toks[y.start].sent:
                continue
            between = r.texts[x.end : y.start]
            for rel in _stated(between):
                if (x.owner, y.owner) == (a, b):
                    out.add(rel)
                elif (x.owner, y.owner) == (b, a):
                    out.add(RELATIONS[rel][1])  # b rel a == a inverse(rel) b
    return out


def _stem(word: str) -> str:
    for suffix in _STEM_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def _has_phrase(texts: list[str], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(tuple(texts[i : i + n]) == phrase for i in range(len(texts) - n + 1))


def _phrase_kept(texts: list[str], value: str, entries) -> bool:
    entry = phrase_entry(entries, value)
    if entry is not None:
        return any(_has_phrase(texts, words(f)) for p in entry.keeps for f in _phrase_forms(p))
    content = [w for w in words(value) if w not in _STYLE_STOP] or list(words(value))
    stems = {_stem(t) for t in texts}
    return all(_stem(w) in stems or any(s.startswith(_stem(w)) for s in stems) for w in content)


@lru_cache(maxsize=1024)
def _phrase_forms(phrase: str) -> tuple[str, ...]:
    """A keep phrase and its plurals ("mountain", "mountains")."""
    return (phrase, *sorted(_plurals(phrase))) if phrase[-1:].isalpha() else (phrase,)


@lru_cache(maxsize=1024)
def action_forms(value: str) -> frozenset[str]:
    from lemminflect import getAllInflections, getLemma

    lemma = (getLemma(value.lower(), upos="VERB") or (value.lower(),))[0]
    out = {value.lower(), lemma}
    for verb in (lemma, *ACTION_SYNONYMS.get(lemma, ())):
        out.add(verb)
        for forms in getAllInflections(verb, upos="VERB").values():
            out.update(forms)
    return frozenset(out)


def element_status(e: Element, r: Reading, objects: Sequence[str]) -> str:
    """kept / dropped / moved / contradicted for one element in a read text."""
    if e.kind == "object":
        return "kept" if any(s.owner == _canon(e.value) for s in r.mentions) else "dropped"
    if e.kind == "color":
        return _status_bound(e.value, _canon(e.object or ""), r.colors, objects)
    if e.kind == "count":
        return _status_bound(int(e.value), _canon(e.object or ""), r.counts, objects)
    if e.kind == "relation":
        claims = relation_claims(r, _canon(e.subject or ""), _canon(e.object or ""))
        if e.value in claims:
            return "contradicted" if RELATIONS[e.value][2] in claims else "kept"
        return "contradicted" if RELATIONS[e.value][2] in claims else "dropped"
    if e.kind == "scene":
        return "kept" if _phrase_kept(r.texts, e.value, SCENES) else "dropped"
    if e.kind == "style":
        return "kept" if _phrase_kept(r.texts, e.value, STYLES) else "dropped"
    if e.kind == "action":
        return "kept" if action_forms(e.value) & set(r.texts) else "dropped"
    raise ValueError(f"unknown element kind {e.kind!r}")


def tagged_objects(elements: Iterable[Element]) -> list[str]:
    names = []
    for e in elements:
        for n in (e.value if e.kind == "object" else None, e.object, e.subject if e.kind == "relation" else None):
            if n and _canon(n) not in names:
                names.append(_canon(n))
    return names


def check(text: str, elements: Sequence[Element]) -> list[tuple[Element, str]]:
    """Each element with its status in `text` (see STATUSES)."""
    objects = tagged_objects(elements)
    r = read(text, objects)
    return [(e, element_status(e, r, objects)) for e in elements]
