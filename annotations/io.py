"""Export preference pairs (TRL columns, JSONL / Parquet); sample import lives in annotations.importer.

Import (re-exported here: ``import_rows``, ``ImportReport``, ...): see :mod:`annotations.importer`.

Export orientation: pairs are stored chosen-first (a = preferred). Human votes override that:
skips are abstentions and do not count; among the remaining votes the plurality decides:
``a_better`` keeps the order, ``b_better`` flips it, and a plurality of ``tie`` / ``both_bad``
(or a draw between the top choices) drops the pair from the export. Nothing is deleted from
the database.

Export prompts: ``prompt`` / ``rejected_prompt`` are the instruction templates recorded in the
database (:mod:`annotations.instructions`) with ``{y_s}`` replaced by the short prompt; an export
whose pairs name a task without a recorded instruction fails before writing anything.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from annotations.db import describe_url, read_session
from annotations.errors import DiskFullError, StoreError, is_disk_full
from annotations.files import atomic_path

# Re-exported: callers import sample rows through annotations.io.
from annotations.import_report import BadRow, ImportReport
from annotations.import_videos import video_problem
from annotations.importer import ImportInterrupted, import_rows, validate_rows
from annotations.instructions import build_prompt, instructions, require_instructions
from annotations.models import Judgement, Pair, Response, Sample, stored_id
from annotations.samples import scores_for

__all__ = [
    "COLUMNS",
    "BadRow",
    "ExportReport",
    "ImportInterrupted",
    "ImportReport",
    "export_pairs",
    "human_verdict",
    "import_rows",
    "validate_rows",
    "video_problem",
]

CARD_MARKER = "<!-- written by python -m annotations export -->"

# --------------------------------------------------------------------------- export


@dataclass
class ExportReport:
    path: str
    card_path: str
    rows: int = 0
    flipped: int = 0  # pairs whose order human votes reversed
    by_task: dict[int, int] = field(default_factory=dict)
    by_term: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)  # reason -> pairs left out
    # Where `prompt` / `rejected_prompt` come from: the instruction templates recorded in the
    # database's task_instruction table (annotations.instructions), {y_s} = the short prompt.
    prompt_builder: str = "task_instruction"
    instructions: dict[int, str] = field(default_factory=dict)  # task -> template, as recorded

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def human_verdict(choices: list[str]) -> str | None:
    """Plurality of the non-skip votes (normalised choices): "a_better", "b_better", "tie",
    "both_bad", "draw" (top choices level), or None when there is no non-skip vote."""
    counts = Counter(c for c in choices if c != "skip").most_common()
    if not counts:
        return None
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return "draw"
    return counts[0][0]


def _prompt(templates: dict[int, str], pair: Pair, task: int, short_prompt: str | None) -> str:
    try:
        return build_prompt(templates[task], short_prompt)
    except StoreError as exc:
        raise StoreError(f"pair {pair.id} (sample {pair.sample_id}, task {task}): {exc}") from None


def _votes(session: Session) -> dict[int, list[str]]:
    votes: dict[int, list[str]] = {}
    for pair_id, choice in session.exec(select(Judgement.pair_id, Judgement.choice)):
        votes.setdefault(pair_id, []).append(choice)
    return votes


def _orient(pair: Pair, votes: list[str]) -> tuple[int, int, str] | str:
    """(chosen_id, rejected_id, label_source) or the reason the pair is excluded."""
    verdict = human_verdict(votes)
    if verdict is None:
        return pair.response_a_id, pair.response_b_id, ("evaluator" if pair.origin == "mined" else pair.origin)
    if verdict == "a_better":
        return pair.response_a_id, pair.response_b_id, "human"
    if verdict == "b_better":
        return pair.response_b_id, pair.response_a_id, "human"
    return f"human_{verdict}"


def _export_records(session: Session, pairs: list[Pair], report: ExportReport) -> list[dict[str, Any]]:
    votes = _votes(session)
    samples = {stored_id(s.id): s for s in session.exec(select(Sample))}
    responses = {stored_id(r.id): r for r in session.exec(select(Response))}
    scores = scores_for(session, list(responses))
    templates = report.instructions
    records = []
    for pair in pairs:
        oriented = _orient(pair, votes.get(stored_id(pair.id), []))
        if isinstance(oriented, str):
            report.excluded[oriented] = report.excluded.get(oriented, 0) + 1
            continue
        chosen_id, rejected_id, label_source = oriented
        report.flipped += int(chosen_id != pair.response_a_id)
        sample, chosen, rejected = samples[pair.sample_id], responses[chosen_id], responses[rejected_id]
        rejected_task = pair.rejected_task or pair.task
        rejected_short = pair.rejected_short_prompt or sample.short_prompt
        records.append(
            {
                "prompt": _prompt(templates, pair, pair.task, sample.short_prompt),
                "chosen": chosen.text,
                "rejected": rejected.text,
                "task": pair.task,
                "video": sample.video,
                "short_prompt": sample.short_prompt,
                "sample_id": sample.id,
                "pair_id": pair.id,
                "origin": pair.origin,
                "hdpo_term": pair.hdpo_term,
                "label_source": label_source,
                "chosen_response_id": chosen.id,
                "rejected_response_id": rejected.id,
                "chosen_scores": json.dumps(scores[chosen_id], sort_keys=True),
                "rejected_scores": json.dumps(scores[rejected_id], sort_keys=True),
                "chosen_source": chosen.source,
                "rejected_source": rejected.source,
                "split": sample.split,
                # The rejected side's conditioning (HDPO Eq. 9-13): equal to the chosen side's
                # for DPO / response-hallucination pairs.
                "rejected_prompt": _prompt(templates, pair, rejected_task, rejected_short),
                "rejected_video": pair.rejected_video or sample.video,
                "rejected_short_prompt": rejected_short,
                "rejected_task": rejected_task,
                "meta": pair.meta_json,
            }
        )
        report.by_task[pair.task] = report.by_task.get(pair.task, 0) + 1
        report.by_term[pair.hdpo_term] = report.by_term.get(pair.hdpo_term, 0) + 1
    return records


COLUMNS = [
    "prompt",
    "chosen",
    "rejected",
    "task",
    "video",
    "short_prompt",
    "sample_id",
    "pair_id",
    "origin",
    "hdpo_term",
    "label_source",
    "chosen_response_id",
    "rejected_response_id",
    "chosen_scores",
    "rejected_scores",
    "chosen_source",
    "rejected_source",
    "split",
    "rejected_prompt",
    "rejected_video",
    "rejected_short_prompt",
    "rejected_task",
    "meta",
]


def _write_export(out: Path, write: Any) -> None:
    """`write(tmp)` through annotations.files.atomic_path: a crash never leaves a half-written export; a full disk
    leaves nothing and raises DiskFullError."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            write(str(tmp))
    except BaseException as exc:
        if is_disk_full(exc):
            raise DiskFullError() from exc
        raise


