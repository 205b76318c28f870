"""The viewer's numbers on one example's HDPO pairs: reward gaps (log-probs) and perturbation strength
(evaluator scores). Both start from `engine.hallucination.pairs.build_pairs` with the same config and seed,
so they describe the very perturbations training draws. `Studio.reward_gaps` and
`Studio.perturbation_strength` call these with the Studio itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.errors import InputError
from engine.types import Task

if TYPE_CHECKING:
    from engine.evaluators.ensemble import Ensemble
    from engine.hallucination.pairs import HdpoPairs, PairConfig, PairSeq


class _Config(Protocol):
    @property
    def evaluators(self) -> Sequence[str]: ...


class Studio(Protocol):
    """What these views call on `engine.service.Studio` (a Protocol: the Studio imports this module; mypy checks
    Studio against it in engine.service)."""

    @property
    def config(self) -> _Config: ...

    @property
    def ensemble(self) -> Ensemble: ...

    def load_frames(self, video: str | Path, num_frames: int | None = None) -> tuple[Any, Any]: ...

    def default_model(self, task: Task | int | None) -> str: ...

    def response_logps(
        self, requests: Sequence[Any], responses: Sequence[str], model: str | None = None
    ) -> list[float]: ...

    def usable_evaluators(self, names: Sequence[str]) -> tuple[list[str], list[str]]: ...


def build_example(
    studio: Studio,
    task: Task | int,
    response: str,
    short_prompt: str | None,
    video: str | Path | None,
    rejected: Sequence[str],
    config: PairConfig | None,
    seed: int,
) -> tuple[HdpoPairs, Any, Any]:
    """(built pairs, the sample's frames or None, their meta) for one response."""
    from engine.hallucination.pairs import build_pairs
    from engine.tasks import clean_prompt

    task = Task.parse(task)
    frames, meta = sample_frames(studio, task, video)
    short_prompt = clean_prompt(short_prompt, task) or None
    return build_pairs(task, short_prompt, frames, response, rejected, config, seed), frames, meta


def sample_frames(studio: Studio, task: Task, video: str | Path | None) -> tuple[Any, Any]:
    """(frames, meta) of a sample's video, or (None, None) for a text-only Task-3 sample."""
    if not video:
        if task.needs_video:
            raise InputError(f"task {int(task)} needs a video")
        return None, None
    return studio.load_frames(video)


def pair_request(seq: PairSeq, frames: Any, perturbed: Any, meta: Any) -> Any:
    """The model Request of one pair-builder sequence: its frames are the sample's, the perturbed or none."""
    from engine.hallucination.pairs import NONE, PERTURBED
    from engine.tasks import Request

    chosen = None if seq.frames == NONE else (perturbed if seq.frames == PERTURBED else frames)
    return Request(Task.parse(seq.task), seq.short_prompt, chosen, None if chosen is None else meta)


def reward_gaps(
    studio: Studio,
    task: Task | int,
    response: str,
    short_prompt: str | None = None,
    video: str | Path | None = None,
    rejected: Sequence[str] = (),
    model: str | None = None,
    seed: int = 0,
    config: PairConfig | None = None,
) -> list[dict[str, Any]]:
    """Each HDPO pair of one response, scored by log-probs (see `Studio.reward_gaps`)."""
    built, frames, meta = build_example(studio, task, response, short_prompt, video, rejected, config, seed)
    requests = [pair_request(s, frames, built.perturbed_frames, meta) for s in built.seqs]
    # Task 3 with a video scores Task-1/2 rows too: a video model then, whatever the task's default
    name = model or studio.default_model(Task.DESCRIBE_VIDEO if frames is not None else task)
    logps = studio.response_logps(requests, [s.response for s in built.seqs], model=name)
    return [
        {
            "term": term,
            "condition": built.label(i),
            "preferred": asdict(built.seqs[pref]),
            "displaced": asdict(built.seqs[disp]),
            "logp_preferred": logps[pref],
            "logp_displaced": logps[disp],
            "gap": logps[pref] - logps[disp],
        }
        for i, (term, pref, disp) in enumerate(built.pairs)
    ]


def perturbation_strength(
    studio: Studio,
    task: Task | int,
    response: str,
    short_prompt: str | None = None,
    video: str | Path | None = None,
    evaluators: Sequence[str] | None = None,
    seed: int = 0,
    config: PairConfig | None = None,
) -> dict[str, Any]:
    """Evaluator scores of the original vs the perturbed side of each hallucination pair (engine.strength).

    Returns {"rows": [PairStrength.as_dict() ...], "evaluators", "notes", "random_weights"}; rows is empty
    without a video (nothing to score against) or without a usable evaluator (notes say which and why).
    """
    from engine.strength import EnsembleMeter, measure_pairs

    built, frames, _ = build_example(studio, task, response, short_prompt, video, (), config, seed)
    names = list(studio.config.evaluators if evaluators is None else evaluators)
    usable, notes = studio.usable_evaluators(names)
    if frames is None:
        notes = ["no video: a text-only sample's perturbations have nothing to be scored against", *notes]
    if frames is None or not usable:
        return {"rows": [], "evaluators": usable, "notes": notes, "random_weights": False}
    meter = EnsembleMeter(usable, ensemble=studio.ensemble)
    rows = [s.as_dict() for s in measure_pairs(built, frames, meter)]
    return {
        "rows": rows,
        "evaluators": usable,
        "notes": notes,
        "random_weights": studio.ensemble.random_weights(usable),
    }
