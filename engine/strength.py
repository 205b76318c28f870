"""Perturbation strength: how far each hallucination moves the evaluator ensemble (paper section 3.3).

The paper warns that a perturbation too weak teaches nothing and one too strong is trivial. This module
measures each hallucination pair of `engine.hallucination.pairs.build_pairs` with the CLIP-style ensemble
(100 × cosine, section 3.5), against the sample's own video:

| change   | pair term              | original score        | perturbed score        |
|----------|------------------------|-----------------------|------------------------|
| response | response_hallucination | s(video, y_g)         | s(video, y_h)          |
| video    | input_hallucination    | s(video, y_g)         | s(video + H, y_g)      |
| prompt   | input_hallucination    | s(video, q)           | s(video, q_h)          |

`drop` = original − perturbed (points), `relative` = drop / |original|. A pair's strength is its largest
component (Task 2 with `task2_input: both` changes video and prompt at once). A sample without a video
(text-only Task 3) has nothing to score against: its pairs are *unmeasured* and a band keeps them.

Torch-free: the scoring is a `Meter` (texts under one video -> per-text scores with "mean"); `EnsembleMeter`
wraps the evaluator Ensemble (imported on first use). `keep_in_band` is what training's materialisation
calls for `data.strength_band`; the viewer shows the same numbers through `Studio.perturbation_strength`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from engine.errors import InputError
from engine.hallucination.pairs import PERTURBED, HdpoPairs, PairConfig, PairSeq

#: The terms whose pairs are perturbations a strength can be measured for.
MEASURED_TERMS = ("response_hallucination", "input_hallucination")
#: Meter(frames (T, H, W, 3) uint8, texts) -> per text {evaluator name: 100 × cosine, ..., "mean": average}.
Meter = Callable[[np.ndarray, list[str]], list[dict[str, float]]]


@dataclass
class Component:
    """One measured change of a pair: scores of the original and the perturbed side."""

    change: str
    """response, video or prompt."""
    original: float
    perturbed: float
    scores: dict[str, list[float]] = field(default_factory=dict)
    """Per evaluator [original, perturbed]."""

    @property
    def drop(self) -> float:
        return self.original - self.perturbed

    @property
    def relative(self) -> float | None:
        return self.drop / abs(self.original) if self.original else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drop": self.drop, "relative": self.relative}


@dataclass
class PairStrength:
    """The strength of pair `index` of a build (its term and label), from its components."""

    index: int
    term: str
    condition: str
    components: list[Component]

    def value(self, measure: str = "drop") -> float | None:
        """The largest component's drop (points) or relative drop; None when nothing was measured."""
        values = [c.drop if measure == "drop" else c.relative for c in self.components]
        measured = [v for v in values if v is not None]
        return max(measured) if measured else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "term": self.term,
            "condition": self.condition,
            "drop": self.value("drop"),
            "relative": self.value("relative"),
            "components": [c.as_dict() for c in self.components],
        }


def measure_pairs(built: HdpoPairs, frames: np.ndarray | None, meter: Meter) -> list[PairStrength]:
    """The strength of every response / input hallucination pair of `built` (others are not measured).

    frames: the sample's video (uint8 (T, H, W, 3)); None for a text-only sample: no pair is measured.
    At most two meter calls: every text under the original frames, then the chosen under the perturbed ones.
    """
    picked = [i for i, (term, _, _) in enumerate(built.pairs) if term in MEASURED_TERMS]
    if frames is None or not picked:
        return []
    wanted = {i: _changes(built, i) for i in picked}
    changes = [c for ch in wanted.values() for c in ch]
    # Under the original frames: both texts of a response / prompt swap, the response of a video change.
    texts = list(dict.fromkeys(t for c, a, b in changes for t in ((a,) if c == "video" else (a, b))))
    original = dict(zip(texts, meter(frames, texts), strict=True)) if texts else {}
    videos = list(dict.fromkeys(a for c, a, _ in changes if c == "video"))
    perturbed = {}
    if videos and built.perturbed_frames is not None:
        perturbed = dict(zip(videos, meter(built.perturbed_frames, videos), strict=True))
    out = []
    for i in picked:
        comps = [_component(c, a, b, original, perturbed) for c, a, b in wanted[i]]
        out.append(PairStrength(i, built.pairs[i][0], built.label(i), comps))
    return out


