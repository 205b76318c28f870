"""The Admin tab's queue-order panel: the project's labelling queue order, FIFO (the default) or active (the
pairs whose label is most uncertain first: small evaluator margin, evaluators split, judge against
evaluators; annotations.active has the formula). Stored in the database (annotations.queue_order), so
every annotator's next pair follows it, whichever app process serves them.

Admin only: the handler checks the role itself (hiding the tab is a convenience); the value shown is read
when the page loads.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ui.common import AppContext, bind
from ui.render import md_text

ORDER_CHOICES = [
    ("First in, first out (default): the oldest pair first", "fifo"),
    ("Most uncertain first (active): the pairs the evaluators are least sure about", "active"),
]
ORDER_NAMES = {"fifo": "first in, first out", "active": "most uncertain first"}
EXPLAIN = (
    "Both orders give every pair its first vote before any pair gets a second, and keep leases, overlap and "
    "undo. **Most uncertain first** ranks pairs by one score from their evaluator scores: a small ensemble "
    "margin (the judge's, for text-only pairs), evaluators ranking A and B differently, or the judge "
    "disagreeing with the evaluators. Pairs without comparable scores come last, oldest first."
)


def _store() -> Any:
    from annotations import store

    return store


def order_note(ctx: AppContext) -> str:
    """The order in force, who set it, and what waits in the queue, in words."""
    from annotations.queue_order import UNCERTAIN_AT, waiting_pairs

    info = _store().queue_order_info(ctx.db)
    line = f"Queue order: **{ORDER_NAMES[info.order]}**"
    if info.updated_by:
        line += f" · set by {md_text(info.updated_by)} at {str(info.updated_at)[:19]} UTC"
    else:
        line += " (the default; no admin has changed it)"
    waiting = waiting_pairs(ctx.db, _store().QUEUE_ORIGINS)
    line += (
        f"\n\n{waiting.total} pair(s) wait for a first vote: {waiting.uncertain} uncertain "
        f"(score ≥ {UNCERTAIN_AT}), {waiting.unscored} without comparable scores."
    )
    return line


def current_order(ctx: AppContext) -> str:
    """The radio's value when the page loads."""
    return _store().queue_order(ctx.db)


def set_queue_order(ctx: AppContext, order: str, request: gr.Request) -> tuple[str, str]:
    """Admin: set the project's queue order; returns (the order now in force, the note)."""
    user = ctx.require_admin(request)
    saved = _store().set_queue_order(ctx.db, order, by=user.name)
    return saved.order, f"✅ Saved. {order_note(ctx)}"


def build_queue_panel(ctx: AppContext) -> gr.Radio:
    """The panel (an accordion in the Admin tab); its radio and note are read from the database on page load."""
    with gr.Accordion("Labelling queue order", open=False, elem_id="admin-queue-panel"):
        gr.Markdown(EXPLAIN)
        with gr.Row():
            order = gr.Radio(
                ORDER_CHOICES, value=lambda: current_order(ctx), label="Serve pairs", elem_id="admin-queue-order"
            )
            save = gr.Button("Save queue order", size="sm", scale=0, elem_id="admin-queue-save")
        note = gr.Markdown(lambda: order_note(ctx), elem_id="admin-queue-note")
    save.click(bind(set_queue_order, ctx), order, [order, note], api_name="set_queue_order")
    return order
