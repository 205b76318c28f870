"""The Table-3 report of engine.t2v.evaluate: means per dimension and prompt source, markdown and CSV files.

table3.md: the table (rows = dimensions, columns = short / base / trained), what each row measures, cut and
skipped prompts, timings, then one line per sample with its three clips linked (paths relative to the report,
so the folder can be moved or zipped). table3.csv: the same table. clips.csv: one row per clip.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotations.files import atomic_path
from engine.evaluators.registry import get_preset
from engine.t2v.eval_config import SOURCES, ClipRow, VideoEvalResult
from engine.t2v.presets import RANDOM_WEIGHTS_LABEL

if TYPE_CHECKING:
    from engine.t2v.backend import T2VPipeline

SOURCE_HEADERS = {"short": "Short prompt", "base": "Base", "trained": "Trained"}
QUALITY_KEYS = ("subject_consistency", "temporal_smoothness", "flicker_mad", "motion_mean_flow", "dynamic")

#: (key, label, value of a made clip or None)
Dimension = tuple[str, str, Callable[[ClipRow], float | None]]


def _quality(key: str) -> Callable[[ClipRow], float | None]:
    def value(row: ClipRow) -> float | None:
        v = row.quality.get(key)
        return None if v is None else float(v)  # dynamic: True/False -> 1/0, so its mean is a share of clips

    return value


def _consistency(name: str) -> Callable[[ClipRow], float | None]:
    return lambda row: row.consistency.get(name)


def dimensions(evaluators: list[str], subject: str | None) -> list[Dimension]:
    """The table's rows, in order."""
    dims: list[Dimension] = [
        (f"consistency:{e}", f"Consistency with the short prompt: {get_preset(e).label} (100 × cos)", _consistency(e))
        for e in evaluators
    ]
    mean = "Consistency with the short prompt: mean of the evaluators"
    dims.append(("consistency:mean", mean, _consistency("mean")))
    if subject is not None:
        label = f"Subject consistency ({get_preset(subject).label} frame features; 1 = the same subject throughout)"
        dims.append(("subject_consistency", label, _quality("subject_consistency")))
    dims += [
        ("temporal_smoothness", "Temporal flickering (1 − flicker/255; 1 = steady)", _quality("temporal_smoothness")),
        ("flicker_mad", "Flicker: mean absolute difference of consecutive frames (0-255)", _quality("flicker_mad")),
        ("motion_mean_flow", "Motion: mean optical flow (px per frame)", _quality("motion_mean_flow")),
        ("dynamic_degree", "Dynamic degree (share of clips that move, VBench's rule)", _quality("dynamic")),
        ("prompt_words", "Prompt length read by the T2V model (words)", lambda r: float(len(r.prompt.split()))),
    ]
    return dims


def summarise(rows: list[ClipRow], evaluators: list[str], subject: str | None) -> dict[str, dict[str, float | None]]:
    """Dimension key -> source -> mean over the clips made (None: no clip has a value); plus "clips": counts."""
    summary: dict[str, dict[str, float | None]] = {}
    for key, _, value in dimensions(evaluators, subject):
        summary[key] = {}
        for source in SOURCES:
            values = [v for r in rows if r.source == source and r.made and (v := value(r)) is not None]
            summary[key][source] = sum(values) / len(values) if values else None
    summary["clips"] = {s: float(sum(r.made and r.source == s for r in rows)) for s in SOURCES}
    return summary


def t2v_label(pipeline: T2VPipeline) -> str:
    return f"{pipeline.name} ({RANDOM_WEIGHTS_LABEL})" if pipeline.random_weights else pipeline.name


def _cell(value: float | None, key: str) -> str:
    if value is None or math.isnan(value):
        return "–"
    if key == "clips":
        return f"{value:.0f}"
    return f"{value:.1f}" if key.startswith("consistency") or key == "prompt_words" else f"{value:.3f}"


def _md(text: str, limit: int = 90) -> str:
    """A table cell: one line, pipes escaped, cut with an ellipsis."""
    value = " ".join(text.split())
    value = value if len(value) <= limit else value[: limit - 1].rstrip() + "…"
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def table_rows(result: VideoEvalResult) -> list[tuple[str, str, list[str]]]:
    """(key, label, formatted cells per source) of every row, the clip counts last."""
    dims = [(k, label) for k, label, _ in dimensions(list(result.config.evaluators), result.subject_evaluator)]
    dims.append(("clips", "Clips made"))
    return [(k, label, [_cell(result.summary[k][s], k) for s in SOURCES]) for k, label in dims]


