"""No silent stand-ins: a paper loop config names every model the paper names, or says which stand in.

The paper's models: the teachers VILA-34B (Tasks 1-2, `teacher.model`) and Llama-3-70B (Task 3,
`teacher.text_model`), and the Llama-3-70B judge that ranks text-only Task-3 beams (`mining.judge_model`)
and scores Table 1's Task-3 column (`evaluation.judge_model`). Left unset, the Studio would use its defaults
(Qwen2.5-VL-3B, SmolLM2-135M) without a word. With `paper: true` an unset one refuses the run in one line;
`--allow-stand-ins` lets it run:

- `default`: each unset role falls to the Studio's default for it;
- `tiny`: every model of the loop (policy, SFT, teachers, judges, evaluators) is replaced by the tiny random
  ones of configs/loops/tiny.yaml: the paper config as a pipeline check on a CPU.

Either way `LoopConfig.stand_in_notes` lists each substitution, and the loop's table, report and the admin
tab's view of it carry a "stand-in models" line.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine.evaluators.registry import TINY_EVALUATORS
from engine.models import DEFAULT_TEXT_MODEL, DEFAULT_VIDEO_MODEL
from training.config import ConfigError

STAND_IN_MODES = ("none", "default", "tiny")
#: The paper's model for each role (what an unset role should have been).
PAPER_ROLES = {
    "teacher.model": "the Tasks 1-2 teacher (paper: VILA-34B)",
    "teacher.text_model": "the Task-3 teacher (paper: Llama-3-70B)",
    "mining.judge_model": "the judge of text-only Task-3 beams (paper: Llama-3-70B)",
    "evaluation.judge_model": "Table 1's Task-3 judge (paper: Llama-3-70B)",
}
TINY_VIDEO, TINY_TEXT = "tiny-random-vlm", "tiny-random-lm"
#: configs/loops/tiny.yaml's training and decoding sizes, for the paper config's tiny pipeline check.
TINY_TRAIN = {
    "model.name": TINY_VIDEO,
    "model.precision": "fp32",
    "model.gradient_checkpointing": "off",
    "data.num_frames": 4,
    "data.frame_size": 56,
    "optim.lr": 1.0e-3,
    "optim.batch_size": 4,
    "optim.micro_batch_size": 2,
    "optim.max_steps": 4,
    "optim.warmup_ratio": 0.0,
    "run.progress_bar": False,
}


def missing_roles(config: Any) -> list[str]:
    """The paper roles a loop config leaves unset (the judges only where they score something)."""
    values = {
        "teacher.model": config.teacher.model,
        "teacher.text_model": config.teacher.text_model,
        "mining.judge_model": config.mining.judge_model if config.train is not None else "unused",
        "evaluation.judge_model": config.evaluation.judge_model
        if config.evaluation.task3_scorer == "judge"
        else "unused",
    }
    return [role for role, value in values.items() if not value]


def _default_for(role: str, config: Any) -> str:
    if role == "teacher.model":
        return f"{DEFAULT_VIDEO_MODEL} (Tasks 1-2) / {DEFAULT_TEXT_MODEL} (Task 3), the Studio defaults"
    if role == "teacher.text_model":
        return f"{config.teacher.model or DEFAULT_TEXT_MODEL} (teacher.model, else the Studio's text model)"
    return f"{DEFAULT_TEXT_MODEL} (the Studio's text model)"


def apply_stand_ins(config: Any, mode: str) -> Any:
    """The loop config to run: unchanged without `paper`; refused (ConfigError naming the roles) when a paper
    role is unset and mode is none; with stand-ins, the substituted config and its stand_in_notes."""
    if mode not in STAND_IN_MODES:
        raise ConfigError(f"--allow-stand-ins: {mode!r} is not one of {', '.join(STAND_IN_MODES[1:])}")
    if not config.paper:
        return config
    missing = missing_roles(config)
    if mode == "none":
        if missing:
            named = "; ".join(f"{r} ({PAPER_ROLES[r]})" for r in missing)
            raise ConfigError(
                f"paper config with models unset: {named}. Name them, or pass --allow-stand-ins "
                "(default: the Studio's models; tiny: tiny random models) and every report will say so"
            )
        return config
    if mode == "default":
        notes = [f"{r} unset: {_default_for(r, config)}" for r in missing]
        return replace(config, stand_in_notes=notes)
    return _tiny(config)


def _tiny(config: Any) -> Any:
    """Every model of the loop replaced by configs/loops/tiny.yaml's tiny random ones."""
    notes = [
        f"policy and SFT: {TINY_VIDEO} (was the training configs' model.name)",
        f"teacher.model: {TINY_VIDEO} (was {config.teacher.model or 'unset'})",
        f"teacher.text_model: {TINY_TEXT} (was {config.teacher.text_model or 'unset'})",
        f"mining.judge_model: {TINY_TEXT} (was {config.mining.judge_model or 'unset'})",
        f"evaluation.judge_model: {TINY_TEXT} (was {config.evaluation.judge_model or 'unset'})",
        f"evaluators: {', '.join(TINY_EVALUATORS)} (were {', '.join(config.evaluation.evaluators)})",
    ]
    evaluators = list(TINY_EVALUATORS)
    return replace(
        config,
        train_set={**config.train_set, **TINY_TRAIN},
        teacher=replace(config.teacher, model=TINY_VIDEO, text_model=TINY_TEXT, max_new_tokens=64),
        sft=replace(config.sft, train_set={**config.sft.train_set, **TINY_TRAIN}),
        mining=replace(config.mining, model=None, judge_model=TINY_TEXT, evaluators=evaluators, max_new_tokens_cap=48),
        evaluation=replace(config.evaluation, judge_model=TINY_TEXT, evaluators=evaluators, max_new_tokens=48),
        stand_in_notes=notes,
    )


def stand_in_line(notes: list[str]) -> str | None:
    """The line every report carries when models stood in (None when none did)."""
    if not notes:
        return None
    return "**Stand-in models (not the paper's):** " + "; ".join(notes)
