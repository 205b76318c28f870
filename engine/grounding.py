"""Per-sentence grounding: how well each sentence of a detailed prompt is supported by its video.

Each sentence (engine.sentences) is scored against the video by the evaluator ensemble (paper section 3.5:
100 × cosine per evaluator, and their mean). All sentences of all texts go through ONE `Studio.score` call:
the video is decoded and encoded once (the evaluators cache its feature), and the sentences are one
batched text encode per evaluator.

What the bar means: a sentence's support is its ensemble mean; `relative` is that minus the median
sentence's. The least-supported sentence is *flagged* as the likely hallucination only when it sits at
least `margin` points below the median of the OTHER sentences: a lowest sentence exists in every text,
a flag says it stands out. Evaluator scores of a faithful sentence vary by a point or two with wording
alone (real CLIP-style models land around 20-30), hence the default margin of 1 point; a text with one
sentence has nothing to stand out from and is never flagged.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine.errors import InputError
from engine.evaluators.scores import SCORE_CONVENTION, EnsembleScore, ScoreReport
from engine.sentences import Sentence, split_sentences

#: Points (100 × cosine) below the median of the other sentences that flag the least-supported one.
DEFAULT_MARGIN = 1.0
#: Most sentences one call grounds (all texts together): a 2-core CPU encodes ~50 short texts a second.
MAX_SENTENCES = 256
BAR_MEANING = (
    "bar: the sentence's mean evaluator score (100 × cosine with the video) minus the median sentence's; "
    "⚠ marks the least-supported sentence when it is at least {margin:g} point(s) below the median of the others"
)


class Scorer(Protocol):
    """What grounding calls on `engine.service.Studio` (a Protocol: the Studio imports this module)."""

    def score(
        self, video: str | Path, texts: Sequence[str], evaluators: Sequence[str] | None = None
    ) -> ScoreReport: ...


@dataclass
class SentenceScore:
    """One sentence of a text and its support."""

    text: str
    start: int
    """Offset of the sentence in the grounded text: text[start:end] is the sentence."""
    end: int
    scores: dict[str, float]
    """Each evaluator's 100 × cosine against the video."""
    mean: float
    """The ensemble mean of `scores`."""
    relative: float
    """mean minus the median sentence's mean (the bar)."""


@dataclass
class Grounding:
    """One text's sentences scored against one video, and which one is the likely hallucination."""

    text: str
    sentences: list[SentenceScore]
    evaluators: list[str]
    least_supported: int | None
    """Index of the sentence with the lowest mean (None: nothing was scored)."""
    flagged: bool
    """True when the least-supported sentence is at least `margin` below the median of the others."""
    gap: float | None
    """Median of the other sentences' means minus the least-supported one's (None below 2 sentences)."""
    margin: float = DEFAULT_MARGIN
    notes: list[str] = field(default_factory=list)
    """Evaluators left out ('<name> not used: <why>')."""
    random_weights: bool = False

    @property
    def bar_meaning(self) -> str:
        return BAR_MEANING.format(margin=self.margin)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bar_meaning": self.bar_meaning, "convention": SCORE_CONVENTION}


def ground_texts(
    studio: Scorer,
    video: str | Path,
    texts: Sequence[str],
    evaluators: Sequence[str] | None = None,
    margin: float = DEFAULT_MARGIN,
) -> list[Grounding]:
    """Ground each text's sentences against `video` in one scoring call (repeated sentences scored once).

    Raises InputError for an empty text, a negative margin or more than MAX_SENTENCES sentences; bad
    videos raise from the Studio. No usable evaluator: every Grounding has no scores and says why in notes.
    """
    if margin < 0:
        raise InputError(f"margin must be >= 0 points, got {margin}")
    split = [_sentences(t) for t in texts]
    unique = list(dict.fromkeys(s.text for sentences in split for s in sentences))
    if len(unique) > MAX_SENTENCES:
        raise InputError(f"{len(unique)} sentences to ground; at most {MAX_SENTENCES} in one call")
    report = studio.score(video, unique, evaluators) if unique else ScoreReport([], [], [])
    rows = dict(zip(unique, report.rows, strict=False))  # empty when no evaluator could be used
    out = []
    for text, sentences in zip(texts, split, strict=True):
        scored = [(s, rows[s.text]) for s in sentences if s.text in rows]
        out.append(_grounding(text, scored, report, margin))
    return out


def _sentences(text: str) -> list[Sentence]:
    if not isinstance(text, str) or not text.strip():
        raise InputError("cannot ground an empty text")
    return split_sentences(text)


def _grounding(
    text: str, scored: list[tuple[Sentence, EnsembleScore]], report: ScoreReport, margin: float
) -> Grounding:
    means = [row.mean for _, row in scored]
    median = statistics.median(means) if means else 0.0
    sentences = [
        SentenceScore(s.text, s.start, s.end, dict(row.scores), row.mean, row.mean - median) for s, row in scored
    ]
    least = min(range(len(means)), key=means.__getitem__) if means else None
    gap = None
    if least is not None and len(means) >= 2:
        others = means[:least] + means[least + 1 :]
        gap = statistics.median(others) - means[least]
    flagged = gap is not None and gap >= margin
    return Grounding(
        text,
        sentences,
        list(report.evaluators),
        least,
        flagged,
        gap,
        margin,
        list(report.notes),
        report.random_weights,
    )
