"""Training configuration: dataclasses with defaults, YAML presets load into them, `--set a.b=v` overrides.

No torch here: the job runner (imported by the admin UI) reads and validates configs too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from engine import configfile, paths
from engine.configfile import ConfigError
from engine.hallucination.pairs import TASK2_INPUTS, TASK3_INPUTS, TERMS, PairConfig
from engine.video import DEFAULT_NUM_FRAMES

#: The pair builder's defaults: the one source of the augmentation numbers (= configs/hdpo.yaml).
_PAIRS = PairConfig()
N = TypeVar("N", int, float)


def _as_list(pair: tuple[float, float] | None) -> list[float] | None:
    """A pair-builder default as the list a YAML config writes (None stays None)."""
    return None if pair is None else list(pair)


def _pair(values: Sequence[N]) -> tuple[N, N]:
    """A checked [min, max] list as the (min, max) tuple the pair builder takes."""
    lo, hi = values
    return lo, hi


#: The pair losses (the HDPO terms, TERMS, are the pair builder's); torch-free for the job runner and UI.
PAIR_LOSSES = ("sigmoid", "hinge", "ipo")
#: Every loss.kind: the pair losses, KTO (unpaired, over the DPO data) and SFT (NLL on the chosen responses).
LOSS_KINDS = (*PAIR_LOSSES, "kto", "sft")


#: The repository's config presets: `base:` in a config the admin tab launches resolves only in here.
CONFIGS_DIR = paths.CONFIGS_DIR
RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RUN_NAME_RULE = "use 1-64 letters, digits, '.', '_' or '-' (no '/' or '..'): it names a folder inside run.output_dir"


@dataclass
class ModelConfig:
    name: str = "tiny-random-vlm"
    """Preset name (engine.models) or a checkpoint folder: the policy and, at step 0, the reference."""
    device: str | None = None
    """cuda / cpu; None picks CUDA when present (accelerate decides under `accelerate launch`)."""
    precision: str = "auto"
    """auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16 (autocast; master weights stay fp32)."""
    gradient_checkpointing: str = "auto"
    """auto (on for CUDA), on, off."""
    attn_implementation: str | None = None
    """None (sdpa) or "flash_attention_2" where flash-attn is installed: the H100 profile of a 2.3B
    VLM step is launch-bound on per-window SDPA calls in the vision tower (docs/benchmarks.md)."""
    freeze_vision: bool = False
    """Freeze the vision encoder (patch embedding + blocks; the merger/projector still trains): saves
    its gradients and optimizer state (~2 GiB at 2.3B); no faster on an H100, where the step is
    launch-bound (docs/benchmarks.md)."""
    vision_attention: str = "blocks"
    """blocks: each vision-tower layer attends in one kernel call over all its windows / frames
    (training.attention; Qwen2-VL family, where the tower is not on flash_attention_* already); stock:
    transformers' dispatch, one SDPA call per window (~12.6k per 8-video step on an H100)."""
    logps: str = "chunked"
    """chunked: label log-probs in tiles, forward and backward, never the (S, R, V) logits
    (training.logps.label_logps; ~0.22 of the log-prob step's peak memory); full: the logits path."""
    share_prefix: bool = True
    """Text batches whose prompts share a long prefix (every Task-3 prompt is the ~310-token instruction)
    run it once per forward and the rows on its cache (training.logps.split_shared_prefix): the same
    log-probs and gradients, ~2x fewer tokens through the model per HDPO micro-batch on SmolLM2."""
    compile: str = "off"
    """off, or blocks: torch.compile each decoder layer and vision block (training.speed); a backend that
    cannot compile here falls back to eager with one log line."""
    compile_backend: str = "inductor"
    """torch.compile backend for model.compile=blocks (inductor; aot_eager / eager to check the wiring)."""
    lora: bool = False
    """Train LoRA adapters instead of all weights; the reference is then the base with adapters off."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator."""
    lora_dropout: float = 0.0
    """LoRA dropout (0 keeps runs bit-reproducible on resume)."""
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Module names to adapt (the language model's attention projections by default)."""

    def __post_init__(self) -> None:
        _check_in("model.precision", self.precision, ("auto", "fp32", "bf16"))
        _check_in("model.gradient_checkpointing", self.gradient_checkpointing, ("auto", "on", "off"))
        _check_in("model.vision_attention", self.vision_attention, ("blocks", "stock"))
        _check_in("model.logps", self.logps, ("chunked", "full"))
        _check_in("model.compile", self.compile, ("off", "blocks"))
        _check_in("model.compile_backend", self.compile_backend, ("inductor", "aot_eager", "eager"))
        _check("model.lora_r", self.lora_r >= 1, "must be >= 1")
        _check("model.lora_dropout", 0.0 <= self.lora_dropout < 1.0, "must be in [0, 1)")


@dataclass
class LossConfig:
    beta: float = 0.1
    """KL strength beta of Eq. 1-2 (paper 4.1: 0.1)."""
    kind: str = "sigmoid"
    """sigmoid (DPO / HDPO), hinge, ipo (length-normalised), or the unpaired baselines kto (Ethayarajh et al.
    2024, over the DPO data: chosen desirable, rejected undesirable) and sft (NLL on the chosen responses;
    its checkpoint is what model.name of an HDPO run can start from, as the paper's reference model)."""
    dpo: bool = True
    """Eq. 3-5: chosen over each rejected response."""
    response_hallucination: bool = True
    """Eq. 6-8: chosen over the chosen with 1-n words swapped."""
    input_hallucination: bool = True
    """Eq. 9-11: chosen under the clean input over under the hallucinated input."""
    task_hallucination: bool = True
    """Eq. 12-13: the Task-3 response under Task 3 over under the Task-1/2 conditioning."""
    weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TERMS, 1.0))
    """Weight per term (dpo, response_hallucination, input_hallucination, task_hallucination)."""
    anchor_weight: float = 0.0
    """mDPO-style anchor -log sigma(r(y_g)) weight (0 = off; the mDPO baseline uses 1)."""
    pair_reduction: str = "mean"
    """How a term's pairs of one example combine: mean (the two rejected responses of Eq. 3-5, or the two
    task displacements of Eq. 12-13, count once per term) or sum (once per pair; the paper "integrates
    Eq. 3 to Eq. 13" without saying)."""
    desirable_weight: float = 1.0
    """KTO lambda_D: weight of the desirable (chosen) rows (TRL's default 1.0)."""
    undesirable_weight: float = 1.0
    """KTO lambda_U: weight of the undesirable (rejected) rows (TRL's default 1.0)."""

    def __post_init__(self) -> None:
        _check("loss.beta", self.beta > 0, "must be > 0")
        _check_in("loss.kind", self.kind, LOSS_KINDS)
        unknown = set(self.weights) - set(TERMS)
        _check("loss.weights", not unknown, f"unknown term(s) {sorted(unknown)}; terms are {TERMS}")
        self.weights = {**dict.fromkeys(TERMS, 1.0), **{k: float(v) for k, v in self.weights.items()}}
        _check("loss.anchor_weight", self.anchor_weight >= 0, "must be >= 0")
        _check_in("loss.pair_reduction", self.pair_reduction, ("mean", "sum"))
        _check("loss.desirable_weight", self.desirable_weight > 0, "must be > 0")
        _check("loss.undesirable_weight", self.undesirable_weight > 0, "must be > 0")
        _check("loss", self.kind == "sft" or any(self.enabled.values()) or self.anchor_weight > 0, "every term is off")
        if self.kind == "kto":  # KTO reads the DPO pairs unpaired; the hallucination terms are pair losses
            extra = [t for t, on in self.enabled.items() if on and t != "dpo"]
            _check(
                "loss.kind", self.dpo and not extra, f"kto takes the dpo data only: set loss.dpo true, {extra} false"
            )
            _check("loss.anchor_weight", self.anchor_weight == 0, "kto has no anchor term: set 0")

    @property
    def pair_terms(self) -> tuple[str, ...]:
        """The HDPO terms whose pairs materialisation draws (none for sft: it reads the chosen only)."""
        return () if self.kind == "sft" else tuple(t for t, on in self.enabled.items() if on)

    @property
    def enabled(self) -> dict[str, bool]:
        return {t: bool(getattr(self, t)) for t in TERMS}


