"""The viewer's perturbation-strength panel (issue 16 item 3), beside the reward gaps.

For the response and short prompt of the viewer, against the video of the viewer: how far each
hallucination the pair builder draws (same seed as the gaps) moves the evaluator ensemble. Rows: the word
swap of the response (Eq. 6-8), the perturbed video under the response as a Task-1 answer (Eq. 9-11), and
the word swap of the short prompt as Task 3 draws it. Scores are 100 × cosine; drop = original − perturbed.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from ui.common import RANDOM_WEIGHTS_LABEL, AppContext, bind, on_model_event
from ui.grounding import evaluator_picker
from ui.render import md_note

COLUMNS = ["perturbation", "change", "original", "perturbed", "drop", "relative"]
#: Task 1 draws the video perturbation, Task 3 the prompt swap; both draw the same response swap.
TASKS = (1, 3)


def strength_rows(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per measured change; the response swap (drawn alike by both tasks) once."""
    rows, seen = [], set()
    for result in results:
        for pair in result["rows"]:
            for c in pair["components"]:
                key = (pair["condition"], c["change"])  # same seed and response: the same swap in both tasks
                if key in seen:
                    continue
                seen.add(key)
                relative = "—" if c["relative"] is None else f"{100 * c['relative']:+.1f} %"
                rows.append([pair["condition"], c["change"], round(c["original"], 3), round(c["perturbed"], 3)])
                rows[-1] += [round(c["drop"], 3), relative]
    return pd.DataFrame(rows, columns=COLUMNS)


def strength_view(
    ctx: AppContext, response: str, short_prompt: str, video: str | None, evals: list[str] | None, seed: float
) -> tuple[pd.DataFrame, str, dict[str, Any]]:
    """(table, note, JSON): the API's /perturbation_strength."""
    if not video:
        raise gr.Error("strength is measured against a video: pick a clip in 'Input hallucination: video' above")
    if not (response or "").strip() or not (short_prompt or "").strip():
        raise gr.Error("the strength meter needs a response and a short prompt")
    if not evals:
        raise gr.Error("pick at least one evaluator")
    value = int(seed or 0)
    if value < 0:
        raise gr.Error(f"seed must be >= 0, got {value}")
    results = [
        ctx.studio.perturbation_strength(task, response, short_prompt, video, list(evals), value) for task in TASKS
    ]
    notes = list(dict.fromkeys(n for r in results for n in r["notes"]))
    table = strength_rows(results)
    data = {f"task_{task}": result for task, result in zip(TASKS, results, strict=True)}
    return table, strength_note(table, notes, results[0]["random_weights"]), data


def strength_note(table: pd.DataFrame, notes: list[str], random_weights: bool) -> str:
    lines = [
        "Evaluator score (100 × cosine with the video) of the original and the perturbed side of each "
        "hallucination the gaps above use (same seed). **drop** = original − perturbed: near 0 the change is "
        "too weak to teach anything; a very large drop is trivial to tell apart (paper §3.3). Training keeps a "
        "band with `data.strength_band: [lo, hi]`."
    ]
    if table.empty:
        lines.append("No perturbation could be measured.")
    if random_weights:
        lines.append(f"⚠️ {RANDOM_WEIGHTS_LABEL}")
    return "\n\n".join(lines + [f"- {md_note(n)}" for n in notes])


def strength_panel(
    ctx: AppContext, response: gr.Textbox, prompt: gr.Textbox, video: gr.Video, seed: gr.Number
) -> None:
    """The panel under the reward gaps."""
    gr.Markdown("#### Perturbation strength: how far each hallucination moves the evaluators")
    evals = evaluator_picker(ctx, "viewer-strength-evals")
    run = gr.Button("Measure strength (loads the evaluators)", elem_id="viewer-strength-run")
    note = gr.Markdown(elem_id="viewer-strength-note")
    table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True, elem_id="viewer-strength")
    data = gr.JSON(visible=False)
    ins = [response, prompt, video, evals, seed]
    on_model_event(run.click, bind(strength_view, ctx), ins, [table, note, data], api_name="perturbation_strength")
