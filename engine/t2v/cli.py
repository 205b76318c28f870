"""`python -m engine generate-video` (a prompt -> an mp4 clip) and `python -m engine evaluate-video` (Table 3).

    python -m engine generate-video --prompt TEXT [--model PRESET] [--seed S] [--frames N] [--fps F]
        [--steps K] [--guidance G] [--height H --width W] --out clip.mp4 [--json]
    python -m engine evaluate-video --db URL [--split test] --base MODEL --trained MODEL_OR_CHECKPOINT
        [--t2v PRESET] [--num-samples 100] [--sample-seed 0] [--seed S] --out DIR [--json]

engine.cli registers both with `add_t2v_parser(subparsers)`. Bad input exits 2 with one line on stderr and
writes nothing.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from engine.t2v.presets import DEFAULT_T2V_MODEL, RANDOM_WEIGHTS_LABEL, T2V_PRESETS, resolve_t2v


def add_t2v_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `generate-video` to engine.cli's subparsers. Sets `func` (args -> JSON-able dict; raises StudioError)
    and `render` (dict -> text); engine.cli.main prints, and turns errors into one line and exit 2."""
    p = subparsers.add_parser("generate-video", help="prompt -> mp4 clip with a text-to-video model (diffusers)")
    p.add_argument("--prompt", required=True, help="the text to turn into a video")
    p.add_argument(
        "--model",
        default=DEFAULT_T2V_MODEL,
        help=f"preset ({', '.join(T2V_PRESETS)}) or a diffusers pipeline folder (default: {DEFAULT_T2V_MODEL})",
    )
    p.add_argument("--seed", type=int, default=0, help="same seed, same frames (default 0)")
    p.add_argument("--frames", type=int, help="clip length (default: the preset's, e.g. 49 for CogVideoX)")
    p.add_argument("--fps", type=float, help="frame rate of the mp4 (default: the preset's)")
    p.add_argument("--steps", type=int, help="denoising steps (default: the preset's, 50 for real models)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the preset's)")
    p.add_argument("--height", type=int, help="frame height in pixels, a multiple of 16")
    p.add_argument("--width", type=int, help="frame width in pixels, a multiple of 16")
    p.add_argument("--negative-prompt", default="", help="what to steer away from")
    p.add_argument("--out", required=True, help="the .mp4 file to write (written atomically)")
    p.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda when present)")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), help="default: bfloat16 on CUDA, else fp32")
    p.add_argument(
        "--offload", choices=("none", "model", "sequential"), default="none", help="CPU offload on small GPUs"
    )
    p.add_argument("--vae-tiling", action="store_true", help="decode in tiles: less GPU memory for large frames")
    p.set_defaults(func=generate_video_payload, render=render_generate_video)
    add_evaluate_parser(subparsers)
    return p


