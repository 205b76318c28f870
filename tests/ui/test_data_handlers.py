"""Data tab handlers as plain functions: votes as the annotator saw them, agreement in plain words, the
human-vs-evaluator plot replaced by a message when empty, rounded numbers, readable import / export."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from annotations import store
from annotations.db import open_db
from tests.app_server import SAMPLES
from training.jobs import Jobs
from ui.common import AppContext
from ui.data import agreement_plot, agreement_text, export_file, import_file, recent_frame, refresh_stats

LOCAL = SimpleNamespace(username=None)


@pytest.fixture()
def ctx(tmp_path: Path) -> AppContext:
    db_url = f"sqlite:///{tmp_path / 's.db'}"
    db = open_db(db_url)
    return AppContext(studio=None, db=db, jobs=Jobs(db, db_url), work_dir=tmp_path / "work")


def _pair(ctx: AppContext) -> tuple[int, int, int]:
    sample = store.upsert_sample(ctx.db, None, "a cat naps")
    a = store.add_response(ctx.db, sample, 3, "A grey cat naps on a red sofa.", "model", model="m")
    b = store.add_response(ctx.db, sample, 3, "A cat.", "model", model="m")
    return store.add_pair(ctx.db, sample, 3, a, b), a, b


def test_recent_votes_show_what_the_annotator_clicked(ctx: AppContext) -> None:
    pair, a, b = _pair(ctx)
    # ann saw b on the left and clicked "A is better": stored in the pair's orientation as b_better.
    store.record_judgement(ctx.db, pair, "ann", "a_better", b, seconds_taken=3.14159265358979, require_lease=False)
    store.record_judgement(ctx.db, pair, "bob", "a_better", a, seconds_taken=12.0, require_lease=False)
    stored = {j["annotator"]: j["choice"] for j in store.recent_judgements(ctx.db, 10)}
    assert stored == {"ann": "b_better", "bob": "a_better"}
    frame = recent_frame(ctx)
    shown = dict(zip(frame["annotator"], frame["vote (as they saw it)"], strict=True))
    assert shown == {"ann": "A is better", "bob": "A is better"}
    assert sorted(frame["seconds"].tolist()) == [3.1, 12.0]  # rounded, not 16 digits
    assert all(len(w) == 19 for w in frame["when (UTC)"])  # 2026-01-01 12:00:00


def test_agreement_says_why_it_cannot_be_computed() -> None:
    none = agreement_text({"raters": [], "overlapped_pairs": 0, "cohen_kappa": None, "pairwise_kappa": {}})
    assert "not computable yet" in none and "two annotators who voted" in none and "None" not in none
    same = {"raters": ["ann", "bob"], "overlapped_pairs": 3, "cohen_kappa": None, "pairwise_kappa": {}}
    assert "same answer throughout" in agreement_text(same)
    kappa = {"raters": ["ann", "bob"], "overlapped_pairs": 4, "cohen_kappa": 0.5, "pairwise_kappa": {}}
    assert agreement_text(kappa) == (
        "**Agreement between annotators:** Cohen's κ = **0.50** (ann and bob, 4 shared pair(s))."
    )


def test_an_empty_human_vs_evaluator_plot_becomes_a_message() -> None:
    plot, note = agreement_plot({"human_vs_evaluator": {"votes": 0, "fraction": None, "by_evaluator": {}}})
    assert plot.visible is False and "nothing to compare yet" in note
    full = {"votes": 4, "fraction": 0.75, "by_evaluator": {"clip": {"votes": 4, "fraction": 0.75}}}
    plot, note = agreement_plot({"human_vs_evaluator": full})
    assert plot.visible is True and "**75%** of 4 decisive vote(s)" in note


def test_refresh_stats_on_a_fresh_database(ctx: AppContext) -> None:
    counts, annotators, recent, plot, note = refresh_stats(ctx)
    assert "**0** samples" in counts and "not computable yet" in counts
    assert annotators.empty and recent.empty and plot.visible is False


def _rows(folder: Path, rows: list[dict]) -> Path:
    path = folder / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_import_says_what_came_in_and_what_next(ctx: AppContext, tmp_path: Path) -> None:
    rows = _rows(tmp_path, [{"short_prompt": "a cat naps"}, {"short_prompt": "a dog runs", "split": "test"}])
    message = import_file(ctx, str(rows), False, LOCAL)
    assert message.startswith("✅ Imported **2** new sample(s) from `rows.jsonl`: 2 row(s) read")
    assert "**Next:**" in message and "{" not in message  # words, not a raw dict
    again = import_file(ctx, str(rows), False, LOCAL)
    assert "Imported **0** new sample(s)" in again and "2 already in the database" in again


def test_a_rows_file_with_relative_clips_explains_the_media_folder(ctx: AppContext, tmp_path: Path) -> None:
    rows = _rows(tmp_path, [{"video": "clips/bunny.mp4", "short_prompt": "a rabbit"}])
    message = import_file(ctx, str(rows), False, LOCAL)
    assert message.startswith("⛔ Nothing imported: 1 of 1 row(s) are bad")
    assert "Upload a **.zip**" in message and "--media-root" in message
    (tmp_path / "media" / "clips").mkdir(parents=True)
    (tmp_path / "media" / "clips" / "bunny.mp4").write_bytes((SAMPLES / "bunny.mp4").read_bytes())
    ctx.media_root = tmp_path / "media"
    assert import_file(ctx, str(rows), False, LOCAL).startswith("✅ Imported **1** new sample(s)")


def test_a_zip_of_rows_and_clips_imports(ctx: AppContext, tmp_path: Path) -> None:
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("rows.jsonl", json.dumps({"video": "clips/bunny.mp4", "short_prompt": "a rabbit"}) + "\n")
        zf.write(SAMPLES / "bunny.mp4", "clips/bunny.mp4")
    message = import_file(ctx, str(archive), False, LOCAL)
    assert message.startswith("✅ Imported **1** new sample(s)") and "1 clip(s)" in message
    [sample] = store.list_samples(ctx.db, None)
    assert Path(sample.video).is_file() and ctx.upload_dir in Path(sample.video).parents  # outlives Gradio's cache


def test_export_summary_is_words(ctx: AppContext) -> None:
    from engine.tasks import record_instructions

    record_instructions(ctx.db)
    _pair(ctx)
    path, message = export_file(ctx, "jsonl", LOCAL)
    assert Path(path).is_file() and message.startswith("✅ Exported **1** preference pair(s) (task 3: 1;")
    assert "{" not in message
