"""Evaluators: CLIP-style video-text scorers (CLIP, Long-CLIP, VideoCLIP-XL), their ensemble, and the LLM judge.

Scores are 100 × cosine similarity (see engine.evaluators.base). Importing this package does not import
torch; loading an evaluator does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.evaluators.registry import (
    EVALUATOR_PRESETS,
    PAPER_EVALUATORS,
    TINY_EVALUATORS,
    EvaluatorPreset,
    evaluator_status,
    get_preset,
    list_evaluators,
)
from engine.evaluators.scores import SCORE_CONVENTION, EnsembleScore, ScoreReport

if TYPE_CHECKING:
    from engine.evaluators.base import TextScore, VideoTextEvaluator
    from engine.evaluators.ensemble import Ensemble

_LAZY = {
    "Ensemble": "engine.evaluators.ensemble",
    "load_evaluator": "engine.evaluators.loading",
    "TextScore": "engine.evaluators.base",
    "VideoTextEvaluator": "engine.evaluators.base",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine.evaluators' has no attribute {name!r}")


__all__ = [
    "EVALUATOR_PRESETS",
    "PAPER_EVALUATORS",
    "SCORE_CONVENTION",
    "TINY_EVALUATORS",
    "Ensemble",
    "EnsembleScore",
    "EvaluatorPreset",
    "ScoreReport",
    "TextScore",
    "VideoTextEvaluator",
    "evaluator_status",
    "get_preset",
    "list_evaluators",
    "load_evaluator",
]
