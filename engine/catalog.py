"""Every preset of the three registries and whether it can run here: one list for "what exists, what works".

No torch: each status finds weights (an env-var folder or file, the local HF cache) without loading or
building them. Above engine.presets, which the registries import, so that module imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.evaluators.registry import EVALUATOR_PRESETS, evaluator_status
from engine.models import PRESETS, model_status
from engine.presets import Preset
from engine.t2v.presets import T2V_PRESETS, t2v_status


@dataclass(frozen=True)
class PresetRow:
    """One preset and what its status check says on this machine."""

    preset: Preset
    ok: bool
    """True when it can load here (random-weight builds included: `line` then says so)."""
    line: str
    """"ready", the random-weights label, or the one-line reason it cannot load and what to set."""

    @property
    def registry(self) -> str:
        return self.preset.registry


def all_presets() -> list[PresetRow]:
    """Every model, evaluator and text-to-video preset (in that order, each registry's own order), with status."""
    rows = [PresetRow(p, *model_status(p.name)) for p in PRESETS.values()]
    rows += [PresetRow(p, *evaluator_status(p.name)) for p in EVALUATOR_PRESETS.values()]
    return rows + [PresetRow(p, *t2v_status(p.name)) for p in T2V_PRESETS.values()]
