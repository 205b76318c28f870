"""Generation-time guards for small models: no copying of the task instruction, no few-shot echoes.

A 135 M model given Figure 3's Task-3 instruction copies its Tokyo example word for word, restates its
rules, or carries on the few-shot format ("Output: A cat jumps onto a table."). The guards, applied when
a preset (or the request) turns them on:

- `SequenceBan` (a transformers LogitsProcessor) forbids the last token of any banned token sequence
  once the sequence's other tokens were just generated: every `copy_ngram`-token run of the instruction's
  fixed text (the template without the short prompt) and the "Input:" / "Output:" labels.
- `cut_echoes` removes what still slips through after decoding: a leading label, everything from a
  later "Input:" / "Output:" on, and a first or last sentence that only restates the short prompt.
- `AllowOnly` keeps random-weight models (pipeline checks) on readable, non-special tokens, so with
  EOS unreachable they produce exactly the asked number of tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
from transformers import LogitsProcessor

from engine.tasks import SHORT_PROMPT_SLOT, instruction_templates
from engine.types import GenerationParams, Task

if TYPE_CHECKING:
    from engine.models import ModelPreset

#: The few-shot labels of Figure 3's Task-3 template; the model must never write them itself.
ECHO_LABELS = ("Input", "Output")
_LABEL_AT_START = re.compile(r"^[\s*#>_]*(?P<label>input|output)[\s*_]*:[\s*_]*", re.IGNORECASE)
_LABEL_LATER = re.compile(r"(?:^|(?<=\s)|(?<=[.!?\"']))\**(?:input|output)\**\s*:", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_NUMBERING = re.compile(r"^\s*\d+\.\s+")


@dataclass(frozen=True)
class GuardSettings:
    """The guards one generate call uses: a request's GenerationParams resolved against the model preset."""

    enabled: bool
    """Copy ban, label ban and echo cutting."""
    copy_ngram: int
    """Banned run length in tokens (0: no copy ban)."""
    min_new_tokens: int
    """EOS is forbidden before this many new tokens."""
    readable_only: bool
    """Random-weight models: only readable, non-special tokens (never EOS)."""
    keep_words: float = 0.0
    """Logit bonus on the short prompt's content words until each is written (0: off)."""


def resolve_settings(params: GenerationParams, preset: ModelPreset) -> GuardSettings:
    """None fields of `params` take the preset's defaults; random-weight presets fill the asked length."""
    enabled = preset.guards if params.guards is None else params.guards
    copy_ngram = preset.copy_ngram if params.copy_ngram is None else params.copy_ngram
    min_new = params.min_new_tokens
    if min_new is None:
        min_new = params.max_new_tokens if preset.random_weights else min(preset.min_new_tokens, params.max_new_tokens)
    keep = preset.keep_words if params.keep_words is None else params.keep_words
    return GuardSettings(
        enabled, copy_ngram if enabled else 0, min_new, preset.random_weights, keep if enabled else 0.0
    )


# -- banned token sequences -----------------------------------------------------------------------


def instruction_pieces(task: Task | int) -> list[str]:
    """The fixed text of a task's instruction, as lines and sentences (no short prompt, no numbering).

    Each piece is tokenised on its own as well as in context, because the model starts a copied
    sentence without the leading space it has inside the template ("A" vs " A").
    """
    parts = instruction_templates()[int(Task.parse(task))].split(SHORT_PROMPT_SLOT)
    pieces: list[str] = []
    for part in parts:
        pieces.append(part)
        for line in part.splitlines():
            line = _LABEL_AT_START.sub("", _NUMBERING.sub("", line)).strip()
            pieces.append(line)
            pieces += _SENTENCE_END.split(line)
    return [p for p in dict.fromkeys(p.strip() for p in pieces) if p]


