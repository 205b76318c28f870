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

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from engine.errors import InputError
from engine.mining import TokenCounter, by_prompt_length, task_inputs
from engine.shards import Shard
from engine.types import Candidate, GenerationParams, Task

#: The response source of an item a best-of-N run dropped (annotations.models.RESPONSE_SOURCES).
UNFAITHFUL_SOURCE = "teacher-unfaithful"

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
    best_of: int = 1
    """Text-only Task 3: sample this many candidates and keep the best by faithfulness to the short prompt's
    tags, then richness (engine.faithfulness.rank): best-of-N self-distillation standing in for a larger
    teacher where none exists. 1: one greedy response (the paper's teacher models)."""
    temperature: float = 0.7
    """Sampling temperature of the best-of-N candidates."""
    top_p: float = 0.9
    """Nucleus mass of the best-of-N candidates."""
    require_faithful: bool = True
    """With best_of > 1: an item none of whose candidates keeps every tagged element gets no teacher
    response (counted in skipped_unfaithful) rather than an unfaithful one; its best candidate is stored as a
    `teacher-unfaithful` response so that a rerun (another loop on the same database) does not sample it again."""
    retry_unfaithful: bool = False
    """Sample the items a run before dropped as unfaithful again (with another seed, a larger best_of)."""
    focus_words: int | None = None
    """With best_of > 1: each candidate ends once it has said every tagged element and then at most this many
    words (engine.rerank.focus): a small model's samples drift into unrelated people and noun lists after their
    first sentences, and a model fine-tuned on the drift learns it. None: the tidied candidate, whole."""
    batch: int = 1
    """Items per generate call (one batched call; each item is written as soon as its call returns)."""
    seed: int = 0
    """Sampling seed of the best-of-N candidates (per call: seed + the call's first sample id)."""

    def __post_init__(self) -> None:
        self.tasks = tuple(int(Task.parse(t)) for t in self.tasks)
        if not self.tasks:
            raise InputError("at least one task is needed")
        if not 1 <= self.best_of <= 16:
            raise InputError(f"best_of must be in 1..16, got {self.best_of}")
        if self.batch < 1:
            raise InputError(f"batch must be >= 1, got {self.batch}")
        if self.focus_words is not None and self.focus_words < 1:
            raise InputError(f"focus_words must be >= 1 (or unset), got {self.focus_words}")
        self.params(3)  # the range checks, before any model loads

    def params(self, task: Task | int) -> GenerationParams:
        """Greedy, or best_of sampled candidates for text-only Task 3."""
        if self.best_of > 1 and Task.parse(task) == Task.BEAUTIFY:
            return GenerationParams(
                max_new_tokens=self.max_new_tokens,
                do_sample=True,
                temperature=self.temperature,
                top_p=self.top_p,
                num_return_sequences=self.best_of,
            )
        return GenerationParams(max_new_tokens=self.max_new_tokens)

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
    skipped_unfaithful_before: int = 0
    skipped_unfaithful: int = 0
    """Best-of-N items none of whose candidates kept every tagged element (require_faithful)."""
    empty: int = 0
    models: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TeacherVerbs(TokenCounter, Protocol):
    """What the teacher step calls on `engine.service.Studio` (a Protocol: no import of the service; mypy checks
    Studio against it there)."""

    def load(self, model: str | None = None, task: Task | int | None = None) -> str: ...

    def run_task(
        self,
        task: Task | int,
        video: str | Path | None = None,
        short_prompt: str | None = None,
        model: str | None = None,
        params: GenerationParams | None = None,
    ) -> list[Candidate]: ...

    def run_tasks(
        self,
        task: Task | int,
        inputs: Sequence[tuple[str | Path | None, str | None]],
        model: str | None = None,
        params: GenerationParams | None = None,
    ) -> list[list[Candidate]]: ...


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
                elif self.skips_dropped(sample.id, task):
                    self.report.skipped_unfaithful_before += 1
                else:
                    work.append((sample, task))
        return work

    def skips_dropped(self, sample_id: int, task: Task) -> bool:
        """Did a run before drop this item as unfaithful (and is that to be kept)?"""
        from annotations.store import teacher_response

        if self.config.retry_unfaithful or not self.config.require_faithful:
            return False
        return teacher_response(self.db, sample_id, int(task), source=UNFAITHFUL_SOURCE) is not None

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
        bar = tqdm(total=len(work), desc=label, unit="item", disable=not progress, position=self.config.shard.index)
        for chunk in self.chunks(work):
            self.report.items += len(chunk)
            self.write_chunk(chunk)
            bar.update(len(chunk))
        bar.close()
        return self.report

    def chunks(self, work: list[tuple[SampleInfo, Task]]) -> Iterator[list[tuple[SampleInfo, Task]]]:
        """`batch` items of one task at a time, in the order todo() lists them."""
        size = self.config.batch
        for task in sorted({t for _, t in work}):
            items = [(s, t) for s, t in work if t == task]
            if size > 1:  # equal-length prompts side by side: no padding in a batched call
                model = self.config.model_for(task)
                items = [
                    items[i] for i in by_prompt_length(self.studio, model, task, [s.short_prompt for s, _ in items])
                ]
            for start in range(0, len(items), size):
                yield items[start : start + size]

    def write_chunk(self, chunk: list[tuple[SampleInfo, Task]]) -> int:
        """Generate one batched call for `chunk` (one task) and store each item's teacher response."""
        task = chunk[0][1]
        params = self.config.params(task)
        if params.do_sample:
            params = replace(params, seed=self.config.seed + chunk[0][0].id)
        inputs = [task_inputs(sample, task) or (None, None) for sample, _ in chunk]
        outs = self.studio.run_tasks(task, inputs, model=self.config.model_for(task), params=params)
        tags = self.tags([s.id for s, _ in chunk]) if params.num_return_sequences > 1 else {}
        return sum(
            self.write_one(sample, task, cands, tags.get(sample.id))
            for (sample, _), cands in zip(chunk, outs, strict=True)
        )

    def tags(self, sample_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        from annotations.tags import tags_by_sample

        return tags_by_sample(self.db, sample_ids)

    def write_one(
        self, sample: SampleInfo, task: Task, candidates: list[Candidate], tags: list[dict[str, Any]] | None = None
    ) -> bool:
        """Store one item's teacher response (the best of several candidates); False when nothing usable."""
        from annotations.store import add_response

        meta: dict[str, Any] = {"step": "teacher", "max_new_tokens": self.config.max_new_tokens}
        texts = [c.text.strip() for c in candidates if c.text.strip()]
        if len(candidates) > 1 and texts:
            text, pick = self.best(sample, task, texts, tags)
            if text is None:
                self.report.skipped_unfaithful += 1
                # Recorded, never a teacher response: SFT, mining and export read source "teacher" only.
                best = pick.pop("text")
                add_response(
                    self.db, sample.id, int(task), best, UNFAITHFUL_SOURCE, candidates[0].model, meta=meta | pick
                )
                return False
            meta |= pick
        else:
            text = texts[0] if texts else ""
        if not text:
            self.report.empty += 1
            self.report.notes.append(f"sample {sample.id} task {int(task)}: the teacher returned an empty text")
            return False
        if candidates[0].random_weights:
            meta["random_weights"] = True
        add_response(self.db, sample.id, int(task), text, "teacher", model=candidates[0].model, meta=meta)
        self.report.written += 1
        return True

    def best(
        self, sample: SampleInfo, task: Task, texts: list[str], tags: list[dict[str, Any]] | None
    ) -> tuple[str | None, dict[str, Any]]:
        """(the best candidate or None, what the choice was). Each candidate is tidied first (engine.rerank.tidy:
        cut at its first repeated, junk or late-fragment sentence, or a sentence the budget cut off), so a
        chosen response ends where a sentence ends), then focused when focus_words is set (engine.rerank.focus);
        then faithfulness first, then richness."""
        from engine.faithfulness.rank import elements_for, ranked
        from engine.rerank import focus, tidy

        elements = elements_for(sample.short_prompt, tags)
        tidied = [tidy(t)[0] or t for t in texts]
        if self.config.focus_words is not None:
            tidied = [focus(t, elements, sample.short_prompt, self.config.focus_words) for t in tidied]
        index, score = ranked(tidied, elements, sample.short_prompt)[0]
        pick = {
            "best_of": len(texts),
            "ranker": "faithfulness",
            "tags": "stored" if tags else "autotag",
            "kept": f"{score.kept}/{score.total}",
            "all_kept": score.all_kept,
            "richness": score.richness,
            "tidied": tidied[index] != texts[index],
        }
        if self.config.focus_words is not None:
            pick["focus_words"] = self.config.focus_words
        if self.config.require_faithful and not score.all_kept:
            return None, pick | {"text": tidied[index]}  # recorded as the drop (write_one)
        return tidied[index], pick


def write_teacher_responses(
    studio: TeacherVerbs, db: Engine, config: TeacherConfig, progress: bool = True
) -> TeacherReport:
    """Run the teacher step: one entry point for the CLI and the loop."""
    return Teacher(studio, db, config).run(progress=progress)
