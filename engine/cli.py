"""`python -m engine`: every subcommand, registered explicitly in `build_parser`.

generate, hallucinate-text, hallucinate-video, score, judge, mine-pairs, evaluate, record-instructions,
generate-video and evaluate-video (text-to-video, Table 3: engine.t2v.cli), ground / strength / tokens
(engine.insight_cli).
Each handler returns a JSON-able dict; --json prints it as JSON, otherwise its renderer prints it for
people. Model work goes through `engine.service.Studio`. Bad input exits 2 with one line on stderr;
nothing prints a traceback at a user.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotations.errors import StoreError  # no torch: the store's errors are user errors too
from engine.configfile import add_flag, add_flags, default_of, from_args
from engine.errors import InputError, StudioError, VideoError
from engine.evaluate import TASK3_SCORERS as EVAL_TASK3_SCORERS
from engine.evaluators.registry import PAPER_EVALUATORS
from engine.insight_cli import add_insight_parsers
from engine.mining import TASK3_SCORERS
from engine.presets import RANDOM_WEIGHTS_LABEL as RANDOM_LABEL
from engine.t2v.cli import add_t2v_parser
from engine.types import Task
from engine.video import DEFAULT_NUM_FRAMES

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from engine.service import Studio
    from engine.types import GenerationParams

TASKS = [int(t) for t in Task]
MAX_FRAMES = 256


def _studio(args: argparse.Namespace) -> Studio:
    """The Studio for one command, from whichever of the common model flags the command has."""
    from engine.service import Studio, StudioConfig

    return Studio(
        StudioConfig(
            backend=getattr(args, "backend", "transformers"),
            device=getattr(args, "device", None),
            num_frames=getattr(args, "num_frames", DEFAULT_NUM_FRAMES),
            judge_model=getattr(args, "judge_model", None),
        )
    )


def _open_store(url: str | None) -> Engine:
    """An initialised annotations engine (its errors are one-line StoreErrors)."""
    from annotations.db import open_db

    return open_db(url)


def _repeated(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The repeatable flags (--task, --evaluator, --set, --model) as tuples; unset ones take cls's default."""
    out: dict[str, Any] = {}
    for name in ("tasks", "evaluators", "train_overrides", "models"):
        if hasattr(args, name) and any(f.name == name for f in dataclasses.fields(cls)):
            value = getattr(args, name)
            out[name] = tuple(value) if value is not None else default_of(cls, name)
    return out


# -- generate -------------------------------------------------------------------------------------
def _generate_params(args: argparse.Namespace) -> GenerationParams:
    """GenerationParams from generate's flags: --temperature other than its default implies sampling, and 0
    keeps greedy/beam decoding (the flag's meaning before --sample existed)."""
    from engine.types import GenerationParams

    default_t = default_of(GenerationParams, "temperature")
    sample = args.do_sample or args.temperature not in (default_t, 0.0)
    return from_args(GenerationParams, args, do_sample=sample, temperature=args.temperature or default_t)


def _generate(args: argparse.Namespace) -> dict[str, Any]:
    params = _generate_params(args)
    studio = _studio(args)
    if sys.stderr.isatty():  # a CPU run takes 10-60 s in silence; scripts keep a clean one-line-error stderr
        name = args.model or studio.default_model(Task(args.task))
        print(f"Task {args.task} with {name}: loading and generating ...", file=sys.stderr, flush=True)
    cands = studio.run_task(args.task, args.video, args.prompt, model=args.model, params=params)
    return {
        "task": args.task,
        "model": cands[0].model if cands else args.model,
        "random_weights": bool(cands and cands[0].random_weights),
        "candidates": [c.text for c in cands],
    }


def _render_generate(payload: dict[str, Any]) -> str:
    lines = [f"[{payload['model']}: {RANDOM_LABEL}]"] if payload["random_weights"] else []
    for i, text in enumerate(payload["candidates"], 1):
        lines.append((f"[{i}] " if len(payload["candidates"]) > 1 else "") + text)
    return "\n".join(lines)


# -- hallucinate-text / hallucinate-video (Eq. 6-11) --------------------------------------------
def _hallucinate_text(args: argparse.Namespace) -> dict[str, Any]:
    return _studio(args).hallucinate_text(args.text, args.min_words, args.max_words, args.seed)


def _render_text(payload: dict[str, Any]) -> str:
    lines = [payload["text"]]
    if not payload["edits"]:
        lines.append("(nothing to swap: the text has no noun, number, color, direction or verb we can replace)")
    for e in payload["edits"]:
        lines.append(f"  {e['category']:<9} {e['original']!r} -> {e['replacement']!r}  [{e['start']}:{e['end']}]")
    return "\n".join(lines)


