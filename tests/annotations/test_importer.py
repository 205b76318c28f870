"""Import: media folders, text-only rows, zip archives, one probe per clip, and the faults that must
give one line each (non-UTF-8, disk full mid-import) with nothing half-imported that the report hides."""

from __future__ import annotations

import json
import shutil
import stat
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, func, select

import annotations.import_videos as import_videos
import annotations.importer as importer
from annotations.archive import extract_archive
from annotations.cli import main
from annotations.errors import ImportRejected, StoreError
from annotations.importer import ImportInterrupted, import_rows
from annotations.models import Response, Sample
from annotations.store import list_samples


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def _videos_of(engine: Engine) -> list[str | None]:
    with Session(engine) as session:
        return sorted(session.exec(select(Sample.video)), key=lambda v: (v is not None, v or ""))


def test_relative_paths_resolve_against_the_media_root_and_stay_inside_it(
    sqlite_engine: Engine, videos: list[Path], tmp_path: Path
) -> None:
    media = tmp_path / "media"
    (media / "clips").mkdir(parents=True)
    shutil.copy(videos[0], media / "clips" / "a.mp4")
    shutil.copy(videos[1], tmp_path / "outside.mp4")
    rows = _jsonl(
        tmp_path / "upload" / "rows.jsonl",  # an upload folder: the clips are not beside the file
        [
            {"video": "clips/a.mp4", "short_prompt": "inside"},
            {"video": "../outside.mp4", "short_prompt": "escapes"},
            {"video": str(tmp_path / "outside.mp4"), "short_prompt": "absolute, outside"},
        ],
    )
    with pytest.raises(ImportRejected) as info:
        import_rows(sqlite_engine, rows)  # against the file's folder: clips/a.mp4 is not there
    assert "missing video" in info.value.report.bad[0].reason
    with pytest.raises(ImportRejected) as info:
        import_rows(sqlite_engine, rows, media_root=media)
    reasons = {b.line: b.reason for b in info.value.report.bad}
    assert sorted(reasons) == [2, 3] and all("outside the media folder" in r for r in reasons.values())
    report = import_rows(sqlite_engine, rows, skip_bad=True, media_root=media)
    assert report.imported == 1 and _videos_of(sqlite_engine) == [str(media / "clips" / "a.mp4")]
    with pytest.raises(StoreError, match="media folder .* does not exist"):
        import_rows(sqlite_engine, rows, media_root=tmp_path / "nope")


def test_text_only_rows_have_no_video_and_a_task3_teacher(engine: Engine, tmp_path: Path) -> None:
    rows = _jsonl(
        tmp_path / "rows.jsonl",
        [
            {"short_prompt": "a cat naps", "detailed_prompt": "A ginger cat sleeps on a sofa."},
            {"video": None, "short_prompt": "a dog runs", "split": "test"},
            {"video": "", "short_prompt": "rain falls", "detailed_prompt_task2": "x"},
        ],
    )
    with pytest.raises(ImportRejected) as info:
        import_rows(engine, rows)
    assert [(b.line, b.reason) for b in info.value.report.bad] == [
        (3, "detailed_prompt_task2 needs a video (this row has none: a text-only sample)")
    ]
    report = import_rows(engine, rows, skip_bad=True)
    assert (report.imported, report.text_only, report.videos) == (2, 2, 0)
    assert _videos_of(engine) == [None, None]  # None, never ""
    with Session(engine) as session:
        assert list(session.exec(select(Response.task, Response.source))) == [(3, "teacher")]
    assert report.lacking_teacher == 1  # "a dog runs" has no teacher response yet
    assert report.next_step.startswith("1 of 2 samples lack a teacher response: run the teacher step")


