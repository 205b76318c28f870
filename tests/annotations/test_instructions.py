"""Task instructions recorded in the database, and the export that builds its prompts from them."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from annotations import store
from annotations.errors import StoreError
from annotations.io import export_pairs
from annotations.models import TaskInstruction

ANNOTATIONS = Path(__file__).resolve().parents[2] / "annotations"


def _updated_at(engine: Engine) -> dict[int, object]:
    with Session(engine) as session:
        return {row.task: row.updated_at for row in session.exec(select(TaskInstruction))}


def test_record_instructions_is_an_idempotent_upsert(engine: Engine, templates: dict[int, str]) -> None:
    assert store.instructions(engine) == {}
    store.record_instructions(engine, {1: templates[1]})
    store.record_instructions(engine, templates)
    stamped = _updated_at(engine)
    store.record_instructions(engine, templates)
    assert store.instructions(engine) == templates
    assert _updated_at(engine) == stamped  # the same texts again: no write
    store.record_instructions(engine, {3: "Beautify: {y_s}"})
    assert store.instructions(engine) == {**templates, 3: "Beautify: {y_s}"}
    assert _updated_at(engine)[3] > stamped[3] and _updated_at(engine)[1] == stamped[1]


@pytest.mark.parametrize(
    ("templates", "message"),
    [
        ({2: "Describe the video."}, "instruction of task 2 lacks the {y_s} placeholder"),
        ({1: "Describe {y_s}."}, "instruction of task 1 has a {y_s} placeholder"),
        ({3: "  "}, "instruction of task 3 is empty"),
        ({4: "Anything: {y_s}"}, "task must be one of"),
    ],
)
def test_record_instructions_refuses_bad_templates_and_records_none(
    engine: Engine, templates: dict[int, str], message: str
) -> None:
    with pytest.raises(StoreError, match=message.replace("{", r"\{").replace("}", r"\}")):
        store.record_instructions(engine, {1: "Describe the video.", **templates})
    assert store.instructions(engine) == {}


def test_export_without_instructions_fails_in_one_line_and_writes_nothing(
    sqlite_engine: Engine, video: Path, make_pairs, tmp_path: Path, templates: dict[int, str]
) -> None:
    make_pairs(sqlite_engine, video, 1, task=1)
    make_pairs(sqlite_engine, video, 1, task=3)
    store.record_instructions(sqlite_engine, {2: templates[2]})
    out = tmp_path / "out" / "pairs.jsonl"
    with pytest.raises(StoreError) as info:
        export_pairs(sqlite_engine, out)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("no task instruction recorded for task(s) 1, 3 in sqlite:///")
    assert message.endswith(
        "record them by opening the database with the app or `python -m engine record-instructions --db URL`"
    )
    assert not out.exists() and not (out.parent / "README.md").exists()


def test_export_needs_the_rejected_tasks_instruction_too(
    sqlite_engine: Engine, video: Path, tmp_path: Path, templates: dict[int, str]
) -> None:
    sample = store.upsert_sample(sqlite_engine, str(video), "a rabbit")
    y3 = store.add_response(sqlite_engine, sample, 3, "A big rabbit.", "teacher")
    store.add_pair(sqlite_engine, sample, 3, y3, y3, "hallucination", "task_hallucination", rejected_task=2)
    store.record_instructions(sqlite_engine, {3: templates[3]})
    with pytest.raises(StoreError, match=r"for task\(s\) 2 in"):
        export_pairs(sqlite_engine, tmp_path / "p.jsonl")
    store.record_instructions(sqlite_engine, templates)
    export_pairs(sqlite_engine, tmp_path / "p.jsonl")
    (row,) = map(json.loads, (tmp_path / "p.jsonl").read_text().splitlines())
    assert row["rejected_prompt"] == "Describe the video. Caption (may be wrong): a rabbit"


def test_export_input_hallucination_prompt_uses_the_rejected_short_prompt(
    sqlite_engine: Engine, video: Path, tmp_path: Path, templates: dict[int, str]
) -> None:
    store.record_instructions(sqlite_engine, templates)
    sample = store.upsert_sample(sqlite_engine, str(video), "  a white rabbit ")
    y2 = store.add_response(sqlite_engine, sample, 2, "A white rabbit hops.", "teacher")
    store.add_pair(
        sqlite_engine, sample, 2, y2, y2, "hallucination", "input_hallucination", rejected_short_prompt="a black cat"
    )
    export_pairs(sqlite_engine, tmp_path / "p.jsonl")
    (row,) = map(json.loads, (tmp_path / "p.jsonl").read_text().splitlines())
    assert row["prompt"] == "Describe the video. Caption (may be wrong): a white rabbit"  # stripped
    assert row["rejected_prompt"] == "Describe the video. Caption (may be wrong): a black cat"


def test_export_refuses_a_prompt_task_pair_whose_sample_has_no_short_prompt(
    sqlite_engine: Engine, video: Path, tmp_path: Path, templates: dict[int, str]
) -> None:
    store.record_instructions(sqlite_engine, templates)
    sample = store.upsert_sample(sqlite_engine, str(video), None)
    good, bad = (store.add_response(sqlite_engine, sample, 2, t, "model") for t in ("good", "bad"))
    pair = store.add_pair(sqlite_engine, sample, 2, good, bad)
    with pytest.raises(StoreError, match=rf"^pair {pair} \(sample {sample}, task 2\): .*needs a short prompt"):
        export_pairs(sqlite_engine, tmp_path / "p.jsonl")
    assert not (tmp_path / "p.jsonl").exists()


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):  # module level and inside functions alike
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_annotations_never_imports_the_engine() -> None:
    offenders = {
        path.name: sorted(m for m in _imported_modules(path) if m.split(".")[0] in {"engine", "training", "ui"})
        for path in sorted(ANNOTATIONS.glob("*.py"))
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}
