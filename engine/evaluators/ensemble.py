"""The evaluator ensemble: the average of the configured evaluators, each member's score kept (paper 3.5)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.errors import ModelLoadError
from engine.evaluators.base import SCORE_CONVENTION, VideoInput, VideoTextEvaluator, video_cache_key
from engine.evaluators.registry import get_preset

_LOADED: dict[tuple[str, str], VideoTextEvaluator] = {}
_LOAD_LOCK = threading.Lock()

LOADERS = {
    "open_clip": ("engine.evaluators.clip", "load_open_clip_evaluator"),
    "long_clip": ("engine.evaluators.clip", "load_long_clip_evaluator"),
    "videoclip_xl": ("engine.evaluators.videoclip_xl", "load_videoclip_xl_evaluator"),
}


def load_evaluator(name: str, device: str | None = None, cached: bool = True) -> VideoTextEvaluator:
    """Load an evaluator preset (once per process unless cached=False). Raises ModelLoadError clearly."""
    import importlib

    from engine.evaluators.registry import resolve_weights
    from engine.models import pick_device

    preset = get_preset(name)
    device = pick_device(device)
    with _LOAD_LOCK:
        if cached and (name, device) in _LOADED:
            return _LOADED[(name, device)]
        module, func = LOADERS[preset.format]
        evaluator = getattr(importlib.import_module(module), func)(preset, resolve_weights(preset), device)
        if cached:
            _LOADED[(name, device)] = evaluator
        return evaluator


@dataclass
class EnsembleScore:
    """One text's scores: each member's 100 × cosine, their mean, and which members truncated it."""

    scores: dict[str, float]
    mean: float
    truncated: dict[str, bool] = field(default_factory=dict)
    tokens: int = 0

    def as_dict(self) -> dict[str, float]:
        return {**self.scores, "mean": self.mean}

    def notes(self) -> list[str]:
        return [f"{name} read only part of this {self.tokens}-token text" for name, t in self.truncated.items() if t]


class Ensemble:
    """Scores texts against a video with every member; members load on first use."""

    def __init__(self, members: Sequence[str | VideoTextEvaluator], device: str | None = None) -> None:
        if not members:
            raise ModelLoadError("an evaluator ensemble needs at least one evaluator")
        self._members: list[str | VideoTextEvaluator] = list(members)
        self.device = device

    @property
    def names(self) -> list[str]:
        return [m if isinstance(m, str) else m.name for m in self._members]

    def evaluators(self) -> list[VideoTextEvaluator]:
        self._members = [load_evaluator(m, self.device) if isinstance(m, str) else m for m in self._members]
        return self._members  # type: ignore[return-value]

    @property
    def random_weights(self) -> bool:
        return any(e.random_weights for e in self.evaluators())

    def score_detailed(self, video: VideoInput, texts: list[str]) -> list[EnsembleScore]:
        decoded: dict[int, np.ndarray] = {}  # frame count -> frames, shared by the members
        per_member = {e.name: self._member_scores(e, video, texts, decoded) for e in self.evaluators()}
        out = []
        for i in range(len(per_member[self.names[0]])):
            row = {name: scores[i] for name, scores in per_member.items()}
            values = {name: s.value for name, s in row.items()}
            out.append(
                EnsembleScore(
                    scores=values,
                    mean=float(np.mean(list(values.values()))),
                    truncated={name: s.truncated for name, s in row.items()},
                    tokens=max(s.tokens for s in row.values()),
                )
            )
        return out

    def _member_scores(self, member: VideoTextEvaluator, video: VideoInput, texts: list[str], decoded: dict):
        """Decode a video path at most once per frame count across members, and not at all on a cache hit."""
        if isinstance(video, np.ndarray):
            return member.score_detailed(video, texts)
        key = video_cache_key(video, member.num_frames)
        if member.is_cached(key):
            return member.score_detailed(video, texts, cache_key=key)
        if member.num_frames not in decoded:
            decoded[member.num_frames] = member.load_frames(video)
        return member.score_detailed(decoded[member.num_frames], texts, cache_key=key)

    def score(self, video: VideoInput, texts: list[str]) -> list[dict[str, float]]:
        """Per text: {member name: 100 × cosine, ..., "mean": average}."""
        return [s.as_dict() for s in self.score_detailed(video, texts)]


__all__ = ["SCORE_CONVENTION", "Ensemble", "EnsembleScore", "load_evaluator"]