def token_variants(tokenizer, texts: Iterable[str]) -> list[list[int]]:
    """Each text tokenised as written, lower-cased and with its first letter flipped in case, each at
    the start, after a space and after a newline: BPE gives each spelling its own tokens, and a copy
    ("the output should be a detailed ...") may start anywhere and in any case."""
    out: list[list[int]] = []
    for text in texts:
        for spelling in dict.fromkeys((text, text.lower(), text[:1].swapcase() + text[1:])):
            for variant in (spelling, " " + spelling, "\n" + spelling):
                out.append(list(tokenizer(variant, add_special_tokens=False)["input_ids"]))
    return out


def ngrams(seqs: Iterable[Sequence[int]], n: int) -> set[tuple[int, ...]]:
    """Every run of n consecutive tokens in the sequences."""
    return {tuple(s[i : i + n]) for s in seqs for i in range(len(s) - n + 1)}


def copy_ban(tokenizer, task: Task | int, n: int, short_prompt: str | None = None) -> set[tuple[int, ...]]:
    """The n-token runs of the task's instruction the output may not contain.

    Runs that also occur in the short prompt stay allowed: the output may repeat the user's own words.
    """
    if n < 2:
        return set()
    banned = ngrams(token_variants(tokenizer, instruction_pieces(task)), n)
    if short_prompt:
        banned -= ngrams(token_variants(tokenizer, [short_prompt]), n)
    return banned


def copy_ban_words(task: Task | int, n: int, short_prompt: str | None = None) -> list[str]:
    """`copy_ban` as n-word strings, for backends that ban word sequences themselves (vLLM's bad_words,
    which bans a sequence's last token after its others, spelled with and without a leading space)."""
    if n < 2:
        return []
    own = {" ".join(run).lower() for run in _word_runs(short_prompt or "", n)}
    runs: dict[str, None] = {}
    for piece in instruction_pieces(task):
        for run in _word_runs(piece, n):
            text = " ".join(run)
            if text.lower() not in own:
                runs.update(dict.fromkeys((text, text.lower(), text[:1].swapcase() + text[1:])))
    return list(runs)


def _word_runs(text: str, n: int) -> list[list[str]]:
    words = text.split()
    return [words[i : i + n] for i in range(len(words) - n + 1)]


def label_words() -> list[str]:
    """The echo labels as bad-word strings ("Input:", "output:", ...)."""
    return [form + ":" for label in ECHO_LABELS for form in (label, label.lower(), label.upper())]


def label_ban(tokenizer) -> set[tuple[int, ...]]:
    """Token sequences of "Input:" / "Output:" (any spacing or case the model is likely to use)."""
    return {tuple(s) for s in token_variants(tokenizer, label_words()) if len(s) >= 2}


