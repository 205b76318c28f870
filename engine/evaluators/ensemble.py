"""The evaluator ensemble (paper 3.5): the mean of its members' scores, each member's score kept.

An `Ensemble` holds the loaded evaluators by name (each loaded once, on first use) and scores any subset
of them together. `Studio` owns one; nothing else keeps loaded evaluators.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import numpy as np

from engine.errors import ModelLoadError
from engine.evaluators.base import VideoInput, VideoTextEvaluator, video_cache_key
from engine.evaluators.loading import load_evaluator
from engine.evaluators.scores import EnsembleScore


class Ensemble:
    """Loaded evaluators by name, and scoring of texts against one video with several of them."""

    def __init__(self, device: str | None = None, members: Iterable[VideoTextEvaluator] = ()) -> None:
        self.device = device
        self._members: dict[str, VideoTextEvaluator] = {m.name: m for m in members}
        self._load_lock = threading.Lock()
        # torch modules are not run concurrently on shared state: one scoring call at a time.
        self._score_lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        """The members loaded so far."""
        return list(self._members)

    def member(self, name: str) -> VideoTextEvaluator:
        """The evaluator `name`, loaded on first use. Raises ModelLoadError when it cannot load."""
        with self._load_lock:
            if name not in self._members:
                self._members[name] = load_evaluator(name, self.device)
            return self._members[name]

    def random_weights(self, names: Sequence[str] | None = None) -> bool:
        return any(self.member(n).random_weights for n in self._pick(names))

    def _pick(self, names: Sequence[str] | None) -> list[str]:
        picked = list(names) if names is not None else self.names
        if not picked:
            raise ModelLoadError("an evaluator ensemble needs at least one evaluator")
        return picked

    def score_detailed(
        self, video: VideoInput, texts: list[str], names: Sequence[str] | None = None
    ) -> list[EnsembleScore]:
        """Per text: every member's score and their mean. names: members to use (default: all loaded)."""
        members = [self.member(n) for n in self._pick(names)]
        decoded: dict[int, np.ndarray] = {}  # frame count -> frames, shared by the members
        with self._score_lock:
            per_member = [_member_scores(m, video, texts, decoded) for m in members]
        out = []
        for i in range(len(texts)):
            row = {m.name: scores[i] for m, scores in zip(members, per_member, strict=True)}
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

    def score(self, video: VideoInput, texts: list[str], names: Sequence[str] | None = None) -> list[dict[str, float]]:
        """Per text: {member name: 100 × cosine, ..., "mean": average}."""
        return [s.as_dict() for s in self.score_detailed(video, texts, names)]


def _member_scores(member: VideoTextEvaluator, video: VideoInput, texts: list[str], decoded: dict[int, np.ndarray]):
    """Decode a video path at most once per frame count across members, and not at all on a cache hit."""
    if isinstance(video, np.ndarray):
        return member.score_detailed(video, texts)
    key = video_cache_key(video, member.num_frames)
    if member.is_cached(key):
        return member.score_detailed(video, texts, cache_key=key)
    if member.num_frames not in decoded:
        decoded[member.num_frames] = member.load_frames(video)
    return member.score_detailed(decoded[member.num_frames], texts, cache_key=key)


__all__ = ["Ensemble", "EnsembleScore"]
