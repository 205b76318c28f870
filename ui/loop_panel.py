"""The Admin tab's loop panel: mine preference pairs for imported samples (with a progress bar), and read
the report of a finished loop run (training/loop.py's folder: report.md with Table 1, PNG curves, CSVs).

Admin only: every handler checks the role itself. Mining runs `python -m engine mine-pairs` (the Studio's
`mine` verb, the one road) as its own process (ui.mining), off Gradio's request queue: the button returns at
once, a timer polls the progress, Stop ends the process; the plan says how long it will take before it starts.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr

from engine.errors import StudioError
from engine.evaluators.registry import TINY_EVALUATORS
from ui.common import AppContext, bind, model_choices, stage_media
from ui.mining import MiningRun, duration
from ui.render import md_text

TASK_CHOICES = [("1 · video", 1), ("2 · video + caption", 2), ("3 · short prompt", 3)]
REPORT_FILE = "report.md"
#: How deep under a runs folder a loop report may sit (runs/<loop>/report/report.md).
REPORT_DEPTH = 3
DEFAULT_POLICY = "the policy of configs/hdpo.yaml"
#: Seconds between two looks at a mining run's progress.
POLL_SECONDS = 2.0

# -- mining -------------------------------------------------------------------------------------------


def mining_config(tasks: list[int], model: str, evaluators: list[str], split: str, limit: float, beams, rejected):
    """The MiningConfig the form describes (its checks give the one-line errors)."""
    from engine.mining import MiningConfig

    if not tasks:
        raise gr.Error("pick at least one task to mine")
    return MiningConfig(
        tasks=tuple(int(t) for t in tasks),
        num_beams=int(beams),
        num_rejected=int(rejected),
        model=(model or "").strip() or None,
        evaluators=tuple(evaluators or ()),
        split=None if split == "all" else split,
        limit=int(limit) if limit else None,
    )


def mining_summary(report: Any) -> str:
    """A mining report in words, with what to do next."""
    lines = [
        f"✅ Mined **{report.mined}** of {report.items} (sample, task) item(s): **{report.pairs_written}** new "
        f"pair(s) written."
    ]
    skipped = []
    if report.skipped_done:
        skipped.append(f"{report.skipped_done} already mined")
    if report.skipped_unusable:
        skipped.append(f"{report.skipped_unusable} lacking what the task needs (a video, or a short prompt)")
    if skipped:
        lines.append(f"Skipped: {'; '.join(skipped)}.")
    if report.short_of_rejected:
        lines.append(f"⚠️ {report.short_of_rejected} item(s) had fewer rankable rejected candidates than asked.")
    if report.unparsed_judgements:
        lines.append(f"⚠️ the judge gave no readable score {report.unparsed_judgements} time(s).")
    lines += [f"- {md_text(n)}" for n in report.notes[:10]]
    if report.pairs_written:
        lines.append(
            "**Next:** the pairs are in the **Label** queue; once labelled (or as mined), launch training below."
        )
    elif not report.items:
        lines.append("**Next:** no sample matches: import samples (Data tab → Import), or pick split *all*.")
    return "\n\n".join(lines)


def _judge_model(ctx: AppContext) -> str | None:
    config = getattr(ctx.studio, "config", None)
    return (config.judge_model or config.text_model) if config is not None else None


def mining_plan(
    ctx: AppContext,
    tasks: list[int],
    model: str,
    evaluators: list[str],
    split: str,
    limit: float,
    beams: float,
    rejected: float,
    request: gr.Request,
) -> str:
    """Admin: what Mine pairs would do now and how long it will take, before it starts."""
    ctx.require_admin(request)
    try:
        config = mining_config(tasks, model, evaluators, split, limit, beams, rejected)
    except (gr.Error, StudioError) as exc:  # the form is being filled in: say what is missing, no error box
        return f"Plan: {md_text(getattr(exc, 'message', exc))}"
    assert ctx.mining is not None
    return f"Plan: {ctx.mining.plan(ctx.db, config).line()}"


def mine_pairs(
    ctx: AppContext,
    tasks: list[int],
    model: str,
    evaluators: list[str],
    split: str,
    limit: float,
    beams: float,
    rejected: float,
    request: gr.Request,
) -> tuple[str, gr.Button, gr.Button, gr.Timer]:
    """Admin: start mining preference pairs for the stored samples (paper sections 3.4-3.5) in its own process
    and return at once (status, Mine button, Stop button, the poll timer); `mining_status` follows it."""
    user = ctx.require_admin(request)
    config = mining_config(tasks, model, evaluators, split, limit, beams, rejected)
    assert ctx.mining is not None
    run = ctx.mining.start(ctx.db, config, user.name, _judge_model(ctx))
    return (run_markdown(run), *_mine_buttons(running=True), gr.Timer(active=True))


def mining_status(ctx: AppContext, request: gr.Request) -> tuple[Any, gr.Button, gr.Button, gr.Timer]:
    """Admin: the mining run's progress (the timer's tick, and the tab opening): status, buttons, timer."""
    ctx.require_admin(request)
    assert ctx.mining is not None
    run = ctx.mining.current()
    if run is None:
        return (gr.skip(), *_mine_buttons(running=False), gr.Timer(active=False))
    running = run.status == "running"
    return (run_markdown(run), *_mine_buttons(running), gr.Timer(active=running))


def stop_mining(ctx: AppContext, request: gr.Request) -> gr.Button:
    """Admin: end the mining process; what it mined is kept (a new run skips it)."""
    ctx.require_admin(request)
    assert ctx.mining is not None
    ctx.mining.stop()
    return gr.Button(interactive=False, value="Stopping…")


def _mine_buttons(running: bool) -> tuple[gr.Button, gr.Button]:
    mine = gr.Button(interactive=not running, value="Mining…" if running else "Mine pairs")
    return mine, gr.Button(visible=running, interactive=running, value="⏹ Stop mining")


def run_markdown(run: MiningRun) -> str:
    """A mining run in words: progress and time left while it runs, then its result."""
    head = f"Mining run #{run.id} (started by {md_text(run.started_by)})"
    if run.status == "finished":
        assert run.report is not None
        return f"{mining_summary(SimpleNamespace(**run.report))}\n\n{head} took {duration(run.seconds())}."
    progress = run.progress()
    where = f"{progress[0]} / {progress[1]} items" if progress else "starting"
    if run.status == "stopped":
        return f"⏹ {head} stopped at {where}; what it mined is kept (a new run skips it)."
    if run.status == "failed":
        return f"⛔ {head} failed: {md_text(run.error or 'no reason given')}"
    if progress is None:
        timing = "loading models…"
    else:
        timing = f"{progress[2]} elapsed, about {progress[3]} left" if progress[3] != "?" else f"{progress[2]} elapsed"
    return (
        f"⛏ {head}: **{where}** · {timing}. It runs in its own process: labelling and the demo go on meanwhile."
        f"\n\n{run.plan.line()}"
    )


# -- loop reports ----------------------------------------------------------------------------------------


def report_folders(ctx: AppContext) -> list[Path]:
    """Folders holding a loop report: under the runs folders of known training runs and ./runs, newest first."""
    roots = {Path.cwd() / "runs"}
    for run in ctx.jobs.history(100):
        if run.get("log_path"):
            roots.add(Path(run["log_path"]).parent.parent)
    found = {
        report.parent.resolve()
        for root in roots
        if root.is_dir()
        for depth in range(1, REPORT_DEPTH + 1)
        for report in root.glob("/".join(["*"] * depth) + f"/{REPORT_FILE}")
    }
    return sorted(found, key=lambda p: (p / REPORT_FILE).stat().st_mtime, reverse=True)


def list_reports(ctx: AppContext, request: gr.Request) -> gr.Dropdown:
    """Admin: the report folders found, newest first (the dropdown's choices)."""
    ctx.require_admin(request)
    folders = [str(p) for p in report_folders(ctx)]
    return gr.Dropdown(choices=folders, value=folders[0] if folders else None)


def show_report(ctx: AppContext, folder: str | None, request: gr.Request) -> tuple[str, list, str]:
    """Admin: one report folder as (report.md, its PNG curves, the list of its files)."""
    ctx.require_admin(request)
    if not folder:
        return "No loop report yet: run the whole loop (`python -m training loop …`) and it appears here.", [], ""
    path = Path(folder)
    if path not in report_folders(ctx):  # only folders this app found: no reading elsewhere
        raise gr.Error("that report folder is not one of the runs' report folders: press Refresh and pick one")
    text = (path / REPORT_FILE).read_text(encoding="utf-8", errors="replace")
    pictures = [(stage_media(png, ctx.work_dir), png.stem) for png in sorted(path.glob("*.png"))]
    files = ", ".join(f"`{md_text(f.name)}`" for f in sorted(path.iterdir()) if f.is_file())
    return text, [p for p in pictures if p[0]], f"Folder `{md_text(path)}` holds: {files}."


# -- layout ------------------------------------------------------------------------------------------------


def build_mine_panel(ctx: AppContext) -> dict[str, Any]:
    """The mining accordion; returns what the Admin tab refreshes when it opens (the plan and a run's status)."""
    with gr.Accordion("Mine pairs for imported samples", open=False):
        gr.Markdown(
            "Beam search with the policy model, candidates scored by the evaluators (the judge for text-only "
            "samples); the lowest become rejected responses. Items already mined are skipped. Mining runs in its "
            "own process: labelling and the demo go on while it works."
        )
        with gr.Row():
            tasks = gr.CheckboxGroup(TASK_CHOICES, value=[1, 2, 3], label="Tasks")
            split = gr.Dropdown(["train", "test", "all"], value="train", label="Split")
            limit = gr.Number(value=0, precision=0, minimum=0, label="At most N samples (0 = all)")
        with gr.Row():
            model = gr.Dropdown(
                ["", *model_choices(ctx.studio, False)],
                value="",
                allow_custom_value=True,
                label="Model (empty: " + DEFAULT_POLICY + ")",
                elem_id="admin-mine-model",
            )
            names = list(ctx.studio.config.evaluators)
            evaluators = gr.Dropdown(
                [*names, *TINY_EVALUATORS],
                value=[n for n in names if ctx.studio.evaluator_status(n)[0]],  # those with weights here
                multiselect=True,
                label="Evaluators (for samples with a video)",
                elem_id="admin-mine-evaluators",
            )
        with gr.Row():
            beams = gr.Slider(2, 8, value=5, step=1, label="Beams (candidates)")
            rejected = gr.Slider(1, 4, value=2, step=1, label="Rejected per sample")
        plan = gr.Markdown(elem_id="admin-mine-plan")
        with gr.Row():
            mine_btn = gr.Button("Mine pairs", variant="primary", elem_id="admin-mine", scale=3)
            stop_btn = gr.Button("⏹ Stop mining", variant="stop", visible=False, elem_id="admin-mine-stop", scale=1)
        result = gr.Markdown(elem_id="admin-mine-result")
        timer = gr.Timer(POLL_SECONDS, active=False)
        ins = [tasks, model, evaluators, split, limit, beams, rejected]
        watched = [result, mine_btn, stop_btn, timer]
        mine_btn.click(bind(mine_pairs, ctx), ins, watched, api_name="mine_pairs", concurrency_limit=1)
        timer.tick(bind(mining_status, ctx), None, watched, api_visibility="private")
        stop_btn.click(bind(stop_mining, ctx), None, stop_btn, api_visibility="private")
        planner = bind(mining_plan, ctx)
        for box in (tasks, model, evaluators, split, limit, rejected):
            box.change(planner, ins, plan, api_visibility="private", trigger_mode="always_last", concurrency_limit=1)
    return {"plan": (planner, ins, plan), "status": (bind(mining_status, ctx), watched)}


def build_report_panel(ctx: AppContext) -> gr.Dropdown:
    """The loop report viewer; returns its folder picker (the tab refreshes it when opened)."""
    with gr.Accordion("Loop report of a finished run", open=False):
        with gr.Row():
            folder = gr.Dropdown([], label="Report folder", scale=4, elem_id="admin-report-folder")
            refresh = gr.Button("Refresh", size="sm", scale=0)
        text = gr.Markdown(elem_id="admin-report")
        curves = gr.Gallery(
            label="Curves", columns=2, height="auto", object_fit="contain", elem_id="admin-report-curves"
        )
        files = gr.Markdown(elem_id="admin-report-files")
        refresh.click(bind(list_reports, ctx), None, folder, api_visibility="private")
        folder.change(bind(show_report, ctx), folder, [text, curves, files], api_visibility="private")
    return folder