def markdown(result: VideoEvalResult) -> str:
    config = result.config
    samples = len({r.sample_id for r in result.rows})
    headers = [
        SOURCE_HEADERS["short"],
        f"{SOURCE_HEADERS['base']} ({_md(config.base, 40)})",
        f"{SOURCE_HEADERS['trained']} ({_md(config.trained, 40)})",
    ]
    lines = [
        "# Table 3: videos from the short, base and trained prompts (paper section 4.5)",
        "",
        f"T2V model **{_md(result.t2v_label)}**, seed {config.seed} for every clip, {samples} sample(s) of split "
        f"`{_md(config.split)}`.",
        "",
        "| Dimension | " + " | ".join(headers) + " |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for _, label, cells in table_rows(result)]
    lines += ["", *_notes(result), "", "## Clips", "", *_clip_lines(result)]
    return "\n".join(lines)


def _notes(result: VideoEvalResult) -> list[str]:
    rows, seconds = result.rows, result.seconds
    notes = [
        "Consistency: each clip against the SHORT prompt (what was asked for), whatever prompt made it; mean of "
        "100 × cosine over the clips. Quality dimensions on every clip subsampled to about 8 fps, as VBench does "
        "(engine/t2v/quality.py: Farneback flow instead of RAFT, a CLIP-style image tower instead of DINO).",
    ]
    if result.subject_evaluator is None:
        notes.append("Subject consistency left out: no evaluator here encodes frames one by one.")
    cut = [r for r in rows if r.status.startswith("cut")]
    skipped = [r for r in rows if r.status.startswith("skipped")]
    if cut:
        notes.append(f"{len(cut)} prompt(s) cut to the T2V text encoder's limit (" + _by_source(cut) + ").")
    if skipped:
        notes.append(f"{len(skipped)} clip(s) not made (" + _by_source(skipped) + "); see clips.csv.")
    reused = sum(r.reused for r in rows)
    notes.append(
        f"Time: prompts {seconds['prompts']:.1f} s, clips {seconds['clips']:.1f} s ({reused} of {len(rows)} reused "
        f"from an earlier run), scores {seconds['scores']:.1f} s; {seconds['per_sample']:.2f} s per sample."
    )
    return [f"- {n}" for n in notes]


def _by_source(rows: list[ClipRow]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.source] = counts.get(r.source, 0) + 1
    return ", ".join(f"{source} {n}" for source, n in counts.items())


def _clip_lines(result: VideoEvalResult) -> list[str]:
    by_sample: dict[int, dict[str, ClipRow]] = {}
    for r in result.rows:
        by_sample.setdefault(r.sample_id, {})[r.source] = r
    head = "| Sample | Short prompt | " + " | ".join(f"Clip: {s}" for s in SOURCES) + " |"
    lines = [head, "|---|---|---|---|---|"]
    for sample_id, clips in by_sample.items():
        short = next(iter(clips.values())).short_prompt
        cells = [_clip_cell(clips.get(s)) for s in SOURCES]
        lines.append(f"| {sample_id} | {_md(short, 60)} | " + " | ".join(cells) + " |")
    return lines


def _clip_cell(row: ClipRow | None) -> str:
    if row is None or row.clip is None:
        return "not made" if row is None else _md(row.status, 60)
    mark = " (cut)" if row.status.startswith("cut") else ""
    return f"[{Path(row.clip).name}]({row.clip}){mark}"


def write_report(result: VideoEvalResult) -> dict[str, str]:
    """table3.md, table3.csv and clips.csv in the report folder, each written whole (temp file + rename)."""
    out = Path(result.config.out_dir).expanduser()
    result.markdown = markdown(result)
    files = {"table_md": out / "table3.md", "table_csv": out / "table3.csv", "clips_csv": out / "clips.csv"}
    _write(files["table_md"], lambda fh: fh.write(result.markdown + "\n"))
    table = [["key", "dimension", *SOURCES]]
    for key, label, _ in table_rows(result):
        table.append([key, label, *("" if (v := result.summary[key][s]) is None else f"{v:.6g}" for s in SOURCES)])
    _write(files["table_csv"], lambda fh: csv.writer(fh).writerows(table))
    _write(files["clips_csv"], lambda fh: csv.writer(fh).writerows(clip_table(result)))
    result.files = {k: str(v) for k, v in files.items()}
    return result.files


def clip_table(result: VideoEvalResult) -> list[list[Any]]:
    evaluators = [*result.config.evaluators, "mean"]
    head = ["sample_id", "source", "model", "seed", "status", "reused", "clip", "prompt", "short_prompt"]
    rows: list[list[Any]] = [[*head, *(f"consistency:{e}" for e in evaluators), *QUALITY_KEYS]]
    for r in result.rows:
        base = [r.sample_id, r.source, r.model, r.seed, r.status, r.reused, r.clip or "", r.prompt, r.short_prompt]
        scores = [r.consistency.get(e, "") for e in evaluators]
        rows.append([*base, *scores, *(r.quality.get(k, "") for k in QUALITY_KEYS)])
    return rows


def _write(path: Path, fill: Callable[[Any], Any]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        fill(fh)
