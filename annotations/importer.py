"""Import sample rows (JSONL / CSV, or a ``.zip`` of one such file plus its clips) into the store.

Columns: ``short_prompt`` (required); ``video`` (a clip; absent, null or empty makes a text-only
sample, which has Task 3 only); ``detailed_prompt`` (the teacher response); optional
``detailed_prompt_task1`` / ``_task2`` / ``_task3`` overriding it per task; ``split`` (default train);
``tags`` (the short prompt's tagged elements, engine.faithfulness's format: the faithfulness metric reads them).

Reading of the paper: the paper uses VILA-34B captions of the video as the chosen responses of Tasks 1-2 and
Llama-3-70B expansions of the short prompt for Task 3. So a row's ``detailed_prompt`` (a caption of the clip)
is the teacher response of Tasks 1-2 only; Task 3 takes ``detailed_prompt_task3``, else nothing (the teacher
step writes it), unless ``caption_for_task3`` says to use the caption (the import summary then says so). A
text-only row has no clip to caption: its ``detailed_prompt`` is its Task-3 target.

Paths: a relative video path resolves against the rows file's folder, or against ``media_root`` when
one is given (the app's media folder, ``--media-root`` on the command line). With a media root, and for
an archive, every clip must lie inside that folder. Each distinct clip is probed and hashed once,
however many rows name it.

Malformed rows are bad rows, each one line naming it: a JSON line nested deeper than MAX_JSON_DEPTH, a CSV field
over 128 KiB (Python's csv limit), a short prompt over MAX_SHORT_PROMPT or a detailed prompt over
MAX_DETAILED_PROMPT characters.

All rows are read and checked before anything is written; a bad row rejects the file (ImportRejected,
nothing written) unless ``skip_bad``. Writes go in small transactions (at most IMPORT_CHUNK rows and about
IMPORT_MAX_TX_S seconds each), and between two of them the importer rests IMPORT_REST_FACTOR times as long as it
wrote (at least
IMPORT_YIELD_S) and lets every vote waiting for the write gate in this process go first
(annotations.db.yield_to_writers); reading and checking the rows rest the same way (_Pacer). A 10k-row import then
keeps vote p95 within 2x of idle (bench/bench_import_votes.py, docs/benchmarks.md) at about a third of
the import speed. When a write fails (disk full, read-only database) ImportInterrupted names the rows already
in. Import is idempotent, so running it again continues.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select

from annotations.archive import extract_archive, prune_extracted, rows_file
from annotations.db import describe_url, read_session, write_session, yield_to_writers
from annotations.errors import DiskFullError, ImportRejected, StoreError, error_line
from annotations.import_report import BadRow, ImportReport, next_step
from annotations.import_videos import VideoChecks
from annotations.models import NO_VIDEO_HASH, TASKS, TEXT_ONLY_TASKS, Pair, Response, Sample
from annotations.samples import SampleRow, upsert_samples_in
from annotations.tags import MAX_TAGS, set_tags

IMPORT_CHUNK = 100  # most rows per write transaction: a big import must not stall annotators' votes
#: A write transaction ends after the row that takes it past this many seconds (the gate is held that long).
IMPORT_MAX_TX_S = 0.01
#: After each stretch of work (a transaction, or IMPORT_MAX_TX_S of reading rows) the importer rests this many
#: times as long, at least IMPORT_YIELD_S: its Python work holds the GIL that the vote handlers need too.
IMPORT_REST_FACTOR = 2.0
IMPORT_YIELD_S = 0.005
#: Deepest JSON nesting a row may have (a row is one flat object; Python's parser overflows near 1,000).
MAX_JSON_DEPTH = 32
#: Longest short prompt / caption (characters): engine.types.MAX_PROMPT_CHARS, which every task enforces.
MAX_SHORT_PROMPT = 4000
#: Longest detailed prompt (teacher response) per field (characters).
MAX_DETAILED_PROMPT = 20_000
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_ID_CHUNK = 500  # ids per IN (...) query: far below SQLite's bound-parameter limit


class ImportInterrupted(StoreError):
    """A write failed part-way (disk full, read-only database); ``report`` names what is already in."""

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class _Row:
    line: int
    video: str | None
    video_hash: str
    short_prompt: str
    split: str
    detailed_prompt: str | None
    teacher_by_task: dict[int, str]
    tags: list[Any] | None = None
    task3_from_caption: bool = False
    task3_missing: bool = False


# --------------------------------------------------------------------------- reading


def _decode(path: Path) -> str:
    """The file as text; a non-UTF-8 byte is one StoreError naming its line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise StoreError(
            f"{path}: line {line} is not UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8 and import again"
        ) from None


