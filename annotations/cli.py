"""``python -m annotations``: import, export, stats, add-annotator, init.

Every command takes ``--db URL`` (default ``$VIDPROMPTER_DB`` or ``sqlite:///data/studio.db``)
and ``--json``; bad input gives a one-line ``error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from annotations.db import default_db_url, open_db
from annotations.errors import ImportRejected, StoreError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m annotations", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--db", default=None, help=f"SQLAlchemy URL (default {default_db_url()})")
        p.add_argument("--json", action="store_true", help="print the result as JSON")
        return p

    p = command("import", "import samples from a JSONL / CSV file, or a .zip of one plus its clips")
    p.add_argument("file")
    p.add_argument("--skip-bad", action="store_true", help="import the good rows even if some are bad")
    p.add_argument("--media-root", help="folder relative video paths resolve against (default: the file's folder)")
    p.add_argument("--extract-to", help="where a .zip is extracted (default: the zip's folder)")
    p.add_argument(
        "--caption-for-task3",
        action="store_true",
        help="a video row's detailed_prompt (its caption) is also its Task-3 target when it has no "
        "detailed_prompt_task3 (default: Task 3 gets none; the teacher step writes it)",
    )
    p = command("export", "export preference pairs (TRL columns) and a dataset card")
    p.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    p.add_argument("--out", required=True)
    command("stats", "counts, annotator speed, agreement")
    p = command("add-annotator", "create an annotator (or show an existing one)")
    p.add_argument("name")
    p.add_argument("--role", choices=["annotator", "admin"], default="annotator")
    command("init", "create or migrate the schema")
    return parser


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    print(json.dumps(payload, indent=2, sort_keys=True, default=str) if args.json else text)


def _import(args: argparse.Namespace) -> None:
    from annotations.io import import_rows

    engine = open_db(args.db)
    try:
        report = import_rows(
            engine,
            args.file,
            skip_bad=args.skip_bad,
            media_root=args.media_root,
            extract_to=args.extract_to,
            caption_for_task3=args.caption_for_task3,
        )
    except ImportRejected as exc:
        for bad in exc.report.bad:
            print(f"{args.file}:{bad.line}: {bad.reason}", file=sys.stderr)
        raise
    for bad in report.bad:
        print(f"{args.file}:{bad.line}: skipped: {bad.reason}", file=sys.stderr)
    _emit(args, report.to_dict(), f"{report.summary()}\nnext: {report.next_step}")


def _export(args: argparse.Namespace) -> None:
    from annotations.io import export_pairs

    report = export_pairs(open_db(args.db), args.out, fmt=args.format)
    text = f"wrote {report.rows} pairs to {report.path} (card {report.card_path}); excluded {report.excluded}"
    _emit(args, report.to_dict(), text)


def _stats_text(stats: dict[str, Any]) -> str:
    c, agree, hve = stats["counts"], stats["agreement"], stats["human_vs_evaluator"]
    lines = [
        f"samples {c['samples']}  responses {c['responses']}  pairs {c['pairs']}  judgements {c['judgements']}",
        f"pairs by task {c['pairs_by_task']}  by origin {c['pairs_by_origin']}  by term {c['pairs_by_term']}",
        f"judgements by choice {c['judgements_by_choice']}",
    ]
    for a in stats["annotators"]:
        lines.append(
            f"  {a['name']} ({a['role']}): {a['judgements']} votes, {a['decisive']} decisive, "
            f"median {a['median_seconds']} s"
        )
    lines.append(
        f"agreement on {agree['overlapped_pairs']} overlapped pairs: Cohen's kappa {agree['cohen_kappa']}, "
        f"Krippendorff's alpha {agree['krippendorff_alpha']}{_why_no_agreement(agree)}"
    )
    lines.append(f"human vs evaluator: {hve['agree']}/{hve['votes']} agree ({hve['fraction']})")
    return "\n".join(lines)


def _why_no_agreement(agree: dict[str, Any]) -> str:
    """Why kappa / alpha are None, in words ("" when both are numbers)."""
    if agree["cohen_kappa"] is not None or agree["krippendorff_alpha"] is not None:
        return ""
    if not agree["overlapped_pairs"]:
        return " (not computable yet: no pair has decisive votes from two annotators)"
    return " (undefined: every shared vote was the same answer, so agreement beyond chance has no meaning)"


def _stats(args: argparse.Namespace) -> None:
    from annotations.stats import compute_stats

    stats = compute_stats(open_db(args.db))
    _emit(args, stats, _stats_text(stats))


def _add_annotator(args: argparse.Namespace) -> None:
    from annotations.store import get_or_create_annotator

    info = get_or_create_annotator(open_db(args.db), args.name, args.role)
    _emit(
        args,
        {"id": info.id, "name": info.name, "role": info.role},
        f"annotator {info.name} ({info.role}) id {info.id}",
    )


def _init(args: argparse.Namespace) -> None:
    from annotations.db import SCHEMA_VERSION

    open_db(args.db)
    _emit(args, {"schema_version": SCHEMA_VERSION}, f"schema at v{SCHEMA_VERSION}")


_COMMANDS = {
    "import": _import,
    "export": _export,
    "stats": _stats,
    "add-annotator": _add_annotator,
    "init": _init,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 2 bad input) instead of exiting."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed its usage line
        return int(exc.code or 0)
    try:
        _COMMANDS[args.command](args)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
