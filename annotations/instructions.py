"""The task instructions a database's pairs are generated under, and the prompts built from them.

The engine owns the instruction texts (paper Figure 3, ``engine/tasks.py``) and records them here
(``engine.tasks.record_instructions(db)``, run when the app opens a database and by
``python -m engine record-instructions --db URL``). The export builds each row's ``prompt`` from
the recorded template alone, so annotations never imports the engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Engine
from sqlmodel import select

from annotations.common import check_task
from annotations.db import describe_url, read_session, write_session
from annotations.errors import StoreError
from annotations.models import PROMPT_TASKS, SHORT_PROMPT_PLACEHOLDER, TaskInstruction, utcnow

HOW_TO_RECORD = "record them by opening the database with the app or `python -m engine record-instructions --db URL`"


def _check_template(task: int, template: str) -> str:
    """A non-empty template with ``{y_s}`` exactly when the task takes a short prompt (Tasks 2, 3)."""
    if not isinstance(template, str) or not template.strip():
        raise StoreError(f"the instruction of task {task} is empty")
    has_slot = SHORT_PROMPT_PLACEHOLDER in template
    if task in PROMPT_TASKS and not has_slot:
        raise StoreError(f"the instruction of task {task} lacks the {SHORT_PROMPT_PLACEHOLDER} placeholder")
    if task not in PROMPT_TASKS and has_slot:
        raise StoreError(f"the instruction of task {task} has a {SHORT_PROMPT_PLACEHOLDER} placeholder")
    return template


def record_instructions(engine: Engine, templates: Mapping[int, str]) -> None:
    """Record one instruction template per task (upsert; recording the same texts again changes nothing).

    Validated as a whole before anything is written: one bad template records none.
    """
    checked = {check_task(task): _check_template(task, text) for task, text in templates.items()}
    with write_session(engine) as session:
        rows = {row.task: row for row in session.exec(select(TaskInstruction))}
        for task, template in checked.items():
            row = rows.get(task)
            if row is None:
                session.add(TaskInstruction(task=task, template=template))
            elif row.template != template:
                row.template, row.updated_at = template, utcnow()
                session.add(row)


def instructions(engine: Engine) -> dict[int, str]:
    """{task: template} of the recorded instructions."""
    with read_session(engine) as session:
        return {row.task: row.template for row in session.exec(select(TaskInstruction))}


def require_instructions(engine: Engine, recorded: Mapping[int, str], tasks: Iterable[int]) -> None:
    """StoreError (one line, with the fix) if any of ``tasks`` has no recorded instruction."""
    missing = sorted(set(tasks) - set(recorded))
    if missing:
        listed = ", ".join(map(str, missing))
        raise StoreError(
            f"no task instruction recorded for task(s) {listed} in {describe_url(engine)}: {HOW_TO_RECORD}"
        )


def build_prompt(template: str, short_prompt: str | None) -> str:
    """The instruction q with ``{y_s}`` replaced by the (stripped) short prompt.

    ``str.replace``, not ``str.format``: a template may contain other braces.
    """
    if SHORT_PROMPT_PLACEHOLDER not in template:
        return template
    text = (short_prompt or "").strip()
    if not text:
        raise StoreError(f"an instruction with {SHORT_PROMPT_PLACEHOLDER} needs a short prompt; got none")
    return template.replace(SHORT_PROMPT_PLACEHOLDER, text)
