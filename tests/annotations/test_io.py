"""Import validation and the export's columns, orientation and exclusion rules."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, func, select

from annotations import store
from annotations.errors import ImportRejected
from annotations.io import COLUMNS, export_pairs, human_verdict, import_rows
from annotations.models import Pair, Response, Sample


def _jsonl(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def test_import_jsonl_and_reimport_is_idempotent(sqlite_engine: Engine, videos: list[Path], tmp_path: Path) -> None:
    shutil.copy(videos[1], tmp_path / "local.mp4")
    rows = [
        {"video": str(videos[0]), "short_prompt": "a rabbit", "detailed_prompt": "A big rabbit.", "split": "train"},
        {"video": "local.mp4", "short_prompt": "bikes", "split": "test"},  # relative to the file's folder
    ]
    path = _jsonl(tmp_path / "rows.jsonl", rows)
    report = import_rows(sqlite_engine, path)
    assert (report.rows, report.imported, report.existing, report.bad) == (2, 2, 0, [])
    assert _count(sqlite_engine, Response) == 2  # the caption: teacher of tasks 1 and 2 (Task 3: the teacher step)
    again = import_rows(sqlite_engine, path)
    assert (again.imported, again.existing) == (0, 2) and _count(sqlite_engine, Sample) == 2
    with Session(sqlite_engine) as session:
        splits = sorted(session.exec(select(Sample.split)))
    assert splits == ["test", "train"]


def test_import_csv_with_per_task_teacher(sqlite_engine: Engine, videos: list[Path], tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["video", "short_prompt", "detailed_prompt", "detailed_prompt_task3", "split"])
        writer.writerow([videos[0], "a rabbit", "VLM caption,\nwith a newline", "LLM prompt", "train"])
        writer.writerow([videos[1], "bikes", "", "", "train"])
        writer.writerow([videos[1], "", "", "", "train"])  # line 5: the row above spans lines 2-3
    with pytest.raises(ImportRejected) as info:
        import_rows(sqlite_engine, path)
    assert [(b.line, b.reason) for b in info.value.report.bad] == [(5, "missing 'short_prompt'")]
    assert import_rows(sqlite_engine, path, skip_bad=True).imported == 2
    with Session(sqlite_engine) as session:
        texts = {task: text for task, text in session.exec(select(Response.task, Response.text))}
    assert texts == {1: "VLM caption,\nwith a newline", 2: "VLM caption,\nwith a newline", 3: "LLM prompt"}


def test_bad_file_imports_nothing_and_reports_every_bad_line(
    sqlite_engine: Engine, videos: list[Path], tmp_path: Path
) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("this is not a video at all")
    rows = [
        {"video": str(videos[0]), "short_prompt": "good one"},  # 1
        {"video": str(tmp_path / "gone.mp4"), "short_prompt": "x"},  # 2 missing
        "",  # 3 blank: ignored
        {"video": "empty.mp4", "short_prompt": "x"},  # 4 empty file
        {"video": "notes.mp4", "short_prompt": "x"},  # 5 not a video
        {"video": str(videos[0]), "short_prompt": "good one"},  # 6 duplicate of 1
        {"video": str(videos[1]), "short_prompt": "  "},  # 7 missing short prompt
        "{not json",  # 8
        {"short_prompt": "no video", "detailed_prompt_task1": "x"},  # 9 text-only: Task 3 alone
        {"video": str(videos[2]), "short_prompt": "good two"},  # 10
    ]
    path = _jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ImportRejected) as info:
        import_rows(sqlite_engine, path)
    bad = {b.line: b.reason for b in info.value.report.bad}
    assert sorted(bad) == [2, 4, 5, 6, 7, 8, 9]
    assert "missing video" in bad[2] and "empty" in bad[4] and "unreadable" in bad[5]
    assert "duplicate of line 1" in bad[6] and "short_prompt" in bad[7] and "JSON" in bad[8] and "video" in bad[9]
    assert _count(sqlite_engine, Sample) == 0
    report = import_rows(sqlite_engine, path, skip_bad=True)
    assert report.imported == 2 and len(report.bad) == 7 and _count(sqlite_engine, Sample) == 2


def _labelled_db(engine: Engine, video: Path, make_pairs) -> dict[str, int]:  # type: ignore[no-untyped-def]
    keep, flip, tie, both_bad, skipped, unjudged, split_vote = make_pairs(engine, video, 7)
    votes = {keep: ["a_better"], flip: ["b_better"], tie: ["tie"], both_bad: ["both_bad"], skipped: ["skip"]}
    votes[split_vote] = ["a_better", "b_better", "skip"]  # a draw between decisive votes
    for pair_id, choices in votes.items():
        with Session(engine) as session:
            a = session.get(Pair, pair_id).response_a_id
        for i, choice in enumerate(choices):
            store.record_judgement(
                engine, pair_id, f"h{i}", choice, a, require_lease=False
            )  # a shown left: shown == normalised
    return {"keep": keep, "flip": flip, "skipped": skipped, "unjudged": unjudged}


def test_export_jsonl_columns_and_exclusion_rules(
    sqlite_engine: Engine, video: Path, make_pairs, tmp_path: Path, templates: dict[int, str]
) -> None:
    ids = _labelled_db(sqlite_engine, video, make_pairs)
    store.record_instructions(sqlite_engine, templates)
    out = tmp_path / "export" / "pairs.jsonl"
    report = export_pairs(sqlite_engine, out)
    rows = {r["pair_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == {ids["keep"], ids["flip"], ids["skipped"], ids["unjudged"]}
    assert report.rows == 4 and report.flipped == 1
    assert report.excluded == {"human_tie": 1, "human_both_bad": 1, "human_draw": 1}
    assert all(list(r) == COLUMNS for r in rows.values())
    keep, flip = rows[ids["keep"]], rows[ids["flip"]]
    assert keep["chosen"].startswith("teacher") and keep["rejected"].startswith("beam")
    assert flip["chosen"].startswith("beam") and flip["rejected"].startswith("teacher")
    assert (keep["label_source"], flip["label_source"], rows[ids["skipped"]]["label_source"]) == (
        "human",
        "human",
        "evaluator",
    )
    assert json.loads(flip["chosen_scores"]) == {"clip": 0.2, "judge": 3.0} and flip["chosen_source"] == "model"
    assert keep["task"] == 1 and keep["video"] == str(video) and keep["short_prompt"].startswith("short prompt")
    assert keep["rejected_video"] == keep["video"] and keep["rejected_task"] == 1 and keep["split"] == "train"
    assert keep["prompt"] == keep["rejected_prompt"] == "Describe the video."  # Task 1: no {y_s}
    card = (tmp_path / "export" / "README.md").read_text()
    assert card.startswith("---\n") and "\n---\n" in card and "path: pairs.jsonl" in card


def test_export_parquet_builds_prompts_from_recorded_instructions(
    sqlite_engine: Engine, video: Path, make_pairs, tmp_path: Path, templates: dict[int, str]
) -> None:
    make_pairs(sqlite_engine, video, 2, task=2)
    store.record_instructions(sqlite_engine, templates)
    out = tmp_path / "pairs.parquet"
    report = export_pairs(sqlite_engine, out, fmt="parquet")
    frame = pd.read_parquet(out)
    assert list(frame.columns) == COLUMNS and len(frame) == 2 == report.rows
    assert frame["prompt"].tolist() == [
        "Describe the video. Caption (may be wrong): short prompt 0",
        "Describe the video. Caption (may be wrong): short prompt 1",
    ]
    assert report.prompt_builder == "task_instruction" and report.instructions == templates
    card = Path(report.card_path).read_text()
    assert "`task_instruction` table" in card and "Expand {the input}.\nInput: {y_s}\nOutput:" in card


def test_export_hallucination_conditioning(
    sqlite_engine: Engine, video: Path, tmp_path: Path, templates: dict[int, str]
) -> None:
    store.record_instructions(sqlite_engine, templates)
    sample = store.upsert_sample(sqlite_engine, str(video), "a rabbit", detailed_prompt="A big rabbit.")
    with Session(sqlite_engine) as session:
        y3 = session.exec(select(Response.id).where(Response.task == 3)).one()
        y1 = session.exec(select(Response.id).where(Response.task == 1)).one()
    store.add_pair(sqlite_engine, sample, 3, y3, y3, "hallucination", "task_hallucination", rejected_task=1)
    store.add_pair(sqlite_engine, sample, 1, y1, y1, "hallucination", "input_hallucination", rejected_video="/s.mp4")
    export_pairs(sqlite_engine, tmp_path / "p.jsonl")
    task_h, input_h = map(json.loads, (tmp_path / "p.jsonl").read_text().splitlines())
    assert task_h["chosen"] == task_h["rejected"] and (task_h["task"], task_h["rejected_task"]) == (3, 1)
    assert input_h["rejected_video"] == "/s.mp4" and input_h["video"] == str(video)
    assert task_h["label_source"] == "hallucination"
    # The Task-3 response under Task 1's conditioning: the rejected prompt is Task 1's instruction.
    assert task_h["prompt"] == "Expand {the input}.\nInput: a rabbit\nOutput:"
    assert task_h["rejected_prompt"] == "Describe the video."


def test_export_keeps_a_foreign_readme(sqlite_engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# my project\n")
    report = export_pairs(sqlite_engine, tmp_path / "pairs.jsonl")
    assert (tmp_path / "README.md").read_text() == "# my project\n"
    assert report.card_path == str(tmp_path / "pairs.README.md") and Path(report.card_path).is_file()


def test_human_verdict() -> None:
    assert human_verdict([]) is None and human_verdict(["skip"]) is None
    assert human_verdict(["b_better", "b_better", "a_better"]) == "b_better"
    assert human_verdict(["tie", "a_better"]) == "draw"
    assert human_verdict(["both_bad", "skip"]) == "both_bad"


def test_export_text_only_sample_writes_null_video(
    sqlite_engine: Engine, tmp_path: Path, templates: dict[int, str]
) -> None:
    store.record_instructions(sqlite_engine, templates)
    sample = store.upsert_sample(sqlite_engine, None, "a red kite", detailed_prompt="A red kite over a beach.")
    with Session(sqlite_engine) as session:
        teacher = session.exec(select(Response.id).where(Response.sample_id == sample)).one()
    beam = store.add_response(sqlite_engine, sample, 3, "A kite.", "model", model="m")
    store.add_pair(sqlite_engine, sample, 3, teacher, beam)
    export_pairs(sqlite_engine, tmp_path / "p.jsonl")
    (row,) = map(json.loads, (tmp_path / "p.jsonl").read_text().splitlines())
    assert row["video"] is None and row["rejected_video"] is None
    assert (row["task"], row["short_prompt"], row["chosen"]) == (3, "a red kite", "A red kite over a beach.")
    assert row["prompt"] == "Expand {the input}.\nInput: a red kite\nOutput:"
    export_pairs(sqlite_engine, tmp_path / "p.parquet", fmt="parquet")
    assert pd.read_parquet(tmp_path / "p.parquet")["video"].isna().all()