def add_evaluate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`evaluate-video`: Table 3 (paper section 4.5) for a base and a trained prompt model."""
    from engine.configfile import add_flag
    from engine.evaluators.registry import PAPER_EVALUATORS
    from engine.t2v.eval_config import VideoEvalConfig

    p = subparsers.add_parser(
        "evaluate-video",
        help="Table 3: clips from the short, base and trained prompts (same seeds), scored (markdown, CSV, clips)",
    )
    p.add_argument("--db", help="annotations database URL (default: $VIDPROMPTER_DB or sqlite:///data/studio.db)")
    p.add_argument("--split", default="test", help="sample split (default test); samples need a short prompt")
    p.add_argument("--base", required=True, help="base prompt model: preset or checkpoint folder")
    p.add_argument("--trained", required=True, help="trained prompt model: preset or checkpoint folder")
    add_flag(p, VideoEvalConfig, "t2v", note=f"Presets: {', '.join(T2V_PRESETS)}.")
    add_flag(p, VideoEvalConfig, "num_samples")
    p.add_argument("--limit", dest="num_samples", type=int, default=argparse.SUPPRESS, help="same as --num-samples")
    add_flag(p, VideoEvalConfig, "sample_seed")
    p.add_argument("--seed", type=int, default=0, help="the seed of every clip (default 0)")
    p.add_argument("--out", required=True, help="report folder (clips reused from an earlier run into it)")
    p.add_argument("--evaluator", action="append", help=f"repeatable (default: {' '.join(PAPER_EVALUATORS)})")
    p.add_argument(
        "--subject-evaluator",
        help="per-frame image model of the subject/background-consistency substitutes (default: the first)",
    )
    p.add_argument("--max-new-tokens", type=int, help="fixed prompt budget (default: covers each teacher response)")
    for flag in ("frames", "steps", "height", "width"):
        p.add_argument(f"--{flag}", type=int, help="the T2V preset's default when unset")
    p.add_argument("--guidance", type=float, help="the T2V preset's default when unset")
    p.add_argument(
        "--long-prompts",
        choices=("cut", "skip"),
        default="cut",
        help="a prompt over the T2V text encoder's limit: cut to the words that fit (default), or skip its clip",
    )
    p.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda when present)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=evaluate_video_payload, render=render_evaluate_video)
    return p


#: engine.cli's module discovery calls `register(subparsers)`.
register = add_t2v_parser


def generate_video_payload(args: argparse.Namespace) -> dict[str, Any]:
    """Check everything cheap first (request, output path, preset), then load, generate and write."""
    from engine.t2v.backend import ClipRequest, check_shape, generate_clip, load_t2v
    from engine.t2v.writer import check_out_path

    request = ClipRequest(
        prompt=args.prompt,
        seed=args.seed,
        frames=args.frames,
        fps=args.fps,
        steps=args.steps,
        guidance=args.guidance,
        height=args.height,
        width=args.width,
        negative_prompt=args.negative_prompt,
    )
    check_out_path(args.out)
    check_shape(resolve_t2v(args.model), request)  # a bad --frames fails before minutes of loading
    start = time.perf_counter()
    pipeline = load_t2v(
        args.model, device=args.device, dtype=args.dtype, offload=args.offload, vae_tiling=args.vae_tiling
    )
    load_seconds = time.perf_counter() - start
    clip = generate_clip(pipeline, request, args.out)
    return {**clip.as_dict(), "dtype": pipeline.dtype, "load_seconds": round(load_seconds, 3)}


def render_generate_video(payload: dict[str, Any]) -> str:
    head = f"[{payload['model']}: {RANDOM_WEIGHTS_LABEL}]\n" if payload["random_weights"] else ""
    return (
        f"{head}wrote {payload['out']}: {payload['frames']} frames, {payload['width']}x{payload['height']} at "
        f"{payload['fps']:g} fps (seed {payload['seed']}, {payload['steps']} steps, guidance {payload['guidance']:g}, "
        f"{payload['prompt_tokens']}/{payload['max_tokens']} prompt tokens) in {payload['seconds']:.1f} s "
        f"on {payload['device']}"
    )


def evaluate_video_payload(args: argparse.Namespace) -> dict[str, Any]:
    from annotations.db import open_db
    from engine.evaluators.registry import PAPER_EVALUATORS
    from engine.service import Studio, StudioConfig
    from engine.t2v.eval_config import VideoEvalConfig

    config = VideoEvalConfig(
        base=args.base,
        trained=args.trained,
        out_dir=args.out,
        t2v=args.t2v,
        split=args.split,
        num_samples=args.num_samples,
        sample_seed=args.sample_seed,
        seed=args.seed,
        evaluators=tuple(args.evaluator or PAPER_EVALUATORS),
        subject_evaluator=args.subject_evaluator,
        max_new_tokens=args.max_new_tokens,
        frames=args.frames,
        steps=args.steps,
        guidance=args.guidance,
        height=args.height,
        width=args.width,
        long_prompts=args.long_prompts,
    )
    resolve_t2v(config.t2v)  # an unknown preset is one line before the database opens
    studio = Studio(StudioConfig(device=args.device))
    return studio.evaluate_video(open_db(args.db), config, progress=not args.no_progress).as_dict()


def render_evaluate_video(payload: dict[str, Any]) -> str:
    files = "\n".join(f"  {k}: {v}" for k, v in payload["files"].items())
    made = f"{payload['made']} of {payload['clips']} clips made ({payload['reused']} reused)"
    return f"{payload['markdown']}\n\n{made}; wrote:\n{files}"