@dataclass
class DataConfig:
    path: str | None = None
    """An annotations export (JSONL / Parquet), or a materialised examples.jsonl; None: export the --db."""
    split: str = "train"
    """Rows of this split train; others are ignored."""
    tasks: list[int] = field(default_factory=lambda: [1, 2, 3])
    """Tasks to train on."""
    prompt_cache_items: int = 64
    """Encoded prompts (ids + processed frames) kept in memory across micro-batches (LRU)."""
    separate_tasks: bool = False
    """Train one model per task instead of mixed multi-task batches (Table 2, separate training)."""
    num_rejected: int = _PAIRS.num_rejected
    """Rejected responses per example (paper 4.1: the 2 lowest-scored of 5 beams)."""
    num_frames: int = DEFAULT_NUM_FRAMES
    """Frames sampled per video (engine.video.DEFAULT_NUM_FRAMES); the loop's mining and evaluation use it too."""
    frame_size: int | None = 224
    """Shortest frame edge after decoding (None keeps the file's size)."""
    response_words: list[int] = field(default_factory=lambda: list(_PAIRS.response_words))
    """Words swapped for response hallucination, [min, max] (paper: 1-5)."""
    prompt_words: list[int] = field(default_factory=lambda: list(_PAIRS.prompt_words))
    """Words swapped in the short prompt for Task-2/3 input hallucination, [min, max]."""
    every_mention: bool = _PAIRS.every_mention
    """A swapped word is swapped at every mention (False: its first mention only; the paper does not say)."""
    shuffle_frames: bool = _PAIRS.shuffle
    """Input hallucination: shuffle frame order."""
    paste_ratio: list[float] | None = field(default_factory=lambda: _as_list(_PAIRS.paste_ratio))
    """Input hallucination: pasted patch side as a fraction [lo, hi] of each frame side (None: no paste)."""
    crop_keep: list[float] | None = _as_list(_PAIRS.crop_keep)
    """Input hallucination: random crop keeping [lo, hi] of each side (Table 2 'Random Crop': 0.8-1.0)."""
    crop_area: list[float] | None = _as_list(_PAIRS.crop_area)
    """Input hallucination: RandomResizedCrop keeping [lo, hi] of the AREA (official mDPO: [0.01, 0.2])."""
    crop_per_frame: bool = _PAIRS.crop_per_frame
    """One crop box per frame instead of one per clip (the paper does not say; default: per clip)."""
    paste_per_frame: bool = _PAIRS.paste_per_frame
    """One paste box per frame (default: 'onto each frame') instead of one per clip."""
    task2_input: str = _PAIRS.task2_input
    """What Task-2 input hallucination perturbs: video, prompt or both."""
    task3_input: str = _PAIRS.task3_input
    """What Task-3 input hallucination perturbs: prompt (word swaps, HDPO) or none (mDPO has no text term)."""
    prefetch_workers: int | None = None
    """Threads that encode upcoming micro-batches (frames -> processor tensors) while the model runs;
    None: 2 on CUDA, 0 (inline) on CPU, where they would share the cores the step uses."""
    prefetch_batches: int = 4
    """Micro-batches encoded ahead (bounds the memory the prefetch holds)."""
    pad_to_multiple: int = 1
    """Round each micro-batch's prompt and response widths up to a multiple of this (e.g. 64): fewer
    distinct shapes for torch.compile / CUDA graphs, at the cost of padding; 1: no rounding."""
    strength_band: list[float] | None = _as_list(_PAIRS.strength_band)
    """Keep only response / input hallucination pairs whose evaluator-measured strength is in [lo, hi]
    (engine.strength; paper 3.3: too weak teaches nothing, too strong is trivial). None: keep all."""
    strength_measure: str = _PAIRS.strength_measure
    """What strength_band bounds: drop (ensemble points, 100 x cosine) or relative (drop / original score)."""
    strength_evaluators: list[str] = field(default_factory=lambda: list(_PAIRS.strength_evaluators))
    """The evaluators that measure strength (read only when strength_band is set)."""
    max_examples: int | None = None
    """Use at most this many examples (smoke runs)."""
    sample_set: str | None = None
    """Pairs to train on when path is None and no --db is given (tiny-cpu: the bundled sample set's
    assets/sampleset/pairs.jsonl, relative to the project root); the job runner always exports its DB."""

    def __post_init__(self) -> None:
        _check("data.tasks", bool(self.tasks) and set(self.tasks) <= {1, 2, 3}, "must be a non-empty subset of 1,2,3")
        _check("data.num_rejected", self.num_rejected >= 1, "must be >= 1")
        _check("data.prompt_cache_items", self.prompt_cache_items >= 1, "must be >= 1")
        _check("data.num_frames", self.num_frames >= 1, "must be >= 1")
        _check_range("data.response_words", self.response_words, 1)
        _check_range("data.prompt_words", self.prompt_words, 1)
        if self.paste_ratio is not None:
            _check_range("data.paste_ratio", self.paste_ratio, 0.0, 1.0)
        if self.crop_keep is not None:
            _check_range("data.crop_keep", self.crop_keep, 0.0, 1.0)
        _check_in("data.task2_input", self.task2_input, TASK2_INPUTS)
        _check_in("data.task3_input", self.task3_input, TASK3_INPUTS)
        if self.crop_area is not None:
            _check_range("data.crop_area", self.crop_area, 0.0, 1.0)
        _check(
            "data.crop_area", self.crop_area is None or self.crop_keep is None, "set crop_keep or crop_area, not both"
        )
        _check("data.prefetch_workers", self.prefetch_workers is None or self.prefetch_workers >= 0, "must be >= 0")
        _check("data.prefetch_batches", self.prefetch_batches >= 1, "must be >= 1")
        _check("data.pad_to_multiple", self.pad_to_multiple >= 1, "must be >= 1")
        _check_in("data.strength_measure", self.strength_measure, ("drop", "relative"))
        if self.strength_band is not None:
            band = self.strength_band
            _check("data.strength_band", len(band) == 2 and band[0] <= band[1], "must be [lo, hi] with lo <= hi")

    def pair_config(self, loss: LossConfig) -> PairConfig:
        """The pair builder's config (engine.hallucination.pairs) for these data settings and loss terms."""
        return PairConfig(
            response_words=_pair(self.response_words),
            prompt_words=_pair(self.prompt_words),
            every_mention=self.every_mention,
            shuffle=self.shuffle_frames,
            paste_ratio=None if self.paste_ratio is None else _pair(self.paste_ratio),
            crop_keep=None if self.crop_keep is None else _pair(self.crop_keep),
            crop_area=None if self.crop_area is None else _pair(self.crop_area),
            crop_per_frame=self.crop_per_frame,
            paste_per_frame=self.paste_per_frame,
            task2_input=self.task2_input,
            task3_input=self.task3_input,
            terms=loss.pair_terms,
            num_rejected=self.num_rejected,
            strength_band=None if self.strength_band is None else _pair(self.strength_band),
            strength_measure=self.strength_measure,
            strength_evaluators=tuple(self.strength_evaluators),
        )


