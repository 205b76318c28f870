"""Faithfulness of detailed prompts to their tagged short prompts: per text, per set, with intervals.

`score_text` checks every tagged element (engine.faithfulness.match) and reads the text as a reader would
(engine.text_quality). A text keeps every element when each one is kept and none is contradicted. `rank_key`
orders candidates for best-of-N selection: all kept, then the share kept, then fewer contradictions, then
richness. `summarize` gives what docs/results.md reports for a set of outputs: the share keeping every
element with a 95 % percentile-bootstrap interval, the share kept per element kind, contradictions per kind,
words per output, the instruction-copy and prompt-echo rates.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import mean
from typing import Any

from engine.faithfulness.match import check
from engine.faithfulness.tags import KINDS, Element
from engine.text_quality import Reader, read_text, richness

BOOTSTRAP_SAMPLES = 2000


@dataclass
class FaithScore:
    """One text against its tagged short prompt."""

    statuses: list[tuple[Element, str]]
    reader: Reader
    richness: float

    @property
    def total(self) -> int:
        return len(self.statuses)

    @property
    def kept(self) -> int:
        return sum(s == "kept" for _, s in self.statuses)

    @property
    def contradictions(self) -> int:
        return sum(s in ("contradicted", "moved") for _, s in self.statuses)

    @property
    def all_kept(self) -> bool:
        return self.kept == self.total

    @property
    def kept_share(self) -> float:
        return self.kept / self.total if self.total else 1.0

    def missing(self) -> list[str]:
        """Labels of the elements not kept, with why: "style surrealism (dropped)"."""
        return [f"{e.label()} ({s})" for e, s in self.statuses if s != "kept"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "all_kept": self.all_kept,
            "kept": self.kept,
            "total": self.total,
            "missing": self.missing(),
            "words": self.reader.words,
            "copies_instruction": self.reader.copies_instruction,
            "richness": self.richness,
        }


def score_text(text: str, elements: Sequence[Element], short_prompt: str | None = None) -> FaithScore:
    reader = read_text(text, short_prompt)
    return FaithScore(check(text, elements), reader, richness(reader))


def rank_key(s: FaithScore) -> tuple[bool, float, int, float]:
    """Higher is better: every element kept, share kept, fewer contradictions, richness."""
    return (s.all_kept, round(s.kept_share, 6), -s.contradictions, s.richness)


def bootstrap_ci(values: Sequence[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the mean of `values` (resampling items, seeded)."""
    if not values:
        return (0.0, 0.0)
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(samples))
    return means[int(0.025 * samples)], means[min(samples - 1, int(0.975 * samples))]


def paired_diff_ci(
    a: Sequence[float], b: Sequence[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """Mean of a - b over the same items, and its 95 % paired-bootstrap interval."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    return (mean(diffs) if diffs else 0.0), bootstrap_ci(diffs, samples, seed)


@dataclass
class Summary:
    """A set of outputs' faithfulness (percentages where a share)."""

    n: int
    keep_all: float
    keep_all_ci: tuple[float, float]
    per_kind: dict[str, float] = field(default_factory=dict)
    """kind -> % of that kind's elements kept."""
    contradicted: dict[str, float] = field(default_factory=dict)
    """kind -> % of that kind's elements contradicted or moved (colour, count, relation)."""
    words: float = 0.0
    copy_rate: float = 0.0
    echo_rate: float = 0.0
    fragment_share: float = 0.0
    repeated_rate: float = 0.0
    """% of outputs with a repeated sentence."""
    junk_rate: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def summarize(scores: Sequence[FaithScore], seed: int = 0) -> Summary:
    """The set's figures (see Summary); the interval resamples prompts."""
    flags = [1.0 if s.all_kept else 0.0 for s in scores]
    lo, hi = bootstrap_ci(flags, seed=seed)
    per_kind, contra = {}, {}
    for kind in KINDS:
        statuses = [st for s in scores for e, st in s.statuses if e.kind == kind]
        if statuses:
            per_kind[kind] = 100 * sum(st == "kept" for st in statuses) / len(statuses)
            if kind in ("color", "count", "relation"):
                contra[kind] = 100 * sum(st in ("contradicted", "moved") for st in statuses) / len(statuses)
    readers = [s.reader for s in scores]
    n = len(scores)

    def pct(values) -> float:
        return round(100 * sum(values) / n, 2) if n else 0.0

    return Summary(
        n=n,
        keep_all=pct(flags),
        keep_all_ci=(round(100 * lo, 2), round(100 * hi, 2)),
        per_kind={k: round(v, 2) for k, v in per_kind.items()},
        contradicted={k: round(v, 2) for k, v in contra.items()},
        words=round(mean(r.words for r in readers), 1) if n else 0.0,
        copy_rate=pct(r.copies_instruction for r in readers),
        echo_rate=pct(r.echoes_prompt for r in readers),
        fragment_share=round(100 * mean(r.fragment_share for r in readers), 2) if n else 0.0,
        repeated_rate=pct(r.repeated > 0 for r in readers),
        junk_rate=pct(r.junk_runs > 0 for r in readers),
    )
