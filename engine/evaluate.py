"""The evaluation harness: Table 1 of the paper for one or more models on a split.

For every sample of the split and every task: one greedy generation per model; Tasks 1-2 are scored by
each CLIP-style evaluator (100 × cosine), Task 3 by the LLM judge (0-10; unparsed outputs are counted,
never scored). With two or more evaluators each video task also gets Table 2's "Averaged CLIP Score": the
arithmetic mean of that task's evaluator columns (paper: of CLIP, Long-CLIP and VideoCLIP-XL).
Writes `table.md` (the Table-1 layout plus the averaged columns, one row per model), `table.csv` (the same),
`scores.csv` (one row per model, sample, task, evaluator) and `scores.png` (score distributions).
The harness only reads the annotations database; every model call goes through the Studio's verbs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotations.files import atomic_write
from engine.errors import InputError
from engine.evaluators.registry import PAPER_EVALUATORS, get_preset
from engine.mining import JUDGE_SCORE, StudioVerbs, by_prompt_length, generation_budget, task_inputs
from engine.types import GenerationParams, Task

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from annotations.store import SampleInfo

JUDGE_LABEL = "Judge"
#: The Task-3 faithfulness column (engine.faithfulness): % of outputs keeping every tagged element.
FAITHFUL_SCORE = "faithfulness"
FAITHFUL_LABEL = "Faithful %"
TASK3_SCORERS = ("judge", "faithfulness")
#: The pseudo-evaluator of Table 2's "Averaged CLIP Score" column (no row carries it; summarise derives it).
AVERAGED = "averaged-clip"
AVERAGED_LABEL = "Averaged CLIP Score"
BUDGET_MARGIN, BUDGET_CAP, DEFAULT_BUDGET = 2.0, 512, 256  # the budget rule mining uses (engine.mining)


@dataclass
class EvalConfig:
    """Which models to compare, on which split, and where the outputs go."""

    models: tuple[str, ...] = ()
    """Models to compare (one table row each; at least one by the time it runs)."""
    out_dir: str = ""
    """Folder for table.md, table.csv, scores.csv, scores.png (set by the time it runs)."""
    split: str = "test"
    """Sample split to evaluate."""
    tasks: tuple[int, ...] = tuple(int(t) for t in Task)
    """Tasks (columns) to evaluate."""
    evaluators: tuple[str, ...] = PAPER_EVALUATORS
    """CLIP-style evaluators for Tasks 1-2."""
    judge_model: str | None = None
    """LLM judge for Task 3 (None: the Studio's judge model)."""
    limit: int | None = None
    """At most this many samples."""
    max_new_tokens: int | None = None
    """Fixed generation budget (None: covering each sample's teacher response, as mining does; 256 without one)."""
    task3_scorer: str = "judge"
    """Task-3 column: judge (the paper's LLM judge, 0-10) or faithfulness (% of outputs keeping every tagged
    element of the short prompt: the sample's stored tags, else the tags read off it; engine.faithfulness)."""
    batch: int = 1
    """Samples per generate call (one model and task per call; the budget is the largest of the call's)."""
    notes: tuple[str, ...] = ()
    """Lines printed above the table (e.g. which models stood in for the paper's)."""
    cache_dir: str | None = None
    """Greedy outputs of earlier runs with the same model (its folder's files), input and budget are read
    from here instead of generated again (loops that share a database share one); None: no cache."""

    def __post_init__(self) -> None:
        self.tasks = tuple(int(Task.parse(t)) for t in self.tasks)
        self.evaluators = tuple(self.evaluators)
        self.models = tuple(self.models)
        if self.task3_scorer not in TASK3_SCORERS:
            raise InputError(f"task3 scorer must be one of {', '.join(TASK3_SCORERS)}, got {self.task3_scorer!r}")
        if self.batch < 1:
            raise InputError(f"batch must be >= 1, got {self.batch}")


@dataclass
class ScoreRow:
    model: str
    sample_id: int
    task: int
    evaluator: str
    value: float | None
    text: str


@dataclass
class EvalResult:
    rows: list[ScoreRow]
    columns: list[tuple[int, str, str]]
    """(task, evaluator name, column header) in table order."""
    summary: dict[str, dict[str, float | None]]
    """model -> column header -> mean (None: nothing scored)."""
    markdown: str = ""
    files: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    """Lines shown above the table (EvalConfig.notes)."""

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "markdown": self.markdown, "files": self.files, "n_rows": len(self.rows)}