def test_each_distinct_clip_is_probed_and_hashed_once(
    sqlite_engine: Engine, videos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_hash, real_probe = import_videos.hash_file, import_videos.video_problem
    monkeypatch.setattr(import_videos, "hash_file", lambda p: calls.append(f"hash {p}") or real_hash(p))
    monkeypatch.setattr(import_videos, "video_problem", lambda p: calls.append(f"probe {p}") or real_probe(p))
    rows = [
        {"video": str(videos[i % 2]), "short_prompt": f"c{i}", "detailed_prompt": "D.", "detailed_prompt_task3": "P."}
        for i in range(1200)
    ]
    report = import_rows(sqlite_engine, _jsonl(tmp_path / "many.jsonl", rows))
    assert report.imported == 1200 and report.videos == 2
    assert sorted(c.split()[0] for c in calls) == ["hash", "hash", "probe", "probe"]
    assert report.next_step.startswith("1200 samples in; none has pairs yet: run mining (python -m engine mine-pairs")


def test_a_non_utf8_file_is_one_line_and_imports_nothing(
    sqlite_engine: Engine, videos: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "latin1.jsonl"
    good = json.dumps({"video": str(videos[0]), "short_prompt": "fine"}).encode()
    path.write_bytes(good + b"\n" + good.replace(b"fine", b"caf\xe9") + b"\n")
    with pytest.raises(StoreError, match=r"line 2 is not UTF-8 \(byte 0xe9\); save the file as UTF-8"):
        import_rows(sqlite_engine, path)
    assert _count(sqlite_engine, Sample) == 0
    assert main(["import", str(path), "--db", str(sqlite_engine.url)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not UTF-8" in err[0]


def test_disk_full_mid_import_names_what_is_in_and_a_rerun_continues(
    sqlite_engine: Engine, videos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "IMPORT_CHUNK", 2)
    path = _jsonl(tmp_path / "rows.jsonl", [{"video": str(videos[0]), "short_prompt": f"c{i}"} for i in range(5)])
    real, calls = importer.upsert_samples_in, []

    def full_on_the_second(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:  # the second chunk (rows 3-4)
            raise OperationalError("INSERT ...", {}, Exception("database or disk is full"))
        return real(*args, **kwargs)

    monkeypatch.setattr(importer, "upsert_samples_in", full_on_the_second)
    with pytest.raises(ImportInterrupted) as info:
        import_rows(sqlite_engine, path)
    message = str(info.value)
    assert "disk full after 2 of 5 rows (lines 1-2 are in)" in message and "run the same import again" in message
    assert "\n" not in message and info.value.report.written_lines == [1, 2] and info.value.report.imported == 2
    assert _count(sqlite_engine, Sample) == 2  # the failed chunk rolled back: nothing half-written
    monkeypatch.setattr(importer, "upsert_samples_in", real)
    again = import_rows(sqlite_engine, path)
    assert (again.imported, again.existing) == (3, 2) and _count(sqlite_engine, Sample) == 5


def _zip(path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


def test_a_zip_of_rows_and_clips_imports_and_reimports_once(
    engine: Engine, videos: list[Path], tmp_path: Path
) -> None:
    rows = [
        {"video": "clips/a.mp4", "short_prompt": "a clip", "detailed_prompt": "A detailed caption."},
        {"short_prompt": "text only"},
    ]
    members = {
        "set/rows.jsonl": "".join(json.dumps(r) + "\n" for r in rows).encode(),
        "set/clips/a.mp4": videos[0].read_bytes(),
        "__MACOSX/set/._rows.jsonl": b"resource fork",
    }
    archive = _zip(tmp_path / "upload.zip", members)
    report = import_rows(engine, archive, extract_to=tmp_path / "media")
    folder = Path(report.extracted_to or "")
    assert folder.parent == tmp_path / "media" and (folder / "set" / "clips" / "a.mp4").is_file()
    assert (report.imported, report.videos, report.text_only) == (2, 1, 1)
    assert _videos_of(engine) == [None, str(folder / "set" / "clips" / "a.mp4")]
    again = import_rows(engine, archive, extract_to=tmp_path / "media")
    assert (again.imported, again.existing, again.extracted_to) == (0, 2, str(folder))
    assert len(list((tmp_path / "media").iterdir())) == 1  # extracted once


@pytest.mark.parametrize(
    ("members", "links", "message"),
    [
        ({"rows.jsonl": b"{}", "../../evil.mp4": b"x"}, (), "points outside the archive"),
        ({"rows.jsonl": b"{}", "/abs/evil.mp4": b"x"}, (), "points outside the archive"),
        ({"rows.jsonl": b"{}"}, ("clip.mp4",), "is a link"),
        ({"rows.jsonl": b"{}", "bomb.mp4": b"\0" * (4 << 20)}, (), "expands over"),
        ({"a.jsonl": b"{}", "b.csv": b"video\n"}, (), "exactly one .jsonl or .csv"),
    ],
)
def test_unsafe_archives_are_refused_and_leave_nothing(
    sqlite_engine: Engine, tmp_path: Path, members: dict[str, bytes], links: tuple[str, ...], message: str
) -> None:
    archive = _zip(tmp_path / "bad.zip", members, links)
    with pytest.raises(StoreError, match=message):
        import_rows(sqlite_engine, archive, extract_to=tmp_path / "media")
    leftovers = [p for p in (tmp_path / "media").rglob("*") if p.suffix != ".jsonl" and p.suffix != ".csv"]
    if message != "exactly one .jsonl or .csv":  # that one extracts fine, then finds two row files
        assert not (tmp_path / "media").exists() or leftovers == []
    assert not (tmp_path / "evil.mp4").exists() and _count(sqlite_engine, Sample) == 0


def test_a_zip_rows_file_cannot_name_clips_outside_the_archive(
    sqlite_engine: Engine, videos: list[Path], tmp_path: Path
) -> None:
    rows = [{"video": str(videos[0]), "short_prompt": "absolute path on the server"}]
    archive = _zip(tmp_path / "up.zip", {"rows.jsonl": json.dumps(rows[0]).encode()})
    with pytest.raises(ImportRejected) as info:
        import_rows(sqlite_engine, archive)
    assert "outside the media folder" in info.value.report.bad[0].reason
    with pytest.raises(StoreError, match="not a zip archive"):
        extract_archive(_jsonl(tmp_path / "fake.zip", rows), tmp_path / "x")


def test_cli_import_with_a_media_root_says_what_to_do_next(
    videos: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(videos[0], tmp_path / "clip.mp4")
    rows = _jsonl(
        tmp_path / "up" / "rows.jsonl", [{"video": "clip.mp4", "short_prompt": "x", "detailed_prompt": "Y."}]
    )
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    args = ["import", str(rows), "--db", url, "--media-root", str(tmp_path), "--caption-for-task3"]
    assert main(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == (
        "1 sample(s) imported, 0 already present, 0 bad row(s) skipped (1 video file(s), 0 text-only row(s)); "
        "Task 3 of 1 video row(s) learns the caption (caption_for_task3)"
    )
    assert out[
        1
    ] == f"next: 1 samples in; none has pairs yet: run mining (python -m engine mine-pairs --db {url}, " + (
        "or the Admin tab's Mine button)"
    )


def test_a_caption_is_the_target_of_tasks_1_and_2_only_unless_asked(
    sqlite_engine: Engine, videos: list[Path], tmp_path: Path
) -> None:
    """Issue 22 item 3: one caption of the clip must not become Task 3's chosen response (an expansion of the
    short prompt, the paper's Llama-3-70B role) without saying so."""
    rows = [
        {"video": str(videos[0]), "short_prompt": "a rabbit", "detailed_prompt": "A big rabbit wakes up."},
        {
            "video": str(videos[1]),
            "short_prompt": "bikes",
            "detailed_prompt": "Riders pass.",
            "detailed_prompt_task3": "Two bikes race.",
        },
        {"short_prompt": "a cat naps", "detailed_prompt": "A grey cat naps on a sofa."},  # text-only: Task 3's
    ]
    report = import_rows(sqlite_engine, _jsonl(tmp_path / "rows.jsonl", rows))
    with Session(sqlite_engine) as session:
        got = sorted((s.short_prompt, r.task, r.text) for r, s in session.exec(select(Response, Sample).join(Sample)))
    assert got == [
        ("a cat naps", 3, "A grey cat naps on a sofa."),
        ("a rabbit", 1, "A big rabbit wakes up."),
        ("a rabbit", 2, "A big rabbit wakes up."),
        ("bikes", 1, "Riders pass."),
        ("bikes", 2, "Riders pass."),
        ("bikes", 3, "Two bikes race."),
    ]
    assert report.task3_missing == 1 and "the teacher step writes their Task-3 target" in report.summary()
    again = import_rows(sqlite_engine, _jsonl(tmp_path / "rows2.jsonl", rows[:1]), caption_for_task3=True)
    assert again.task3_from_caption == 1 and "learns the caption (caption_for_task3)" in again.summary()


def test_tags_are_stored_beside_their_sample(sqlite_engine: Engine, tmp_path: Path) -> None:
    from annotations.tags import tags_by_sample

    tags = [{"kind": "object", "value": "cat"}, {"kind": "color", "value": "grey", "object": "cat"}]
    rows = [{"short_prompt": "a grey cat naps", "tags": tags}, {"short_prompt": "a dog"}]
    report = import_rows(sqlite_engine, _jsonl(tmp_path / "rows.jsonl", rows))
    assert report.tagged == 1
    ids = {s.short_prompt: s.id for s in list_samples(sqlite_engine, None)}
    assert tags_by_sample(sqlite_engine, ids.values()) == {ids["a grey cat naps"]: tags}
    bad = import_rows(
        sqlite_engine, _jsonl(tmp_path / "bad.jsonl", [{"short_prompt": "x", "tags": "nope"}]), skip_bad=True
    )
    assert bad.bad[0].reason == "tags is not a JSON list"
