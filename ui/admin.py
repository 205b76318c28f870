"""Admin tab: mine pairs, launch an HDPO training run from a config preset, watch it (loss and margin
curves per term, integer steps), cancel / resume it, and read a finished loop's report (ui.loop_panel).

Every handler checks the admin role itself (hiding the tab is only a convenience), then calls the
jobs object app.py built (`ctx.jobs`, a torch-free `training.jobs.Jobs` on the app's DB engine).
Its refusals (busy device, unknown run, run not running) are JobErrors, which `bind`'s guard shows
as one line. Run state, history and metrics come from the annotation store through `ctx.jobs`.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from ui.common import CONFIGS_DIR, RANDOM_WEIGHTS_LABEL, AppContext, bind, config_presets
from ui.loop_panel import build_mine_panel, build_report_panel, list_reports
from ui.queue_panel import build_queue_panel

TINY_PRESET = "tiny-cpu"
TERMINAL = ("finished", "failed", "cancelled")
#: What Resume restarts (from the run's last checkpoint).
RESUMABLE = ("cancelled", "failed")
POLL_SECONDS = 2.0
CURVE_TITLES = {"loss": "Loss per HDPO term", "margin": "Reward margin per HDPO term"}
HISTORY_COLUMNS = ["id", "name", "status", "step", "total_steps", "progress", "created_at", "finished_at", "error"]

# -- handlers -------------------------------------------------------------------------------------


def has_gpu() -> bool:
    """CUDA device present? Checked without torch (the UI never imports it)."""
    return Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None


def device_note() -> str:
    if has_gpu():
        return "✅ A CUDA GPU is present: paper-scale presets can run here."
    return (
        f"⚠️ **No GPU on this machine.** Real HDPO runs need one; the **{TINY_PRESET}** preset trains the tiny "
        f"random model on the CPU in about a minute to check the whole pipeline ({RANDOM_WEIGHTS_LABEL})."
    )


def load_preset(ctx: AppContext, preset: str, request: gr.Request) -> str:
    """The preset's YAML, for editing before launch."""
    ctx.require_admin(request)
    path = _preset_path(preset)
    return path.read_text()


def _preset_path(preset: str) -> Path:
    if preset not in config_presets():
        raise gr.Error(f"unknown config preset {preset!r}: pick one of {', '.join(config_presets()) or '(none)'}")
    return CONFIGS_DIR / f"{preset}.yaml"


def parse_overrides(text: str) -> list[str]:
    """'key=value' per line (blank lines and # comments skipped) -> the --set list training takes."""
    lines = [line.strip() for line in (text or "").splitlines()]
    out = [line for line in lines if line and not line.startswith("#")]
    for line in out:
        if "=" not in line or not line.split("=", 1)[0].strip():
            raise gr.Error(f"override {line!r}: write key=value, e.g. optim.max_steps=8")
    return out


def launch_training(
    ctx: AppContext, preset: str, config_yaml: str, overrides: str, request: gr.Request
) -> tuple[str, float, gr.Timer]:
    """Admin: start a run from the (edited) preset; returns (status, run id, timer switched on)."""
    user = ctx.require_admin(request)
    _preset_path(preset)
    config_path = _write_config(ctx, preset, config_yaml)
    run_id = ctx.jobs.launch(config_path, parse_overrides(overrides))
    note = f"🚀 Run **#{run_id}** launched by {user.name} from `{preset}`"
    return note, run_id, gr.Timer(active=True)


def _write_config(ctx: AppContext, preset: str, config_yaml: str) -> Path:
    """The edited YAML is what runs: saved beside the run's other files for reproducibility."""
    if not (config_yaml or "").strip():
        return _preset_path(preset)
    path = Path(ctx.work_dir, "configs", f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6}.yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_yaml)
    return path


def _series_label(name: str, kind: str) -> str:
    """Legend text of a metric: "dpo/loss" -> "dpo", "loss" -> "total"."""
    rest = [part for part in name.split("/") if part != kind]
    return "/".join(rest) or "total"