def _json_depth(line: str) -> int:
    """Deepest bracket nesting of a JSON text, strings skipped; stops counting past MAX_JSON_DEPTH."""
    depth = deepest = 0
    for token in _JSON_TOKENS.finditer(line):
        char = token.group(0)
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                break
        elif char in "]}":
            depth -= 1
    return deepest


def _read_jsonl(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if _json_depth(line) > MAX_JSON_DEPTH:  # json.loads would raise RecursionError near 1,000 levels
            yield number, f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:  # JSONDecodeError, or e.g. an integer past Python's 4300-digit limit
            yield number, f"not valid JSON ({exc.msg if isinstance(exc, json.JSONDecodeError) else exc})"
            continue
        yield number, record if isinstance(record, dict) else "not a JSON object"


def _read_csv(text: str, delimiter: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 2  # line 1 is the header
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # the reader carries on with the next line
            big = "field larger than field limit" in str(exc)
            yield start, "a field is larger than 128 KiB" if big else f"not valid CSV ({exc})"
            start = reader.reader.line_num + 1
            continue
        yield start, {k: v for k, v in record.items() if k is not None}
        start = reader.line_num + 1  # a quoted field may span lines


def _read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".ndjson", ".csv", ".tsv"):
        raise StoreError(f"{path}: unknown format {suffix!r}; use .jsonl, .csv or a .zip of one plus its clips")
    text = _decode(path)
    if suffix in (".csv", ".tsv"):
        return _read_csv(text, "\t" if suffix == ".tsv" else ",")
    return _read_jsonl(text)


# --------------------------------------------------------------------------- validation


def _text(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _too_long(record: dict[str, Any]) -> str | None:
    """Why a text field is over its bound (MAX_SHORT_PROMPT, MAX_DETAILED_PROMPT), or None."""
    limits = {"short_prompt": MAX_SHORT_PROMPT, "detailed_prompt": MAX_DETAILED_PROMPT}
    limits |= {f"detailed_prompt_task{t}": MAX_DETAILED_PROMPT for t in TASKS}
    for key, limit in limits.items():
        value = _text(record, key)
        if value is not None and len(value) > limit:
            return f"{key} is {len(value)} characters; the limit is {limit}"
    return None


def _targets(
    caption: str | None, teachers: dict[int, str], video: bool, caption_for_task3: bool
) -> tuple[dict[int, str], bool, bool]:
    """(teacher response per task, Task 3 took the caption, Task 3 has none): see the module's reading."""
    out = dict(teachers)
    tasks = (1, 2) if video else TEXT_ONLY_TASKS
    if caption:
        for task in tasks:
            out.setdefault(task, caption)
    from_caption = False
    if video and caption and caption_for_task3 and 3 not in out:
        out[3], from_caption = caption, True
    return out, from_caption, video and bool(caption) and 3 not in out


def _tags(record: dict[str, Any]) -> list[Any] | str | None:
    tags = record.get("tags")
    if tags is None or tags == "":
        return None
    if isinstance(tags, str):  # a CSV cell holds the JSON text
        try:
            tags = json.loads(tags)
        except ValueError:
            return "tags is not a JSON list"
    if not isinstance(tags, list) or not all(isinstance(t, dict) for t in tags) or len(tags) > MAX_TAGS:
        return f"tags must be a JSON list of at most {MAX_TAGS} mappings"
    return tags


def _check_row(record: dict[str, Any], videos: VideoChecks, line: int, caption_for_task3: bool = False) -> _Row | str:
    short_prompt = _text(record, "short_prompt")
    if short_prompt is None:
        return "missing 'short_prompt'"
    too_long = _too_long(record)
    if too_long is not None:
        return too_long
    teachers = {t: v for t in TASKS if (v := _text(record, f"detailed_prompt_task{t}"))}
    value = _text(record, "video")
    video, digest = None, NO_VIDEO_HASH
    if value is None:  # text-only: Task 3 alone
        video_only = sorted(set(teachers) - set(TEXT_ONLY_TASKS))
        if video_only:
            return f"detailed_prompt_task{video_only[0]} needs a video (this row has none: a text-only sample)"
    else:
        checked = videos.check(value)
        if isinstance(checked, str):
            return checked
        video, digest = checked
    tags = _tags(record)
    if isinstance(tags, str):
        return tags
    targets, from_caption, missing = _targets(
        _text(record, "detailed_prompt"), teachers, video is not None, caption_for_task3
    )
    return _Row(
        line=line,
        video=video,
        video_hash=digest,
        short_prompt=short_prompt,
        split=_text(record, "split") or "train",
        detailed_prompt=None,  # spread per task above (targets): never "every task"
        teacher_by_task=targets,
        tags=tags,
        task3_from_caption=from_caption,
        task3_missing=missing,
    )


def validate_rows(
    path: str | os.PathLike[str],
    media_root: str | os.PathLike[str] | None = None,
    confine_to: str | os.PathLike[str] | None = None,
    caption_for_task3: bool = False,
) -> tuple[list[_Row], ImportReport]:
    """Check every row; relative clips resolve against media_root, else the file's folder.

    Every clip must lie inside confine_to (an archive's folder) or the media root, when given.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such file")
    base = Path(media_root) if media_root is not None else path.parent
    if media_root is not None and not base.is_dir():
        raise StoreError(f"media folder {base} does not exist")
    confine = Path(confine_to) if confine_to is not None else (base if media_root is not None else None)
    videos = VideoChecks(base, confine)
    report, pacer = ImportReport(path=str(path)), _Pacer()
    good: list[_Row] = []
    seen: dict[tuple[str, str], int] = {}  # (video hash, short prompt) -> its first line
    for line, record in _read_rows(path):
        pacer.tick()
        report.rows += 1
        row = record if isinstance(record, str) else _check_row(record, videos, line, caption_for_task3)
        if isinstance(row, str):
            report.bad.append(BadRow(line, row))
            continue
        key = (row.video_hash, row.short_prompt)
        if key in seen:
            report.bad.append(BadRow(line, f"duplicate of line {seen[key]} (same video content and short_prompt)"))
            continue
        seen[key] = line
        good.append(row)
        report.text_only += row.video is None
        report.task3_from_caption += row.task3_from_caption
        report.task3_missing += row.task3_missing
        report.tagged += row.tags is not None
    report.videos = videos.distinct
    return good, report


# --------------------------------------------------------------------------- writing


def _why(exc: BaseException) -> str:
    """A write failure in a few words."""
    text = str(getattr(exc, "orig", None) or exc)
    if "disk is full" in text or getattr(exc, "errno", None) == 28 or "No space left" in text:
        return "disk full"
    if "readonly" in text.replace("-", "").replace(" ", "") or "read-only" in text:
        return "the database is read-only"
    return error_line(exc, message=text)


class _Pacer:
    """Rests a bulk step of the importer (reading rows, writing them) so that votes in the same process keep
    their latency: after IMPORT_MAX_TX_S of work, IMPORT_REST_FACTOR times that, then votes waiting for the
    write gate go first. ``engine`` None: no database yet, only the rest."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine, self.began = engine, time.monotonic()

    def tick(self, force: bool = False) -> None:
        worked = time.monotonic() - self.began
        if force or worked >= IMPORT_MAX_TX_S:
            rest = max(IMPORT_YIELD_S, IMPORT_REST_FACTOR * worked)
            if self.engine is not None:
                yield_to_writers(self.engine, rest)
            elif rest > 0:
                time.sleep(rest)
            self.began = time.monotonic()


def _write(engine: Engine, good: list[_Row], report: ImportReport) -> list[int]:
    """Upsert the rows in small transactions that yield to votes; returns the sample ids. ImportInterrupted
    if a transaction fails (it rolls back; the rows before it are in)."""
    ids: list[int] = []
    start, pacer = 0, _Pacer(engine)
    while start < len(good):
        pacer.began = time.monotonic()
        try:
            with write_session(engine) as session:
                results = _write_some(session, good, start)
        except (SQLAlchemyError, OSError, DiskFullError) as exc:
            raise _interrupted(exc, good, start, report) from None
        for sample_id, created in results:
            ids.append(sample_id)
            report.imported += int(created)
            report.existing += int(not created)
        start += len(results)
        pacer.tick(force=True)
    return ids


def _write_some(session: Any, good: list[_Row], start: int) -> list[tuple[int, bool]]:
    """Rows from `start` on, in batches of 10, until IMPORT_CHUNK rows or IMPORT_MAX_TX_S seconds."""
    began = time.monotonic()
    results: list[tuple[int, bool]] = []
    while len(results) < IMPORT_CHUNK and start + len(results) < len(good):
        at = start + len(results)
        batch = good[at : at + min(10, IMPORT_CHUNK - len(results))]
        rows = [
            SampleRow(r.video, r.short_prompt, r.video_hash, r.split, r.detailed_prompt, r.teacher_by_task)
            for r in batch
        ]
        results += upsert_samples_in(session, rows)
        if time.monotonic() - began >= IMPORT_MAX_TX_S:
            break
    return results


def _interrupted(exc: BaseException, good: list[_Row], start: int, report: ImportReport) -> ImportInterrupted:
    report.stopped = _why(exc)
    done = good[:start]
    report.written_lines = [done[0].line, done[-1].line] if done else []
    where = f"lines {done[0].line}-{done[-1].line} are in" if done else "nothing was written"
    return ImportInterrupted(
        f"{report.path}: {report.stopped} after {len(done)} of {len(good)} rows ({where}); "
        "fix that and run the same import again: it skips what is already in",
        report,
    )


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for i in range(0, len(ids), _ID_CHUNK):
        yield list(ids[i : i + _ID_CHUNK])


def _coverage(engine: Engine, ids: list[int], rows: list[_Row]) -> tuple[int, int]:
    """(samples missing a teacher response for one of their tasks, samples with no pair)."""
    wanted = {sid: set(TASKS if row.video else TEXT_ONLY_TASKS) for sid, row in zip(ids, rows, strict=True)}
    teachers: dict[int, set[int]] = {}
    paired: set[int] = set()
    with read_session(engine) as session:
        for chunk in _chunks(sorted(wanted)):
            query = select(Response.sample_id, Response.task).where(
                Response.source == "teacher", col(Response.sample_id).in_(chunk)
            )
            for sample_id, task in session.exec(query):
                teachers.setdefault(sample_id, set()).add(task)
            paired.update(session.exec(select(Pair.sample_id).where(col(Pair.sample_id).in_(chunk)).distinct()))
    lacking_teacher = sum(not tasks <= teachers.get(sid, set()) for sid, tasks in wanted.items())
    return lacking_teacher, sum(sid not in paired for sid in wanted)


def import_rows(
    engine: Engine,
    path: str | os.PathLike[str],
    skip_bad: bool = False,
    *,
    media_root: str | os.PathLike[str] | None = None,
    extract_to: str | os.PathLike[str] | None = None,
    caption_for_task3: bool = False,
) -> ImportReport:
    """Import a JSONL / CSV file, or a .zip holding one plus its clips (extracted safely into
    ``extract_to``, default the zip's folder, then imported with every clip confined to it).

    Raises ImportRejected (nothing imported) if any row is bad and ``skip_bad`` is off, and
    ImportInterrupted when a write fails part-way. Rows whose sample exists already are counted, not
    duplicated. The report says what to do next.
    """
    path = Path(path)
    if path.suffix.lower() != ".zip":
        good, report = validate_rows(path, media_root, caption_for_task3=caption_for_task3)
        return _import_checked(engine, path, good, report, skip_bad)
    if media_root is not None:
        raise StoreError("a .zip carries its own clips: drop the media folder, or import the unzipped rows file")
    extracted = extract_archive(path, extract_to if extract_to is not None else path.parent)
    try:
        good, report = validate_rows(rows_file(extracted), confine_to=extracted, caption_for_task3=caption_for_task3)
        report.extracted_to = str(extracted)
        return _import_checked(engine, path, good, report, skip_bad)
    finally:  # imported or not, the folder keeps only the clips samples use (issue 24 item 10)
        prune_extracted(extracted, videos_under(engine, extracted))


def _import_checked(
    engine: Engine, path: Path, good: list[_Row], report: ImportReport, skip_bad: bool
) -> ImportReport:
    if report.bad and not skip_bad:
        raise ImportRejected(f"{path}: {len(report.bad)} bad row(s) of {report.rows}; nothing imported", report)
    ids = _write(engine, good, report)
    tagged = {sid: row.tags for sid, row in zip(ids, good, strict=True) if row.tags is not None}
    if tagged:
        set_tags(engine, tagged)
    report.lacking_teacher, report.lacking_pairs = _coverage(engine, ids, good)
    report.next_step = next_step(report, describe_url(engine))
    return report


def videos_under(engine: Engine, folder: Path) -> set[str]:
    """Clip paths of samples inside `folder` (absolute, as samples store them): what a prune keeps."""
    prefix = os.path.abspath(folder) + os.sep
    like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with read_session(engine) as session:
        query = select(Sample.video).where(col(Sample.video).like(like, escape="\\"))
        return {v for v in session.exec(query) if v and v.startswith(prefix)}
