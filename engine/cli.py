"""`python -m engine`: every subcommand, registered explicitly in `build_parser`.

generate, hallucinate-text, hallucinate-video, score, judge, mine-pairs, evaluate, record-instructions,
generate-video and evaluate-video (text-to-video, Table 3: engine.t2v.cli), ground / strength / tokens
(engine.insight_cli).
Each handler returns a JSON-able dict; --json prints it as JSON, otherwise its renderer prints it for
people (the handlers and renderers: `engine.cli_verbs`). Model work goes through `engine.service.Studio`.
Bad input exits 2 with one line on stderr; nothing prints a traceback at a user.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from annotations.errors import StoreError  # no torch: the store's errors are user errors too
from engine.cli_verbs import (
    cmd_evaluate,
    cmd_generate,
    cmd_hallucinate_text,
    cmd_hallucinate_video,
    cmd_judge,
    cmd_mine,
    cmd_presets,
    cmd_record_instructions,
    cmd_score,
    cmd_teacher,
    nonneg_int,
    render_evaluate,
    render_generate,
    render_judge,
    render_mine,
    render_presets,
    render_record,
    render_score,
    render_teacher,
    render_text,
    render_video,
)
from engine.configfile import add_flag, add_flags
from engine.errors import StudioError
from engine.evaluate import TASK3_SCORERS as EVAL_TASK3_SCORERS
from engine.evaluators.registry import PAPER_EVALUATORS
from engine.insight_cli import add_insight_parsers
from engine.mining import TASK3_SCORERS
from engine.t2v.cli import add_t2v_parser
from engine.types import Task
from engine.video import DEFAULT_NUM_FRAMES

TASKS = [int(t) for t in Task]


# -- the parser -------------------------------------------------------------------------------------
DB_HELP = "annotations database URL (default: $VIDPROMPTER_DB or sqlite:///data/studio.db)"


def _model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="transformers", choices=("transformers", "vllm"))
    p.add_argument("--device")
    p.add_argument(
        "--num-frames",
        type=int,
        default=DEFAULT_NUM_FRAMES,
        help=f"frames the video model sees per clip (default {DEFAULT_NUM_FRAMES}, engine.video.DEFAULT_NUM_FRAMES; "
        "use the training config's data.num_frames)",
    )


def _split(text: str) -> str | None:
    """--split: a split name, or 'all' for every split (None in the configs)."""
    return None if text == "all" else text


def _add_generate(sub: argparse._SubParsersAction) -> None:
    from engine.types import GenerationParams

    p = sub.add_parser("generate", help="video / short prompt -> detailed prompt (tasks 1-3)")
    p.add_argument("--task", type=int, choices=TASKS, required=True)
    p.add_argument("--video", help="video file (tasks 1 and 2)")
    p.add_argument("--prompt", help="short prompt (task 3) or short caption (task 2)")
    p.add_argument("--model", help="model preset or checkpoint folder (default: smollm2-135m / qwen2.5-vl-3b)")
    add_flags(
        p,
        GenerationParams,
        ("max_new_tokens", "num_beams", "num_return_sequences", "do_sample", "temperature", "top_p", "seed"),
        renames={"num_return_sequences": "--num-return", "do_sample": "--sample"},
        helps={"temperature": "A value other than 1 implies --sample; 0 means greedy."},
    )
    add_flags(p, GenerationParams, ("repetition_penalty", "guards", "copy_ngram", "keep_words"))
    _model_flags(p)
    p.set_defaults(func=cmd_generate, render=render_generate)


def _add_hallucinate(sub: argparse._SubParsersAction) -> None:
    from engine.hallucination.text import TextHallucinationConfig

    p = sub.add_parser("hallucinate-text", help="swap 1-5 words of a caption for disparate ones (Eq. 6-8)")
    p.add_argument("text", metavar="TEXT", help="caption, response or short prompt")
    add_flags(p, TextHallucinationConfig, ("min_words", "max_words"))
    p.add_argument("--seed", type=nonneg_int, default=0, help="random seed (same seed, same output)")
    p.set_defaults(func=cmd_hallucinate_text, render=render_text)

    v = sub.add_parser(
        "hallucinate-video",
        help="shuffle frames / paste patches / crop a video (Eq. 9-10); no op flag = shuffle + paste 1/3-1/2",
    )
    v.add_argument("input", metavar="IN", help="input video")
    v.add_argument("output", metavar="OUT", help="output .mp4 (h264)")
    v.add_argument("--shuffle", action="store_true", help="shuffle the frame order")
    v.add_argument("--paste-ratio", nargs=2, type=float, metavar=("LO", "HI"), help="paste patches, sides LO..HI")
    v.add_argument("--crop-keep", nargs=2, type=float, metavar=("LO", "HI"), help="random crop keeping LO..HI")
    v.add_argument(
        "--num-frames",
        type=int,
        default=DEFAULT_NUM_FRAMES,
        help=f"frames sampled uniformly from IN (default {DEFAULT_NUM_FRAMES}, engine.video.DEFAULT_NUM_FRAMES)",
    )
    v.add_argument("--seed", type=nonneg_int, default=0, help="random seed (same seed, same output)")
    v.set_defaults(func=cmd_hallucinate_video, render=render_video)


def _add_scoring(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="video-text similarity (100 x cosine) with the evaluator ensemble")
    p.add_argument("--video", required=True, help="video file")
    p.add_argument("--text", required=True, help="text to score against the video")
    p.add_argument("--evaluator", action="append", help=f"repeatable (default: {' '.join(PAPER_EVALUATORS)})")
    p.add_argument("--device")
    p.set_defaults(func=cmd_score, render=render_score)

    j = sub.add_parser("judge", help="LLM judge score 0-10 for a detailed prompt (paper section 4.2)")
    j.add_argument("--text", required=True)
    j.add_argument("--model", help="judge model preset or checkpoint folder (default: smollm2-135m)")
    j.add_argument("--max-new-tokens", type=int, default=0, help="0: the judge's default budget")
    _model_flags(j)
    j.set_defaults(func=cmd_judge, render=render_judge)


def _store_flags(p: argparse.ArgumentParser, cls: type) -> None:
    """Flags mining, evaluation and the teacher share; defaults and help from `cls` (their config)."""
    p.add_argument("--db", help=DB_HELP)
    add_flag(p, cls, "tasks", "--task", "Repeatable.", type=int, choices=TASKS, action="append")
    add_flag(p, cls, "limit")
    add_flag(p, cls, "max_new_tokens")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _model_flags(p)


def _scored_flags(p: argparse.ArgumentParser, cls: type) -> None:
    """The evaluator and judge flags of mining and evaluation."""
    add_flag(p, cls, "evaluators", "--evaluator", "Repeatable.", action="append")
    add_flag(p, cls, "judge_model")
    add_flag(p, cls, "batch")


def _add_mine(sub: argparse._SubParsersAction) -> None:
    from engine.mining import MiningConfig

    p = sub.add_parser("mine-pairs", help="beam search + evaluators -> chosen/rejected pairs in the annotations DB")
    _store_flags(p, MiningConfig)
    _scored_flags(p, MiningConfig)
    add_flags(
        p,
        MiningConfig,
        ("num_beams", "num_rejected", "model", "train_config", "budget_margin", "max_new_tokens_cap"),
        renames={"num_rejected": "--rejected", "train_config": "--config"},
    )
    add_flags(p, MiningConfig, ("default_new_tokens", "require_teacher"))
    add_flag(
        p,
        MiningConfig,
        "train_overrides",
        "--set",
        "As python -m training applies them: --set model.name=runs/sft/model.",
        action="append",
        metavar="KEY=VALUE",
    )
    add_flag(p, MiningConfig, "task3_scorer", choices=TASK3_SCORERS)
    add_flag(p, MiningConfig, "split", note="'all': every split.", type=_split)
    p.add_argument("--shard", help="i/n: this process's share of the samples (default: the launcher's, else 0/1)")
    p.set_defaults(func=cmd_mine, render=render_mine)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    from engine.evaluate import EvalConfig

    e = sub.add_parser("evaluate", help="Table-1 scores for one or more models on a split (markdown, CSV, PNG)")
    _store_flags(e, EvalConfig)
    _scored_flags(e, EvalConfig)
    add_flag(e, EvalConfig, "models", "--model", "Repeatable: one table row each.", action="append", required=True)
    add_flag(e, EvalConfig, "split")
    add_flag(e, EvalConfig, "out_dir", "--out", required=True)
    add_flag(e, EvalConfig, "task3_scorer", choices=EVAL_TASK3_SCORERS)
    add_flag(e, EvalConfig, "cache_dir")
    e.set_defaults(func=cmd_evaluate, render=render_evaluate)


def _add_teacher(sub: argparse._SubParsersAction) -> None:
    from engine.teacher import TeacherConfig

    t = sub.add_parser("teacher", help="write teacher responses for samples that lack one (paper section 3.4)")
    _store_flags(t, TeacherConfig)
    add_flags(
        t,
        TeacherConfig,
        ("model", "text_model", "best_of", "temperature", "top_p", "require_faithful", "retry_unfaithful"),
    )
    add_flags(t, TeacherConfig, ("batch", "seed"))
    add_flag(t, TeacherConfig, "split", note="'all': every split.", type=_split)
    t.add_argument("--shard", help="i/n: this process's share of the samples (default: the launcher's, else 0/1)")
    t.set_defaults(func=cmd_teacher, render=render_teacher)


def _add_store_commands(sub: argparse._SubParsersAction) -> None:
    _add_mine(sub)
    _add_evaluate(sub)
    _add_teacher(sub)
    r = sub.add_parser("record-instructions", help="store Figure 3's task instructions in the annotations DB")
    r.add_argument("--db", help=DB_HELP)
    r.set_defaults(func=cmd_record_instructions, render=render_record)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_generate(sub)
    _add_hallucinate(sub)
    _add_scoring(sub)
    _add_store_commands(sub)
    p = sub.add_parser("presets", help="every model, evaluator and text-to-video preset, and whether it runs here")
    p.add_argument("--registry", help="only this registry (model, evaluator, t2v)")
    p.set_defaults(func=cmd_presets, render=render_presets)
    add_t2v_parser(sub)
    add_insight_parsers(sub)
    for action in sub.choices.values():  # --json is accepted after the subcommand too
        action.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
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
    render: Callable[[dict[str, Any]], str] = args.render
    if getattr(args, "json", False):
        print(json.dumps(payload, ensure_ascii=False))
    else:
        print(render(payload))
    return 0