def table_columns(
    tasks: tuple[int, ...], evaluators: tuple[str, ...], task3_scorer: str = "judge"
) -> list[tuple[int, str, str]]:
    """(task, evaluator, header) per column: a video task's evaluators (then their average, with two or
    more: Table 2's column), the judge or the faithfulness column for Task 3."""
    cols = []
    for task in tasks:
        if Task(task).needs_video:
            cols += [(task, name, f"Task {task} {get_preset(name).label}") for name in evaluators]
            if len(evaluators) >= 2:
                cols.append((task, AVERAGED, f"Task {task} {AVERAGED_LABEL}"))
        elif task3_scorer == FAITHFUL_SCORE:
            cols.append((task, FAITHFUL_SCORE, f"Task {task} {FAITHFUL_LABEL}"))
        else:
            cols.append((task, JUDGE_SCORE, f"Task {task} {JUDGE_LABEL}"))
    return cols


def _label(evaluator: str) -> str:
    return {JUDGE_SCORE: JUDGE_LABEL, FAITHFUL_SCORE: FAITHFUL_LABEL}.get(evaluator) or get_preset(evaluator).label


class Harness:
    """Generates and scores through a Studio's verbs; reads the annotations database only."""

    def __init__(self, studio: StudioVerbs, db: Engine, config: EvalConfig) -> None:
        self.studio, self.db, self.config = studio, db, config

    def budget(self, model: str, sample: SampleInfo, task: Task) -> int:
        """The fixed budget, else one covering the sample's teacher response under `model`'s tokenizer
        (a budget shorter than the reference would cut every answer mid-sentence)."""
        from annotations.store import teacher_response

        if self.config.max_new_tokens is not None:
            return self.config.max_new_tokens
        teacher = teacher_response(self.db, sample.id, int(task))
        tokens = self.studio.count_tokens([teacher[1]], model=model, task=task)[0] if teacher else None
        return generation_budget(tokens, BUDGET_MARGIN, BUDGET_CAP, DEFAULT_BUDGET)

    def generate(self, model: str, sample: SampleInfo, task: Task, video: str | None, prompt: str | None) -> str:
        return self.generate_many(model, task, [(sample, video, prompt)])[0]

    def generate_many(
        self, model: str, task: Task, items: list[tuple[SampleInfo, str | None, str | None]]
    ) -> list[str]:
        """One greedy output per item, in one batched call (budget: the largest of the items'); outputs in
        the cache (EvalConfig.cache_dir) are read, not generated again."""
        params = GenerationParams(max_new_tokens=max(self.budget(model, s, task) for s, _, _ in items))
        cache = OutputCache(self.config.cache_dir, model, task, params.max_new_tokens)
        texts = [cache.get(v, p) for _, v, p in items]
        todo = [i for i, t in enumerate(texts) if t is None]
        if len(todo) == 1:
            _, video, prompt = items[todo[0]]
            texts[todo[0]] = self.studio.run_task(task, video, prompt, model=model, params=params)[0].text
        elif todo:
            outs = self.studio.run_tasks(task, [items[i][1:] for i in todo], model=model, params=params)
            for i, cands in zip(todo, outs, strict=True):
                texts[i] = cands[0].text
        for i in todo:
            cache.put(items[i][1], items[i][2], texts[i] or "")
        return [t or "" for t in texts]

    def task3_name(self) -> str:
        return FAITHFUL_SCORE if self.config.task3_scorer == FAITHFUL_SCORE else JUDGE_SCORE

    def score(self, model: str, sample: SampleInfo, task: Task, text: str) -> list[ScoreRow]:
        if not text.strip():  # an empty generation scores nothing; record it as unscored
            names = self.config.evaluators if task.needs_video else (self.task3_name(),)
            return [ScoreRow(model, sample.id, int(task), n, None, text) for n in names]
        if task.needs_video:
            assert sample.video is not None  # can_run let only samples with a video reach a video task
            row = self.studio.score(sample.video, [text], self.config.evaluators).rows[0]
            return [ScoreRow(model, sample.id, int(task), n, v, text) for n, v in row.scores.items()]
        if self.config.task3_scorer == FAITHFUL_SCORE:
            return [ScoreRow(model, sample.id, int(task), FAITHFUL_SCORE, self.faithful(sample, text), text)]
        verdict = self.studio.judge_many([text], model=self.config.judge_model)[0]
        return [ScoreRow(model, sample.id, int(task), JUDGE_SCORE, verdict.score, text)]

    def faithful(self, sample: SampleInfo, text: str) -> float:
        """100 when the text keeps every tagged element of the sample's short prompt, else 0."""
        from annotations.tags import tags_by_sample
        from engine.faithfulness import score_text
        from engine.faithfulness.rank import elements_for

        elements = elements_for(sample.short_prompt, tags_by_sample(self.db, [sample.id]).get(sample.id))
        return 100.0 * score_text(text, elements, sample.short_prompt).all_kept

    def run(self, progress: bool = True) -> EvalResult:
        from tqdm import tqdm

        if not self.config.models:
            raise InputError("evaluate needs at least one --model")
        from annotations.store import list_samples

        samples = list_samples(self.db, self.config.split, self.config.limit)
        if not samples:
            raise InputError(f"no samples in split {self.config.split!r}")
        if any(Task(t).needs_video for t in self.config.tasks):  # before any generation: fail fast
            self.studio.require_evaluators(self.config.evaluators)
        rows: list[ScoreRow] = []
        bar = tqdm(total=len(samples) * len(self.config.models), desc="evaluating", unit="item", disable=not progress)
        for model in self.config.models:
            for task in map(Task, self.config.tasks):
                items = [(s, *(task_inputs(s, task) or (None, None))) for s in samples if can_run(model, s, task)]
                if self.config.batch > 1:  # equal-length prompts side by side: no padding in a batched call
                    order = by_prompt_length(self.studio, model, task, [p for _, _, p in items])
                    items = [items[i] for i in order]
                for start in range(0, len(items), self.config.batch):
                    chunk = items[start : start + self.config.batch]
                    texts = self.generate_many(model, task, chunk)
                    for (sample, _, _), text in zip(chunk, texts, strict=True):
                        rows += self.score(model, sample, task, text)
            bar.update(len(samples))
        bar.close()
        columns = table_columns(self.config.tasks, self.config.evaluators, self.config.task3_scorer)
        return EvalResult(rows, columns, summarise(rows, columns, self.config.models), notes=self.config.notes)


