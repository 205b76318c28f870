"""Preference-pair mining (paper sections 3.4 and 4.1).

For each sample and task: beam search (width 5) with the SFT/base model, score the candidates
(Tasks 1-2: the evaluator ensemble's mean; Task 3: the LLM judge), take the `num_rejected` lowest as
rejected, and pair each with the chosen response: the teacher (reference) response when the sample
has one, else the best candidate. Samples, responses, scores and pairs go through `annotations`.

Resumable: a (sample, task) that already has `num_rejected` mined DPO pairs is skipped; a partial one
is completed without duplicates (responses are deduplicated by the store and beam search is
deterministic, so the same pairs come out again and existing ones are not re-added).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.errors import InputError
from engine.evaluators.registry import PAPER_EVALUATORS
from engine.types import GenerationParams, Task

ENSEMBLE_SCORE = "ensemble"
"""Score name under which the ensemble mean is stored (members are stored under their own names)."""
JUDGE_SCORE = "llm-judge"


@dataclass
class MiningConfig:
    """What `mine_pairs` mines and with which models."""

    tasks: tuple[int, ...] = (1, 2, 3)
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
    """LLM judge for Task 3 (None: the default text model)."""
    split: str | None = "train"
    """Only samples of this split (None: all)."""
    limit: int | None = None
    """Mine at most this many samples (None: all)."""
    max_new_tokens: int = 160
    """Generation length per candidate."""
    num_frames: int = 8
    """Frames given to the video model."""
    backend: str = "transformers"
    """Generation backend."""
    device: str | None = None
    """Device for models and evaluators."""

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


@dataclass(frozen=True)
class SampleRow:
    id: int
    video: str
    short_prompt: str | None


@dataclass
class Scored:
    """A candidate's stored id, its text, and its ranking score (None: the judge could not be parsed)."""

    response_id: int
    text: str
    score: float | None
    all_scores: dict[str, float]


# -- reads from the store (annotations has no listing helpers for these yet) -------------------------
def list_samples(db: Any, split: str | None, limit: int | None = None) -> list[SampleRow]:
    from sqlmodel import select

    from annotations.db import read_session
    from annotations.models import Sample

    query = select(Sample).order_by(Sample.id)
    if split is not None:
        query = query.where(Sample.split == split)
    if limit is not None:
        query = query.limit(limit)
    with read_session(db) as session:
        return [SampleRow(int(s.id), s.video, s.short_prompt) for s in session.exec(query)]  # type: ignore[arg-type]


def teacher_response(db: Any, sample_id: int, task: int) -> tuple[int, str] | None:
    from sqlmodel import select

    from annotations.db import read_session
    from annotations.models import Response

    query = select(Response).where(
        Response.sample_id == sample_id, Response.task == task, Response.source == "teacher"
    )
    with read_session(db) as session:
        row = session.exec(query.order_by(Response.id)).first()
        return (int(row.id), row.text) if row is not None else None  # type: ignore[arg-type]


def mined_pairs(db: Any, sample_id: int, task: int) -> set[tuple[int, int]]:
    from sqlmodel import select

    from annotations.db import read_session
    from annotations.models import Pair

    query = select(Pair.response_a_id, Pair.response_b_id).where(
        Pair.sample_id == sample_id, Pair.task == task, Pair.origin == "mined", Pair.hdpo_term == "dpo"
    )
    with read_session(db) as session:
        return {(int(a), int(b)) for a, b in session.exec(query)}


# -- the miner ---------------------------------------------------------------------------------------
class LazyScorers:
    """The evaluator ensemble (video tasks) and the judge backend (Task 3), built on first use.

    Shared by the Miner and the evaluation Harness; subclasses set config, studio, _ensemble, _judge.
    """

    config: Any
    studio: Any
    _ensemble: Any
    _judge: Any

    @property
    def ensemble(self) -> Any:
        if self._ensemble is None:
            from engine.evaluators.ensemble import Ensemble

            self._ensemble = Ensemble(list(self.config.evaluators), device=self.config.device)
        return self._ensemble

    @property
    def judge(self) -> Any:
        if self._judge is None:
            from engine.models import DEFAULT_TEXT_MODEL

            self._judge = self.studio.backend(self.config.judge_model or DEFAULT_TEXT_MODEL)
        return self._judge