class SequenceBan(LogitsProcessor):
    """Forbid the token that would complete any banned sequence.

    For a banned (t_1, ..., t_k): when a row's last k-1 tokens are (t_1, ..., t_{k-1}), token t_k gets
    -inf. `per_request[i]` holds request i's sequences; generate() repeats each request's row
    `rows_per_request` times (max(num_beams, num_return_sequences)), so row r follows request
    r // rows_per_request. Stateless (reads the tail of input_ids only): one instance serves greedy,
    sampling and beam search; the prompt ends in chat special tokens, so no ban fires across it.
    """

    def __init__(self, per_request: Sequence[Iterable[Sequence[int]]], rows_per_request: int = 1) -> None:
        self.tables = [_prefix_table(seqs) for seqs in per_request]
        self.rows_per_request = rows_per_request
        self.longest = max((k for table in self.tables for k in table), default=0)

    def banned(self, row: int, tail: Sequence[int]) -> set[int]:
        """The tokens forbidden for batch row `row` after the token ids `tail`."""
        out: set[int] = set()
        for k, prefixes in self.tables[row // self.rows_per_request].items():
            if len(tail) >= k:
                out.update(prefixes.get(tuple(tail[len(tail) - k :]), ()))
        return out

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # input_ids (rows, L), scores (rows, V); only the last `longest` tokens can matter
        tails = input_ids[:, input_ids.shape[1] - min(self.longest, input_ids.shape[1]) :].tolist()
        for row, tail in enumerate(tails):
            ids = [i for i in self.banned(row, tail) if i < scores.shape[1]]
            if ids:
                scores[row, ids] = float("-inf")
        return scores


def _prefix_table(sequences: Iterable[Sequence[int]]) -> dict[int, dict[tuple[int, ...], set[int]]]:
    """prefix length -> prefix -> the tokens that would complete a banned sequence."""
    table: dict[int, dict[tuple[int, ...], set[int]]] = {}
    for seq in sequences:
        if seq:
            table.setdefault(len(seq) - 1, {}).setdefault(tuple(seq[:-1]), set()).add(int(seq[-1]))
    return table


#: Function words never boosted by `KeepWords` (content words are what the output must keep).
FUNCTION_WORDS = frozenset(
    "a an the and or but nor so yet of in on at to from by with into onto over under up down out off "
    "for about above below across after before behind between through during without within near "
    "is are was were be been being am has have had do does did it its this that these those there "
    "he she they we you i his her their our your my him them us me who whom which what while as "
    "than then very too also just not no some any each every all both".split()
)


def content_words(text: str) -> list[str]:
    """The short prompt's words minus function words, in order, each once (case kept)."""
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", text)
    return list(dict.fromkeys(w for w in words if w.lower() not in FUNCTION_WORDS))


def word_starts(tokenizer, words: Sequence[str]) -> list[set[int]]:
    """Per word: the first token of " word" / " Word" (the word after a space, as mid-sentence).

    Spellings without the space are left out: boosting them glues words together ("outofaboat"). A
    one- or two-letter first piece ("C" of "Cat") starts too many other words to boost, so it is skipped.
    """
    starts = []
    for word in words:
        ids = set()
        for form in {word, word.lower(), word.capitalize()}:
            tokens = tokenizer(" " + form, add_special_tokens=False)["input_ids"]
            if tokens and len(tokenizer.decode(tokens[:1]).strip()) >= min(3, len(form)):
                ids.add(int(tokens[0]))
        starts.append(ids)
    return starts


class KeepWords(LogitsProcessor):
    """Add `bonus` to the first token of each of the request's content words its row has not written yet.

    A 135 M model drifts off the input ("a cat jumps onto a table" becomes a feline in a Tokyo street);
    a soft bonus, dropped per word once the row has produced that word's first token, keeps the
    subject without forcing any wording. Rows map to requests as in `SequenceBan`. Remembers the
    prompt length from its first call, so build one per generate call.
    """

    def __init__(self, per_request: Sequence[list[set[int]]], bonus: float, rows_per_request: int = 1) -> None:
        self.per_request = per_request
        self.bonus = bonus
        self.rows_per_request = rows_per_request
        self.prompt_len: int | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.prompt_len is None:
            self.prompt_len = input_ids.shape[1]
        generated = input_ids[:, self.prompt_len :].tolist()  # (rows, new tokens so far)
        for row, tokens in enumerate(generated):
            seen = set(tokens)
            for starts in self.per_request[row // self.rows_per_request]:
                if not starts & seen:
                    ids = [i for i in starts if i < scores.shape[1]]
                    scores[row, ids] += self.bonus
        return scores


class PromptPenalty(LogitsProcessor):
    """CTRL's repetition penalty over prompt and output, function words excepted.

    Over the whole prompt the penalty keeps a small model off the instruction's words (at 1.2 SmolLM2
    stops reciting the rules); but it taxes " of", " to", " from" from the first token on, and with
    sampling the model then glues words ("outofa boat", "havingto"). `exempt` holds those tokens.
    """

    def __init__(self, penalty: float, exempt: Iterable[int]) -> None:
        self.penalty = penalty
        self.exempt = torch.tensor(sorted(set(exempt)), dtype=torch.long)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        seen = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, input_ids, True)  # (rows, V)
        seen[:, self.exempt.to(scores.device)] = False
        penalised = torch.where(scores > 0, scores / self.penalty, scores * self.penalty)
        return cast(torch.FloatTensor, torch.where(seen, penalised, scores))  # transformers' legacy tensor type


#: Tokens `PromptPenalty` spares: articles, prepositions and the full stop, which the long instruction
#: holds many times over. "and" and "," stay penalised (else: run-on sentences and comma lists).
PENALTY_EXEMPT = ("a", "an", "the", "of", "in", "on", "at", "to", "from", "by", "with", "into", "onto", "for", "as")


def function_word_ids(tokenizer, ends: Iterable[int] = ()) -> list[int]:
    """Single-token spellings of PENALTY_EXEMPT words (" of", " Of", "of", ...) and of ".", and the end-of-turn
    tokens `ends`: the chat template closes every prompt turn with one, and a taxed end of turn kept SmolLM2
    from ever ending (every output ran to the budget, trailing off into noun lists)."""
    ids = [int(i) for i in ends]
    forms = [f for w in PENALTY_EXEMPT for f in (w, w.capitalize(), " " + w, " " + w.capitalize())]
    for form in [*forms, "."]:
        tokens = tokenizer(form, add_special_tokens=False)["input_ids"]
        if len(tokens) == 1:
            ids.append(int(tokens[0]))
    return ids


class AllowOnly(LogitsProcessor):
    """Every token outside `allowed` gets -inf (random-weight models: readable text of the asked length)."""

    def __init__(self, allowed: Sequence[int], vocab_size: int) -> None:
        self.mask = torch.full((vocab_size,), float("-inf"))
        self.mask[list(allowed)] = 0.0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = self.mask.to(scores.device)
        width = min(mask.shape[0], scores.shape[1])
        scores[:, :width] += mask[:width]
        scores[:, width:] = float("-inf")  # logits past the tokenizer's vocabulary decode to nothing
        return scores


def readable_token_ids(tokenizer) -> list[int]:
    """Tokens that decode on their own to printable ASCII with at least one visible character.

    Excludes every special token (EOS included) and byte fragments of multi-byte characters, which
    decode to U+FFFD or nothing: what a random model picks from these always decodes to visible text.
    """
    special = set(tokenizer.all_special_ids)
    allowed = []
    for token_id in range(len(tokenizer)):
        if token_id in special:
            continue
        text = tokenizer.decode([token_id])
        if text.strip() and text.isascii() and text.isprintable():
            allowed.append(token_id)
    return allowed


# -- after decoding ----------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def cut_echoes(text: str, short_prompt: str | None = None, final: bool = True) -> str:
    """Remove few-shot echoes: a leading "Output:" label or "Input: ..." line, everything from a later
    "Input:" / "Output:" on, and a first (or, when `final`, last) sentence that only restates the short
    prompt. A streamed partial text passes final=False: its last sentence may still be growing.

    Keeps the text when the cut would leave nothing (a restatement is better than an empty candidate).
    """
    text = _cut_leading_labels(text.strip())
    later = _LABEL_LATER.search(text, 1)
    if later:
        text = text[: later.start()].rstrip()
    if short_prompt and _words(short_prompt):
        text = _cut_restatement(text, _words(short_prompt), final)
    return text.strip()


def _cut_leading_labels(text: str) -> str:
    while match := _LABEL_AT_START.match(text):
        if match.group("label").lower() == "input":  # "Input: <the prompt>": the whole line is an echo
            rest = text.split("\n", 1)
            text = rest[1].strip() if len(rest) > 1 else ""
        else:
            text = text[match.end() :].strip()
    return text


def _cut_restatement(text: str, prompt_words: list[str], final: bool) -> str:
    """Drop a first / last sentence whose words are exactly the prompt's, when another sentence remains."""
    bounds = [m.end() for m in _SENTENCE_END.finditer(text)]  # where sentences 2..k start
    if bounds and _words(text[: bounds[0]]) == prompt_words:
        text = text[bounds[0] :]
        bounds = [m.end() for m in _SENTENCE_END.finditer(text)]
    if final and bounds and _words(text[bounds[-1] :]) == prompt_words:
        text = text[: bounds[-1]]
    return text
