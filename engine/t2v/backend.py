"""Text-to-video backend on diffusers: load a preset, check a request against it, generate a seeded clip.

One road: `load_t2v(name, ...)` -> `T2VPipeline`; `pipeline.generate(request)` -> frames; `generate_clip(...)`
also writes the mp4 atomically. The app (later) calls the same functions, passing `progress` and `cancel`.
bf16 on CUDA (fp32 on CPU), with diffusers' CPU-offload modes for small GPUs; offload and CUDA-only paths
are refused on machines without CUDA rather than attempted. One generation runs per device at a time.
"""

from __future__ import annotations

import inspect
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from annotations.errors import first_line
from engine.errors import BackendUnavailable, InputError, ModelLoadError
from engine.models import pick_device
from engine.presets import downloads_allowed
from engine.t2v.errors import GenerationBusy, GenerationCancelled, GenerationError
from engine.t2v.presets import RANDOM_WEIGHTS_LABEL, T2VPreset, resolve_t2v, t2v_source
from engine.t2v.tiny import quiet_progress_bars
from engine.t2v.writer import check_out_path, write_clip_atomic

Offload = Literal["none", "model", "sequential"]
OFFLOAD_MODES: tuple[str, ...] = ("none", "model", "sequential")
DTYPES = ("float32", "float16", "bfloat16")

#: Ceilings that turn a typo (--frames 4900) into a one-line refusal instead of minutes of work and an OOM.
MAX_FRAMES = 257
MAX_SIDE = 2048
MAX_STEPS = 1000

#: progress(step, total) after each denoising step.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ClipRequest:
    """What to generate. None means the preset's default (`with_defaults` fills them in)."""

    prompt: str
    seed: int = 0
    """Seeds a CPU torch.Generator: the same seed gives the same frames on the same device and dtype."""
    frames: int | None = None
    fps: float | None = None
    steps: int | None = None
    guidance: float | None = None
    height: int | None = None
    width: int | None = None
    negative_prompt: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise InputError("the prompt is empty")
        if not 0 <= self.seed < 2**63:
            raise InputError(f"seed must be in 0 .. 2^63 - 1, got {self.seed}")
        _check_range("frames", self.frames, 1, MAX_FRAMES)
        _check_range("steps", self.steps, 1, MAX_STEPS)
        _check_range("height", self.height, 8, MAX_SIDE)
        _check_range("width", self.width, 8, MAX_SIDE)
        if self.fps is not None and not 0 < self.fps <= 240:
            raise InputError(f"fps must be in (0, 240], got {self.fps:g}")
        if self.guidance is not None and not 0 <= self.guidance <= 50:
            raise InputError(f"guidance must be in 0 .. 50, got {self.guidance:g}")

    def with_defaults(self, preset: T2VPreset) -> ClipRequest:
        """Every None replaced by the preset's default."""
        pick = lambda value, default: default if value is None else value  # noqa: E731
        return replace(
            self,
            frames=pick(self.frames, preset.frames),
            fps=pick(self.fps, preset.fps),
            steps=pick(self.steps, preset.steps),
            guidance=pick(self.guidance, preset.guidance),
            height=pick(self.height, preset.height),
            width=pick(self.width, preset.width),
        )


def _check_range(name: str, value: int | None, lo: int, hi: int) -> None:
    if value is not None and not lo <= value <= hi:
        raise InputError(f"{name} must be in {lo} .. {hi}, got {value}")


@dataclass
class GeneratedClip:
    """A generated clip and what produced it."""

    frames: np.ndarray
    """uint8 (T, H, W, 3) RGB."""
    request: ClipRequest
    """The request with the preset's defaults filled in."""
    model: str
    random_weights: bool
    prompt_tokens: int
    max_tokens: int
    device: str
    seconds: float
    """Generation time (prompt encoding, denoising, VAE decoding); not loading or writing."""
    path: Path | None = None
    """The mp4, once written."""

    def as_dict(self) -> dict[str, Any]:
        t, h, w = self.frames.shape[:3]
        return {
            "out": str(self.path) if self.path else None,
            "model": self.model,
            "random_weights": self.random_weights,
            "label": RANDOM_WEIGHTS_LABEL if self.random_weights else "",
            **{k: v for k, v in asdict(self.request).items() if k not in ("frames", "height", "width")},
            "frames": t,
            "height": h,
            "width": w,
            "prompt_tokens": self.prompt_tokens,
            "max_tokens": self.max_tokens,
            "device": self.device,
            "seconds": round(self.seconds, 3),
        }


_DEVICE_LOCKS: dict[str, threading.Lock] = {}
_DEVICE_LOCKS_GUARD = threading.Lock()


def busy_message(device: str) -> str:
    return f"busy: another video is being generated on {device} (one at a time per device); try again when it ends"


def device_lock(device: str) -> threading.Lock:
    """The lock that lets one generation at a time run on `device` (a T2V run fills a GPU on its own).
    "cuda" and "cuda:N" of the current GPU share one lock."""
    key = str(torch.device(device))
    if key == "cuda" and torch.cuda.is_available():
        key = f"cuda:{torch.cuda.current_device()}"
    with _DEVICE_LOCKS_GUARD:
        return _DEVICE_LOCKS.setdefault(key, threading.Lock())


