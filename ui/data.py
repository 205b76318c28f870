"""Data tab: counts, agreement in plain words, per-annotator stats, recent votes as each annotator saw them,
how often human votes agree with the evaluators, and (admins) import / export with readable summaries.
Reads annotations.stats / annotations.io; every figure is rounded for reading."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from ui.common import AppContext, bind
from ui.label import CHOICES
from ui.render import md_text

RECENT_LIMIT = 50
IMPORT_TYPES = [".jsonl", ".json", ".csv", ".zip"]
SHOWN_CHOICE = {
    "a_better": "A is better",
    "b_better": "B is better",
    "tie": "Tie",
    "both_bad": "Both bad",
    "skip": "Skip",
}
RECENT_COLUMNS = ["when (UTC)", "annotator", "pair", "task", "vote (as they saw it)", "seconds"]
ANNOTATOR_COLUMNS = ["annotator", "role", "votes", "decisive", "skips", "median seconds"]

# -- handlers -------------------------------------------------------------------------------------


def counts_markdown(stats: dict[str, Any]) -> str:
    counts = stats["counts"]
    lines = [
        f"**{counts['samples']}** samples · **{counts['responses']}** responses · **{counts['pairs']}** pairs · "
        f"**{counts['judgements']}** votes · **{counts['annotators']}** annotators",
        f"Pairs by origin: {_inline(counts.get('pairs_by_origin'))}",
        f"Pairs by HDPO term: {_inline(counts.get('pairs_by_term'))}",
        f"Votes (stored orientation: a = the pair's preferred side): {_inline(counts.get('judgements_by_choice'))}",
        agreement_text(stats.get("agreement") or {}),
    ]
    return "\n\n".join(lines)


def _inline(mapping: dict[str, Any] | None) -> str:
    if not mapping:
        return "—"
    return ", ".join(f"{md_text(k)}: {_fmt(v)}" for k, v in mapping.items())


def _fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def agreement_text(agreement: dict[str, Any]) -> str:
    """Inter-annotator agreement in words, and why it cannot be computed when it cannot."""
    raters, shared = agreement.get("raters") or [], agreement.get("overlapped_pairs", 0)
    kappa, alpha = agreement.get("cohen_kappa"), agreement.get("krippendorff_alpha")
    pairwise = agreement.get("pairwise_kappa") or {}
    if not shared:
        return (
            "**Agreement between annotators:** not computable yet. Cohen's κ needs two annotators who voted "
            "(not skipped) on the same pairs; so far no pair has votes from two people."
        )
    names = " and ".join(md_text(r) for r in raters[:2])
    if len(raters) == 2 and kappa is not None:
        return f"**Agreement between annotators:** Cohen's κ = **{kappa:.2f}** ({names}, {shared} shared pair(s))."
    if len(raters) == 2:
        return (
            f"**Agreement between annotators:** κ cannot be computed on the {shared} pair(s) {names} share: "
            "both gave one and the same answer throughout, so agreement beyond chance is undefined."
        )
    per_pair = ", ".join(
        f"{md_text(k)} {v['kappa']:.2f} ({v['pairs']})" for k, v in pairwise.items() if v["kappa"] is not None
    )
    alpha_text = f"Krippendorff's α = **{alpha:.2f}**" if alpha is not None else "α undefined (one answer throughout)"
    return (
        f"**Agreement between annotators:** {alpha_text} over {shared} pair(s) with two or more votes "
        f"({len(raters)} annotators; κ is for two, per pair of annotators: {per_pair or '—'})."
    )


def agreement_plot(stats: dict[str, Any]) -> tuple[Any, str]:
    """(BarPlot update, note): one bar per evaluator (and their mean) = share of decisive human votes it
    agrees with; hidden with a note saying why when there is nothing to plot."""
    hve = stats.get("human_vs_evaluator") or {}
    rows = [[name, v["fraction"], v["votes"]] for name, v in (hve.get("by_evaluator") or {}).items()]
    if hve.get("fraction") is not None:
        rows.append(["mean of evaluators", hve["fraction"], hve["votes"]])
    if not rows:
        note = (
            "**Humans vs evaluators:** nothing to compare yet. It needs decisive votes (A or B better) on pairs "
            "whose two responses both have evaluator scores; votes on unscored pairs (e.g. queued from Task 3 "
            "without the judge) do not count."
        )
        return gr.BarPlot(visible=False), note
    frame = pd.DataFrame(rows, columns=["evaluator", "agreement", "votes"])
    note = (
        f"**Humans vs evaluators:** humans agree with the evaluators' mean on **{hve['fraction']:.0%}** of "
        f"{hve['votes']} decisive vote(s)."
        if hve.get("fraction") is not None
        else "**Humans vs evaluators:** per evaluator below."
    )
    return gr.BarPlot(value=frame, visible=True), note


def annotators_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    out = [
        [
            r["name"],
            r["role"],
            r["judgements"],
            r["decisive"],
            r["skips"],
            None if r["median_seconds"] is None else round(r["median_seconds"], 1),
        ]
        for r in rows
    ]
    return pd.DataFrame(out, columns=ANNOTATOR_COLUMNS)


def recent_frame(ctx: AppContext, limit: int = RECENT_LIMIT) -> pd.DataFrame:
    """The newest votes, each as its annotator saw it: A = the response on their left.

    The store keeps votes in the pair's orientation (a = preferred side); `normalise_choice` maps between
    the two with the side that was on the left, and is its own inverse."""
    from annotations.pairs import pair_sides
    from annotations.store import normalise_choice, recent_judgements

    rows = recent_judgements(ctx.db, limit)
    sides = pair_sides(ctx.db, sorted({r["pair_id"] for r in rows}))
    out = []
    for r in rows:
        a_id = sides.get(r["pair_id"], (r["shown_left_response_id"], 0))[0]
        shown = normalise_choice(r["choice"], r["shown_left_response_id"], a_id)
        seconds = None if r["seconds_taken"] is None else round(float(r["seconds_taken"]), 1)
        out.append([_when(r["updated_at"]), r["annotator"], r["pair_id"], r["task"], CHOICES[shown], seconds])
    return pd.DataFrame(out, columns=RECENT_COLUMNS)


def _when(value: str | datetime) -> str:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def refresh_stats(ctx: AppContext) -> tuple[str, pd.DataFrame, pd.DataFrame, Any, str]:
    """(counts and agreement, per-annotator table, recent votes, human-vs-evaluator plot, its note)."""
    from annotations.stats import compute_stats

    stats = compute_stats(ctx.db)
    plot, note = agreement_plot(stats)
    return counts_markdown(stats), annotators_frame(stats["annotators"]), recent_frame(ctx), plot, note


def import_summary(report: Any) -> str:
    """An import report in words: what came in, what was refused, what to do next (the importer's line)."""
    name = md_text(Path(report.path).name)
    kinds = f"{report.videos} clip(s), {report.text_only} text-only row(s)"
    lines = [
        f"✅ Imported **{report.imported}** new sample(s) from `{name}`: {report.rows} row(s) read, {kinds}"
        f"{f', {report.existing} already in the database' if report.existing else ''}."
    ]
    if report.bad:
        lines.append(f"⚠️ {len(report.bad)} bad row(s) skipped:\n\n{_bad_rows(report)}")
    if report.next_step:
        lines.append(f"**Next:** {md_text(report.next_step)}.")
    return "\n\n".join(lines)


def _bad_rows(report: Any) -> str:
    shown = [f"- line {r.line}: {md_text(r.reason)}" for r in report.bad[:20]]
    more = len(report.bad) - len(shown)
    return "\n".join(shown + ([f"- … and {more} more"] if more > 0 else []))


def _media_hint(ctx: AppContext, report: Any, file: str) -> str:
    """Why relative clip paths of an uploaded rows file cannot be found, and the two ways out."""
    if Path(file).suffix.lower() == ".zip" or not any("video" in r.reason for r in report.bad):
        return ""
    where = f"the media folder `{md_text(ctx.media_root)}`" if ctx.media_root else "no media folder (none is set)"
    return (
        f"\n\nRelative clip paths resolve against {where}. Upload a **.zip** holding the rows file and its "
        "clips, or start the app with `--media-root FOLDER` where the clips are."
    )


def import_file(ctx: AppContext, file: str | None, skip_bad: bool, request: gr.Request) -> str:
    """Admin: import sample rows (JSONL / CSV: video, short_prompt, detailed_prompt, split), or a zip of one
    such file plus its clips. A zip is extracted into the app's upload folder (it outlives Gradio's upload
    cache); a rows file's relative clip paths resolve against the app's media folder (annotations.importer)."""
    from annotations.errors import ImportRejected
    from annotations.io import import_rows

    ctx.require_admin(request)
    if not file:
        raise gr.Error("choose a JSONL, CSV or zip file to import")
    is_zip = Path(file).suffix.lower() == ".zip"
    assert ctx.upload_dir is not None
    options = {"extract_to": ctx.upload_dir / "imports"} if is_zip else {"media_root": ctx.media_root}
    try:
        report = import_rows(ctx.db, file, skip_bad=bool(skip_bad), **options)
    except ImportRejected as exc:
        bad = exc.report
        return (
            f"⛔ Nothing imported: {len(bad.bad)} of {bad.rows} row(s) are bad. Fix them, or tick "
            f"**Skip bad rows** to import the good ones.\n\n{_bad_rows(bad)}{_media_hint(ctx, bad, file)}"
        )
    return import_summary(report) + _media_hint(ctx, report, file)


def export_summary(report: Any) -> str:
    """An export report in words: rows, per task and term, flipped and left-out pairs."""
    by_task = ", ".join(f"task {t}: {n}" for t, n in sorted(report.by_task.items())) or "none"
    by_term = ", ".join(f"{md_text(k)}: {n}" for k, n in sorted(report.by_term.items())) or "none"
    lines = [f"✅ Exported **{report.rows}** preference pair(s) ({by_task}; HDPO terms: {by_term})."]
    if report.flipped:
        lines.append(f"{report.flipped} pair(s) were flipped: the annotators preferred the other side.")
    if report.excluded:
        left_out = ", ".join(f"{n} {md_text(reason)}" for reason, n in sorted(report.excluded.items()))
        lines.append(f"Left out: {left_out}.")
    lines.append("The dataset card beside the file records the prompts' instruction templates.")
    return "\n\n".join(lines)


def export_file(ctx: AppContext, fmt: str, request: gr.Request) -> tuple[str, str]:
    """Admin: export preference pairs with TRL columns; returns (download path, summary)."""
    from annotations.io import export_pairs

    ctx.require_admin(request)
    if fmt not in ("jsonl", "parquet"):
        raise gr.Error(f"format must be jsonl or parquet, got {fmt!r}")
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6:06d}"  # two exports in a second differ
    out = Path(ctx.work_dir, "exports", f"pairs-{stamp}.{fmt}")
    out.parent.mkdir(parents=True, exist_ok=True)
    report = export_pairs(ctx.db, out, fmt)
    return str(out), export_summary(report)


