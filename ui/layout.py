"""The whole app: header, six tabs, keyboard shortcuts, styling. `build_app` only lays out and wires."""

from __future__ import annotations

from typing import Any

import gradio as gr

from ui.admin import build_admin_tab
from ui.common import AppContext, bind
from ui.data import build_data_tab
from ui.label import BUTTONS, build_label_tab
from ui.tasks import build_beautify_tab, build_caption_tab, build_describe_tab, update_model_note
from ui.viewer import build_viewer_tab

TITLE = "VidPrompter Studio"
MAX_FILE_SIZE = "200mb"

CSS = """
.shortcut-legend { font-size: 0.9em; opacity: 0.8; }
.shortcut-legend kbd { border: 1px solid #999; border-radius: 3px; padding: 0 4px; font-family: monospace; }
#label-left textarea, #label-right textarea { font-size: 0.95em; }
"""


def shortcuts_head() -> str:
    """<script> for launch(head=...): label-tab keys click the vote buttons.

    Ignored while typing in an editable field, for held-down keys (auto-repeat) and with modifiers;
    only buttons that are on screen (the Label tab is open) are clicked. No key is destructive.
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
}})();
</script>"""


def whoami(ctx: AppContext, request: gr.Request) -> tuple[str, gr.Tab]:
    """Header line for the caller, and the admin tab shown to admins only (handlers check again)."""
    user = ctx.user(request)
    mode = (
        "single-user local mode (no auth file): everyone is **local**, with the admin role"
        if ctx.local_mode
        else f"signed in as **{user.name}** ({user.role})"
    )
    loaded = ", ".join(ctx.studio.loaded_models()) or "none yet (models load on first use)"
    return f"# {TITLE}\n{mode} · models loaded: {loaded}", gr.Tab(visible=user.is_admin)


def build_app(ctx: AppContext) -> gr.Blocks:
    """Lay out every tab and wire its events; nothing loads a model here."""
    with gr.Blocks(title=TITLE) as demo:
        header = gr.Markdown(f"# {TITLE}", elem_id="header")
        with gr.Tabs():
            pickers = [build_beautify_tab(ctx), build_describe_tab(ctx), build_caption_tab(ctx)]
            build_viewer_tab(ctx)
            build_label_tab(ctx)
            build_data_tab(ctx)
            admin_tab = build_admin_tab(ctx)
        demo.load(bind(whoami, ctx), None, [header, admin_tab], api_visibility="private")
        for picker in pickers:  # say at once whether each tab's default model can load, and why not
            demo.load(bind(update_model_note, ctx), picker["model"], picker["note"], api_visibility="private")
    demo.queue(default_concurrency_limit=4)
    return demo


def launch_kwargs() -> dict[str, Any]:
    """What app.py passes to launch() besides host, port and auth (Gradio 6: css/head go here)."""
    return {"css": CSS, "head": shortcuts_head(), "max_file_size": MAX_FILE_SIZE, "ssr_mode": False}