def _of_kind(metrics: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The metrics whose name has `kind` as one of its "/" parts ("dpo/loss", "loss"; not "dpo/accuracy")."""
    return [m for m in metrics if kind in m["name"].split("/")]


def curve_figure(rows: list[dict[str, Any]], kind: str) -> Any:
    """A line per HDPO term of one metric kind ("loss" or "margin") against the step: integer step ticks,
    the legend beside the plot with whole names. No update while there are no points yet."""
    if not rows:
        return gr.skip()
    import matplotlib

    matplotlib.use("Agg")  # no display: render to an image only
    from matplotlib import font_manager
    from matplotlib.figure import Figure

    # matplotlib keys its open-font cache by thread (64 entries): Gradio renders each poll on some thread of its
    # pool, so the app held one more open font file per thread (16 -> 68 descriptors in a 30-min soak). Start
    # each figure from an empty cache: fonts in use stay referenced, the rest are closed when collected.
    cached = getattr(font_manager, "_get_font", None)
    if cached is not None and hasattr(cached, "cache_clear"):
        cached.cache_clear()
    from matplotlib.ticker import MaxNLocator

    frame = pd.DataFrame(rows, columns=["step", "name", "value"]).astype({"step": "int64", "value": "float64"})
    fig = Figure(figsize=(6.4, 3.2), layout="constrained")
    ax = fig.add_subplot()
    for name, part in frame.groupby("name", sort=True):
        part = part.sort_values("step")
        ax.plot(part["step"], part["value"], marker="o" if len(part) <= 20 else None, label=_series_label(name, kind))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # a 2-step run has ticks 1, 2: never 1.5
    ax.set_xlabel("step")
    ax.set_ylabel(kind)
    ax.set_title(CURVE_TITLES[kind], fontsize="medium", loc="left")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return fig


def status_markdown(run: dict[str, Any]) -> str:
    total = run.get("total_steps")
    steps = f"step {run.get('step', 0)}" + (f" / {total}" if total else "")
    line = (
        f"**Run #{run['id']}** `{run['name']}` · status: **{run['status']}** · {steps} · {run.get('progress', 0):.0%}"
    )
    if run.get("error"):
        line += f"\n\n⛔ {run['error']}"
    if run.get("checkpoint_dir"):
        line += f"\n\nCheckpoint: `{run['checkpoint_dir']}`"
    return line


def _watch(ctx: AppContext, run_id: float | None) -> tuple[dict[str, Any] | None, tuple[str, Any, Any, pd.DataFrame]]:
    """(run or None, (status, loss curve, reward-margin curve, run history)) for one run id.

    `ctx.jobs.status` also notices a trainer that died without saying so and marks its run failed."""
    history = history_frame(ctx.jobs.history(50))
    if not run_id:
        return None, ("No run selected: launch one, or enter a run id from the history below.", None, None, history)
    run = ctx.jobs.status(int(run_id))
    metrics = ctx.jobs.metrics(int(run_id))
    curves = (curve_figure(_of_kind(metrics, "loss"), "loss"), curve_figure(_of_kind(metrics, "margin"), "margin"))
    return run, (status_markdown(run), *curves, history)


def history_frame(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """The run history for reading: times to the second, progress in percent."""
    rows = [
        {
            **run,
            "progress": f"{float(run.get('progress') or 0):.0%}",
            "created_at": _when(run.get("created_at")),
            "finished_at": _when(run.get("finished_at")),
        }
        for run in runs
    ]
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


def _when(value: Any) -> str:
    if not value:
        return ""
    return str(value).replace("T", " ")[:19]


def open_tab(ctx: AppContext, run_id: float | None, request: gr.Request) -> tuple:
    """The tab opened: the history at once, and the newest run when none is selected (its curves too)."""
    ctx.require_admin(request)
    if not run_id:
        newest = ctx.jobs.history(1)
        run_id = newest[0]["id"] if newest else None
    run, outputs = _watch(ctx, run_id)
    active = run is not None and run["status"] not in TERMINAL
    return (run_id, *outputs, gr.Timer(active=active))


def training_status(ctx: AppContext, run_id: float | None, request: gr.Request) -> tuple[str, Any, Any, pd.DataFrame]:
    """Admin: live status, loss and reward-margin curves, run history."""
    ctx.require_admin(request)
    return _watch(ctx, run_id)[1]


def poll(ctx: AppContext, run_id: float | None, request: gr.Request) -> tuple:
    """gr.Timer tick: training_status plus the timer switched off once the run is over."""
    ctx.require_admin(request)
    run, outputs = _watch(ctx, run_id)
    active = run is not None and run["status"] not in TERMINAL
    return *outputs, gr.Timer(active=active)


def cancel_run(ctx: AppContext, run_id: float | None, request: gr.Request) -> str:
    """Admin: ask the run's trainer to stop (it checkpoints first)."""
    ctx.require_admin(request)
    if not run_id:
        raise gr.Error("enter the id of the run to cancel")
    ctx.jobs.cancel(int(run_id))
    return f"⏹ Cancel requested for run #{int(run_id)}."


def resume_run(ctx: AppContext, run_id: float | None, request: gr.Request) -> tuple[str, gr.Timer]:
    """Admin: restart a cancelled or failed run from its latest checkpoint. Any other run is refused at once,
    naming its status: a live one is not waited on (nobody cancelled it), a finished one is not run again."""
    ctx.require_admin(request)
    if not run_id:
        raise gr.Error("enter the id of the run to resume")
    status = ctx.jobs.status(int(run_id))["status"]
    if status == "finished":
        raise gr.Error(
            f"run {int(run_id)} is finished: Resume restarts a cancelled or failed run from its last checkpoint"
        )
    if status not in RESUMABLE:
        raise gr.Error(f"run {int(run_id)} is {status}, not stopped: Cancel it first, then Resume")
    ctx.jobs.resume(int(run_id))
    return f"▶️ Resuming run #{int(run_id)}.", gr.Timer(active=True)


# -- layout ---------------------------------------------------------------------------------------


def _launch_panel(ctx: AppContext) -> tuple[gr.Dropdown, gr.Code, gr.Textbox, gr.Button]:
    presets = config_presets()
    default = TINY_PRESET if TINY_PRESET in presets or not presets else presets[0]
    with gr.Row():
        preset = gr.Dropdown(presets, value=default if presets else None, label="Config preset", scale=2)
        load_btn = gr.Button("Load preset", size="sm", scale=0)
    text = (CONFIGS_DIR / f"{default}.yaml").read_text() if presets else ""
    config = gr.Code(text, language="yaml", label="Config (editable; this is what runs)", lines=12, interactive=True)
    overrides = gr.Textbox(label="Overrides (key=value per line)", lines=2, placeholder="optim.max_steps=8")
    launch_btn = gr.Button("Launch training", variant="primary", elem_id="admin-launch")
    load_btn.click(bind(load_preset, ctx), preset, config, api_visibility="private")
    preset.change(bind(load_preset, ctx), preset, config, api_visibility="private")
    return preset, config, overrides, launch_btn


def build_admin_tab(ctx: AppContext) -> gr.Tab:
    """The tab, hidden until the page knows an admin asks (ui.layout.whoami shows it; Gradio 6 cannot hide a
    tab header once shown)."""
    with gr.Tab("Admin", id="admin", visible=False) as tab:
        gr.Markdown(device_note(), elem_id="admin-device")
        mine = build_mine_panel(ctx)
        build_queue_panel(ctx)
        preset, config, overrides, launch_btn = _launch_panel(ctx)
        with gr.Row():
            run_id = gr.Number(label="Run id", precision=0, elem_id="admin-run-id")
            refresh_btn = gr.Button("Refresh", size="sm")
            cancel_btn = gr.Button("Cancel run", size="sm", variant="stop")
            resume_btn = gr.Button("Resume run", size="sm")
        status = gr.Markdown(elem_id="admin-status")
        with gr.Row():
            # The titles are in the figures: a component label would sit on top of the plot.
            loss = gr.Plot(label=CURVE_TITLES["loss"], show_label=False, elem_id="admin-loss")
            margins = gr.Plot(label=CURVE_TITLES["margin"], show_label=False, elem_id="admin-margins")
        history = gr.Dataframe(
            headers=HISTORY_COLUMNS, label="Run history", interactive=False, wrap=True, elem_id="admin-history"
        )
        report_folder = build_report_panel(ctx)
        timer = gr.Timer(POLL_SECONDS, active=False)
        watched = [status, loss, margins, history]

        launch_btn.click(
            bind(launch_training, ctx),
            [preset, config, overrides],
            [status, run_id, timer],
            api_name="launch_training",
        )
        refresh_btn.click(bind(training_status, ctx), run_id, watched, api_name="training_status")
        timer.tick(bind(poll, ctx), run_id, [*watched, timer], api_visibility="private")
        cancel_btn.click(bind(cancel_run, ctx), run_id, status, api_name="cancel_training")
        resume_btn.click(bind(resume_run, ctx), run_id, [status, timer], api_name="resume_training")
        # Opening the tab shows the history and the newest run at once (no Refresh needed), and the reports.
        tab.select(bind(open_tab, ctx), run_id, [run_id, *watched, timer], api_visibility="private")
        tab.select(bind(list_reports, ctx), None, report_folder, api_visibility="private")
        planner, plan_ins, plan = mine["plan"]  # the mining plan with its time, and a run started earlier
        tab.select(planner, plan_ins, plan, api_visibility="private")
        status, watched_mine = mine["status"]
        tab.select(status, None, watched_mine, api_visibility="private")
    return tab
