"""What a reader sees in a detailed prompt: fragments, repeated sentences, junk runs, copying, length.

Torch-free measures (the UI, the metric and the benches read them) of one candidate text:

- fragments: sentences of at most 3 words ("The sea." "The Snow.");
- repeated sentences: a sentence whose words (lower case) already appeared as a sentence;
- junk runs: letter-dot runs ("E.A.M.A.L.E."), three or more all-capital words in a row, or one word of
  eight or more capitals;
- distinct-2: distinct word bigrams / word bigrams (1.0: no bigram repeats);
- instruction copy: a run of COPY_WORDS words of the task instruction (its rules and the Tokyo example),
  runs the short prompt also has excepted: the output may repeat the user's own words;
- prompt echo: the output opens with the short prompt's words, in order (a title-case restatement);
- content words kept: the short prompt's content words that the output also has (plural / -ing forms of
  the same stem count);
- chatter: the model talking about the task instead of describing the video ("Sure! Here's ...", "The input
  provides ...", "I can help"), or details lifted from the instruction's Tokyo example (Tokyo, neon signage,
  lipstick, ...) that the short prompt does not have.

`richness` folds these into one number in [0, 1] that ranks candidates after faithfulness (best-of-N
chosen responses, the demo's reranking): a text with a junk run, an instruction copy or a repeated sentence
ranks below any clean one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

from engine.sentences import split_sentences

COPY_WORDS = 6
#: Length band of a useful detailed prompt (words): the issue's floor, the paper's examples' ceiling.
MIN_WORDS, MAX_WORDS = 40, 180
FRAGMENT_WORDS = 3
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")
_LETTER_DOTS = re.compile(r"(?:\b[A-Za-z]\.){3,}")
_CAPS_RUN = re.compile(r"\b[A-Z]{2,}\b(?:\W+\b[A-Z]{2,}\b){2,}")
_LONG_CAPS = re.compile(r"\b[A-Z]{8,}\b")
#: Openers and phrases of a model talking about the task rather than describing a video.
_CHATTER = re.compile(
    r"^\W*(sure|certainly|of course|okay|ok|absolutely|great)\b|\b(here'?s|here is|here are)\b|"
    r"\bi (can|will|would|'ll|'d)\b|\blet'?s\b|\b(the|this|your) (input|output|prompt|description|text|request)\b|"
    r"\bas an ai\b|\bbreakdown\b",
    re.IGNORECASE,
)
#: Words of the instruction's in-context example (Figure 3's Tokyo street) that a description of another
#: prompt has no reason to contain.
EXAMPLE_WORDS = frozenset("tokyo neon signage lipstick sunglasses stylish pedestrians purse leather boots".split())
_FUNCTION = frozenset(
    "a an the of in on at to from by with into onto for as and or but is are was were be been being it its this "
    "that these those there here very some any".split()
)


@dataclass(frozen=True)
class Reader:
    """The reader's measures of one text (see the module docstring)."""

    words: int
    sentences: int
    fragments: int
    repeated: int
    junk_runs: int
    distinct2: float
    copies_instruction: bool
    echoes_prompt: bool
    kept_content: float
    """Share of the short prompt's content words kept (1.0 without a short prompt)."""
    chatter: int = 0
    """Sentences talking about the task, plus words of the instruction's example the prompt lacks."""

    @property
    def fragment_share(self) -> float:
        return self.fragments / self.sentences if self.sentences else 0.0

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "fragment_share": self.fragment_share}


def word_list(text: str) -> list[str]:
    return _WORD.findall(text)


def _stem(word: str) -> str:
    w = word.lower()
    for suffix in ("ing", "es", "s", "ed"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            return w[: -len(suffix)]
    return w


@lru_cache(maxsize=8)
def _instruction_runs(task: int) -> frozenset[tuple[str, ...]]:
    from engine.tasks import SHORT_PROMPT_SLOT, instruction_templates

    template = instruction_templates()[task].replace(SHORT_PROMPT_SLOT, " ")
    return frozenset(_runs([w.lower() for w in word_list(template)], COPY_WORDS))


def _runs(ws: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)}