def _changes(built: HdpoPairs, index: int) -> list[tuple[str, str, str]]:
    """(change, original text, perturbed text) of pair `index`; for "video" both texts are the response."""
    _, p, d = built.pairs[index]
    a, b = built.seqs[p], built.seqs[d]
    out = []
    if a.response != b.response:
        out.append(("response", a.response, b.response))
    if a.frames != b.frames and b.frames == PERTURBED:
        out.append(("video", a.response, a.response))
    if a.short_prompt != b.short_prompt and a.short_prompt and b.short_prompt:
        out.append(("prompt", a.short_prompt, b.short_prompt))
    return out


def _component(change: str, a: str, b: str, original: dict, perturbed: dict) -> Component:
    first = original[a]
    second = perturbed[a] if change == "video" else original[b]
    names = [k for k in first if k != "mean"]
    return Component(change, first["mean"], second["mean"], {n: [first[n], second[n]] for n in names})


def keep_in_band(
    built: HdpoPairs, frames: np.ndarray | None, meter: Meter | None, config: PairConfig
) -> tuple[HdpoPairs, list[PairStrength]]:
    """`built` without the hallucination pairs whose strength lies outside `config.strength_band`.

    Every measured strength is written into `built.records["strength"]` (kept pairs and dropped ones, the
    latter under "dropped"); unmeasured pairs (no video) are kept. Sequences no pair uses any more are
    removed (indices renumbered; seqs[0] stays the chosen). Returns (new build, the strengths).
    """
    if config.strength_band is None:
        return built, []
    if meter is None:
        raise InputError("strength_band needs evaluators to measure strength with; none were given")
    strengths = measure_pairs(built, frames, meter)
    lo, hi = config.strength_band
    outside = {s.index for s in strengths if (v := s.value(config.strength_measure)) is not None and not lo <= v <= hi}
    records = dict(built.records)
    records["strength"] = {
        "measure": config.strength_measure,
        "band": [lo, hi],
        "pairs": [s.as_dict() for s in strengths if s.index not in outside],
        "dropped": [s.as_dict() for s in strengths if s.index in outside],
    }
    kept = [p for i, p in enumerate(built.pairs) if i not in outside]
    return _renumbered(built, kept, records), strengths


def _renumbered(built: HdpoPairs, pairs: list[tuple[str, int, int]], records: dict[str, Any]) -> HdpoPairs:
    used = sorted({0} | {i for _, p, d in pairs for i in (p, d)})
    new_index = {old: new for new, old in enumerate(used)}
    seqs: list[PairSeq] = [built.seqs[i] for i in used]
    frames = built.perturbed_frames if any(s.frames == PERTURBED for s in seqs) else None
    renumbered = [(t, new_index[p], new_index[d]) for t, p, d in pairs]
    return HdpoPairs(seqs, renumbered, frames, records)


class EnsembleMeter:
    """A Meter on the evaluator Ensemble (torch, loaded on first use); `check()` loads every member now."""

    def __init__(self, names: Sequence[str], device: str | None = None, ensemble: Any = None) -> None:
        if not names:
            raise InputError("strength needs at least one evaluator")
        self.names = list(names)
        self.device = device
        self._ensemble = ensemble

    @property
    def ensemble(self) -> Any:
        if self._ensemble is None:
            from engine.evaluators.ensemble import Ensemble

            self._ensemble = Ensemble(device=self.device)
        return self._ensemble

    def check(self) -> None:
        """Load every evaluator (a ModelLoadError names the first that cannot load)."""
        for name in self.names:
            self.ensemble.member(name)

    def __call__(self, frames: np.ndarray, texts: list[str]) -> list[dict[str, float]]:
        frames = frames if frames.flags.writeable else np.array(frames)  # torch wants writable memory (mmap'd files)
        return [row.as_dict() for row in self.ensemble.score_detailed(frames, list(texts), self.names)]
