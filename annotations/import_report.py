"""What an import did (annotations.importer writes it; the CLI prints it, the Data tab shows it), and the
one-line next step it suggests. Plain data: annotations.errors refers to it without importing the importer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class BadRow:
    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import did, as plain data (the CLI prints it, the Data tab shows it)."""

    path: str
    rows: int = 0
    imported: int = 0  # new samples
    existing: int = 0  # rows whose sample was already in the DB (re-import is idempotent)
    bad: list[BadRow] = field(default_factory=list)
    text_only: int = 0  # good rows without a video (Task 3 only)
    videos: int = 0  # distinct clip files the good rows name
    lacking_teacher: int = 0  # samples of this file missing a teacher response for a task they have
    task3_from_caption: int = 0  # video rows whose caption became the Task-3 target (caption_for_task3)
    task3_missing: int = 0  # video rows with a caption but no Task-3 target (the teacher step writes one)
    tagged: int = 0  # rows carrying tags of their short prompt
    lacking_pairs: int = 0  # samples of this file with no preference pair yet
    written_lines: list[int] = field(default_factory=list)  # [first, last] line written (when interrupted)
    stopped: str | None = None  # why writing stopped early, if it did
    extracted_to: str | None = None  # an archive's folder
    next_step: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: what was imported (and where Task 3's targets came from)."""
        line = (
            f"{self.imported} sample(s) imported, {self.existing} already present, {len(self.bad)} bad row(s) "
            f"skipped ({self.videos} video file(s), {self.text_only} text-only row(s))"
        )
        if self.task3_from_caption:
            line += f"; Task 3 of {self.task3_from_caption} video row(s) learns the caption (caption_for_task3)"
        if self.task3_missing:
            line += (
                f"; {self.task3_missing} video row(s) have a caption but no detailed_prompt_task3: the teacher "
                "step writes their Task-3 target (or import with --caption-for-task3)"
            )
        return line


def next_step(report: ImportReport, db: str) -> str:
    """What to do after this import, in one line, with the commands."""
    n = report.imported + report.existing
    mine = f"run mining (python -m engine mine-pairs --db {db}, or the Admin tab's Mine button)"
    if n == 0:
        return "nothing imported: fix the rows listed above and import again"
    if report.lacking_teacher:
        return (
            f"{report.lacking_teacher} of {n} samples lack a teacher response: run the teacher step "
            f"(python -m engine teacher --db {db} --model PRESET), then {mine}"
        )
    if report.lacking_pairs == n:
        return f"{n} samples in; none has pairs yet: {mine}"
    if report.lacking_pairs:
        return f"{report.lacking_pairs} of {n} samples have no pairs yet: {mine}"
    return f"every sample has pairs: label them in the Label tab, or train (python -m training --db {db} --config ...)"
