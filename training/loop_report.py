"""The loop's report folder: what the run did and what it gained, in files a person (or the Admin tab) reads.

<out>/report/
    report.md     Table 1 (base vs trained), data counts, training summary, wall time per stage
    table1.csv    the same Table 1: one row per model plus the difference (trained - base)
    loss.png      loss per HDPO term over the optimizer steps
    margin.png    reward margin r(preferred) - r(dispreferred) per HDPO term
    loop.yaml     the exact loop config; train.yaml the exact training config the run used
    state.json    every stage's counts and seconds
Written into a temporary folder and renamed, so a reader never sees half a report.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from annotations.files import atomic_dir
from engine.hallucination.pairs import TERMS
from training.loop_config import LoopRun
from training.metrics import read_metrics
from training.stand_ins import stand_in_line


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def table_rows(summary: dict[str, dict[str, float | None]], models: dict[str, str]) -> tuple[list[str], list[list]]:
    """(headers, rows): one row per evaluated model (base, sft, trained; label -> model), then the last
    one minus base for each Table-1 column."""
    cols = {label: summary.get(model, {}) for label, model in models.items()}
    headers = list(next((c for c in cols.values() if c), {}))
    rows = [[f"{label} ({_short(models[label])})", *(c.get(h) for h in headers)] for label, c in cols.items()]
    last = list(cols)[-1] if cols else "base"
    if last != "base" and "base" in cols:
        base, top = cols["base"], cols[last]
        rows.append(
            [
                f"{last} - base",
                *(_difference(top.get(h), base.get(h)) for h in headers),
            ]
        )
    return headers, rows


def _difference(value: float | None, base: float | None) -> float | None:
    return None if value is None or base is None else value - base


def _short(model: str) -> str:
    """A preset name as it is; a checkpoint's model folder as its step (step-000042)."""
    path = Path(model)
    return path.parent.name if path.name == "model" else model


def _markdown_table(headers: list[str], rows: list[list]) -> list[str]:
    lines = ["| Model | " + " | ".join(headers) + " |", "|---|" + "---:|" * len(headers)]
    return lines + ["| " + " | ".join([str(r[0]), *(_cell(v) for v in r[1:])]) + " |" for r in rows]


def plot_curves(metrics: list[dict[str, float]], suffix: str, title: str, path: Path) -> Path | None:
    """One line per HDPO term of `<term>/<suffix>` over the steps; None when nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    series = {t: [(m["step"], m[f"{t}/{suffix}"]) for m in metrics if f"{t}/{suffix}" in m] for t in TERMS}
    series = {t: pts for t, pts in series.items() if pts}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for term, points in series.items():
        ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=term.replace("_", " "))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("optimizer step")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _counts_lines(stages: dict[str, Any]) -> list[str]:
    lines = []
    for name in ("import", "teacher", "sft", "mine", "labels", "export", "train"):
        counts = stages.get(name, {}).get("counts")
        if counts:
            lines.append(f"- **{name}**: " + ", ".join(f"{k} {json.dumps(v, default=str)}" for k, v in counts.items()))
    return lines


def _stage_lines(stages: dict[str, Any]) -> list[str]:
    lines = ["| stage | seconds | attempts |", "|---|---:|---:|"]
    total = 0.0
    for name, record in stages.items():
        if name == "report":
            continue
        seconds = float(record.get("seconds", 0.0))
        total += seconds
        lines.append(f"| {name} | {seconds:.1f} | {record.get('attempts', 0)} |")
    return [*lines, f"| **total** | **{total:.1f}** | |"]


def _final_terms(metrics: list[dict[str, float]]) -> list[str]:
    if not metrics:
        return ["(no metrics logged)"]
    last = metrics[-1]
    return [
        f"- {t}: loss {last[f'{t}/loss']:.4f}, margin {last.get(f'{t}/margin', float('nan')):.4f}"
        for t in TERMS
        if f"{t}/loss" in last
    ]


def report_markdown(run: LoopRun, headers: list[str], rows: list[list], metrics: list[dict[str, float]]) -> str:
    stages = run.state.get("stages", {})
    evaluation = stages.get("evaluate", {}).get("counts", {})
    random = _random_note(run)
    stand_ins = stand_in_line(run.config.stand_in_notes)
    lines = [
        f"# Loop report: {run.config.name}",
        "",
        *([stand_ins, ""] if stand_ins else []),
        *([random, ""] if random else []),
        f"Policy (base): `{run.policy}`; training config `{run.config.train}`; database `{run.db_url}`.",
        "",
        f"## Table 1 ({run.config.evaluation.split} split)",
        "",
        *_markdown_table(headers, rows),
        "",
        "CLIP-style columns: mean of 100 × cosine(video, text) over the split's samples with a video; judge "
        "column: mean LLM-judge score (0-10) of the Task-3 outputs; faithful column: % of Task-3 outputs keeping "
        "every tagged element of the short prompt; – where nothing could be scored "
        f"({evaluation.get('rows', 0)} score rows; details in ../eval/).",
        "",
        f"## Training ({stages.get('train', {}).get('counts', {}).get('steps', 0)} steps): last step per HDPO term",
        "",
        *_final_terms(metrics),
        "",
        "Curves: loss.png, margin.png.",
        "",
        "## Data",
        "",
        *_counts_lines(stages),
        "",
        "## Wall time per stage",
        "",
        *_stage_lines(stages),
        "",
    ]
    return "\n".join(lines)


def _random_note(run: LoopRun) -> str | None:
    from engine.models import resolve

    if resolve(run.policy).random_weights:
        return f"**`{run.policy}` has random weights: this run checks the pipeline, not the method.**"
    return None


def write_report(run: LoopRun) -> Path:
    """Write <out>/report (via a temporary folder) and return it."""
    evaluation = run.stage("evaluate").get("counts", {})
    headers, rows = table_rows(evaluation.get("summary", {}), evaluation.get("models", {"base": ""}))
    metrics = read_metrics(run.out / ("train" if run.config.train is not None else "sft"))
    final = run.out / "report"
    with atomic_dir(final) as tmp:
        with open(tmp / "table1.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["model", *headers])
            writer.writerows([[r[0], *("" if v is None else f"{v:.4f}" for v in r[1:])] for r in rows])
        plot_curves(metrics, "loss", "HDPO loss per term", tmp / "loss.png")
        plot_curves(metrics, "margin", "reward margin per term (preferred - dispreferred)", tmp / "margin.png")
        (tmp / "loop.yaml").write_text(yaml.safe_dump(run.config.to_dict(), sort_keys=False), encoding="utf-8")
        train_yaml = run.out / "train" / "config.yaml"
        if train_yaml.is_file():
            shutil.copy(train_yaml, tmp / "train.yaml")
        state = json.dumps(run.state, indent=2, sort_keys=True, default=str)
        (tmp / "state.json").write_text(state, encoding="utf-8")
        (tmp / "report.md").write_text(report_markdown(run, headers, rows, metrics), encoding="utf-8")
    return final
