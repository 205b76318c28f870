"""`python -m engine score` and `python -m engine judge` (registered into engine.cli)."""

from __future__ import annotations

import argparse
from typing import Any

from engine.errors import InputError

DEFAULT_EVALUATORS = ("clip-vit-l-14", "long-clip-l", "videoclip-xl")


def _score(args: argparse.Namespace) -> dict[str, Any]:
    from engine.evaluators.base import SCORE_CONVENTION
    from engine.evaluators.ensemble import Ensemble

    if not args.text or not args.text.strip():
        raise InputError("--text is empty")
    ensemble = Ensemble(args.evaluator or list(DEFAULT_EVALUATORS), device=args.device)
    result = ensemble.score_detailed(args.video, [args.text])[0]
    return {
        "scores": result.scores,
        "mean": result.mean,
        "truncated": result.truncated,
        "tokens": result.tokens,
        "notes": result.notes(),
        "convention": SCORE_CONVENTION,
        "random_weights": ensemble.random_weights,
    }


def _render_score(payload: dict[str, Any]) -> str:
    lines = ["[random weights — pipeline check only]"] if payload["random_weights"] else []
    for name, value in payload["scores"].items():
        flag = "  (text truncated)" if payload["truncated"].get(name) else ""
        lines.append(f"{name:28s} {value:8.2f}{flag}")
    lines.append(f"{'mean':28s} {payload['mean']:8.2f}")
    lines.append(f"({payload['convention']})")
    return "\n".join(lines)


def _judge(args: argparse.Namespace) -> dict[str, Any]:
    from engine.backends import load_backend
    from engine.evaluators.judge import JUDGE_PARAMS, judge, judge_prompt
    from engine.models import DEFAULT_TEXT_MODEL
    from engine.types import GenerationParams

    judge_prompt(args.text)  # refuse empty / huge text before loading a model
    model = args.model or DEFAULT_TEXT_MODEL
    backend = load_backend(args.backend, model, device=args.device)
    params = GenerationParams(max_new_tokens=args.max_new_tokens) if args.max_new_tokens else JUDGE_PARAMS
    result = judge(backend, args.text, params)
    return {**result.as_dict(), "model": model, "random_weights": backend.random_weights, "raw": result.raw}


def _render_judge(payload: dict[str, Any]) -> str:
    head = "[random weights — pipeline check only]\n" if payload["random_weights"] else ""
    score = f"{payload['score']:g}/10" if payload["parsed"] else f"unparsed ({payload['reason']})"
    return f"{head}score: {score}\nevidence: {payload['evidence']}"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="video-text similarity (100 x cosine) with the evaluator ensemble")
    p.add_argument("--video", required=True, help="video file")
    p.add_argument("--text", required=True, help="text to score against the video")
    p.add_argument(
        "--evaluator", action="append", help=f"evaluator preset, repeatable (default: {' '.join(DEFAULT_EVALUATORS)})"
    )
    p.add_argument("--device")
    p.set_defaults(func=_score, render=_render_score)

    j = sub.add_parser("judge", help="LLM judge score 0-10 for a detailed prompt (paper section 4.2)")
    j.add_argument("--text", required=True)
    j.add_argument("--model", help="judge model preset or checkpoint folder (default: smollm2-135m)")
    j.add_argument("--backend", default="transformers", choices=("transformers", "vllm"))
    j.add_argument("--max-new-tokens", type=int, default=0, help="0: the default (384)")
    j.add_argument("--device")
    j.set_defaults(func=_judge, render=_render_judge)
