"""Which mined candidates make pairs (paper section 3.4), and whether an item was mined before.

Pure functions over scored candidates and stored beams; engine.mining's Miner generates, scores and stores,
then asks these. Kept apart so the rules a pair obeys (no unscored candidate ranked, no truncated beam
paired, the teacher's own text never rejected) read in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.types import Candidate


@dataclass
class Scored:
    """A candidate's stored id, its text, and its ranking score (None: the judge could not be parsed)."""

    response_id: int
    text: str
    score: float | None
    all_scores: dict[str, float]
    pairable: bool = True
    """False for a candidate that reached the budget: a truncated beam is a length cue."""


def select_pairs(
    scored: list[Scored], teacher: tuple[int, str] | None, num_rejected: int
) -> tuple[Scored | None, list[Scored]]:
    """Chosen: the teacher (scored's last entry when there is one), else the best candidate. Rejected: the
    `num_rejected` lowest-scored other candidates.

    Candidates the scorer could not score are never ranked (no made-up numbers), a candidate that
    reached the budget is never paired (a length cue), and one identical to the teacher text is not
    a rejected response.
    """
    ranked = [(s.score, s) for s in scored if s.score is not None and s.pairable]
    chosen: Scored | None
    if teacher is not None:
        chosen = scored[-1]
        pool = [(v, s) for v, s in ranked if s is not chosen and s.text != teacher[1]]
    else:
        best = max(ranked, key=lambda vs: vs[0], default=None)
        chosen = best[1] if best is not None else None
        pool = [(v, s) for v, s in ranked if s is not chosen]
    rejected = [s for _, s in sorted(pool, key=lambda vs: vs[0])[:num_rejected]]
    return chosen, rejected


def beams_all_paired(
    beams: Iterable[tuple[int, str, dict[str, Any]]],
    existing: set[tuple[int, int]],
    teacher: tuple[int, str] | None,
    *,
    random_weights: bool,
    num_rejected: int,
) -> bool:
    """Is every usable stored beam paired (or `num_rejected` of them)? `beams`: (response id, text, meta) this
    generator stored for the item; usable: not at the budget (unless random weights: their length is forced)
    and not the teacher's text. `existing`: the item's (chosen id, rejected id) pairs. No beams: False."""
    beams = list(beams)
    if not beams:
        return False
    usable = {
        rid
        for rid, text, meta in beams
        if (random_weights or not meta.get("at_limit")) and (teacher is None or text != teacher[1])
    }
    paired = {b for _, b in existing}
    return len(paired & usable) >= min(len(usable), num_rejected)


def distinct(cands: list[Candidate]) -> list[Candidate]:
    """Empty and repeated texts dropped, beam order kept."""
    seen: dict[str, Candidate] = {}
    for c in cands:
        seen.setdefault(c.text.strip(), c)
    return [c for text, c in seen.items() if text]
