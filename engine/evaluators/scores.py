"""What scoring returns: plain data, no torch (the UI and the CLIs read it).

`Studio.score` gives a `ScoreReport`: one `EnsembleScore` per text (each member's 100 × cosine, their
mean, which members truncated the text) plus one line per evaluator that could not be used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Convention string carried in JSON outputs (see engine.evaluators.base for the computation).
SCORE_CONVENTION = "100 x cosine(L2-normalised video feature, L2-normalised text feature)"


@dataclass
class EnsembleScore:
    """One text's scores: each member's 100 × cosine, their mean, and which members truncated it."""

    scores: dict[str, float]
    mean: float
    """The mean of `scores` (the members that scored, nothing else)."""
    truncated: dict[str, bool] = field(default_factory=dict)
    tokens: int = 0
    """The text's length in tokens (start/end included), the longest count among the members."""

    def as_dict(self) -> dict[str, float]:
        return {**self.scores, "mean": self.mean}

    def notes(self) -> list[str]:
        return [f"{name} read only part of this {self.tokens}-token text" for name, t in self.truncated.items() if t]


@dataclass
class ScoreReport:
    """`Studio.score`'s answer for one video and several texts."""

    rows: list[EnsembleScore]
    """One per text, in the order given (empty when no evaluator could be used)."""
    evaluators: list[str]
    """The evaluators that scored, in the order asked."""
    notes: list[str] = field(default_factory=list)
    """One line per evaluator left out: '<name> not used: <why>'."""
    random_weights: bool = False
    """True when a member has random weights: the scores only check the pipeline."""