def _write_jsonl(records: list[dict[str, Any]], tmp: str) -> None:
    with open(tmp, "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def _write_parquet(records: list[dict[str, Any]], tmp: str) -> None:
    import pandas as pd  # imported here: `import annotations` stays light

    frame = pd.DataFrame.from_records(records, columns=COLUMNS)
    frame.to_parquet(tmp, index=False)


def export_pairs(engine: Engine, out_path: str | os.PathLike[str], fmt: str = "jsonl") -> ExportReport:
    """Write every exportable pair as TRL-style rows plus a dataset card beside the file.

    Prompts are built from the task instructions recorded in the database; StoreError, and
    nothing written, if a pair's task (or rejected task) has none.
    """
    if fmt not in ("jsonl", "parquet"):
        raise StoreError(f"format must be jsonl or parquet, got {fmt!r}")
    out = Path(out_path)
    report = ExportReport(path=str(out), card_path=str(_card_path(out)), instructions=instructions(engine))
    with read_session(engine) as session:
        pairs = list(session.exec(select(Pair).order_by(col(Pair.id))))
        require_instructions(engine, report.instructions, {t for p in pairs for t in (p.task, p.rejected_task) if t})
        records = _export_records(session, pairs, report)
    report.rows = len(records)
    writer = _write_jsonl if fmt == "jsonl" else _write_parquet
    _write_export(out, lambda tmp: writer(records, tmp))
    _write_export(Path(report.card_path), lambda tmp: Path(tmp).write_text(_card(report, engine, fmt)))
    return report


def _card_path(out: Path) -> Path:
    """README.md beside the file, unless a README we did not write is there already."""
    readme = out.parent / "README.md"
    if not readme.exists() or CARD_MARKER in readme.read_text(errors="replace"):
        return readme
    return out.parent / f"{out.stem}.README.md"


def _instruction_lines(templates: dict[int, str]) -> list[str]:
    lines = []
    for task, template in sorted(templates.items()):
        # A fence longer than any backtick run in the template, so the template cannot close it.
        fence = "`" * max(3, 1 + max(map(len, re.findall("`+", template)), default=0))
        lines += [f"Task {task}:", "", fence, template, fence, ""]
    return lines or ["(none recorded)", ""]


def _card(report: ExportReport, engine: Engine, fmt: str) -> str:
    name = Path(report.path).name
    lines = [
        "---",
        "license: other",
        "task_categories:",
        "- text-generation",
        "tags:",
        "- dpo",
        "- hdpo",
        "- preference",
        "- video",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        f"    path: {name}",
        "---",
        CARD_MARKER,
        "",
        "# VidPrompter preference pairs",
        "",
        f"Exported from `{describe_url(engine)}` as {fmt} (`{name}`): {report.rows} pairs, "
        f"{report.flipped} reversed by human votes.",
        "",
        "Columns: `prompt` / `chosen` / `rejected` (TRL), plus `task`, `video`, `short_prompt`, "
        "`hdpo_term`, `origin`, `label_source`, `chosen_scores` / `rejected_scores` (JSON "
        "evaluator -> value) and the rejected side's conditioning (`rejected_prompt`, "
        "`rejected_video`, `rejected_short_prompt`, `rejected_task`) for the HDPO input / task "
        "hallucination terms. `video` is null for text-only (Task 3) samples.",
        "",
        "`prompt` / `rejected_prompt` are the task instructions recorded in the database "
        f"(`{report.prompt_builder}` table) with `{{y_s}}` replaced by the (rejected) short prompt:",
        "",
        *_instruction_lines(report.instructions),
        "Human votes override the mined order (plurality of non-skip votes); pairs whose "
        "plurality is tie / both bad, or a draw, are left out (they stay in the database).",
        "",
        f"- pairs by task: {json.dumps(report.by_task, sort_keys=True)}",
        f"- pairs by HDPO term: {json.dumps(report.by_term, sort_keys=True)}",
        f"- excluded: {json.dumps(report.excluded, sort_keys=True)}",
        "",
    ]
    return "\n".join(lines)
