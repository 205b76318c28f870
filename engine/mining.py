"""Preference-pair mining (paper sections 3.4 and 4.1).

For each sample and task: beam search (width 5) with the SFT/base model, score the candidates
(Tasks 1-2: the evaluator ensemble's mean; Task 3: the LLM judge), take the `num_rejected` lowest as
rejected, and pair each with the chosen response: the teacher (reference) response when the sample
has one, else the best candidate. Samples, responses, scores and pairs go through `annotations`;
every model call goes through the Studio's verbs (`Studio.mine` runs a `Miner` on itself).

Resumable: a (sample, task) that already has `num_rejected` mined DPO pairs is skipped; a partial one
is completed without duplicates (responses are deduplicated by the store and beam search is
deterministic, so the same pairs come out again and existing ones are not re-added).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.errors import InputError
from engine.evaluators.registry import PAPER_EVALUATORS
from engine.evaluators.scores import ScoreReport
from engine.types import Candidate, GenerationParams, Task

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from annotations.store import SampleInfo
    from engine.evaluators.judge import JudgeResult

ENSEMBLE_SCORE = "ensemble"
"""Score name under which the ensemble mean is stored (members are stored under their own names)."""
JUDGE_SCORE = "llm-judge"


@dataclass
class MiningConfig:
    """What `Studio.mine` mines and with which models."""

    tasks: tuple[int, ...] = tuple(int(t) for t in Task)
    """Tasks to mine (1: video, 2: video + caption, 3: short prompt)."""
    num_beams: int = 5
    """Beam width; every beam is a candidate (paper: 5)."""
    num_rejected: int = 2
    """Lowest-scored candidates taken as rejected (paper: 2)."""
    model: str | None = None
    """Generation model (None: the Studio default per task)."""
    evaluators: tuple[str, ...] = PAPER_EVALUATORS
    """Evaluator ensemble for Tasks 1-2."""
    judge_model: str | None = None
    """LLM judge for Task 3 (None: the Studio's judge model)."""
    split: str | None = "train"
    """Only samples of this split (None: all)."""
    limit: int | None = None
    """Mine at most this many samples (None: all)."""
    max_new_tokens: int = 160
    """Generation length per candidate."""

    def __post_init__(self) -> None:
        self.tasks = tuple(int(Task.parse(t)) for t in self.tasks)
        if self.num_beams < 2:
            raise InputError(f"num_beams must be >= 2 to mine pairs, got {self.num_beams}")
        if not 1 <= self.num_rejected < self.num_beams:
            raise InputError(f"rejected must be in 1..{self.num_beams - 1} (below num_beams), got {self.num_rejected}")
        if not self.evaluators:
            raise InputError("at least one evaluator is needed for tasks 1-2")


@dataclass
class MiningReport:
    """What one run did."""

    items: int = 0
    mined: int = 0
    pairs_written: int = 0
    skipped_done: int = 0
    skipped_unusable: int = 0
    short_of_rejected: int = 0
    unparsed_judgements: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StudioVerbs(Protocol):
    """What mining and evaluation call on `engine.service.Studio`.

    A Protocol rather than an import of Studio: Studio.mine / Studio.evaluate import this module, so
    importing service here would close a circle.
    """

    def run_task(
        self,
        task: Task | int,
        video: str | Path | None = None,
        short_prompt: str | None = None,
        model: str | None = None,
        params: GenerationParams | None = None,
    ) -> list[Candidate]: ...

    def score(
        self, video: str | Path, texts: Sequence[str], evaluators: Sequence[str] | None = None
    ) -> ScoreReport: ...

    def require_evaluators(self, names: Sequence[str]) -> list[str]: ...

    def judge_many(
        self, texts: Sequence[str], model: str | None = None, params: GenerationParams | None = None
    ) -> list[JudgeResult]: ...


@dataclass
class Scored:
    """A candidate's stored id, its text, and its ranking score (None: the judge could not be parsed)."""

    response_id: int
    text: str
    score: float | None
    all_scores: dict[str, float]


def task_inputs(sample: SampleInfo, task: Task) -> tuple[str | None, str | None] | None:
    """(video, short prompt) as the task reads them, or None when the sample lacks what the task needs."""
    prompt = (sample.short_prompt or "").strip() or None
    if (task.needs_video and not sample.video) or (task.needs_prompt and prompt is None):
        return None
    return (sample.video if task.needs_video else None), (prompt if task.needs_prompt else None)


class Miner:
    """Mines pairs into an annotations database with a Studio's models (loaded once, reused)."""

    def __init__(self, studio: StudioVerbs, db: Engine, config: MiningConfig) -> None:
        self.studio = studio
        self.db = db
        self.config = config
        self.report = MiningReport()

    def work(self) -> Iterator[tuple[SampleInfo, Task]]:
        from annotations.store import list_samples

        for sample in list_samples(self.db, self.config.split, self.config.limit):
            for task in self.config.tasks:
                yield sample, Task(task)

    def run(self, progress: bool = True) -> MiningReport:
        from tqdm import tqdm

        from engine.tasks import record_instructions

        if any(Task(t).needs_video for t in self.config.tasks):  # before any generation: fail fast
            self.studio.require_evaluators(self.config.evaluators)
        record_instructions(self.db)  # the export builds each pair's prompt from these
        items = list(self.work())
        for sample, task in tqdm(items, desc="mining pairs", unit="item", disable=not progress):
            self.report.items += 1
            self.mine_one(sample, task)
        return self.report

    def mine_one(self, sample: SampleInfo, task: Task) -> int:
        """Mine one (sample, task); returns the number of pairs written."""
        from annotations.store import mined_pairs, teacher_response

        existing = mined_pairs(self.db, sample.id, int(task))
        if len(existing) >= self.config.num_rejected:
            self.report.skipped_done += 1
            return 0
        inputs = task_inputs(sample, task)
        if inputs is None:
            self.report.skipped_unusable += 1
            return 0
        candidates = self.generate(task, *inputs)
        teacher = teacher_response(self.db, sample.id, int(task))
        scored = self.score(sample, task, candidates, teacher)
        chosen, rejected = self.select(scored, teacher)
        written = self.write_pairs(sample, task, chosen, rejected, existing)
        self.report.mined += 1
        return written

    def generate(self, task: Task, video: str | None, prompt: str | None) -> list[Candidate]:
        """Every beam as a candidate; empty and repeated texts dropped, beam order kept."""
        beams = self.config.num_beams
        params = GenerationParams(
            max_new_tokens=self.config.max_new_tokens, num_beams=beams, num_return_sequences=beams
        )
        cands = self.studio.run_task(task, video, prompt, model=self.config.model, params=params)
        seen: dict[str, Candidate] = {}
        for c in cands:
            seen.setdefault(c.text.strip(), c)
        return [c for text, c in seen.items() if text]

    def score(
        self, sample: SampleInfo, task: Task, cands: list[Candidate], teacher: tuple[int, str] | None
    ) -> list[Scored]:
        """Store the candidates and score them with the teacher in the same batch; the teacher is last."""
        from annotations.store import add_response, add_scores

        texts = [c.text.strip() for c in cands]
        ids = [
            add_response(self.db, sample.id, int(task), t, "model", model=c.model, beam_rank=i)
            for i, (t, c) in enumerate(zip(texts, cands, strict=True))
        ]
        if teacher is not None:
            ids, texts = [*ids, teacher[0]], [*texts, teacher[1]]
        values = self.video_scores(sample, texts) if task.needs_video else self.judge_scores(texts)
        scored = [Scored(rid, t, rank, all_) for rid, t, (rank, all_) in zip(ids, texts, values, strict=True)]
        for s in scored:
            if s.all_scores:
                add_scores(self.db, s.response_id, s.all_scores)
        return scored

    def video_scores(self, sample: SampleInfo, texts: list[str]) -> list[tuple[float | None, dict[str, float]]]:
        assert sample.video is not None  # task_inputs let only samples with a video reach a video task
        report = self.studio.score(sample.video, texts, self.config.evaluators)
        return [(r.mean, {**r.scores, ENSEMBLE_SCORE: r.mean}) for r in report.rows]

    def judge_scores(self, texts: list[str]) -> list[tuple[float | None, dict[str, float]]]:
        results = self.studio.judge_many(texts, model=self.config.judge_model)
        self.report.unparsed_judgements += sum(not r.parsed for r in results)
        return [(r.score, {JUDGE_SCORE: r.score} if r.score is not None else {}) for r in results]

    def select(self, scored: list[Scored], teacher: tuple[int, str] | None) -> tuple[Scored | None, list[Scored]]:
        """Chosen: the teacher, else the best candidate. Rejected: the lowest-scored other candidates.

        Candidates the judge could not score are never ranked (no made-up numbers), and a candidate
        identical to the teacher text is not a rejected response.
        """
        if teacher is not None:
            chosen = scored[-1]
            pool = [s for s in scored[:-1] if s.score is not None and s.text != teacher[1]]
        else:
            ranked = [s for s in scored if s.score is not None]
            chosen = max(ranked, key=lambda s: s.score, default=None)  # type: ignore[arg-type, return-value]
            pool = [s for s in ranked if s is not chosen]
        rejected = sorted(pool, key=lambda s: s.score)[: self.config.num_rejected]  # type: ignore[arg-type, return-value]
        return chosen, rejected

    def write_pairs(
        self,
        sample: SampleInfo,
        task: Task,
        chosen: Scored | None,
        rejected: list[Scored],
        existing: set[tuple[int, int]],
    ) -> int:
        from annotations.store import add_pair

        if chosen is None or len(rejected) < self.config.num_rejected:
            self.report.short_of_rejected += 1
            self.report.notes.append(
                f"sample {sample.id} task {int(task)}: {len(rejected)} rankable rejected of {self.config.num_rejected}"
            )
        if chosen is None:
            return 0
        written = 0
        for r in rejected:
            if (chosen.response_id, r.response_id) in existing:
                continue
            meta = {"chosen_score": chosen.score, "rejected_score": r.score, "scorer": self.scorer_name(task)}
            add_pair(self.db, sample.id, int(task), chosen.response_id, r.response_id, "mined", "dpo", meta=meta)
            written += 1
        self.report.pairs_written += written
        return written

    def scorer_name(self, task: Task) -> str:
        return ENSEMBLE_SCORE + ":" + "+".join(self.config.evaluators) if task.needs_video else JUDGE_SCORE