@dataclass
class OptimConfig:
    lr: float = 1e-6
    """AdamW learning rate (paper 4.1)."""
    batch_size: int = 64
    """Examples per optimizer step, over all processes (paper 4.1); reached by gradient accumulation."""
    micro_batch_size: int = 2
    """Examples per forward per process (each example is several sequences)."""
    epochs: int = 2
    """Passes over the data (paper 4.1)."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (smoke runs)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW betas."""
    max_grad_norm: float | None = 1.0
    """Clip the global gradient norm (None: no clipping)."""
    scheduler: str = "cosine"
    """LR schedule: constant, linear or cosine (after warmup)."""
    warmup_ratio: float = 0.1
    """Fraction of steps with linear warmup."""

    def __post_init__(self) -> None:
        _check("optim.lr", self.lr > 0, "must be > 0")
        _check("optim.batch_size", self.batch_size >= 1, "must be >= 1")
        _check("optim.micro_batch_size", 1 <= self.micro_batch_size <= self.batch_size, "must be in 1..batch_size")
        _check("optim.epochs", self.epochs >= 1, "must be >= 1")
        _check("optim.max_steps", self.max_steps is None or self.max_steps >= 1, "must be >= 1")
        _check_in("optim.scheduler", self.scheduler, ("constant", "linear", "cosine"))
        _check("optim.warmup_ratio", 0.0 <= self.warmup_ratio < 1.0, "must be in [0, 1)")


