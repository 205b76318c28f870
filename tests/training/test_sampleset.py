"""The bundled sample set: it imports cleanly, its pairs match it, and the README's training command trains
on it from a fresh checkout (it used to exit 2: 'no export given and no --db to export from')."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from annotations.db import open_db, read_session
from annotations.importer import import_rows
from annotations.models import Response, Sample
from training.config import load_config
from training.sampleset import bundled_export, relative_export

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "assets" / "sampleset" / "samples.jsonl"
PAIRS = REPO / "assets" / "sampleset" / "pairs.jsonl"


def test_the_bundled_samples_import_with_teachers_for_every_task(tmp_path):
    engine = open_db(f"sqlite:///{tmp_path / 'a.db'}")
    report = import_rows(engine, SAMPLES)
    assert (report.rows, report.imported, report.bad, report.videos, report.text_only) == (13, 13, [], 2, 9)
    assert report.lacking_teacher == 0 and report.next_step.startswith("13 samples in; none has pairs yet")
    with read_session(engine) as session:
        samples = list(session.exec(select(Sample)))
        teachers = {(r.sample_id, r.task) for r in session.exec(select(Response).where(Response.source == "teacher"))}
    clips = {s.video for s in samples}
    assert clips == {
        None,
        str(REPO / "assets" / "samples" / "bunny.mp4"),
        str(REPO / "assets" / "samples" / "bikes.mp4"),
    }
    for s in samples:
        assert {t for sid, t in teachers if sid == s.id} == ({1, 2, 3} if s.video else {3})
    assert {s.split for s in samples if s.video} == {"train", "test"}
    assert {s.split for s in samples if s.video is None} == {"train", "test"}


def test_the_bundled_pairs_are_the_samples_mined(tmp_path):
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()]
    samples = [json.loads(line) for line in SAMPLES.read_text().splitlines()]
    teacher = {}
    for s in samples:
        for task in (1, 2, 3):
            text = s.get(f"detailed_prompt_task{task}") or s["detailed_prompt"]
            teacher[(s["short_prompt"], task)] = text
    assert rows and all(r["chosen"] == teacher[(r["short_prompt"], r["task"])] for r in rows)
    assert all(not Path(r["video"]).is_absolute() and (PAIRS.parent / r["video"]).is_file() for r in rows)
    assert {r["origin"] for r in rows} == {"mined"} and {r["rejected_source"] for r in rows} == {"model"}
    copy = Path(bundled_export(str(PAIRS), tmp_path / "run"))
    assert all(Path(json.loads(line)["video"]).is_absolute() for line in copy.read_text().splitlines())
    relative_export(copy, tmp_path / "back" / "pairs.jsonl")  # the reverse, as the README regenerates it
    back = [json.loads(line) for line in (tmp_path / "back" / "pairs.jsonl").read_text().splitlines()]
    assert [r["chosen"] for r in back] == [r["chosen"] for r in rows]


def test_a_database_wins_over_the_sample_set(tmp_path):
    from training.__main__ import ensure_export

    cfg = load_config(REPO / "configs" / "tiny-cpu.yaml")
    assert cfg.data.path is None and cfg.data.sample_set == "assets/sampleset/pairs.jsonl"
    url = f"sqlite:///{tmp_path / 'a.db'}"
    open_db(url)
    export = ensure_export(cfg, tmp_path / "run", url)  # the admin's launches: their DB's pairs, not the bundle
    assert Path(export).read_text() == ""


@pytest.mark.slow
def test_the_readme_training_command_trains_on_a_fresh_checkout(tmp_path):
    argv = [sys.executable, "-m", "training", "--config", str(REPO / "configs" / "tiny-cpu.yaml")]
    argv += ["--set", "optim.max_steps=4"]  # the README's command, run from an empty folder
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "training on assets/sampleset/pairs.jsonl" in done.stderr
    assert done.stdout.strip().startswith("finished: step 4, checkpoint runs/tiny-cpu/checkpoints/step-000004")
    export = tmp_path / "runs" / "tiny-cpu" / "export.jsonl"
    assert all(Path(json.loads(line)["video"]).is_file() for line in export.read_text().splitlines())
