"""`python -m engine` verbs that look inside a prompt (issue 16): ground, strength, tokens.

- ground: each sentence of a detailed prompt scored against its video; the likely hallucination marked.
- strength: how far each hallucination of a response moves the evaluator ensemble (paper section 3.3).
- tokens: the prompt's tokens under each text-to-video target's text encoder, and where it is cut.

Registered by engine.cli.build_parser through `add_insight_parsers`; handlers return JSON-able dicts.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.evaluators.registry import PAPER_EVALUATORS
from engine.presets import RANDOM_WEIGHTS_LABEL as RANDOM_LABEL
from engine.types import Task

if TYPE_CHECKING:
    from engine.service import Studio


def _studio(args: argparse.Namespace) -> Studio:
    from engine.service import Studio, StudioConfig

    return Studio(StudioConfig(device=getattr(args, "device", None)))


def _text(value: str | None, flag: str = "--text") -> str:
    if not value or not value.strip():
        raise InputError(f"{flag} is empty")
    return value


# -- ground ----------------------------------------------------------------------------------------
def _ground(args: argparse.Namespace) -> dict[str, Any]:
    text, studio = _text(args.text), _studio(args)  # cheap checks before loading evaluators
    names = studio.require_evaluators(args.evaluator or PAPER_EVALUATORS)  # every one asked for, or exit 2
    return studio.ground(args.video, [text], names, margin=args.margin)[0].as_dict()


def _render_ground(payload: dict[str, Any]) -> str:
    lines = [f"[{RANDOM_LABEL}]"] if payload["random_weights"] else []
    for i, s in enumerate(payload["sentences"]):
        mark = " <- likely hallucination" if payload["flagged"] and i == payload["least_supported"] else ""
        lines.append(f"{s['mean']:8.2f} ({s['relative']:+6.2f})  {s['text']}{mark}")
    lines.append(f"({payload['bar_meaning']}; {payload['convention']})")
    return "\n".join(lines)


# -- strength --------------------------------------------------------------------------------------
def _strength(args: argparse.Namespace) -> dict[str, Any]:
    text, task = _text(args.text), Task.parse(args.task)
    if task.needs_prompt and not (args.prompt or "").strip():
        raise InputError(f"task {int(task)} needs --prompt (the short prompt or caption)")
    studio = _studio(args)
    names = studio.require_evaluators(args.evaluator or PAPER_EVALUATORS)
    return studio.perturbation_strength(task, text, args.prompt, args.video, names, args.seed)


def _render_strength(payload: dict[str, Any]) -> str:
    lines = [f"[{RANDOM_LABEL}]"] if payload["random_weights"] else []
    for row in payload["rows"]:
        relative = "—" if row["relative"] is None else f"{100 * row['relative']:+.1f} %"
        lines.append(f"{row['condition']:36s} drop {row['drop']:+7.2f} points  ({relative})")
        for c in row["components"]:
            lines.append(f"    {c['change']:9s} {c['original']:8.2f} -> {c['perturbed']:8.2f}")
    return "\n".join(lines + payload["notes"] or ["(no hallucination pair to measure)"])


# -- tokens ----------------------------------------------------------------------------------------
def _tokens(args: argparse.Namespace) -> dict[str, Any]:
    from engine.budgets import TARGETS

    studio, text = _studio(args), _text(args.text)
    out = []
    for name in args.target or list(TARGETS):
        measure = studio.budgets.measure(text, name)
        fitted, how = studio.budgets.fit(text, name)
        out.append({**measure.as_dict(), "beyond": text[measure.fits_chars :].strip(), "fitted": fitted, "fit": how})
    return {"targets": out}


def _render_tokens(payload: dict[str, Any]) -> str:
    lines = []
    for t in payload["targets"]:
        count = f"{t['tokens']}" if t["exact"] else f"~{t['tokens']}"
        state = f"over by {t['over']}: cut before “{t['beyond'][:60]}”" if t["over"] else "fits"
        lines.append(f"{t['target']:22s} {count:>5s} / {t['max_tokens']:<4d} {state}")
        if not t["exact"]:
            lines.append(f"{'':22s} ({t['method']})")
    return "\n".join(lines)


# -- the parsers ----------------------------------------------------------------------------------
def add_insight_parsers(sub: argparse._SubParsersAction) -> None:
    from engine.budgets import TARGETS

    evaluators = f"repeatable (default: {' '.join(PAPER_EVALUATORS)})"
    g = sub.add_parser("ground", help="score each sentence of a prompt against its video; mark the least supported")
    g.add_argument("--video", required=True, help="video file")
    g.add_argument("--text", required=True, help="detailed prompt")
    g.add_argument("--evaluator", action="append", help=evaluators)
    g.add_argument("--margin", type=float, default=1.0, help="points below the others' median that flag (default 1)")
    g.add_argument("--device")
    g.set_defaults(func=_ground, render=_render_ground)

    s = sub.add_parser("strength", help="evaluator score of original vs perturbed for each hallucination pair")
    s.add_argument("--video", required=True, help="the sample's video")
    s.add_argument("--text", required=True, help="the chosen response")
    s.add_argument("--prompt", help="the short prompt / caption (tasks 2 and 3)")
    s.add_argument("--task", type=int, choices=[int(t) for t in Task], default=1)
    s.add_argument("--seed", type=int, default=0, help="the pair builder's seed (same seed, same perturbations)")
    s.add_argument("--evaluator", action="append", help=evaluators)
    s.add_argument("--device")
    s.set_defaults(func=_strength, render=_render_strength)

    t = sub.add_parser("tokens", help="a prompt's tokens under each text-to-video target's encoder, and its cut")
    t.add_argument("--text", required=True, help="detailed prompt")
    t.add_argument("--target", action="append", choices=list(TARGETS), help="repeatable (default: all)")
    t.set_defaults(func=_tokens, render=_render_tokens)
