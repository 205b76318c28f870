"""The whole app: header, six tabs, keyboard shortcuts, styling. `build_app` only lays out and wires."""

from __future__ import annotations

from typing import Any

import gradio as gr

from ui.admin import build_admin_tab
from ui.common import AppContext, bind
from ui.data import build_data_tab
from ui.label import BUTTONS, build_label_tab
from ui.render import md_text
from ui.task_tabs import build_beautify_tab, build_caption_tab, build_describe_tab
from ui.tasks import update_evaluator_note, update_model_note
from ui.viewer import build_viewer_tab

TITLE = "VidPrompter Studio"
MAX_FILE_SIZE = "200mb"

CSS = """
.shortcut-legend { font-size: 0.9em; opacity: 0.8; }
.shortcut-legend kbd { border: 1px solid #999; border-radius: 3px; padding: 0 4px; font-family: monospace; }
.cand-list { display: flex; flex-direction: column; gap: 8px; max-width: 100%; }
.cand-card { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 8px 10px; min-width: 0; }
.cand-head { display: flex; flex-wrap: wrap; gap: 4px 12px; align-items: baseline; font-size: 0.88em; }
.cand-rank { font-weight: 700; }
.cand-scores { font-family: monospace; }
.cand-label { opacity: 0.75; flex: 1 1 12em; }
.cand-copy { margin-left: auto; font-size: 0.85em; padding: 1px 8px; border: 1px solid var(--border-color-primary);
  border-radius: 4px; background: var(--button-secondary-background-fill); cursor: pointer; }
.cand-text { white-space: pre-wrap; overflow-wrap: anywhere; margin-top: 4px; line-height: 1.45; }
.cand-cursor { animation: cand-blink 1s steps(2) infinite; }
@keyframes cand-blink { 50% { opacity: 0; } }
/* Gradio's HighlightedText breaks anywhere (word-break: break-all): "reflects t|he". Break between words;
   only a word longer than the line breaks inside. */
.label-response .textfield, .label-response .textfield * { word-break: normal; overflow-wrap: anywhere; }
.label-response .textfield { line-height: 1.5; }
"""

COPY_JS = """
  document.addEventListener("click", async (ev) => {
    const button = ev.target.closest ? ev.target.closest(".cand-copy") : null;
    if (!button) return;
    const text = button.closest(".cand-card").querySelector(".cand-text").innerText;
    try {
      await navigator.clipboard.writeText(text);
    } catch (err) {  // no clipboard API (plain http on another host): the old way
      const area = Object.assign(document.createElement("textarea"), { value: text });
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
"""


def shortcuts_head() -> str:
    """<script> for launch(head=...): label-tab keys click the vote buttons; candidate cards' copy buttons.

    Keys are ignored while typing in an editable field, for held-down keys (auto-repeat) and with
    modifiers; only buttons that are on screen (the Label tab is open) and enabled are clicked. No key is
    destructive.
    """
    keys = {key: elem_id for _, key, elem_id in BUTTONS}
    entries = ", ".join(f'"{k}": "{v}"' for k, v in keys.items())
    return f"""<script>
(() => {{
  const KEYS = {{{entries}}};
  document.addEventListener("keydown", (ev) => {{
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return;
    const t = ev.target;
    const editable = t && (t.isContentEditable ||
      (["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName) && !t.readOnly && !t.disabled));
    if (editable) return;
    const id = KEYS[ev.key];
    if (!id) return;
    const button = document.getElementById(id);
    if (!button || button.offsetParent === null || button.disabled) return;
    ev.preventDefault();
    button.click();
  }});
{COPY_JS}
}})();
</script>"""


def header(ctx: AppContext, request: gr.Request) -> str:
    """The page header: who is signed in and which models are loaded now (refreshed after every run)."""
    user = ctx.user(request)
    mode = (
        "single-user local mode (no auth file): everyone is **local**, with the admin role"
        if ctx.local_mode
        else f"signed in as **{md_text(user.name)}** ({md_text(user.role)})"
    )
    loaded = ", ".join(md_text(m) for m in ctx.studio.loaded_models()) or "none yet (models load on first use)"
    return f"# {TITLE}\n{mode} · models loaded: {loaded}"


def whoami(ctx: AppContext, request: gr.Request) -> tuple[str, gr.Tab, gr.Accordion]:
    """Header line for the caller; the Admin tab and the Data tab's import / export shown to admins only
    (handlers check again). Both start hidden: Gradio 6 shows a hidden tab's header on an update, but never
    hides a shown one again, so an annotator saw an Admin header that opened a blank page."""
    admin = ctx.user(request).is_admin
    return header(ctx, request), gr.Tab(visible=admin), gr.Accordion(visible=admin)


def build_app(ctx: AppContext) -> gr.Blocks:
    """Lay out every tab and wire its events; nothing loads a model here."""
    with gr.Blocks(title=TITLE) as demo:
        top = gr.Markdown(f"# {TITLE}", elem_id="header")
        # "wrap": at 800 px every tab stays one click away (the default hides the last ones in a "…" menu).
        with gr.Tabs(overflow_behavior="wrap"):
            pickers = [build_beautify_tab(ctx), build_describe_tab(ctx), build_caption_tab(ctx)]
            build_viewer_tab(ctx)
            build_label_tab(ctx)
            data_admin = build_data_tab(ctx)
            admin_tab = build_admin_tab(ctx)
        demo.load(bind(whoami, ctx), None, [top, admin_tab, data_admin], api_visibility="private")
        for picker in pickers:  # say at once whether each tab's default model can load, and why not
            note_outs = [picker["note"], picker["run"]]
            demo.load(bind(update_model_note, ctx), picker["model"], note_outs, api_visibility="private")
            if "evals" in picker:
                load_evals = bind(update_evaluator_note, ctx)
                demo.load(load_evals, picker["evals"], picker["eval_note"], api_visibility="private")
            for done in picker["done"]:  # the header's model list follows what the runs loaded
                done.then(bind(header, ctx), None, top, api_visibility="private")
    demo.queue(default_concurrency_limit=4)
    quiet_when_idle(demo)
    return demo


#: Gradio's queue polls for work every 1 ms and for progress every 10 ms on Linux (gradio/queueing.py): an app
#: with nobody on it burned 6.5 % of a core in its event loop (measured; 10 ms / 50 ms still 2.2 %). Every
#: 50 ms / 200 ms: 0.75 %, and an event starts at most 50 ms later (docs/benchmarks.md, idle app).
QUEUE_POLL_S = 0.05
PROGRESS_POLL_S = 0.2


def quiet_when_idle(demo: gr.Blocks) -> None:
    """Slow the queue's idle polling (see QUEUE_POLL_S); a Gradio without these attributes is left as it is."""
    queue = getattr(demo, "_queue", None)
    if queue is not None and hasattr(queue, "sleep_when_free"):
        queue.sleep_when_free = max(queue.sleep_when_free, QUEUE_POLL_S)
        queue.progress_update_sleep_when_free = max(queue.progress_update_sleep_when_free, PROGRESS_POLL_S)


def launch_kwargs() -> dict[str, Any]:
    """What app.py passes to launch() besides host, port and auth (Gradio 6: css/head go here)."""
    return {"css": CSS, "head": shortcuts_head(), "max_file_size": MAX_FILE_SIZE, "ssr_mode": False}
