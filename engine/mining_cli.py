"""`python -m engine mine-pairs` and `python -m engine evaluate` (registered into engine.cli)."""

from __future__ import annotations

import argparse
from typing import Any

from engine.errors import InputError, StudioError
from engine.evaluators.registry import PAPER_EVALUATORS


def open_store(url: str | None) -> Any:
    """An initialised annotations engine; store errors become one-line StudioErrors."""
    from annotations.db import open_db
    from annotations.errors import StoreError

    try:
        return open_db(url)
    except StoreError as exc:
        raise InputError(str(exc)) from None


def _mine(args: argparse.Namespace) -> dict[str, Any]:
    from annotations.errors import StoreError
    from engine.mining import MiningConfig, mine_pairs

    config = MiningConfig(
        tasks=tuple(args.task or (1, 2, 3)),
        num_beams=args.num_beams,
        num_rejected=args.rejected,
        model=args.model,
        evaluators=tuple(args.evaluator or PAPER_EVALUATORS),
        judge_model=args.judge_model,
        split=None if args.split == "all" else args.split,
        limit=args.limit,
        max_new_tokens=args.max_new_tokens,
        backend=args.backend,
        device=args.device,
    )
    try:
        report = mine_pairs(open_store(args.db), config, progress=not args.no_progress)
    except StoreError as exc:
        raise StudioError(f"annotation store: {exc}") from None
    return report.as_dict()


def _render_mine(payload: dict[str, Any]) -> str:
    keys = ("items", "mined", "pairs_written", "skipped_done", "skipped_unusable", "short_of_rejected")
    lines = [f"{k:20s} {payload[k]}" for k in keys]
    if payload["unparsed_judgements"]:
        lines.append(f"{'unparsed_judgements':20s} {payload['unparsed_judgements']}")
    return "\n".join(lines + payload["notes"][:20])


def _evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from engine.evaluate import EvalConfig, evaluate

    config = EvalConfig(
        models=tuple(args.model),
        split=args.split,
        out_dir=args.out,
        tasks=tuple(args.task or (1, 2, 3)),
        evaluators=tuple(args.evaluator or PAPER_EVALUATORS),
        judge_model=args.judge_model,
        limit=args.limit,
        max_new_tokens=args.max_new_tokens,
        backend=args.backend,
        device=args.device,
    )
    return evaluate(open_store(args.db), config, progress=not args.no_progress).as_dict()


def _render_evaluate(payload: dict[str, Any]) -> str:
    files = "\n".join(f"  {k}: {v}" for k, v in payload["files"].items())
    return f"{payload['markdown']}\n\nwrote:\n{files}"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="annotations database URL (default: $VIDPROMPTER_DB or sqlite:///data/studio.db)")
    p.add_argument("--task", type=int, choices=(1, 2, 3), action="append", help="repeatable (default: all)")
    p.add_argument("--evaluator", action="append", help=f"repeatable (default: {' '.join(PAPER_EVALUATORS)})")
    p.add_argument("--judge-model", help="LLM judge for task 3 (default: smollm2-135m)")
    p.add_argument("--limit", type=int, help="at most this many samples")
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--backend", default="transformers", choices=("transformers", "vllm"))
    p.add_argument("--device")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mine-pairs", help="beam search + evaluators -> chosen/rejected pairs in the annotations DB")
    _common(p)
    p.add_argument("--num-beams", type=int, default=5)
    p.add_argument("--rejected", type=int, default=2, help="lowest-scored candidates taken as rejected")
    p.add_argument("--model", help="generation model (default: per task, see `generate`)")
    p.add_argument("--split", default="train", help="sample split to mine, or 'all'")
    p.set_defaults(func=_mine, render=_render_mine)

    e = sub.add_parser("evaluate", help="Table-1 scores for one or more models on a split (markdown, CSV, PNG)")
    _common(e)
    e.add_argument("--model", action="append", required=True, help="repeatable: compare models in one table")
    e.add_argument("--split", default="test")
    e.add_argument("--out", required=True, help="output folder")
    e.set_defaults(func=_evaluate, render=_render_evaluate)
