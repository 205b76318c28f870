"""Plain data types shared by the engine, the CLIs and the UI. No torch here (the UI imports this)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from engine.errors import InputError

#: Longest short prompt / caption accepted as input (characters). Longer is refused, not truncated.
MAX_PROMPT_CHARS = 4000
#: The one default generation budget (GenerationParams, `engine generate`, the UI's slider): 192 tokens,
#: ~140 words, room for the paper's 4-8 sentence detailed prompts; ~8 s for SmolLM2 on 2 CPU cores.
DEFAULT_MAX_NEW_TOKENS = 192


class Task(IntEnum):
    """The three VidPrompter tasks (paper section 3.1)."""

    DESCRIBE_VIDEO = 1  # video -> detailed prompt
    VIDEO_WITH_CAPTION = 2  # video + short caption -> detailed prompt
    BEAUTIFY = 3  # short prompt -> detailed prompt

    @property
    def needs_video(self) -> bool:
        return self in (Task.DESCRIBE_VIDEO, Task.VIDEO_WITH_CAPTION)

    @property
    def needs_prompt(self) -> bool:
        return self in (Task.VIDEO_WITH_CAPTION, Task.BEAUTIFY)

    @classmethod
    def parse(cls, value: int | str | Task) -> Task:
        try:
            return cls(int(value))
        except (TypeError, ValueError):
            raise InputError(f"unknown task {value!r}: use 1 (video), 2 (video + caption) or 3 (prompt)") from None


@dataclass
class GenerationParams:
    """Decoding settings shared by every backend."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    """Upper bound on generated tokens per candidate."""
    num_beams: int = 1
    """Beam width; >1 switches to beam search (the paper mines with 5)."""
    num_return_sequences: int = 1
    """Candidates per request; at most num_beams under beam search."""
    do_sample: bool = False
    """Sample instead of greedy/beam decoding."""
    temperature: float = 1.0
    """Sampling temperature (only with do_sample)."""
    top_p: float = 1.0
    """Nucleus sampling mass (only with do_sample)."""
    seed: int | None = None
    """Seed for sampling, so a demo can be reproduced."""
    repetition_penalty: float | None = None
    """>1 discourages repeats (CTRL-style); None: the model preset's default (SmolLM2: 1.2)."""
    guards: bool | None = None
    """Small-model guards (engine.guards: no copying the instruction, no "Output:" echoes); None: the preset's."""
    copy_ngram: int | None = None
    """With guards: no run of this many instruction tokens in the output (0: off); None: the preset's (6)."""
    keep_words: float | None = None
    """With guards: logit bonus on the short prompt's content words until each is written (0: off); None: preset's."""
    min_new_tokens: int | None = None
    """End of text forbidden before this many tokens; None: max_new_tokens for random-weight presets, else 0."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= 4096:
            raise InputError(f"max_new_tokens must be in 1..4096, got {self.max_new_tokens}")
        if not 1 <= self.num_beams <= 16:
            raise InputError(f"num_beams must be in 1..16, got {self.num_beams}")
        if not 1 <= self.num_return_sequences <= 16:
            raise InputError(f"num_return_sequences must be in 1..16, got {self.num_return_sequences}")
        if not self.do_sample and self.num_return_sequences > self.num_beams:
            raise InputError(
                f"num_return_sequences ({self.num_return_sequences}) cannot exceed num_beams ({self.num_beams}) "
                "without sampling"
            )
        if self.do_sample and not 0.0 < self.temperature <= 5.0:
            raise InputError(f"temperature must be in (0, 5], got {self.temperature}")
        if self.repetition_penalty is not None and not 1.0 <= self.repetition_penalty <= 2.0:
            raise InputError(f"repetition_penalty must be in [1, 2], got {self.repetition_penalty}")
        if not 0.0 < self.top_p <= 1.0:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.copy_ngram is not None and self.copy_ngram != 0 and not 2 <= self.copy_ngram <= 64:
            raise InputError(f"copy_ngram must be 0 (off) or in 2..64, got {self.copy_ngram}")
        if self.keep_words is not None and not 0.0 <= self.keep_words <= 10.0:
            raise InputError(f"keep_words must be in [0, 10], got {self.keep_words}")
        if self.min_new_tokens is not None and not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise InputError(
                f"min_new_tokens must be in 0..max_new_tokens ({self.max_new_tokens}), got {self.min_new_tokens}"
            )


@dataclass
class VideoMeta:
    """What we know about a decoded video."""

    path: str
    fps: float
    duration_s: float
    width: int
    height: int
    total_frames: int
    sampled_indices: list[int] = field(default_factory=list)


@dataclass
class Candidate:
    """One generated detailed prompt, with whatever scores were computed for it."""

    text: str
    rank: int
    model: str
    random_weights: bool = False
    """True for tiny random models: the UI must label the text 'pipeline check only'."""
    scores: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