@dataclass
class RunConfig:
    output_dir: str = "runs"
    """Parent folder of run folders."""
    name: str = "hdpo"
    """Run folder name under output_dir (the job runner appends the run id)."""
    seed: int = 0
    """Seeds augmentations, data order and initialisation of LoRA weights."""
    reference: str = "cached"
    """cached: reference log-probs computed once, stored on disk, no second model; resident: a
    reference model forward every step (for comparison)."""
    ref_cache_dir: str | None = None
    """Where the reference cache lives (default: <output_dir>/ref-cache, shared between runs)."""
    checkpoint_every: int = 100
    """Save a checkpoint every N optimizer steps (and at the end, and on SIGTERM / SIGINT)."""
    keep_checkpoints: int = 2
    """Checkpoints kept (oldest removed first)."""
    log_every: int = 1
    """Log metrics every N optimizer steps."""
    tensorboard: bool = True
    """Write TensorBoard event files to <run>/tb."""
    progress_bar: bool = True
    """tqdm progress bar on the main process."""

    def __post_init__(self) -> None:
        # A folder name, never a path: `run.name=../../x` must not put the run folder outside output_dir.
        _check("run.name", bool(RUN_NAME_RE.match(str(self.name))) and ".." not in str(self.name), RUN_NAME_RULE)
        _check_in("run.reference", self.reference, ("cached", "resident"))
        _check("run.checkpoint_every", self.checkpoint_every >= 1, "must be >= 1")
        _check("run.keep_checkpoints", self.keep_checkpoints >= 1, "must be >= 1")
        _check("run.log_every", self.log_every >= 1, "must be >= 1")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    """Policy model and precision."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Which HDPO terms, with what weights."""
    data: DataConfig = field(default_factory=DataConfig)
    """Export to train on and how augmentations are drawn."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer and schedule."""
    run: RunConfig = field(default_factory=RunConfig)
    """Output, checkpoints, logging."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- checks


def _check(key: str, ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def _check_in(key: str, value: Any, allowed: tuple) -> None:
    _check(key, value in allowed, f"{value!r} is not one of {', '.join(map(str, allowed))}")


def _check_range(key: str, pair: list, lo: float, hi: float | None = None) -> None:
    ok = len(pair) == 2 and lo <= pair[0] <= pair[1] and (hi is None or pair[1] <= hi)
    _check(key, ok, f"must be [min, max] with {lo} <= min <= max" + (f" <= {hi}" if hi is not None else ""))


# --------------------------------------------------------------------------- loading (engine.configfile)


def from_dict(data: dict[str, Any] | None) -> TrainConfig:
    return configfile.build(TrainConfig, dict(data or {}))


def load_config(
    source: str | Path | dict[str, Any] | None,
    overrides: list[str] | dict | None = None,
    base_root: Path | None = None,
) -> TrainConfig:
    """A TrainConfig from a YAML path or a dict (or defaults), with overrides applied, validated.
    base_root: where `base:` may point (engine.configfile.read_yaml); None for the CLI."""
    return configfile.load(TrainConfig, source, overrides, base_root)
