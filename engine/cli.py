"""`python -m engine`: generate, plus the subcommands other engine modules register.

Each subcommand handler returns a JSON-able dict; --json prints it as JSON, otherwise a renderer (or
an indented dump) prints it for people. Bad input exits 2 with one line on stderr; nothing prints a
traceback at a user.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from typing import Any

from annotations.errors import StoreError  # no torch: the store's errors are user errors too
from engine.errors import StudioError

# Modules that add subcommands through `register(subparsers)`; a missing one is skipped.
SUBCOMMAND_MODULES = ("engine.hallucination.cli", "engine.evaluators.cli", "engine.mining_cli")


def _generate(args: argparse.Namespace) -> dict[str, Any]:
    from engine.service import Studio, StudioConfig
    from engine.types import GenerationParams

    studio = Studio(StudioConfig(backend=args.backend, device=args.device, num_frames=args.num_frames))
    params = GenerationParams(
        max_new_tokens=args.max_new_tokens,
        num_beams=args.num_beams,
        num_return_sequences=args.num_return,
        do_sample=args.temperature > 0,
        temperature=args.temperature if args.temperature > 0 else 1.0,
        seed=args.seed,
        repetition_penalty=args.repetition_penalty,
    )
    cands = studio.run_task(args.task, video=args.video, short_prompt=args.prompt, model=args.model, params=params)
    return {
        "task": args.task,
        "model": cands[0].model if cands else args.model,
        "random_weights": bool(cands and cands[0].random_weights),
        "candidates": [c.text for c in cands],
    }


def _render_generate(payload: dict[str, Any]) -> str:
    lines = []
    if payload["random_weights"]:
        lines.append(f"[{payload['model']}: random weights — pipeline check only]")
    for i, text in enumerate(payload["candidates"], 1):
        prefix = f"[{i}] " if len(payload["candidates"]) > 1 else ""
        lines.append(prefix + text)
    return "\n".join(lines)


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="video / short prompt -> detailed prompt (tasks 1-3)")
    p.add_argument("--task", type=int, choices=(1, 2, 3), required=True)
    p.add_argument("--video", help="video file (tasks 1 and 2)")
    p.add_argument("--prompt", help="short prompt (task 3) or short caption (task 2)")
    p.add_argument("--model", help="model preset or checkpoint folder (default: smollm2-135m / qwen2.5-vl-3b)")
    p.add_argument("--num-beams", type=int, default=1)
    p.add_argument("--num-return", type=int, default=1)
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--temperature", type=float, default=0.0, help="> 0 samples instead of greedy/beam")
    p.add_argument("--seed", type=int)
    p.add_argument("--repetition-penalty", type=float, help="1..2; default: the model preset's (SmolLM2: 1.2)")
    p.add_argument("--num-frames", type=int, default=8)
    p.add_argument("--backend", default="transformers", choices=("transformers", "vllm"))
    p.add_argument("--device")
    p.set_defaults(func=_generate, render=_render_generate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_generate(sub)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that part of the engine is not installed in this checkout
            raise
        module.register(sub)
    for action in sub.choices.values():  # --json is accepted after the subcommand too
        if not any("--json" in a.option_strings for a in action._actions):
            action.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        payload = args.func(args)
    except (StudioError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    render: Callable[[dict[str, Any]], str] | None = getattr(args, "render", None)
    if getattr(args, "json", False) or render is None:
        print(json.dumps(payload, ensure_ascii=False, indent=None if args.json else 2))
    else:
        print(render(payload))
    return 0
