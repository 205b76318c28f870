"""`python -m engine hallucinate-text` and `python -m engine hallucinate-video` (DESIGN contract).

`register(subparsers)` adds both; each handler takes the parsed args and returns the JSON payload,
raising StudioError subclasses on bad input (engine/cli.py prints them as one line, exit code 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.errors import InputError, VideoError

MAX_FRAMES = 256


def hallucinate_text_cmd(args: argparse.Namespace) -> dict[str, Any]:
    from engine.hallucination.text import TextHallucinationConfig, hallucinate_text

    config = TextHallucinationConfig(min_words=args.min_words, max_words=args.max_words)
    return hallucinate_text(args.text, config, args.seed).to_json()


def render_text(payload: dict[str, Any]) -> str:
    lines = [payload["text"]]
    if not payload["edits"]:
        lines.append("(nothing to swap: the text has no noun, number, color, direction or verb we can replace)")
    for e in payload["edits"]:
        lines.append(f"  {e['category']:<9} {e['original']!r} -> {e['replacement']!r}  [{e['start']}:{e['end']}]")
    return "\n".join(lines)


def _video_config(args: argparse.Namespace):
    from engine.hallucination.video import VideoHallucinationConfig

    if not (args.shuffle or args.paste_ratio or args.crop_keep):
        return VideoHallucinationConfig()  # no op flag: the paper's default, shuffle + paste 1/3-1/2
    paste = tuple(args.paste_ratio) if args.paste_ratio else None
    crop = tuple(args.crop_keep) if args.crop_keep else None
    return VideoHallucinationConfig(shuffle=args.shuffle, paste_ratio=paste, crop_keep=crop)


def hallucinate_video_cmd(args: argparse.Namespace) -> dict[str, Any]:
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


def render_video(payload: dict[str, Any]) -> str:
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


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `hallucinate-text` and `hallucinate-video` to the engine CLI."""
    p = subparsers.add_parser("hallucinate-text", help="swap 1-5 words of a caption for disparate ones (Eq. 6-8)")
    p.add_argument("text", metavar="TEXT", help="caption, response or short prompt")
    p.add_argument("--min-words", type=int, default=1, help="fewest words to swap (default 1)")
    p.add_argument("--max-words", type=int, default=5, help="most words to swap (default 5, the paper's)")
    p.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (same seed, same output)")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the JSON payload")
    p.set_defaults(func=hallucinate_text_cmd, render=render_text)

    v = subparsers.add_parser(
        "hallucinate-video",
        help="shuffle frames / paste patches / crop a video (Eq. 9-10); no op flag = shuffle + paste 1/3-1/2",
    )
    v.add_argument("input", metavar="IN", help="input video")
    v.add_argument("output", metavar="OUT", help="output .mp4 (h264)")
    v.add_argument("--shuffle", action="store_true", help="shuffle the frame order")
    v.add_argument("--paste-ratio", nargs=2, type=float, metavar=("LO", "HI"), help="paste patches, sides LO..HI")
    v.add_argument("--crop-keep", nargs=2, type=float, metavar=("LO", "HI"), help="random crop keeping LO..HI")
    v.add_argument("--num-frames", type=int, default=8, help="frames sampled uniformly from IN (default 8)")
    v.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (same seed, same output)")
    v.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the JSON payload")
    v.set_defaults(func=hallucinate_video_cmd, render=render_video)