# -- layout ---------------------------------------------------------------------------------------


def build_data_tab(ctx: AppContext) -> gr.Accordion:
    """The tab; returns its admin-only import / export accordion (hidden until the page knows an admin asks)."""
    with gr.Tab("Data", id="data") as tab:
        refresh = gr.Button("Refresh", size="sm")
        counts = gr.Markdown(elem_id="data-counts")
        plot_note = gr.Markdown(elem_id="data-hve-note")
        plot = gr.BarPlot(
            x="evaluator", y="agreement", y_lim=[0, 1], label="Human vs evaluator agreement", height=240, visible=False
        )
        annotators = gr.Dataframe(headers=ANNOTATOR_COLUMNS, label="Per annotator", interactive=False, wrap=True)
        recent = gr.Dataframe(
            headers=RECENT_COLUMNS,
            label=f"Recent votes (last {RECENT_LIMIT}), as each annotator saw them: A = the left response",
            interactive=False,
            wrap=True,
            elem_id="data-recent",
        )
        with gr.Accordion("Import / export (admin)", open=False, visible=False) as admin_box, gr.Row():
            with gr.Column():
                upload = gr.File(
                    label="Rows to import (JSONL / CSV, or a zip with one of them plus its clips)",
                    file_types=IMPORT_TYPES,
                    type="filepath",
                    elem_id="data-import-file",
                )
                skip_bad = gr.Checkbox(label="Skip bad rows instead of rejecting the file")
                import_btn = gr.Button("Import", elem_id="data-import")
            with gr.Column():
                fmt = gr.Radio(["jsonl", "parquet"], value="jsonl", label="Export format")
                export_btn = gr.Button("Export pairs", elem_id="data-export")
                download = gr.File(label="Download", interactive=False)
        io_status = gr.Markdown(elem_id="data-io-status")
        outs = [counts, annotators, recent, plot, plot_note]
        refresh.click(bind(refresh_stats, ctx), None, outs, api_name="data_stats")
        tab.select(bind(refresh_stats, ctx), None, outs, api_visibility="private")
        import_btn.click(bind(import_file, ctx), [upload, skip_bad], io_status, api_name="import_rows")
        export_btn.click(bind(export_file, ctx), fmt, [download, io_status], api_name="export_pairs")
    return admin_box