def _video_config(args: argparse.Namespace) -> Any:
    from engine.hallucination.video import VideoHallucinationConfig

    if not (args.shuffle or args.paste_ratio or args.crop_keep):
        return VideoHallucinationConfig()  # no op flag: the paper's default, shuffle + paste 1/3-1/2
    paste = tuple(args.paste_ratio) if args.paste_ratio else None
    crop = tuple(args.crop_keep) if args.crop_keep else None
    return VideoHallucinationConfig(shuffle=args.shuffle, paste_ratio=paste, crop_keep=crop)


def _hallucinate_video(args: argparse.Namespace) -> dict[str, Any]:
    """Writes exactly OUT (the Studio's viewer verb writes an original/perturbed pair into a folder)."""
    from engine.hallucination.video import hallucinate_frames
    from engine.video import load_video, sampled_fps, write_video

    src, out = Path(args.input), Path(args.output)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"OUT must be an .mp4 path, got {out.name}")
    if out.resolve() == src.resolve():
        raise InputError("OUT must differ from IN: the input video is never overwritten")
    if not 1 <= args.num_frames <= MAX_FRAMES:
        raise InputError(f"--num-frames must be in 1..{MAX_FRAMES}, got {args.num_frames}")
    config = _video_config(args)
    frames, meta = load_video(src, num_frames=args.num_frames)
    new, ops = hallucinate_frames(frames, config, args.seed)
    try:
        write_video(new, out, fps=sampled_fps(len(new), meta))
    except OSError as exc:
        raise VideoError(f"cannot write {out}: {exc.strerror or exc}") from None
    return {"frames": int(new.shape[0]), "ops": ops}


