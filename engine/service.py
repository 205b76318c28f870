"""`Studio`: the one facade the UI and the CLIs call. Models load lazily and are cached.

Everything returns plain data (engine.types, dicts, numpy, file paths), so callers never touch torch.
Thread-safe: Gradio runs handlers in threads; one lock per model guards loading and inference
(torch modules are not safe to run concurrently on CPU with shared generation state).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import InputError, ModelLoadError
from engine.models import DEFAULT_TEXT_MODEL, DEFAULT_VIDEO_MODEL, ModelPreset, list_presets, resolve
from engine.types import Candidate, GenerationParams, Task


@dataclass
class StudioConfig:
    """What the app and CLIs build the Studio with."""

    text_model: str = DEFAULT_TEXT_MODEL
    """Default model for Task 3 (the packaged SmolLM2)."""
    video_model: str = DEFAULT_VIDEO_MODEL
    """Default model for Tasks 1-2 (a real preset; needs a hub or a local checkpoint)."""
    backend: str = "transformers"
    """"transformers" or "vllm"."""
    device: str | None = None
    """"cpu", "cuda", or None for CUDA when present."""
    num_frames: int = 8
    """Frames sampled per video (the paper's group uses 8)."""
    evaluators: tuple[str, ...] = ("clip-vit-l-14", "long-clip-l", "videoclip-xl")
    """Evaluator presets averaged for video tasks (paper section 3.5)."""
    judge_model: str | None = None
    """Model for the Task-3 LLM judge (None: the text model)."""
    backend_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra backend settings (e.g. tensor_parallel_size for vLLM)."""

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise ValueError("num_frames must be >= 1")


class Studio:
    """Load-on-first-use model cache plus the verbs the app and CLIs need."""

    def __init__(self, config: StudioConfig | None = None) -> None:
        self.config = config or StudioConfig()
        self._backends: dict[str, Any] = {}
        self._evaluators: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._registry_lock = threading.Lock()

    # -- models ---------------------------------------------------------------------------------
    def presets(self) -> list[ModelPreset]:
        return list_presets()

    def lock_for(self, key: str) -> threading.Lock:
        with self._registry_lock:
            return self._locks.setdefault(key, threading.Lock())

    def backend(self, model: str | None = None, task: Task | int | None = None):
        """The backend for a model (default: by task), loaded once. Raises ModelLoadError clearly."""
        name = model or self.default_model(task)
        with self.lock_for(f"model:{name}"):
            if name not in self._backends:
                from engine.backends import load_backend

                self._backends[name] = load_backend(
                    self.config.backend, name, device=self.config.device, **self.config.backend_kwargs
                )
            return self._backends[name]

    def default_model(self, task: Task | int | None) -> str:
        if task is not None and Task.parse(task).needs_video:
            return self.config.video_model
        return self.config.text_model

    def loaded_models(self) -> list[str]:
        return list(self._backends)

    def model_status(self, model: str) -> tuple[bool, str]:
        """(loadable?, message) without loading weights: for the UI's model picker."""
        try:
            from engine.models import _source

            preset = resolve(model)
            _source(preset)
        except ModelLoadError as exc:
            return False, str(exc)
        return True, ("random weights — pipeline check only" if preset.random_weights else "ready")

    # -- the three tasks ------------------------------------------------------------------------
    def build_request(self, task: Task | int, video: str | Path | None = None, short_prompt: str | None = None):
        from engine.tasks import Request

        task = Task.parse(task)
        frames = meta = None
        if task.needs_video:
            if not video:
                raise InputError(f"task {int(task)} needs a video")
            frames, meta = self.load_frames(video)
        elif video:
            raise InputError("task 3 takes a short prompt only; remove the video or pick task 1/2")
        return Request(task, short_prompt=short_prompt, frames=frames, video_meta=meta)

    def load_frames(self, video: str | Path, num_frames: int | None = None):
        from engine.video import load_video

        return load_video(video, num_frames=num_frames or self.config.num_frames)

    def run_task(
        self,
        task: Task | int,
        video: str | Path | None = None,
        short_prompt: str | None = None,
        model: str | None = None,
        params: GenerationParams | None = None,
    ) -> list[Candidate]:
        """Generate candidate detailed prompts for one input."""
        params = params or GenerationParams()
        request = self.build_request(task, video, short_prompt)
        backend = self.backend(model, request.task)
        with self.lock_for(f"model:{backend.model_name}"):
            texts = backend.generate([request], params)[0]
        return [
            Candidate(text=t, rank=i, model=backend.model_name, random_weights=backend.random_weights)
            for i, t in enumerate(texts)
        ]

    def response_logps(self, requests: Sequence[Any], responses: Sequence[str], model: str | None = None) -> list[float]:
        """Summed log pi(y | x, q) per (request, response): the viewer's reward-gap panel."""
        task = requests[0].task if requests else None
        backend = self.backend(model, task)
        with self.lock_for(f"model:{backend.model_name}"):
            return [float(v) for v in backend.sequence_logps(list(requests), list(responses))]
