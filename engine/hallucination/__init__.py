"""Hallucination augmentations for HDPO (paper section 3.3): response, input (video, prompt) and task.

All pure and seeded: the same (input, config, seed) gives the same output, and every function
returns a JSON-serialisable record of what it changed.
"""

from engine.hallucination.pairs import (
    TERMS,
    Augmenters,
    HdpoPairs,
    PairConfig,
    PairSeq,
    Perturbations,
    build_pairs,
)
from engine.hallucination.task import prompt_hallucination, task_hallucinations, video_hallucination
from engine.hallucination.text import (
    CATEGORIES,
    TextEdit,
    TextHallucination,
    TextHallucinationConfig,
    hallucinate_text,
    hallucinate_texts,
)
from engine.hallucination.video import (
    VideoHallucinationConfig,
    hallucinate_frames,
    paste_patches,
    random_crop,
    shuffle_frames,
)

__all__ = [
    "CATEGORIES",
    "TERMS",
    "Augmenters",
    "HdpoPairs",
    "PairConfig",
    "PairSeq",
    "Perturbations",
    "build_pairs",
    "TextEdit",
    "TextHallucination",
    "TextHallucinationConfig",
    "VideoHallucinationConfig",
    "hallucinate_frames",
    "hallucinate_text",
    "hallucinate_texts",
    "paste_patches",
    "prompt_hallucination",
    "random_crop",
    "shuffle_frames",
    "task_hallucinations",
    "video_hallucination",
]
