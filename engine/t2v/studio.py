"""The Studio's text-to-video verbs, mixed into `engine.service.Studio` (which owns every model it serves).

`generate_video` (prompt -> mp4, seeded, with progress, cancel and a "busy" answer for the app),
`t2v_status` / `default_t2v_model` (for the app's "Generate video" buttons, without loading weights),
`budgets` (token budgets of T2V targets), `video_quality` (frame-quality metrics with one of the Studio's
evaluators as the per-frame image model) and
`evaluate_video` (Table 3, engine.t2v.evaluate). At most one T2V pipeline is loaded at a time: a real one
fills a GPU on its own, so switching models frees the previous one first.

No torch at import: the app builds its pages from `t2v_status`; loading a pipeline imports torch.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ModelLoadError
from engine.t2v.errors import GenerationBusy
from engine.t2v.presets import DEFAULT_T2V_MODEL, T2V_PRESETS, T2VPreset, list_t2v_presets, t2v_status

if TYPE_CHECKING:
    import numpy as np
    from sqlalchemy import Engine

    from engine.budgets import Budgets
    from engine.evaluators.ensemble import Ensemble
    from engine.t2v.backend import GeneratedClip, T2VPipeline
    from engine.t2v.eval_config import VideoEvalConfig, VideoEvalResult
    from engine.t2v.evaluate import VideoStudio
    from engine.t2v.quality import FrameQuality

#: progress(step, total) after each denoising step.
StepProgress = Callable[[int, int], None]

_CACHE_GUARD = threading.Lock()


class _LoadedPipeline:
    """The one loaded T2V pipeline, its name, and the lock that serialises loading."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.name: str | None = None
        self.pipeline: T2VPipeline | None = None


