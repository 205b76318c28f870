"""The Table-3 report of engine.t2v.evaluate: means per dimension and prompt source, markdown and CSV files.

table3.md: the sample draw (seed and ids), the table (rows = dimensions, columns = short / base / trained; each
VBench row labelled "VBench's code", "substitute" or "absent"), one line naming the dimensions VBench's code did
not score and where their weights go, cut and skipped prompts, timings, then one line per sample with its three
clips linked (paths relative to the report, so the folder can be moved or zipped). table3.csv: the same table,
with a `scorer` column. clips.csv: one row per clip.
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
    from engine.t2v.vbench_dims import Route

SOURCE_HEADERS = {"short": "Short prompt", "base": "Base", "trained": "Trained"}
QUALITY_KEYS = (
    "subject_consistency",
    "temporal_smoothness",
    "flicker_mad",
    "motion_mean_flow",
    "dynamic",
    "motion_smoothness",
)

#: (key, label, scorer, value of a made clip or None); scorer: "vbench", "substitute", "absent" or "ours"
#: (a measurement of this project's that VBench does not have).
Dimension = tuple[str, str, str, Callable[[ClipRow], float | None]]


def _quality(key: str) -> Callable[[ClipRow], float | None]:
    def value(row: ClipRow) -> float | None:
        v = row.quality.get(key)
        return None if v is None else float(v)  # dynamic: True/False -> 1/0, so its mean is a share of clips

    return value


def _consistency(name: str) -> Callable[[ClipRow], float | None]:
    return lambda row: row.consistency.get(name)


def _vbench(key: str) -> Callable[[ClipRow], float | None]:
    return lambda row: row.vbench.get(key)


def _routed(route: Route) -> Callable[[ClipRow], float | None]:
    """A VBench row's value: VBench's code's, our substitute's, or none."""
    if route.kind == "vbench":
        return _vbench(route.dimension.key)
    if route.kind == "substitute" and route.dimension.substitute_key:
        return _quality(route.dimension.substitute_key)
    return lambda row: None


def dimensions(evaluators: list[str], routes: list[Route]) -> list[Dimension]:
    """The table's rows, in order: consistency, Table 3's VBench dimensions in the paper's order, the extra
    VBench row (temporal flickering), then our own measurements."""
    dims: list[Dimension] = [
        (
            f"consistency:{e}",
            f"Consistency with the short prompt: {get_preset(e).label} (100 × cos)",
            "ours",
            _consistency(e),
        )
        for e in evaluators
    ]
    mean = "Consistency with the short prompt: mean of the evaluators"
    dims.append(("consistency:mean", mean, "ours", _consistency("mean")))
    ordered = [r for r in routes if r.dimension.table3] + [r for r in routes if not r.dimension.table3]
    dims += [(r.dimension.key, r.label, r.kind, _routed(r)) for r in ordered]
    flicker = "Flicker: mean absolute difference of consecutive frames (0-255)"
    dims += [
        ("flicker_mad", flicker, "ours", _quality("flicker_mad")),
        ("motion_mean_flow", "Motion: mean Farneback flow (px per frame)", "ours", _quality("motion_mean_flow")),
        ("prompt_words", "Prompt length read by the T2V model (words)", "ours", _prompt_words),
    ]
    return dims


def _prompt_words(row: ClipRow) -> float:
    return float(len(row.prompt.split()))


def summarise(rows: list[ClipRow], evaluators: list[str], routes: list[Route]) -> dict[str, dict[str, float | None]]:
    """Dimension key -> source -> mean over the clips made (None: no clip has a value); plus "clips": counts."""
    summary: dict[str, dict[str, float | None]] = {}
    for key, _, _, value in dimensions(evaluators, routes):
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
    one_decimal = key.startswith("consistency") or key in ("prompt_words", "imaging_quality")  # imaging: 0-100
    return f"{value:.1f}" if one_decimal else f"{value:.3f}"


def _md(text: str, limit: int = 90) -> str:
    """A table cell: one line, pipes escaped, cut with an ellipsis."""
    value = " ".join(text.split())
    value = value if len(value) <= limit else value[: limit - 1].rstrip() + "…"
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def table_rows(result: VideoEvalResult) -> list[tuple[str, str, str, list[str]]]:
    """(key, label, scorer, formatted cells per source) of every row, the clip counts last."""
    dims = [(k, label, kind) for k, label, kind, _ in dimensions(list(result.config.evaluators), result.routes)]
    dims.append(("clips", "Clips made", "ours"))
    return [(k, label, kind, [_cell(result.summary[k][s], k) for s in SOURCES]) for k, label, kind in dims]


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
        f"T2V model **{_md(result.t2v_label)}**, seed {config.seed} for every clip; {_draw_line(result, samples)}",
        "",
        "| Dimension | " + " | ".join(headers) + " |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {_md(label, 300)} | " + " | ".join(cells) + " |" for _, label, _, cells in table_rows(result)]
    lines += ["", *_notes(result), "", "## Clips", "", *_clip_lines(result)]
    return "\n".join(lines)


def _draw_line(result: VideoEvalResult, samples: int) -> str:
    draw, split = result.draw, _md(result.config.split)
    if not draw:
        return f"{samples} sample(s) of split `{split}`."
    how = "all" if samples == draw["pool"] else "drawn at random from"
    ids = ", ".join(str(i) for i in draw["ids"])
    return (
        f"{samples} sample(s) {how} the {draw['pool']} with a short prompt in split `{split}` "
        f"(sample seed {draw['sample_seed']}; ids {ids}; samples.json)."
    )


def _notes(result: VideoEvalResult) -> list[str]:
    rows, seconds = result.rows, result.seconds
    notes = [
        "Consistency: each clip against the SHORT prompt (what was asked for), whatever prompt made it; mean of "
        "100 × cosine over the clips. VBench's code reads each clip file as `vbench evaluate` does; the "
        "substitutes (engine/t2v/quality.py) are this project's, not VBench's, and each row says how it differs.",
    ]
    if result.vbench_missing:
        notes.append(result.vbench_missing)
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
    table = [["key", "dimension", *SOURCES, "scorer"]]
    for key, label, kind, _ in table_rows(result):
        values = ["" if (v := result.summary[key][s]) is None else f"{v:.6g}" for s in SOURCES]
        table.append([key, label, *values, kind])
    _write(files["table_csv"], lambda fh: csv.writer(fh).writerows(table))
    _write(files["clips_csv"], lambda fh: csv.writer(fh).writerows(clip_table(result)))
    result.files = {k: str(v) for k, v in files.items()}
    return result.files


def clip_table(result: VideoEvalResult) -> list[list[Any]]:
    evaluators = [*result.config.evaluators, "mean"]
    head = ["sample_id", "source", "model", "seed", "status", "reused", "clip", "prompt", "short_prompt"]
    vbench = [r.dimension.key for r in result.routes if r.kind == "vbench"]
    rows: list[list[Any]] = [
        [*head, *(f"consistency:{e}" for e in evaluators), *QUALITY_KEYS, *(f"vbench:{k}" for k in vbench)]
    ]
    for r in result.rows:
        base = [r.sample_id, r.source, r.model, r.seed, r.status, r.reused, r.clip or "", r.prompt, r.short_prompt]
        scores = [r.consistency.get(e, "") for e in evaluators]
        ours = [r.quality.get(k, "") for k in QUALITY_KEYS]
        rows.append([*base, *scores, *ours, *(r.vbench.get(k, "") for k in vbench)])
    return rows


def _write(path: Path, fill: Callable[[Any], Any]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        fill(fh)
