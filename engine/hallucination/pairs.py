"""The HDPO pairs of one example: which (preferred, displaced) conditionings each term compares.

One torch-free, seeded function (`build_pairs`) used by the training materialisation
(training/data.py) and the viewer's reward gaps (engine.service.Studio.reward_gaps), so what the
viewer shows is what training uses. Paper section 3.3, beta-free (the loss is training's):

| term                   | preferred        | displaced                                   | Eq.   |
|------------------------|------------------|---------------------------------------------|-------|
| dpo                    | (x, q, y_g)      | (x, q, y_b) for each of num_rejected y_b    | 3-5   |
| response_hallucination | (x, q, y_g)      | (x, q, y_h), y_h = y_g with words swapped   | 6-8   |
| input_hallucination    | (x, q, y_g)      | (x + H, q, y_g): frames perturbed (Task 1,  | 9-11  |
|                        |                  | Task 2 per task2_input) or prompt swapped   |       |
|                        |                  | (Task 3, Task 2 per task2_input)            |       |
| task_hallucination     | (x3, q3, y_g3)   | (x1, q1, y_g3) and (x2, q2, y_g3)           | 12-13 |

The result is plain data: sequences (task, response, short prompt, which frames), pairs of indices
into them (seqs[0] is always the chosen under its own conditioning), the perturbed frames if any and
a record of every change. A perturbation that changes nothing (no swappable word, a 1-frame shuffle)
drops its pair: a pair of identical sequences teaches nothing and would show a zero gap that means
"no perturbation", not "the model cannot tell".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from engine.errors import InputError
from engine.evaluators.registry import PAPER_EVALUATORS
from engine.hallucination.text import TextHallucinationConfig, hallucinate_text
from engine.hallucination.video import VideoHallucinationConfig, check_range, hallucinate_frames
from engine.types import Task

TERMS = ("dpo", "response_hallucination", "input_hallucination", "task_hallucination")
#: Which frames a sequence is conditioned on: the sample's, the perturbed copy, or none (text only).
ORIGINAL, PERTURBED, NONE = "original", "perturbed", "none"
TASK2_INPUTS = ("video", "prompt", "both")
TASK3_INPUTS = ("prompt", "none")
STRENGTH_MEASURES = ("drop", "relative")
#: The frame augmenter's keyword options beyond (shuffle, paste_ratio, crop_keep), with its defaults.
_FRAME_OPTIONS = {
    f.name: f.default
    for f in fields(VideoHallucinationConfig)
    if f.name in ("crop_area", "crop_per_frame", "paste_per_frame")
}


@dataclass
class PairConfig:
    """How the pairs of an example are drawn. Defaults = configs/hdpo.yaml (paper section 4.1)."""

    response_words: tuple[int, int] = (1, 5)
    """Words swapped in the chosen response for y_h, [min, max] (paper: 1-5)."""
    prompt_words: tuple[int, int] = (1, 5)
    """Words swapped in the short prompt for input hallucination, [min, max]."""
    every_mention: bool = True
    """A swapped word is swapped at every mention (False: its first mention only; the paper does not say)."""
    shuffle: bool = True
    """Input hallucination: shuffle the frame order."""
    paste_ratio: tuple[float, float] | None = VideoHallucinationConfig.paste_ratio
    """Input hallucination: pasted patch side as a fraction [lo, hi] of each frame side (None: no paste)."""
    crop_keep: tuple[float, float] | None = None
    """Input hallucination: random crop keeping [lo, hi] of each side (None: no crop)."""
    crop_area: tuple[float, float] | None = None
    """Input hallucination: RandomResizedCrop keeping [lo, hi] of the area (official mDPO: 0.01-0.2; None: off)."""
    crop_per_frame: bool = False
    """One crop box per frame instead of one per clip."""
    paste_per_frame: bool = True
    """One paste box per frame (default) instead of one per clip."""
    task2_input: str = "video"
    """What Task-2 input hallucination perturbs: video, prompt or both."""
    task3_input: str = "prompt"
    """What Task-3 (text-only conditioning) input hallucination perturbs: prompt (word swaps) or none."""
    terms: tuple[str, ...] = TERMS
    """The enabled HDPO terms; the others get no pairs."""
    num_rejected: int = 2
    """Rejected responses compared per example (paper: the 2 lowest-scored of 5 beams)."""
    strength_band: tuple[float, float] | None = None
    """Keep only response / input hallucination pairs whose measured strength lies in [lo, hi] (engine.strength;
    section 3.3: too weak teaches nothing, too strong is trivial). None: keep all, measure nothing."""
    strength_measure: str = "drop"
    """What the band bounds: "drop" (ensemble points lost, 100 x cosine) or "relative" (drop / original score)."""
    strength_evaluators: tuple[str, ...] = PAPER_EVALUATORS
    """The evaluator ensemble that measures strength (only read when strength_band is set)."""

    def __post_init__(self) -> None:
        # Lists from YAML / JSON become tuples, so two configs of the same numbers compare equal.
        self.response_words = _int_range("response_words", self.response_words)
        self.prompt_words = _int_range("prompt_words", self.prompt_words)
        self.paste_ratio = check_range("paste_ratio", self.paste_ratio)
        self.crop_keep = check_range("crop_keep", self.crop_keep)
        self.crop_area = check_range("crop_area", self.crop_area)
        self.terms = tuple(self.terms)
        unknown = sorted(set(self.terms) - set(TERMS))
        if unknown:
            raise InputError(f"unknown HDPO term(s) {unknown}; terms are {', '.join(TERMS)}")
        if self.task2_input not in TASK2_INPUTS:
            raise InputError(f"task2_input must be one of {', '.join(TASK2_INPUTS)}, got {self.task2_input!r}")
        if self.task3_input not in TASK3_INPUTS:
            raise InputError(f"task3_input must be one of {', '.join(TASK3_INPUTS)}, got {self.task3_input!r}")
        if self.num_rejected < 0:
            raise InputError(f"num_rejected must be >= 0, got {self.num_rejected}")
        self._check_strength()
        self.video_config()  # checks the ratios with the video augmenter's own one-line errors

    def _check_strength(self) -> None:
        self.strength_evaluators = tuple(self.strength_evaluators)
        if self.strength_measure not in STRENGTH_MEASURES:
            raise InputError(
                f"strength_measure must be one of {', '.join(STRENGTH_MEASURES)}, got {self.strength_measure!r}"
            )
        if self.strength_band is not None:
            lo, hi = (float(v) for v in self.strength_band)
            if not lo <= hi:
                raise InputError(f"strength_band must be [lo, hi] with lo <= hi, got {list(self.strength_band)}")
            if not self.strength_evaluators:
                raise InputError("strength_band needs at least one evaluator in strength_evaluators")
            self.strength_band = (lo, hi)

    def video_config(self) -> VideoHallucinationConfig:
        return VideoHallucinationConfig(
            shuffle=self.shuffle, paste_ratio=self.paste_ratio, crop_keep=self.crop_keep, **self.frame_options()
        )

    def text_options(self) -> dict[str, Any]:
        """The word augmenter's keyword options that differ from their defaults (none by default, so an
        augmenter written for the four positional arguments keeps working)."""
        return {} if self.every_mention else {"every_mention": False}

    def frame_options(self) -> dict[str, Any]:
        """The frame augmenter's keyword options beyond (shuffle, paste_ratio, crop_keep) that differ from
        their defaults: an augmenter written for the five positional arguments keeps working, and fails
        loudly (unexpected keyword) rather than ignoring an option it does not know."""
        return {k: getattr(self, k) for k, default in _FRAME_OPTIONS.items() if getattr(self, k) != default}


def _int_range(name: str, value: Sequence[int]) -> tuple[int, int]:
    lo, hi = (int(v) for v in value)
    if not 1 <= lo <= hi:
        raise InputError(f"{name} must be [min, max] with 1 <= min <= max, got {list(value)}")
    return lo, hi


@dataclass(frozen=True)
class PairSeq:
    """One (conditioning, response) whose log-prob a term needs."""

    task: int
    response: str
    short_prompt: str | None
    frames: str
    """ORIGINAL, PERTURBED or NONE (see the module constants)."""


@dataclass
class Perturbations:
    """Perturbations that already exist (e.g. pairs mined into an export): used as they are, not drawn."""

    response: str | None = None
    """y_h for response hallucination."""
    prompt: str | None = None
    """The hallucinated short prompt of input hallucination."""
    frames: np.ndarray | None = None
    """The hallucinated video of input hallucination, uint8 (T, H, W, 3)."""

    @property
    def has_input(self) -> bool:
        return self.prompt is not None or self.frames is not None


@dataclass
class HdpoPairs:
    """What `build_pairs` returns: sequences, pairs (term, preferred, displaced) into them, changes."""

    seqs: list[PairSeq]
    pairs: list[tuple[str, int, int]] = field(default_factory=list)
    perturbed_frames: np.ndarray | None = None
    """uint8 (T, H, W, 3): the frames of every PERTURBED sequence (None when no sequence has them)."""
    records: dict[str, Any] = field(default_factory=dict)
    """seed, and per perturbation what changed: text edits, frame ops, or {"source": "given"}."""

    def label(self, index: int) -> str:
        """A short human label of pair `index`, e.g. "input hallucination (video)"."""
        term, pref, disp = self.pairs[index]
        a, b = self.seqs[pref], self.seqs[disp]
        if term == "dpo":
            return f"rejected response {[t for t, _, _ in self.pairs[: index + 1]].count('dpo')}"
        if term == "input_hallucination":
            changed = ["video"] * (a.frames != b.frames) + ["prompt"] * (a.short_prompt != b.short_prompt)
            return f"input hallucination ({' + '.join(changed)})"
        if term == "task_hallucination":
            return f"task displaced: task {b.task}"
        return term.replace("_", " ")


#: text(text, min_words, max_words, seed, **PairConfig.text_options()) -> (new text, record of the edits)
TextAugmenter = Callable[..., tuple[str, Any]]
#: frames(frames (T,H,W,3) uint8, shuffle, paste_ratio, crop_keep, seed, **PairConfig.frame_options())
#: -> (new frames, record of the ops)
FrameAugmenter = Callable[..., tuple[np.ndarray, Any]]


def swap_words(
    text: str, min_words: int, max_words: int, seed: int, **options: Any
) -> tuple[str, list[dict[str, Any]]]:
    """engine.hallucination.hallucinate_text as a TextAugmenter (options: TextHallucinationConfig fields)."""
    config = TextHallucinationConfig(min_words=min_words, max_words=max_words, **options)
    out = hallucinate_text(text, config, seed=seed)
    return out.text, [asdict(e) for e in out.edits]


def perturb_frames(
    frames: np.ndarray,
    shuffle: bool,
    paste_ratio: tuple[float, float] | None,
    crop_keep: tuple[float, float] | None,
    seed: int,
    **options: Any,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """engine.hallucination.hallucinate_frames as a FrameAugmenter (options: VideoHallucinationConfig fields)."""
    config = VideoHallucinationConfig(shuffle=shuffle, paste_ratio=paste_ratio, crop_keep=crop_keep, **options)
    return hallucinate_frames(frames, config, seed=seed)


@dataclass(frozen=True)
class Augmenters:
    """The augmentation functions (engine.hallucination by default; tests and benches may pass fakes)."""

    text: TextAugmenter = swap_words
    frames: FrameAugmenter = perturb_frames


def derive_seed(seed: int, *parts: Any) -> int:
    """A seed for one named draw, from a parent seed: non-negative, < 2**32 (numpy seeds)."""
    digest = hashlib.sha256(json.dumps([seed, *parts]).encode()).digest()
    return int.from_bytes(digest[:4], "little")


# --------------------------------------------------------------------------- the builder


@dataclass
class _Build:
    """The state of one build_pairs call."""

    task: Task
    short_prompt: str | None
    frames: np.ndarray | None
    chosen: str
    config: PairConfig
    seed: int
    aug: Augmenters
    given: Perturbations
    out: HdpoPairs

    def seq(self, response: str, task: Task | None = None) -> PairSeq:
        """`response` under the clean conditioning of `task` (default: the example's task)."""
        task = task or self.task
        prompt = self.short_prompt if task.needs_prompt else None
        return PairSeq(int(task), response, prompt, ORIGINAL if task.needs_video else NONE)

    def add(self, term: str, seq: PairSeq) -> None:
        """Pair seqs[0] with `seq` for `term`, unless they are the same sequence."""
        if seq == self.out.seqs[0]:
            return
        self.out.seqs.append(seq)
        self.out.pairs.append((term, 0, len(self.out.seqs) - 1))


def _dpo(b: _Build, rejected: Sequence[str]) -> None:
    """Eq. 3-5: the chosen over each rejected response, same conditioning."""
    kept = [r for r in dict.fromkeys(rejected) if r and r != b.chosen][: b.config.num_rejected]
    for text in kept:
        b.add("dpo", b.seq(text))


def _response_hallucination(b: _Build) -> None:
    """Eq. 6-8: the chosen over itself with response_words words swapped."""
    if b.given.response is not None:
        text, record = b.given.response, {"source": "given"}
    else:
        lo, hi = b.config.response_words
        text, record = b.aug.text(b.chosen, lo, hi, derive_seed(b.seed, "response"), **b.config.text_options())
    if text != b.chosen:
        b.add("response_hallucination", b.seq(text))
        b.out.records["response_hallucination"] = record


def _perturbs(b: _Build) -> tuple[bool, bool]:
    """(video?, prompt?) that input hallucination perturbs (paper: x^(t) + H^(t)): the inputs the task
    has; Task 2 has both and perturbs what task2_input says; a prompt-only task (Task 3) per task3_input."""
    task, choice = b.task, b.config.task2_input
    if not task.needs_video and b.config.task3_input == "none":
        return False, False
    both = task.needs_video and task.needs_prompt
    video = task.needs_video and (not both or choice in ("video", "both"))
    prompt = task.needs_prompt and (not both or choice in ("prompt", "both"))
    return video, prompt


def _input_hallucination(b: _Build) -> None:
    """Eq. 9-11: the chosen under the clean input over under the hallucinated input."""
    clean = b.seq(b.chosen)
    frames, ops, prompt, edits = _given_input(b) if b.given.has_input else _drawn_input(b)
    # a 1-frame shuffle changes nothing
    new_video = frames is not None and (b.frames is None or not np.array_equal(frames, b.frames))
    new_prompt = prompt is not None and prompt != clean.short_prompt
    if not (new_video or new_prompt):
        return
    seq = PairSeq(
        clean.task,
        clean.response,
        prompt if new_prompt else clean.short_prompt,
        PERTURBED if new_video else clean.frames,
    )
    b.add("input_hallucination", seq)
    if new_video:
        b.out.perturbed_frames = frames
    if b.given.has_input:
        b.out.records["input_hallucination"] = {"source": "given"}
        return
    if new_video:
        b.out.records["input_hallucination_video"] = ops
    if new_prompt:
        b.out.records["input_hallucination_prompt"] = edits


def _given_input(b: _Build) -> tuple[np.ndarray | None, None, str | None, None]:
    """The given hallucinated input, restricted to what this task's conditioning has."""
    frames = b.given.frames if b.task.needs_video else None
    return frames, None, (b.given.prompt if b.task.needs_prompt else None), None


def _drawn_input(b: _Build) -> tuple[np.ndarray | None, Any, str | None, Any]:
    """(frames, their ops, prompt, its edits), drawn for what this task perturbs (None: not perturbed)."""
    video, prompt = _perturbs(b)
    frames = ops = text = edits = None
    if video:
        c = b.config
        seed = derive_seed(b.seed, "video")
        frames, ops = b.aug.frames(b.frames, c.shuffle, c.paste_ratio, c.crop_keep, seed, **c.frame_options())
    if prompt:
        lo, hi = b.config.prompt_words
        text, edits = b.aug.text(b.short_prompt, lo, hi, derive_seed(b.seed, "prompt"), **b.config.text_options())
    return frames, ops, text, edits


def _task_hallucination(b: _Build) -> None:
    """Eq. 12-13: the Task-3 response under the Task-1 and Task-2 conditioning of its sample."""
    if b.task != Task.BEAUTIFY or b.frames is None:
        return
    for other in (Task.DESCRIBE_VIDEO, Task.VIDEO_WITH_CAPTION):
        b.add("task_hallucination", b.seq(b.chosen, task=other))
    b.out.records["task_hallucination"] = {"tasks": [1, 2]}


def _check(task: Task, short_prompt: str | None, frames: np.ndarray | None, chosen: str, seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if not (chosen or "").strip():
        raise InputError("HDPO pairs need the chosen response; got an empty one")
    if task.needs_video and frames is None:
        raise InputError(f"task {int(task)} pairs need the sample's video frames")
    if task.needs_prompt and not (short_prompt or "").strip():
        raise InputError(f"task {int(task)} pairs need the sample's short prompt")
    if frames is not None:
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not frames.shape[0]:
            raise InputError(f"frames must be uint8 (T, H, W, 3) with T >= 1, got {frames.dtype} {frames.shape}")


def build_pairs(
    task: Task | int,
    short_prompt: str | None,
    frames: np.ndarray | None,
    chosen: str,
    rejected: Sequence[str],
    config: PairConfig | None = None,
    seed: int = 0,
    given: Perturbations | None = None,
    augmenters: Augmenters | None = None,
) -> HdpoPairs:
    """The HDPO sequences and pairs of one example (see the module table).

    task: the task `chosen` answers; short_prompt: the sample's short prompt (used where the task's
    conditioning has one: Task 2's and 3's, and Task 3's task-displaced Task-2 row); frames: the
    sample's decoded video, uint8 (T, H, W, 3), or None for a text-only sample (then a Task-3 example
    has no task-hallucination pairs). Per-term seeds are derived from `seed` here, so two callers with
    the same (inputs, config, seed) get byte-identical perturbations. Raises InputError on bad input.
    """
    task = Task.parse(task)
    _check(task, short_prompt, frames, chosen, seed)
    config = config or PairConfig()
    frames = None if frames is None else np.asarray(frames)
    out = HdpoPairs(seqs=[], records={"seed": int(seed)})
    aug, given = augmenters or Augmenters(), given or Perturbations()
    b = _Build(task, short_prompt, frames, chosen, config, int(seed), aug, given, out)
    out.seqs.append(b.seq(chosen))
    steps = {
        "dpo": lambda: _dpo(b, rejected),
        "response_hallucination": lambda: _response_hallucination(b),
        "input_hallucination": lambda: _input_hallucination(b),
        "task_hallucination": lambda: _task_hallucination(b),
    }
    for term in TERMS:  # a fixed order: the sequence indices do not depend on how terms are listed
        if term in config.terms:
            steps[term]()
    return out