class OutputCache:
    """Greedy outputs on disk, one JSON file per (model identity, its decoding, task, video, prompt, budget)."""

    def __init__(self, folder: str | None, model: str, task: Task, budget: int) -> None:
        from engine.models import decoding_identity

        self.folder = Path(folder) if folder else None
        self.head = [model_identity(model), decoding_identity(model), int(task), budget]

    def _path(self, video: str | None, prompt: str | None) -> Path | None:
        if self.folder is None:
            return None
        digest = hashlib.sha256(json.dumps([*self.head, video, prompt]).encode()).hexdigest()
        return self.folder / digest[:2] / f"{digest}.json"

    def get(self, video: str | None, prompt: str | None) -> str | None:
        path = self._path(video, prompt)
        if path is None or not path.is_file():
            return None
        try:
            return str(json.loads(path.read_text(encoding="utf-8"))["text"])
        except (OSError, ValueError, KeyError):
            return None  # a damaged entry is generated again

    def put(self, video: str | None, prompt: str | None, text: str) -> None:
        path = self._path(video, prompt)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps({"text": text}))


def model_identity(model: str) -> str:
    """A preset's name, or a folder's real path with the size and modification time of each of its files
    (a checkpoint written again under the same name is another model)."""
    path = Path(model)
    if not path.is_dir():
        return model
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return json.dumps([str(path.resolve()), [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]])


def can_run(model: str, sample: SampleInfo, task: Task) -> bool:
    """A text-only model has no column for Tasks 1-2 ("–"); a sample must have what the task reads."""
    from engine.models import resolve

    if task.needs_video and resolve(model).kind != "video":
        return False
    return task_inputs(sample, task) is not None


