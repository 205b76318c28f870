"""The teacher step (paper section 3.4): write a teacher response for each imported sample that lacks one.

The paper's teachers are VILA-34B (detailed captions, the chosen responses of Tasks 1-2) and
Llama-3-70B (detailed prompts, Task 3); here any preset or checkpoint folder plays the role
(`model` for every task, `text_model` for Task 3 when set), on the transformers or the vLLM backend.

Resumable: a (sample, task) that has a teacher response is skipped, and each response is written as
soon as it is generated, so a killed run continues where it stopped. Shards (engine.shards) split the
samples between processes that share one database. Every model call goes through the Studio's verbs;
every write through `annotations.store`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from engine.errors import InputError
from engine.mining import task_inputs
from engine.shards import Shard
from engine.types import Candidate, GenerationParams, Task

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy import Engine

    from annotations.store import SampleInfo


@dataclass
class TeacherConfig:
    """Which samples get a teacher response, from which model."""

    model: str | None = None
    """Teacher for every task (None: the Studio's default model per task)."""
    text_model: str | None = None
    """Teacher for Task 3 when set (the paper: Llama-3-70B for Task 3, VILA-34B for Tasks 1-2)."""
    tasks: tuple[int, ...] = tuple(int(t) for t in Task)
    """Tasks to write teacher responses for."""
    split: str | None = None
    """Only samples of this split (None: every split)."""
    limit: int | None = None
    """At most this many samples (None: all)."""
    max_new_tokens: int = 512
    """Generation budget per response (the paper's Figure-4 prompts run to ~200 words)."""
    shard: Shard = field(default_factory=Shard)
    """This process's share of the samples."""

    def __post_init__(self) -> None:
        self.tasks = tuple(int(Task.parse(t)) for t in self.tasks)
        if not self.tasks:
            raise InputError("at least one task is needed")
        GenerationParams(max_new_tokens=self.max_new_tokens)  # its range check, before any model loads

    def model_for(self, task: Task) -> str | None:
        return self.text_model if task == Task.BEAUTIFY and self.text_model else self.model


@dataclass
class TeacherReport:
    """What one run (one shard) did."""

    shard: str = "shard 0/1"
    items: int = 0
    written: int = 0
    skipped_done: int = 0
    skipped_unusable: int = 0
    empty: int = 0
    models: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TeacherVerbs(Protocol):
    """What the teacher step calls on `engine.service.Studio` (a Protocol: no import of the service)."""

    def load(self, model: str | None = None, task: Task | int | None = None) -> str: ...

    def run_task(
        self,
        task: Task | int,
        video: str | Path | None = None,
        short_prompt: str | None = None,
        model: str | None = None,
        params: GenerationParams | None = None,
    ) -> list[Candidate]: ...


class Teacher:
    """Writes teacher responses into an annotations database with a Studio's models."""

    def __init__(self, studio: TeacherVerbs, db: Engine, config: TeacherConfig) -> None:
        self.studio, self.db, self.config = studio, db, config
        self.report = TeacherReport(shard=config.shard.label)

    def todo(self) -> list[tuple[SampleInfo, Task]]:
        """This shard's (sample, task) items that lack a teacher response and have what the task reads."""
        from annotations.store import list_samples, teacher_response

        work = []
        for sample in list_samples(self.db, self.config.split, self.config.limit):
            if not self.config.shard.owns(sample.id):
                continue
            for task in map(Task, self.config.tasks):
                if task_inputs(sample, task) is None:
                    self.report.skipped_unusable += 1
                elif teacher_response(self.db, sample.id, int(task)) is not None:
                    self.report.skipped_done += 1
                else:
                    work.append((sample, task))
        return work

    def load_models(self, work: list[tuple[SampleInfo, Task]]) -> None:
        """Load every model the work needs before the first item: a model that cannot load is one line."""
        for task in sorted({task for _, task in work}):
            name = self.studio.load(self.config.model_for(task), task)
            if name not in self.report.models:
                self.report.models.append(name)

    def run(self, progress: bool = True) -> TeacherReport:
        from tqdm import tqdm

        work = self.todo()
        self.load_models(work)
        label = f"teacher [{self.config.shard.label}]"
        for sample, task in tqdm(
            work, desc=label, unit="item", disable=not progress, position=self.config.shard.index
        ):
            self.report.items += 1
            self.write_one(sample, task)
        return self.report

    def write_one(self, sample: SampleInfo, task: Task) -> bool:
        """Generate and store one teacher response; False when the model returned nothing usable."""
        from annotations.store import add_response

        video, prompt = task_inputs(sample, task) or (None, None)
        params = GenerationParams(max_new_tokens=self.config.max_new_tokens)
        candidates = self.studio.run_task(task, video, prompt, model=self.config.model_for(task), params=params)
        text = candidates[0].text.strip() if candidates else ""
        if not text:
            self.report.empty += 1
            self.report.notes.append(f"sample {sample.id} task {int(task)}: the teacher returned an empty text")
            return False
        meta = {"step": "teacher", "max_new_tokens": self.config.max_new_tokens}
        if candidates[0].random_weights:
            meta["random_weights"] = True
        add_response(self.db, sample.id, int(task), text, "teacher", model=candidates[0].model, meta=meta)
        self.report.written += 1
        return True


def write_teacher_responses(
    studio: TeacherVerbs, db: Engine, config: TeacherConfig, progress: bool = True
) -> TeacherReport:
    """Run the teacher step: one entry point for the CLI and the loop."""
    return Teacher(studio, db, config).run(progress=progress)
