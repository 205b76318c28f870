"""The data of the Table-3 evaluation (engine.t2v.evaluate runs it, engine.t2v.report writes it): its config,
one row per clip, and the result. Plain dataclasses, no torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.evaluators.registry import PAPER_EVALUATORS

if TYPE_CHECKING:
    from engine.t2v.vbench_dims import Route

#: Where a clip's prompt came from: the sample's short prompt, the base model's or the trained model's.
SOURCES = ("short", "base", "trained")
LONG_PROMPTS = ("cut", "skip")
#: Paper section 4.5: "the T2V model EasyAnimate" (the generate-video default, engine.t2v.presets.DEFAULT_T2V_MODEL,
#: stays the smallest real preset).
TABLE3_T2V_MODEL = "easyanimate-v5.1-7b"
#: Paper section 4.5: "We randomly sample 100 short captions from the test set".
TABLE3_NUM_SAMPLES = 100


@dataclass
class VideoEvalConfig:
    """Which prompt models and which T2V model, on which split, and where the report goes."""

    base: str
    """The base prompt model (Task 3)."""
    trained: str
    """The trained prompt model: a preset or a checkpoint folder."""
    out_dir: str
    """Folder for the report, prompts.json and clips/ (created; reused when resuming)."""
    t2v: str = TABLE3_T2V_MODEL
    """Text-to-video preset or diffusers folder (the paper's EasyAnimate by default)."""
    split: str = "test"
    num_samples: int | None = TABLE3_NUM_SAMPLES
    """How many samples with a short prompt to draw at random from the split (None or more than there are: all)."""
    sample_seed: int = 0
    """The seed of the draw: the same seed and the same split give the same samples (recorded in samples.json)."""
    seed: int = 0
    """The seed of every clip: the three clips of a sample start from the same noise."""
    evaluators: tuple[str, ...] = PAPER_EVALUATORS
    """Text-video consistency evaluators (the ensemble)."""
    subject_evaluator: str | None = None
    """Per-frame image model for subject consistency (None: the first of `evaluators` that encodes frames one
    by one; with none, subject consistency is left out)."""
    max_new_tokens: int | None = None
    """Fixed budget for the detailed prompts (None: the Table-1 harness's rule)."""
    frames: int | None = None
    steps: int | None = None
    guidance: float | None = None
    height: int | None = None
    width: int | None = None
    long_prompts: str = "cut"
    """A prompt over the T2V text encoder's limit: "cut" to its longest word prefix that fits (counted in the
    report), or "skip" its clip."""

    def __post_init__(self) -> None:
        for name in ("base", "trained", "t2v", "out_dir", "split"):
            if not str(getattr(self, name) or "").strip():
                raise InputError(f"evaluate-video needs --{name.replace('_', '-')}")
        if self.num_samples is not None and self.num_samples < 1:
            raise InputError(f"--num-samples must be >= 1, got {self.num_samples}")
        for name in ("seed", "sample_seed"):
            if not 0 <= getattr(self, name) < 2**63:
                raise InputError(f"--{name.replace('_', '-')} must be in 0 .. 2^63 - 1, got {getattr(self, name)}")
        if self.long_prompts not in LONG_PROMPTS:
            raise InputError(f"--long-prompts must be one of {', '.join(LONG_PROMPTS)}, got {self.long_prompts!r}")
        if not self.evaluators:
            raise InputError("evaluate-video needs at least one --evaluator")
        self.evaluators = tuple(dict.fromkeys(self.evaluators))

    def clip_settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("frames", "steps", "guidance", "height", "width")}

    def model(self, source: str) -> str:
        """The text model behind a source ("" for the short prompt)."""
        return {"short": "", "base": self.base, "trained": self.trained}[source]


@dataclass
class ClipRow:
    """One clip: where its prompt came from, the file, and its scores (empty when it was not made)."""

    sample_id: int
    source: str
    """short, base or trained."""
    model: str
    short_prompt: str
    prompt: str
    """The text the T2V model read (after a cut)."""
    clip: str | None
    """Path relative to the report folder; None when the clip was skipped."""
    status: str
    """"ok", "cut to N words (M tokens)", or "skipped: <why>"."""
    seed: int
    reused: bool = False
    consistency: dict[str, float] = field(default_factory=dict)
    """Evaluator -> 100 x cosine(clip, SHORT prompt), plus "mean"."""
    quality: dict[str, Any] = field(default_factory=dict)
    """Our substitutes: engine.t2v.quality.FrameQuality.as_dict() of the clip at about 8 fps, plus
    "motion_smoothness" (linear-blend interpolation, every frame)."""
    vbench: dict[str, float] = field(default_factory=dict)
    """Dimension -> VBench's own code's value, for the dimensions routed to it (engine.t2v.vbench_dims)."""

    @property
    def made(self) -> bool:
        return self.clip is not None


@dataclass
class VideoEvalResult:
    rows: list[ClipRow]
    summary: dict[str, dict[str, float | None]]
    """Dimension -> source -> mean over the clips made."""
    config: VideoEvalConfig
    t2v_label: str
    subject_evaluator: str | None
    seconds: dict[str, float]
    """Per stage (prompts, clips, scores) and per sample."""
    routes: list[Route] = field(default_factory=list)
    """Who scored each VBench dimension: VBench's code, our substitute, or nobody (engine.t2v.vbench_dims)."""
    vbench_missing: str | None = None
    """The one line naming the dimensions VBench's code did not score and how to place their weights."""
    draw: dict[str, Any] = field(default_factory=dict)
    """The sample draw: split, sample_seed, num_samples, pool (samples with a short prompt) and ids."""
    markdown: str = ""
    files: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "markdown": self.markdown,
            "files": self.files,
            "clips": len(self.rows),
            "made": sum(r.made for r in self.rows),
            "reused": sum(r.reused for r in self.rows),
            "seconds": self.seconds,
            "samples": self.draw,
            "vbench": {r.dimension.key: r.kind for r in self.routes},
            "vbench_missing": self.vbench_missing,
        }