def _render_video(payload: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for op in payload["ops"]:
        counts[op["op"]] = counts.get(op["op"], 0) + 1
    ops = ", ".join(f"{name} x{n}" for name, n in counts.items()) or "none"
    return f"{payload['frames']} frames written; ops: {ops}"


def _nonneg_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


# -- score / judge (paper sections 3.5 and 4.2) --------------------------------------------------
def _score(args: argparse.Namespace) -> dict[str, Any]:
    from engine.evaluators.scores import SCORE_CONVENTION

    if not args.text or not args.text.strip():
        raise InputError("--text is empty")
    studio = _studio(args)
    names = studio.require_evaluators(args.evaluator or PAPER_EVALUATORS)  # every one asked for, or exit 2
    report = studio.score(args.video, [args.text], names)
    row = report.rows[0]
    return {
        "scores": row.scores,
        "mean": row.mean,
        "truncated": row.truncated,
        "tokens": row.tokens,
        "notes": row.notes(),
        "convention": SCORE_CONVENTION,
        "random_weights": report.random_weights,
    }


def _render_score(payload: dict[str, Any]) -> str:
    lines = [f"[{RANDOM_LABEL}]"] if payload["random_weights"] else []
    for name, value in payload["scores"].items():
        flag = "  (text truncated)" if payload["truncated"].get(name) else ""
        lines.append(f"{name:28s} {value:8.2f}{flag}")
    lines.append(f"{'mean':28s} {payload['mean']:8.2f}")
    lines.append(f"({payload['convention']})")
    return "\n".join(lines)


def _judge(args: argparse.Namespace) -> dict[str, Any]:
    from engine.evaluators.judge import JUDGE_PARAMS
    from engine.models import resolve
    from engine.types import GenerationParams

    studio = _studio(args)
    model = args.model or studio.config.text_model
    params = GenerationParams(max_new_tokens=args.max_new_tokens) if args.max_new_tokens else JUDGE_PARAMS
    result = studio.judge(args.text, model=model, params=params)
    return {**result.as_dict(), "model": model, "random_weights": resolve(model).random_weights, "raw": result.raw}


def _render_judge(payload: dict[str, Any]) -> str:
    head = f"[{RANDOM_LABEL}]\n" if payload["random_weights"] else ""
    score = f"{payload['score']:g}/10" if payload["parsed"] else f"unparsed ({payload['reason']})"
    return f"{head}score: {score}\nevidence: {payload['evidence']}"


# -- mine-pairs / evaluate / record-instructions (the annotations database) ------------------------
def _mine(args: argparse.Namespace) -> dict[str, Any]:
    from engine.mining import MiningConfig

    config = from_args(MiningConfig, args, shard=_shard(args), **_repeated(MiningConfig, args))
    return _studio(args).mine(_open_store(args.db), config, progress=not args.no_progress).as_dict()


def _render_mine(payload: dict[str, Any]) -> str:
    keys = ("items", "mined", "pairs_written", "skipped_done", "skipped_unusable", "short_of_rejected", "at_limit")
    lines = [f"{payload['shard']}: beams from {payload['model'] or 'the default model per task'}"]
    lines += [f"{k:26s} {payload[k]}" for k in keys] + [f"{'scored by':20s} {payload['scorers']}"]
    if payload["unparsed_judgements"]:
        lines.append(f"{'unparsed_judgements':20s} {payload['unparsed_judgements']}")
    return "\n".join(lines + payload["notes"][:20])


def _evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from engine.evaluate import EvalConfig

    config = from_args(EvalConfig, args, **_repeated(EvalConfig, args))
    return _studio(args).evaluate(_open_store(args.db), config, progress=not args.no_progress).as_dict()


def _render_evaluate(payload: dict[str, Any]) -> str:
    files = "\n".join(f"  {k}: {v}" for k, v in payload["files"].items())
    return f"{payload['markdown']}\n\nwrote:\n{files}"


# -- presets -------------------------------------------------------------------------------------
def _presets(args: argparse.Namespace) -> dict[str, Any]:
    """Every model, evaluator and text-to-video preset with what its status check says here (nothing loads)."""
    from engine.catalog import all_presets

    rows = [
        {"registry": r.registry, "name": r.preset.name, "ok": r.ok, "status": r.line, "hub_id": r.preset.hub_id}
        for r in all_presets()
        if args.registry in (None, r.registry)
    ]
    return {"presets": rows}


def _render_presets(payload: dict[str, Any]) -> str:
    width = max((len(r["name"]) for r in payload["presets"]), default=0)
    return "\n".join(
        f"{r['registry']:<10} {r['name']:<{width}}  {'ok ' if r['ok'] else 'no '} {r['status']}"
        for r in payload["presets"]
    )


def _record_instructions(args: argparse.Namespace) -> dict[str, Any]:
    from annotations.db import describe_url
    from engine.tasks import instruction_templates, record_instructions

    db = _open_store(args.db)
    record_instructions(db)
    return {"db": describe_url(db), "tasks": sorted(instruction_templates())}


def _render_record(payload: dict[str, Any]) -> str:
    return f"recorded the instructions of tasks {', '.join(map(str, payload['tasks']))} in {payload['db']}"


def _shard(args: argparse.Namespace) -> Any:
    """This process's shard (--shard i/n, else the launcher's RANK/WORLD_SIZE); its GPU unless --device."""
    from engine.shards import resolve_shard

    shard = resolve_shard(args.shard)
    args.device = args.device or shard.device()
    return shard


def _teacher(args: argparse.Namespace) -> dict[str, Any]:
    from engine.teacher import TeacherConfig, write_teacher_responses

    config = from_args(TeacherConfig, args, shard=_shard(args), **_repeated(TeacherConfig, args))
    db = _open_store(args.db)
    return write_teacher_responses(_studio(args), db, config, progress=not args.no_progress).as_dict()


def _render_teacher(payload: dict[str, Any]) -> str:
    keys = ["items", "written", "skipped_done", "skipped_unusable", "skipped_unfaithful", "skipped_unfaithful_before"]
    keys.append("empty")
    head = f"{payload['shard']}: teacher {', '.join(payload['models']) or '(no model needed)'}"
    return "\n".join([head] + [f"{k:26s} {payload[k]}" for k in keys] + payload["notes"][:20])


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
    p.set_defaults(func=_generate, render=_render_generate)


def _add_hallucinate(sub: argparse._SubParsersAction) -> None:
    from engine.hallucination.text import TextHallucinationConfig

    p = sub.add_parser("hallucinate-text", help="swap 1-5 words of a caption for disparate ones (Eq. 6-8)")
    p.add_argument("text", metavar="TEXT", help="caption, response or short prompt")
    add_flags(p, TextHallucinationConfig, ("min_words", "max_words"))
    p.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (same seed, same output)")
    p.set_defaults(func=_hallucinate_text, render=_render_text)

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
    v.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (same seed, same output)")
    v.set_defaults(func=_hallucinate_video, render=_render_video)


def _add_scoring(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="video-text similarity (100 x cosine) with the evaluator ensemble")
    p.add_argument("--video", required=True, help="video file")
    p.add_argument("--text", required=True, help="text to score against the video")
    p.add_argument("--evaluator", action="append", help=f"repeatable (default: {' '.join(PAPER_EVALUATORS)})")
    p.add_argument("--device")
    p.set_defaults(func=_score, render=_render_score)

    j = sub.add_parser("judge", help="LLM judge score 0-10 for a detailed prompt (paper section 4.2)")
    j.add_argument("--text", required=True)
    j.add_argument("--model", help="judge model preset or checkpoint folder (default: smollm2-135m)")
    j.add_argument("--max-new-tokens", type=int, default=0, help="0: the judge's default budget")
    _model_flags(j)
    j.set_defaults(func=_judge, render=_render_judge)


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
    p.set_defaults(func=_mine, render=_render_mine)


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
    e.set_defaults(func=_evaluate, render=_render_evaluate)


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
    t.set_defaults(func=_teacher, render=_render_teacher)


def _add_store_commands(sub: argparse._SubParsersAction) -> None:
    _add_mine(sub)
    _add_evaluate(sub)
    _add_teacher(sub)
    r = sub.add_parser("record-instructions", help="store Figure 3's task instructions in the annotations DB")
    r.add_argument("--db", help=DB_HELP)
    r.set_defaults(func=_record_instructions, render=_render_record)


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
    p.set_defaults(func=_presets, render=_render_presets)
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