def summarise(rows: list[ScoreRow], columns: list[tuple[int, str, str]], models: tuple[str, ...]):
    """model -> header -> mean of the column's scored rows; an averaged column is the mean of its task's
    evaluator columns (None if any of them is None), as Table 2 averages Table 1's columns."""
    values: dict[tuple[str, int, str], list[float]] = defaultdict(list)
    for r in rows:
        if r.value is not None:
            values[(r.model, r.task, r.evaluator)].append(r.value)
    out = {m: {h: _mean(values.get((m, t, e), [])) for t, e, h in columns if e != AVERAGED} for m in models}
    for cols in out.values():
        for task, evaluator, header in columns:
            if evaluator == AVERAGED:
                parts = [
                    cols[h] for t, e, h in columns if t == task and e not in (AVERAGED, JUDGE_SCORE, FAITHFUL_SCORE)
                ]
                known = [v for v in parts if v is not None]
                cols[header] = _mean(known) if len(known) == len(parts) else None
    return {m: {h: out[m][h] for _, _, h in columns} for m in models}  # in column order


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _cell(value: float | None, digits: int) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def markdown_table(result: EvalResult) -> str:
    headers = [h for _, _, h in result.columns]
    counts = _counts(result.rows)
    lines = [*(f"{note}\n" for note in result.notes)]
    lines += ["| Model | " + " | ".join(headers) + " |", "|---|" + "---:|" * len(headers)]
    for model, cols in result.summary.items():
        cells = [_cell(cols[h], 2 if e == JUDGE_SCORE else 1) for _, e, h in result.columns]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    notes = [
        "",
        "CLIP-style columns: mean of 100 × cosine(video, text); judge column: mean LLM-judge score (0-10); "
        f"{FAITHFUL_LABEL}: outputs keeping every tagged element of the short prompt; "
        f"{AVERAGED_LABEL}: the mean of the task's CLIP-style columns (Table 2).",
        "Scored / unscored per model and column: "
        + "; ".join(f"{m} {h}: {ok}/{bad}" for (m, h), (ok, bad) in sorted(counts.items(), key=str) if h),
    ]
    return "\n".join(lines + notes)


def _counts(rows: list[ScoreRow]) -> dict[tuple[str, str], tuple[int, int]]:
    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        label = _label(r.evaluator)
        out[(r.model, f"T{r.task} {label}")][0 if r.value is not None else 1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def write_outputs(result: EvalResult, out_dir: str | Path) -> dict[str, str]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.markdown = markdown_table(result)
    files = {"table_md": out / "table.md", "table_csv": out / "table.csv", "scores_csv": out / "scores.csv"}
    files["table_md"].write_text(result.markdown + "\n")
    headers = [h for _, _, h in result.columns]
    with open(files["table_csv"], "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["model", *headers])
        for model, cols in result.summary.items():
            writer.writerow([model, *("" if cols[h] is None else f"{cols[h]:.4f}" for h in headers)])
    with open(files["scores_csv"], "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["model", "sample_id", "task", "evaluator", "value", "text"])
        for r in result.rows:
            writer.writerow([r.model, r.sample_id, r.task, r.evaluator, "" if r.value is None else r.value, r.text])
    files["plot_png"] = plot_distributions(result, out / "scores.png")
    result.files = {k: str(v) for k, v in files.items()}
    return result.files


def plot_distributions(result: EvalResult, path: Path) -> Path:
    """One panel per table column, one histogram per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [c for c in result.columns if c[1] != AVERAGED]  # per-sample scores exist for real columns only
    n = len(columns)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), squeeze=False)
    for ax, (task, evaluator, header) in zip(axes.flat, columns, strict=False):
        for model in result.summary:
            xs = [r.value for r in result.rows if (r.model, r.task, r.evaluator) == (model, task, evaluator)]
            xs = [x for x in xs if x is not None]
            if xs:
                ax.hist(xs, bins=min(20, max(3, len(xs))), alpha=0.5, label=model)
        ax.set_title(header, fontsize=9)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if axes.flat[0].get_legend_handles_labels()[0]:
        axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def evaluate(studio: StudioVerbs, db: Engine, config: EvalConfig, progress: bool = True) -> EvalResult:
    """Run the harness with a Studio's models and write its outputs (`Studio.evaluate` calls this)."""
    result = Harness(studio, db, config).run(progress=progress)
    write_outputs(result, config.out_dir)
    return result