class T2VPipeline:
    """A loaded diffusers text-to-video pipeline and the rules its requests must follow."""

    def __init__(self, preset: T2VPreset, pipe: Any, source: str, device: str, dtype: str, offload: str) -> None:
        self.preset = preset
        self.pipe = pipe
        self.source = source
        self.device = device
        self.dtype = dtype
        self.offload = offload

    @property
    def name(self) -> str:
        return self.preset.name

    @property
    def random_weights(self) -> bool:
        return self.preset.random_weights

    @property
    def max_tokens(self) -> int:
        """Text tokens the pipeline reads: CogVideoX's transformer fixes it in its config; else the preset's."""
        return int(getattr(self.pipe.transformer.config, "max_text_seq_length", None) or self.preset.max_tokens)

    @property
    def size_multiple(self) -> int:
        """Heights and widths must be multiples of VAE downsampling x transformer patch size (16 for all four)."""
        vae = getattr(self.pipe, "vae_scale_factor_spatial", 0) or getattr(
            self.pipe, "vae_spatial_compression_ratio", 8
        )
        patch = getattr(self.pipe.transformer.config, "patch_size", 1) or 1
        if isinstance(patch, (tuple, list)):
            patch = patch[-1]  # Wan: (t, h, w)
        return int(vae) * int(patch)

    def count_tokens(self, prompt: str) -> int:
        """Tokens the text encoder would read, end token included (EasyAnimate: after its chat template)."""
        tokenizer = self.pipe.tokenizer
        if self.preset.family == "easyanimate":
            messages = [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
            prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return len(tokenizer(prompt).input_ids)

    def check(self, request: ClipRequest) -> ClipRequest:
        """The request with defaults filled in, or an InputError saying which value to change and to what."""
        request = check_shape(self.preset, request, self.size_multiple)
        count = self.count_tokens(request.prompt)
        if count > self.max_tokens:
            raise InputError(
                f"the prompt is {count} tokens; {self.name}'s text encoder reads at most {self.max_tokens}: "
                f"shorten it by {count - self.max_tokens} tokens"
            )
        if request.negative_prompt and self.count_tokens(request.negative_prompt) > self.max_tokens:
            raise InputError(f"the negative prompt is longer than {self.name}'s {self.max_tokens}-token limit")
        return request

    def generate(
        self,
        request: ClipRequest,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        wait: bool = True,
    ) -> GeneratedClip:
        """Run the pipeline: uint8 frames (T, H, W, 3). While another generation holds this device, waits
        (wait=True: the CLIs) or raises GenerationBusy at once (wait=False: the app says "busy")."""
        request = self.check(request)
        tokens = self.count_tokens(request.prompt)
        callback = _step_callback(request.steps or 1, progress, cancel)
        lock = device_lock(self.device)
        if not lock.acquire(blocking=wait):
            raise GenerationBusy(busy_message(self.device))
        try:
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("generation cancelled before it started")
            start = time.perf_counter()
            video = self._run(request, callback)
            seconds = time.perf_counter() - start
        finally:
            lock.release()
        return GeneratedClip(
            to_uint8(video), request, self.name, self.random_weights, tokens, self.max_tokens, self.device, seconds
        )

    def call_kwargs(self, request: ClipRequest) -> dict[str, Any]:
        """The pipeline call's arguments for a checked request."""
        kwargs: dict[str, Any] = dict(
            prompt=request.prompt,
            # A string, never None: EasyAnimate iterates a None negative prompt under guidance.
            negative_prompt=request.negative_prompt,
            num_frames=request.frames,
            height=request.height,
            width=request.width,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance,
            generator=torch.Generator("cpu").manual_seed(request.seed),  # CPU: the same noise on any device
            output_type="np",
        )
        if "max_sequence_length" in inspect.signature(self.pipe.__call__).parameters:
            kwargs["max_sequence_length"] = self.max_tokens  # EasyAnimate fixes its 256 inside encode_prompt
        return kwargs

    def _run(self, request: ClipRequest, callback: Callable[..., dict]) -> np.ndarray:
        try:
            with torch.inference_mode():
                out = self.pipe(**self.call_kwargs(request), callback_on_step_end=callback)
        except torch.cuda.OutOfMemoryError:
            _release_cuda_memory()
            raise GenerationError(_oom_message(self, request)) from None
        except ValueError as exc:  # the pipeline's own input checks
            raise GenerationError(f"{self.name} refused the request: {first_line(exc)}") from exc
        return out.frames[0]  # (T, H, W, 3) float in [0, 1]


def check_shape(preset: T2VPreset, request: ClipRequest, size_multiple: int | None = None) -> ClipRequest:
    """Defaults filled in and frame count / frame size checked against the preset, before any weights load."""
    request = request.with_defaults(preset)
    _check_frames(preset.name, request.frames, preset.frame_step)
    for side in ("height", "width"):
        _check_side(preset.name, side, getattr(request, side), size_multiple or preset.size_multiple)
    return request


def _check_frames(name: str, frames: int | None, step: int) -> None:
    if frames is None or (frames - 1) % step == 0:
        return
    lower = (frames - 1) // step * step + 1  # >= 1, as frames >= 1
    raise InputError(f"{frames} frames: {name} makes clips of {step}k+1 frames; ask for {lower} or {lower + step}")


def _check_side(name: str, side: str, value: int | None, multiple: int) -> None:
    if value is None or value % multiple == 0:
        return
    lower = value // multiple * multiple
    options = f"{lower} or {lower + multiple}" if lower else f"{multiple}"
    raise InputError(f"{side} {value}: {name} needs a multiple of {multiple}; use {options}")


def _step_callback(total: int, progress: Progress | None, cancel: threading.Event | None) -> Callable[..., dict]:
    """diffusers' callback_on_step_end: report progress; raise to stop at once when cancelled (diffusers' own
    interrupt flag would skip the remaining steps but still decode the VAE)."""

    def on_step_end(pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        if progress is not None:
            progress(step + 1, total)
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled(f"generation cancelled after {step + 1} of {total} steps")
        return callback_kwargs

    return on_step_end


def to_uint8(video: np.ndarray) -> np.ndarray:
    """float frames in [0, 1] (T, H, W, 3) -> uint8, rounded to nearest."""
    return np.clip(np.rint(np.asarray(video, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def _oom_message(pipeline: T2VPipeline, request: ClipRequest) -> str:
    hints = ["fewer frames", "a smaller height/width"]
    if pipeline.offload == "none":
        hints.append("CPU offload (--offload model, or sequential)")
    hints.append("VAE tiling (--vae-tiling)")
    return (
        f"GPU out of memory generating {request.frames} frames at {request.width}x{request.height} with "
        f"{pipeline.name}: try {', '.join(hints)}"
    )


def _release_cuda_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# -- loading ---------------------------------------------------------------------------------------------
def load_t2v(
    name: str, device: str | None = None, dtype: str | None = None, offload: str = "none", vae_tiling: bool = False
) -> T2VPipeline:
    """Load a T2V preset or diffusers pipeline folder.

    dtype: None -> bfloat16 on CUDA, float32 on CPU. offload: "model" moves whole components to the GPU in
    turn (text encoder, transformer, VAE), "sequential" streams weights layer by layer (slowest, least memory);
    both need CUDA. vae_tiling decodes the video in tiles (less peak memory for large frames).
    """
    preset = resolve_t2v(name)
    device = pick_device(device)
    _check_offload(offload, device)
    torch_dtype = _torch_dtype(dtype, device)
    source = t2v_source(preset)
    quiet_progress_bars()
    import diffusers

    cls = getattr(diffusers, preset.pipeline_class)
    try:
        pipe = cls.from_pretrained(source, dtype=torch_dtype, local_files_only=not downloads_allowed())
    except Exception as exc:  # missing component, wrong format, truncated weights: one clear line
        raise ModelLoadError(
            f"text-to-video model {preset.name!r} failed to load from {source}: {first_line(exc)}"
        ) from exc
    _place(pipe, preset, device, torch_dtype, offload, vae_tiling)
    pipe.set_progress_bar_config(disable=True)
    return T2VPipeline(preset, pipe, source, device, str(torch_dtype).removeprefix("torch."), offload)


def _check_offload(offload: str, device: str) -> None:
    if offload not in OFFLOAD_MODES:
        raise InputError(f"unknown offload mode {offload!r}: pick one of {', '.join(OFFLOAD_MODES)}")
    if offload != "none" and not device.startswith("cuda"):
        raise BackendUnavailable(
            f"--offload {offload} moves weights between the CPU and a GPU; it needs CUDA, and this run is on {device}"
        )


def _torch_dtype(dtype: str | None, device: str) -> torch.dtype:
    if dtype is None:
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}: pick one of {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def _place(pipe: Any, preset: T2VPreset, device: str, torch_dtype: torch.dtype, offload: str, tiling: bool) -> None:
    """Move the pipeline to its device (or set up offload); Wan's VAE stays fp32 under half precision."""
    if preset.vae_fp32 and torch_dtype != torch.float32:
        pipe.vae.to(torch.float32)
    if tiling and hasattr(pipe.vae, "enable_tiling"):
        pipe.vae.enable_tiling()
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)


def generate_clip(
    pipeline: T2VPipeline,
    request: ClipRequest,
    out: str | os.PathLike,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    wait: bool = True,
) -> GeneratedClip:
    """Generate and write `out` (mp4) atomically: on any failure or cancel, no file (old contents kept)."""
    check_out_path(out)  # refuse a bad path before minutes of generation
    clip = pipeline.generate(request, progress=progress, cancel=cancel, wait=wait)
    clip.path = write_clip_atomic(clip.frames, out, fps=clip.request.fps or pipeline.preset.fps)
    return clip
