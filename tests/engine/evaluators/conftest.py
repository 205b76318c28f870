"""Tiny random evaluators built into a temp folder and loaded back through the real loaders (env-var path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.evaluators.registry import TINY_EVALUATORS, get_preset
from engine.evaluators.tiny import ensure_tiny_evaluator


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-evaluators")
    return {name: ensure_tiny_evaluator(name, root=root) for name in TINY_EVALUATORS}


@pytest.fixture
def tiny_env(tiny_weights, monkeypatch) -> None:
    """Every tiny preset loads from the freshly built files (what a user's VIDPROMPTER_EVALUATOR_* does)."""
    for name, path in tiny_weights.items():
        monkeypatch.setenv(get_preset(name).env_var, str(path))


@pytest.fixture
def load_tiny(tiny_weights, monkeypatch):
    """Load a tiny evaluator from the freshly built file via its VIDPROMPTER_EVALUATOR_* override."""
    from engine.evaluators import load_evaluator

    def _load(name: str):
        monkeypatch.setenv(get_preset(name).env_var, str(tiny_weights[name]))
        return load_evaluator(name, device="cpu")

    return _load


@pytest.fixture(scope="session")
def frames(sample_video) -> np.ndarray:
    from engine.video import load_video

    return load_video(sample_video, num_frames=8, resize=160)[0]