class VideoVerbs:
    """Text-to-video verbs of the Studio. Needs `config` (device, model_roots) and `ensemble` from the Studio."""

    config: Any

    if TYPE_CHECKING:  # the Studio's (engine.service), read by the verbs below

        @property
        def ensemble(self) -> Ensemble: ...

    @property
    def budgets(self) -> Budgets:
        """Token budgets of text-to-video targets (engine.budgets: count, cut, fit); tokenizers load once, locally."""
        with _CACHE_GUARD:
            if "_budgets" not in self.__dict__:
                from engine.budgets import Budgets

                self.__dict__["_budgets"] = Budgets()
            return self.__dict__["_budgets"]

    def _t2v_cache(self) -> _LoadedPipeline:
        with _CACHE_GUARD:
            return self.__dict__.setdefault("_t2v_loaded", _LoadedPipeline())

    # -- which model --------------------------------------------------------------------------------
    def t2v_presets(self) -> list[T2VPreset]:
        return list_t2v_presets()

    def t2v_key(self, name: str) -> str:
        """The T2V model name this Studio may load: any preset; a folder only where every folder may load
        (the CLIs: config.model_roots None). In the app a folder goes through its preset's variable."""
        if name in T2V_PRESETS or self.config.model_roots is None:
            return name
        example = T2V_PRESETS[DEFAULT_T2V_MODEL].env_var
        raise ModelLoadError(
            f"text-to-video model {name!r} is not available here: pick a preset; a pipeline folder loads through "
            f"its preset's variable (e.g. {example}=/path/to/folder)"
        )

    def t2v_status(self, name: str) -> tuple[bool, str]:
        """(loadable?, one line) without loading or building weights: the app's "Generate video" buttons."""
        try:
            return t2v_status(self.t2v_key(name))
        except ModelLoadError as exc:
            return False, str(exc)

    def default_t2v_model(self) -> str:
        """The first real preset whose weights are here; else DEFAULT_T2V_MODEL (its status says what to set).
        Random-weight presets are never a default: they are chosen by name."""
        for preset in list_t2v_presets():
            if not preset.random_weights and t2v_status(preset.name)[0]:
                return preset.name
        return DEFAULT_T2V_MODEL

    def t2v_pipeline(self, name: str | None = None, wait: bool = True) -> T2VPipeline:
        """The loaded pipeline of `name` (default: `default_t2v_model`), loading it (and dropping another) first.
        wait=False: a load already under way is GenerationBusy instead of a wait of minutes."""
        key = self.t2v_key(name or self.default_t2v_model())
        cache = self._t2v_cache()
        if not cache.lock.acquire(blocking=wait):
            raise GenerationBusy("busy: a text-to-video model is loading; try again in a moment")
        try:
            if cache.name == key and cache.pipeline is not None:
                return cache.pipeline
            from engine.t2v.backend import load_t2v

            if cache.pipeline is not None:  # freed first: two real pipelines do not fit one GPU
                cache.pipeline = cache.name = None
                _release_memory()
            cache.pipeline = load_t2v(key, device=self.config.device, offload=self.config.t2v_offload)
            cache.name = key
            return cache.pipeline
        finally:
            cache.lock.release()

    def loaded_t2v(self) -> str | None:
        return self._t2v_cache().name

    # -- generation ---------------------------------------------------------------------------------
    def generate_video(
        self,
        prompt: str,
        out: str | os.PathLike,
        model: str | None = None,
        seed: int = 0,
        *,
        frames: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        height: int | None = None,
        width: int | None = None,
        progress: StepProgress | None = None,
        cancel: threading.Event | None = None,
        wait: bool = True,
    ) -> GeneratedClip:
        """Generate a clip from `prompt` and write it to `out` (.mp4, atomically: a failure or cancel leaves no
        file). Unset frames/steps/guidance/height/width take the preset's defaults. wait=False (the app):
        GenerationBusy at once while the device is taken. Bad input (empty or over-long prompt, bad sizes, bad
        path) raises InputError before any denoising; a cancel raises GenerationCancelled."""
        from engine.models import pick_device
        from engine.t2v.backend import ClipRequest, busy_message, device_lock, generate_clip
        from engine.t2v.writer import check_out_path

        request = ClipRequest(  # cheap checks before any loading
            prompt, int(seed), frames=frames, steps=steps, guidance=guidance, height=height, width=width
        )
        check_out_path(out)
        if not wait and device_lock(pick_device(self.config.device)).locked():
            raise GenerationBusy(busy_message(pick_device(self.config.device)))  # before loading another model
        pipeline = self.t2v_pipeline(model, wait=wait)
        return generate_clip(pipeline, request, out, progress=progress, cancel=cancel, wait=wait)

    # -- quality -------------------------------------------------------------------------------------
    def per_frame_evaluator(self, names: Sequence[str]) -> str | None:
        """The first of `names` whose image tower encodes frames one by one (what subject consistency needs)."""
        for name in names:
            member = self.ensemble.member(name)
            if hasattr(member, "preprocess") and hasattr(member, "encode_frames"):
                return name
        return None

    def video_quality(self, frames: np.ndarray, fps: float = 8.0, evaluator: str | None = None) -> FrameQuality:
        """engine.t2v.quality's metrics of uint8 frames (T, H, W, 3); subject consistency from `evaluator`'s
        per-frame image features (None: left out)."""
        from engine.t2v.quality import frame_quality

        return frame_quality(frames, self.ensemble.member(evaluator) if evaluator else None, fps)

    # -- Table 3 -------------------------------------------------------------------------------------
    def evaluate_video(
        self: VideoStudio, db: Engine, config: VideoEvalConfig, progress: bool = True
    ) -> VideoEvalResult:
        """Table 3 (paper section 4.5) into config.out_dir: see engine.t2v.evaluate. `self` is the whole Studio
        (a mixin method typed by the Protocol it calls back through: mypy checks Studio against it)."""
        from engine.t2v.evaluate import evaluate_video

        return evaluate_video(self, db, config, progress=progress)


def _release_memory() -> None:
    """Give a dropped pipeline's memory back now (weights sit in reference cycles with their hooks)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def clip_path(out_dir: str | os.PathLike, stem: str, seed: int) -> Path:
    """A fresh per-request path `out_dir/<uuid>/<stem>-s<seed>.mp4`: two users' clips never share a file."""
    import re
    import uuid

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.")[:48] or "clip"
    return Path(out_dir) / uuid.uuid4().hex / f"{safe}-s{int(seed)}.mp4"
