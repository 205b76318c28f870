"""Data tab: counts, agreement, per-annotator stats, recent judgements, import / export, and how often
human votes agree with the evaluators (annotations.stats / annotations.io)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from ui.common import AppContext, bind

RECENT_LIMIT = 50
IMPORT_TYPES = [".jsonl", ".json", ".csv"]

# -- handlers -------------------------------------------------------------------------------------


def counts_markdown(stats: dict[str, Any]) -> str:
    counts, agreement = stats["counts"], stats.get("agreement") or {}
    lines = [
        f"**{counts['samples']}** samples · **{counts['responses']}** responses · **{counts['pairs']}** pairs · "
        f"**{counts['judgements']}** judgements · **{counts['annotators']}** annotators",
        f"Pairs by origin: {_inline(counts.get('pairs_by_origin'))}",
        f"Pairs by HDPO term: {_inline(counts.get('pairs_by_term'))}",
        f"Votes: {_inline(counts.get('judgements_by_choice'))}",
        f"Inter-annotator agreement: {_inline({k: v for k, v in agreement.items() if not isinstance(v, dict)})}",
    ]
    hve = stats.get("human_vs_evaluator") or {}
    if hve.get("fraction") is not None:
        lines.append(f"Humans agree with the evaluators on **{hve['fraction']:.0%}** of {hve['votes']} decisive votes")
    return "\n\n".join(lines)


def _inline(mapping: dict[str, Any] | None) -> str:
    if not mapping:
        return "—"
    return ", ".join(f"{k}: {_fmt(v)}" for k, v in mapping.items())


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def agreement_frame(stats: dict[str, Any]) -> pd.DataFrame:
    """One bar per evaluator (and the mean): fraction of decisive human votes it agrees with."""
    hve = stats.get("human_vs_evaluator") or {}
    rows = [[name, v["fraction"], v["votes"]] for name, v in (hve.get("by_evaluator") or {}).items()]
    if hve.get("fraction") is not None:
        rows.append(["mean of evaluators", hve["fraction"], hve["votes"]])
    return pd.DataFrame(rows, columns=["evaluator", "agreement", "votes"])


def refresh_stats(ctx: AppContext) -> tuple[str, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(counts, per-annotator table, recent judgements, human-vs-evaluator agreement)."""
    from annotations.stats import compute_stats
    from annotations.store import recent_judgements

    stats = compute_stats(ctx.db)
    annotators = pd.DataFrame(stats["annotators"])
    cols = ["id", "pair_id", "task", "annotator", "choice", "seconds_taken", "updated_at"]
    recent = pd.DataFrame(recent_judgements(ctx.db, RECENT_LIMIT), columns=cols)
    return counts_markdown(stats), annotators, recent, agreement_frame(stats)


def import_file(ctx: AppContext, file: str | None, skip_bad: bool, request: gr.Request) -> str:
    """Admin: import sample rows (JSONL / CSV: video, short_prompt, detailed_prompt, split)."""
    from annotations.errors import ImportRejected
    from annotations.io import import_rows

    ctx.require_admin(request)
    if not file:
        raise gr.Error("choose a JSONL or CSV file to import")
    try:
        report = import_rows(ctx.db, file, skip_bad=bool(skip_bad))
    except ImportRejected as exc:
        return f"⛔ {exc}\n\n```\n{_bad_rows(exc.report)}\n```"
    return f"✅ Imported: `{report.to_dict()}`"


def _bad_rows(report: Any) -> str:
    return "\n".join(f"line {r.line}: {r.reason}" for r in report.bad[:20])


def export_file(ctx: AppContext, fmt: str, request: gr.Request) -> tuple[str, str]:
    """Admin: export preference pairs with TRL columns; returns (download path, summary)."""
    from annotations.io import export_pairs

    ctx.require_admin(request)
    if fmt not in ("jsonl", "parquet"):
        raise gr.Error(f"format must be jsonl or parquet, got {fmt!r}")
    out = Path(ctx.work_dir, "exports", f"pairs-{time.strftime('%Y%m%d-%H%M%S')}.{fmt}")
    out.parent.mkdir(parents=True, exist_ok=True)
    report = export_pairs(ctx.db, out, fmt)
    return str(out), f"✅ Exported: `{report.to_dict()}`"


# -- layout ---------------------------------------------------------------------------------------


def build_data_tab(ctx: AppContext) -> gr.Tab:
    with gr.Tab("Data", id="data") as tab:
        refresh = gr.Button("Refresh", size="sm")
        counts = gr.Markdown(elem_id="data-counts")
        plot = gr.BarPlot(x="evaluator", y="agreement", y_lim=[0, 1], label="Human vs evaluator agreement", height=240)
        annotators = gr.Dataframe(label="Per annotator", interactive=False)
        recent = gr.Dataframe(label=f"Recent judgements (last {RECENT_LIMIT})", interactive=False)
        with gr.Accordion("Import / export (admin)", open=False), gr.Row():
            with gr.Column():
                upload = gr.File(label="Rows to import (JSONL / CSV)", file_types=IMPORT_TYPES, type="filepath")
                skip_bad = gr.Checkbox(label="Skip bad rows instead of rejecting the file")
                import_btn = gr.Button("Import")
            with gr.Column():
                fmt = gr.Radio(["jsonl", "parquet"], value="jsonl", label="Export format")
                export_btn = gr.Button("Export pairs")
                download = gr.File(label="Download", interactive=False)
        io_status = gr.Markdown()
        outs = [counts, annotators, recent, plot]
        refresh.click(bind(refresh_stats, ctx), None, outs, api_name="data_stats")
        tab.select(bind(refresh_stats, ctx), None, outs, api_visibility="private")
        import_btn.click(bind(import_file, ctx), [upload, skip_bad], io_status, api_name="import_rows")
        export_btn.click(bind(export_file, ctx), fmt, [download, io_status], api_name="export_pairs")
    return tab