def copies_instruction(text: str, short_prompt: str | None = None, task: int = 3) -> bool:
    """Whether `text` has a COPY_WORDS-word run of the task's instruction that the short prompt lacks."""
    own = _runs([w.lower() for w in word_list(short_prompt or "")], COPY_WORDS)
    return bool((_runs([w.lower() for w in word_list(text)], COPY_WORDS) & _instruction_runs(task)) - own)


def content_words(text: str) -> list[str]:
    return list(dict.fromkeys(w.lower() for w in word_list(text) if w.lower() not in _FUNCTION and len(w) > 1))


def kept_content(text: str, short_prompt: str | None) -> float:
    wanted = content_words(short_prompt or "")
    if not wanted:
        return 1.0
    have = {_stem(w) for w in word_list(text)}
    return sum(_stem(w) in have for w in wanted) / len(wanted)


def echoes_prompt(text: str, short_prompt: str | None) -> bool:
    """The output opens with the short prompt's words in order (a restated title), ignoring case."""
    want = [w.lower() for w in word_list(short_prompt or "")]
    have = [w.lower() for w in word_list(text)[: len(want) + 3]]
    if len(want) < 3:
        return False
    it = iter(have)
    return sum(any(w == h for h in it) for w in want) >= len(want) - 1


def read_text(text: str, short_prompt: str | None = None, task: int = 3) -> Reader:
    """The reader's measures of one candidate."""
    ws = word_list(text)
    sents = [s.text for s in split_sentences(text)]
    norm = [" ".join(w.lower() for w in word_list(s)) for s in sents]
    seen: set[str] = set()
    repeated = 0
    for n in norm:
        if n and n in seen:
            repeated += 1
        seen.add(n)
    bigrams = [tuple(w.lower() for w in ws[i : i + 2]) for i in range(len(ws) - 1)]
    junk = len(_LETTER_DOTS.findall(text)) + len(_CAPS_RUN.findall(text)) + len(_LONG_CAPS.findall(text))
    return Reader(
        words=len(ws),
        sentences=len(sents),
        fragments=sum(1 for s in sents if len(word_list(s)) <= FRAGMENT_WORDS),
        repeated=repeated,
        junk_runs=junk,
        distinct2=len(set(bigrams)) / len(bigrams) if bigrams else 0.0,
        copies_instruction=copies_instruction(text, short_prompt, task),
        echoes_prompt=echoes_prompt(text, short_prompt),
        kept_content=kept_content(text, short_prompt),
        chatter=chatter(sents, text, short_prompt),
    )


def chatter(sentences: list[str], text: str, short_prompt: str | None) -> int:
    """Chatty sentences ("Sure! Here's ...") plus example words (Tokyo, neon, ...) not in the short prompt."""
    own = {w.lower() for w in word_list(short_prompt or "")}
    lifted = {w.lower() for w in word_list(text)} & EXAMPLE_WORDS - own
    return sum(bool(_CHATTER.search(s)) for s in sentences) + len(lifted)


def degenerate(r: Reader) -> str | None:
    """Why a candidate is not fit to show or label (None: fit): empty, a junk run, a repeated sentence, a copy
    of the instruction, or more than a quarter of its sentences fragments of at most 3 words."""
    if r.words == 0:
        return "empty"
    if r.junk_runs:
        return "junk run"
    if r.repeated:
        return "repeated sentence"
    if r.copies_instruction:
        return "copies the instruction"
    if r.fragment_share > 0.25:
        return "fragment sentences"
    return None


def richness(r: Reader) -> float:
    """One number in [0, 1]: clean (no junk, repeat or copy) first, then length in band, few fragments,
    varied wording, no restated title. Ranks candidates after faithfulness."""
    if r.words == 0:
        return 0.0
    clean = not (r.junk_runs or r.repeated or r.copies_instruction)
    length = min(1.0, r.words / MIN_WORDS) * (1.0 if r.words <= MAX_WORDS else MAX_WORDS / r.words)
    body = 0.45 * length + 0.25 * (1 - r.fragment_share) + 0.2 * r.distinct2 + 0.1 * (not r.echoes_prompt)
    on_task = 1.0 / (1 + r.chatter)  # each chatty sentence or lifted example word halves, thirds, ... the body
    return round((0.5 if clean else 0.0) + 0.5 * body * on_task, 6)