class Miner(LazyScorers):
    """Mines pairs into an annotations database. Models load on first use and are reused."""

    def __init__(self, db: Any, config: MiningConfig, studio: Any = None, ensemble: Any = None, judge: Any = None):
        from engine.service import Studio, StudioConfig

        self.db = db
        self.config = config
        self.studio = studio or Studio(
            StudioConfig(backend=config.backend, device=config.device, num_frames=config.num_frames)
        )
        self._ensemble = ensemble
        self._judge = judge
        self.report = MiningReport()

    def work(self) -> Iterator[tuple[SampleRow, Task]]:
        for sample in list_samples(self.db, self.config.split, self.config.limit):
            for task in self.config.tasks:
                yield sample, Task(task)

    def run(self, progress: bool = True) -> MiningReport:
        from tqdm import tqdm

        items = list(self.work())
        for sample, task in tqdm(items, desc="mining pairs", unit="item", disable=not progress):
            self.report.items += 1
            self.mine_one(sample, task)
        return self.report

    def usable(self, sample: SampleRow, task: Task) -> bool:
        return not (task.needs_prompt and not (sample.short_prompt or "").strip())

    def mine_one(self, sample: SampleRow, task: Task) -> int:
        """Mine one (sample, task); returns the number of pairs written."""
        existing = mined_pairs(self.db, sample.id, int(task))
        if len(existing) >= self.config.num_rejected:
            self.report.skipped_done += 1
            return 0
        if not self.usable(sample, task):
            self.report.skipped_unusable += 1
            return 0
        candidates = self.generate(sample, task)
        teacher = teacher_response(self.db, sample.id, int(task))
        scored = self.score(sample, task, candidates, teacher)
        chosen, rejected = self.select(scored, teacher)
        written = self.write_pairs(sample, task, chosen, rejected, existing)
        self.report.mined += 1
        return written

    def generate(self, sample: SampleRow, task: Task) -> list[str]:
        request = self.studio.build_request(task, sample.video if task.needs_video else None, sample.short_prompt)
        backend = self.studio.backend(self.config.model, task)
        params = GenerationParams(
            max_new_tokens=self.config.max_new_tokens,
            num_beams=self.config.num_beams,
            num_return_sequences=self.config.num_beams,
        )
        with self.studio.lock_for(f"model:{backend.model_name}"):
            texts = backend.generate([request], params)[0]
        self._model_name = backend.model_name
        return list(dict.fromkeys(t.strip() for t in texts if t.strip()))  # distinct, beam order kept

    def score(self, sample: SampleRow, task: Task, texts: list[str], teacher: tuple[int, str] | None) -> list[Scored]:
        """Store the candidates and score them with the teacher in the same batch; the teacher is last."""
        from annotations.store import add_response, add_scores

        ids = [
            add_response(self.db, sample.id, int(task), t, "model", model=self._model_name, beam_rank=i)
            for i, t in enumerate(texts)
        ]
        if teacher is not None:
            ids, texts = [*ids, teacher[0]], [*texts, teacher[1]]
        values = self.video_scores(sample, texts) if task.needs_video else self.judge_scores(texts)
        scored = [Scored(rid, t, rank, all_) for rid, t, (rank, all_) in zip(ids, texts, values, strict=True)]
        for s in scored:
            if s.all_scores:
                add_scores(self.db, s.response_id, s.all_scores)
        return scored

    def video_scores(self, sample: SampleRow, texts: list[str]) -> list[tuple[float | None, dict[str, float]]]:
        results = self.ensemble.score_detailed(sample.video, texts)
        return [(r.mean, {**r.scores, ENSEMBLE_SCORE: r.mean}) for r in results]

    def judge_scores(self, texts: list[str]) -> list[tuple[float | None, dict[str, float]]]:
        from engine.evaluators.judge import judge_many

        results = judge_many(self.judge, texts)
        self.report.unparsed_judgements += sum(not r.parsed for r in results)
        return [(r.score, {JUDGE_SCORE: r.score} if r.parsed else {}) for r in results]

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
        self, sample: SampleRow, task: Task, chosen: Scored | None, rejected: list[Scored], existing: set
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


def mine_pairs(db: Any, config: MiningConfig | None = None, progress: bool = True, **components: Any) -> MiningReport:
    """Mine preference pairs into `db` (an annotations engine). `components`: studio, ensemble, judge."""
    return Miner(db, config or MiningConfig(), **components).run(progress=progress)
