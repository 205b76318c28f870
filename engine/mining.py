"""Preference-pair mining (paper sections 3.4, 3.5 and 4.1).

For each sample and task: beam search (width 5) with the policy model training starts from (the paper's
SFT model; by default the `model.name` of the training config, configs/hdpo.yaml), score the candidates
and take the `num_rejected` lowest as rejected, each paired with the chosen response: the teacher
response when the sample has one, else the best candidate.

Scoring (section 3.5): the average similarity of the CLIP-style evaluator ensemble against the sample's
video, for every task of a sample that has a video, Task 3 included. The LLM judge (section 4.2's Task-3
*test* metric) scores Task 3 only where there is no video to score against (text-only samples), or when
asked for explicitly (`task3_scorer="judge"`).

Length (issue: truncated beams are a length cue, not a hallucination cue): the generation budget covers
the teacher's length (its token count under the generation model's tokenizer × `budget_margin`, capped);
a candidate that reaches the budget is stored with `at_limit` in its meta and never enters a pair. With a
random-weight generator (pipeline checks) lengths are forced by the backend, so at-limit candidates are
recorded but kept.

Samples, responses, scores and pairs go through `annotations`; every model call through the Studio's verbs
(`Studio.mine` runs a `Miner` on itself). Shards (engine.shards) split the samples between processes.

Resumable: a (sample, task) that already has `num_rejected` mined DPO pairs is skipped; a partial one
is completed without duplicates (responses are deduplicated by the store and beam search is
deterministic, so the same pairs come out again and existing ones are not re-added).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine import configfile
from engine.errors import InputError
from engine.evaluators.registry import PAPER_EVALUATORS
from engine.evaluators.scores import ScoreReport
from engine.mining_select import Scored, beams_all_paired, distinct, select_pairs
from engine.paths import in_data_root
from engine.shards import Shard
from engine.types import Candidate, GenerationParams, Task

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from annotations.store import SampleInfo
    from engine.evaluators.judge import JudgeResult

ENSEMBLE_SCORE = "ensemble"
"""Score name under which the ensemble mean is stored (members are stored under their own names)."""
JUDGE_SCORE = "llm-judge"
#: Task-3 rankers: "ensemble" (against the sample's video; text-only samples: the judge), "judge" (every
#: Task-3 item), "faithfulness" (every Task-3 item: the short prompt's tagged elements kept, then richness;
#: text only, engine.faithfulness.rank).
TASK3_SCORERS = ("ensemble", "judge", "faithfulness")
#: The training config whose policy mines by default (the paper samples beams from the SFT policy).
DEFAULT_TRAIN_CONFIG = "configs/hdpo.yaml"


def find_config(path: str | Path) -> Path:
    """A config path as given, else relative to the data root (where configs/ lives: engine.paths)."""
    return in_data_root(path)


def policy_model(config: str | Path, overrides: Sequence[str] | None = None, base_root: Path | None = None) -> str:
    """The `model.name` a training config trains (engine.configfile: `base:` followed, confined to base_root
    when given, `--set` overrides applied): the mining policy."""
    path = find_config(config)
    if not path.is_file():
        raise InputError(f"training config {config} not found")
    try:
        data = configfile.apply_overrides(configfile.read_yaml(path, base_root), overrides)
    except configfile.ConfigError as exc:
        raise InputError(str(exc)) from None
    name = (data.get("model") or {}).get("name") if isinstance(data.get("model"), dict) else None
    if not name:
        raise InputError(f"training config {config} names no model.name")
    return str(name)


def by_prompt_length(studio: TokenCounter, model: str | None, task: Task, prompts: Sequence[str | None]) -> list[int]:
    """Indices of `prompts` ordered by token count (stable): consecutive items of a batched call then have
    equal-length prompts, which the backend runs without padding (TransformersBackend._length_groups)."""
    if task.needs_video or len(prompts) < 2:
        return list(range(len(prompts)))
    try:
        counts = studio.count_tokens([p or "" for p in prompts], model=model, task=task)
    except InputError:  # a backend without a tokenizer (a remote judge, a test double): keep the order
        return list(range(len(prompts)))
    return sorted(range(len(prompts)), key=lambda i: counts[i])


def generation_budget(teacher_tokens: int | None, margin: float, cap: int, default: int, floor: int = 64) -> int:
    """max_new_tokens covering the teacher: ceil(tokens × margin), at least `floor`, at most `cap`;
    `default` (capped) without a teacher."""
    if teacher_tokens is None:
        return min(cap, default)
    return min(cap, max(floor, math.ceil(teacher_tokens * margin)))


def at_limit(tokens: int, budget: int) -> bool:
    """Whether a candidate reached the budget. Decoding and re-encoding a beam can merge a few tokens,
    so within 2 % of the budget (at least 2 tokens) counts."""
    return tokens >= budget - max(2, budget // 50)


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
    """Generation model for every task (None: the policy `train_config` names)."""
    train_config: str | None = DEFAULT_TRAIN_CONFIG
    """Training config whose model.name mines when `model` is None (None too: the Studio default per task)."""
    train_overrides: tuple[str, ...] = ()
    """Dotted `--set` overrides of train_config (model.name=...), as the training command applies them."""
    evaluators: tuple[str, ...] = PAPER_EVALUATORS
    """Evaluator ensemble: scores every task of a sample with a video (section 3.5)."""
    task3_scorer: str = "ensemble"
    """Task 3 of a sample with a video: "ensemble" (against its video, section 3.5) or "judge"; text-only
    samples have no video, so "ensemble" scores them with the judge. "faithfulness": every Task-3 item by
    the short prompt's tagged elements kept, then richness (a text-only ranker; not in the paper)."""
    judge_model: str | None = None
    """LLM judge where it scores (None: the Studio's judge model)."""
    split: str | None = "train"
    """Only samples of this split (None: all)."""
    limit: int | None = None
    """Mine at most this many samples (None: all)."""
    max_new_tokens: int | None = None
    """Fixed generation budget per candidate (None: from the teacher's length, see budget_margin)."""
    budget_margin: float = 2.0
    """Budget = teacher tokens × this (at least 64 tokens), when max_new_tokens is None."""
    max_new_tokens_cap: int = 512
    """Upper bound of the teacher-derived budget."""
    default_new_tokens: int = 256
    """Budget for a (sample, task) without a teacher response."""
    shard: Shard = field(default_factory=Shard)
    """This process's share of the samples."""
    batch: int = 1
    """(sample, task) items per generate call (one task per call; 1: one call per item)."""
    require_teacher: bool = False
    """Mine only items that have a teacher response (the chosen side); the others count as skipped_no_teacher."""
    remine: bool = False
    """Generate again for items whose stored beams (of this model) are all paired although fewer than
    num_rejected were usable. Off: beam search is deterministic, so a rerun would store the same beams again."""

    def __post_init__(self) -> None:
        self.tasks = tuple(int(Task.parse(t)) for t in self.tasks)
        if self.batch < 1:
            raise InputError(f"batch must be >= 1, got {self.batch}")
        if self.num_beams < 2:
            raise InputError(f"num_beams must be >= 2 to mine pairs, got {self.num_beams}")
        if not 1 <= self.num_rejected < self.num_beams:
            raise InputError(f"rejected must be in 1..{self.num_beams - 1} (below num_beams), got {self.num_rejected}")
        if not self.evaluators:
            raise InputError("at least one evaluator is needed to score samples with a video")
        if self.task3_scorer not in TASK3_SCORERS:
            raise InputError(f"task3 scorer must be one of {', '.join(TASK3_SCORERS)}, got {self.task3_scorer!r}")
        if self.budget_margin < 1.0:
            raise InputError(f"budget margin must be >= 1 (the budget covers the teacher), got {self.budget_margin}")
        for value in (self.max_new_tokens, self.max_new_tokens_cap, self.default_new_tokens):
            if value is not None:
                GenerationParams(max_new_tokens=value)  # its range check

    def generation_model(self) -> str | None:
        """The model that samples the beams: `model`, else the policy of `train_config`, else None."""
        if self.model:
            return self.model
        return policy_model(self.train_config, self.train_overrides) if self.train_config else None

    def scorer(self, sample: SampleInfo, task: Task) -> str:
        """ "ensemble", "judge" or "faithfulness" for one (sample, task)."""
        if task.needs_video or (sample.video and self.task3_scorer == "ensemble"):
            return "ensemble"
        return "faithfulness" if self.task3_scorer == "faithfulness" else "judge"


@dataclass
class MiningReport:
    """What one run did."""

    items: int = 0
    mined: int = 0
    pairs_written: int = 0
    skipped_done: int = 0
    skipped_unusable: int = 0
    skipped_no_teacher: int = 0
    skipped_mined_before: int = 0
    """Items this model mined before whose usable beams are all paired (short of num_rejected): not again."""
    short_of_rejected: int = 0
    unparsed_judgements: int = 0
    at_limit: int = 0
    """Candidates that reached the generation budget (recorded, never paired unless random weights)."""
    scorers: dict[str, int] = field(default_factory=dict)
    """Mined (sample, task) items per scorer: "ensemble" against the video, "judge" (text-only Task 3)."""
    model: str | None = None
    shard: str = "shard 0/1"
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TokenCounter(Protocol):
    """The Studio's token count (what `by_prompt_length` calls)."""

    def count_tokens(
        self, texts: Sequence[str], model: str | None = None, task: Task | int | None = None
    ) -> list[int]: ...


class StudioVerbs(TokenCounter, Protocol):
    """What mining and evaluation call on `engine.service.Studio`.

    A Protocol rather than an import of Studio: Studio.mine / Studio.evaluate import this module, so
    importing service here would close a circle. mypy checks Studio against it (engine.service).
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

    def run_tasks(
        self,
        task: Task | int,
        inputs: Sequence[tuple[str | Path | None, str | None]],
        model: str | None = None,
        params: GenerationParams | None = None,
    ) -> list[list[Candidate]]: ...


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
        self.model = config.generation_model()
        self.report = MiningReport(model=self.model, shard=config.shard.label)
        self._model_name: tuple[str, bool] | None = None  # (the name beams are stored under, random weights)

    def work(self) -> Iterator[tuple[SampleInfo, Task]]:
        """This shard's (sample, task) items."""
        from annotations.store import list_samples

        for sample in list_samples(self.db, self.config.split, self.config.limit):
            if self.config.shard.owns(sample.id):
                for task in self.config.tasks:
                    yield sample, Task(task)

    def run(self, progress: bool = True) -> MiningReport:
        from tqdm import tqdm

        from engine.tasks import record_instructions

        items = list(self.work())
        if any(self.config.scorer(s, t) == "ensemble" and task_inputs(s, t) for s, t in items):
            self.studio.require_evaluators(self.config.evaluators)  # before any generation: fail fast
        record_instructions(self.db)  # the export builds each pair's prompt from these
        bar = tqdm(total=len(items), desc=f"mining [{self.config.shard.label}]", unit="item", disable=not progress)
        for chunk in self.chunks(items):
            self.report.items += len(chunk)
            self.mine_chunk(chunk)
            bar.update(len(chunk))
        bar.close()
        return self.report

    def chunks(self, items: list[tuple[SampleInfo, Task]]) -> Iterator[list[tuple[SampleInfo, Task]]]:
        """Up to `batch` items of one task at a time: task by task, samples in the order `work` lists them."""
        size = self.config.batch
        for task in sorted({t for _, t in items}):
            same = [(s, t) for s, t in items if t == task]
            if size > 1:  # equal-length prompts side by side: no padding in a batched call
                same = [
                    same[i] for i in by_prompt_length(self.studio, self.model, task, [s.short_prompt for s, _ in same])
                ]
            for start in range(0, len(same), size):
                yield same[start : start + size]

    def mine_one(self, sample: SampleInfo, task: Task) -> int:
        """Mine one (sample, task); returns the number of pairs written."""
        return self.mine_chunk([(sample, task)])

    def mine_chunk(self, chunk: list[tuple[SampleInfo, Task]]) -> int:
        """Mine items of one task with one batched generate call (budget: the largest of theirs);
        returns the number of pairs written."""
        from annotations.store import mined_pairs, teacher_response

        todo = []
        for sample, task in chunk:
            existing = mined_pairs(self.db, sample.id, int(task))
            if len(existing) >= self.config.num_rejected:
                self.report.skipped_done += 1
            elif (inputs := task_inputs(sample, task)) is None:
                self.report.skipped_unusable += 1
            elif (teacher := teacher_response(self.db, sample.id, int(task))) is None and self.config.require_teacher:
                self.report.skipped_no_teacher += 1
            elif not self.config.remine and self.mined_before(sample.id, task, teacher, existing):
                self.report.skipped_mined_before += 1
            else:
                todo.append((sample, task, inputs, existing, teacher))
        if not todo:
            return 0
        task = todo[0][1]
        budget = max(self.budget(task, teacher) for *_, teacher in todo)
        outs = self.generate_many(task, [inputs for _, _, inputs, _, _ in todo], budget)
        written = 0
        for (sample, _, _, existing, teacher), candidates in zip(todo, outs, strict=True):
            scored = self.score(sample, task, candidates, teacher, budget)
            chosen, rejected = self.select(scored, teacher)
            written += self.write_pairs(sample, task, chosen, rejected, existing)
            self.report.mined += 1
            scorer = self.config.scorer(sample, task)
            self.report.scorers[scorer] = self.report.scorers.get(scorer, 0) + 1
        return written

    def mined_before(
        self, sample_id: int, task: Task, teacher: tuple[int, str] | None, existing: set[tuple[int, int]]
    ) -> bool:
        """Did this model mine the item before, and is every usable stored beam (not at the budget, unless random
        weights; not the teacher's text) paired? A run killed between its pair writes is not: it is mined again."""
        from annotations.store import stored_beams
        from engine.errors import ModelLoadError
        from engine.models import resolve

        if self._model_name is None:
            try:
                preset = resolve(self.model) if self.model else None
                self._model_name = (preset.name, preset.random_weights) if preset else ("", False)
            except ModelLoadError:  # a backend handed to the Studio under its own name
                self._model_name = (str(self.model), False)
        name, random_weights = self._model_name
        # Beams another generator of the same name wrote are not this model's (older rows lack mined_by).
        beams = [
            b
            for b in stored_beams(self.db, sample_id, int(task), name)
            if b[2].get("mined_by", self.model) == self.model
        ]
        return beams_all_paired(
            beams, existing, teacher, random_weights=random_weights, num_rejected=self.config.num_rejected
        )

    def budget(self, task: Task, teacher: tuple[int, str] | None) -> int:
        """max_new_tokens for this item: fixed, or covering the teacher's length under the generator's tokenizer."""
        c = self.config
        if c.max_new_tokens is not None:
            return c.max_new_tokens
        tokens = self.studio.count_tokens([teacher[1]], model=self.model, task=task)[0] if teacher else None
        return generation_budget(tokens, c.budget_margin, c.max_new_tokens_cap, c.default_new_tokens)

    def generate_many(
        self, task: Task, inputs: list[tuple[str | None, str | None]], budget: int
    ) -> list[list[Candidate]]:
        """Every beam of each input as a candidate (empty and repeated texts dropped, beam order kept), for several
        inputs of one task in one batched call (one call per item when batch is 1)."""
        beams = self.config.num_beams
        params = GenerationParams(max_new_tokens=budget, num_beams=beams, num_return_sequences=beams)
        if len(inputs) == 1:
            outs = [self.studio.run_task(task, *inputs[0], model=self.model, params=params)]
        else:
            outs = self.studio.run_tasks(task, inputs, model=self.model, params=params)
        return [distinct(cands) for cands in outs]

    def length_meta(self, task: Task, cands: list[Candidate], budget: int) -> list[dict[str, Any]]:
        """Per candidate {"tokens", "max_new_tokens", "at_limit"}: what the pair selection reads."""
        if not cands:
            return []
        counts = self.studio.count_tokens([c.text.strip() for c in cands], model=self.model, task=task)
        # mined_by: the generator as the config named it (a folder path): two checkpoints share a folder name.
        metas: list[dict[str, Any]] = [
            {"tokens": n, "max_new_tokens": budget, "at_limit": at_limit(n, budget), "mined_by": str(self.model)}
            for n in counts
        ]
        self.report.at_limit += sum(bool(m["at_limit"]) for m in metas)
        return metas

    def score(
        self,
        sample: SampleInfo,
        task: Task,
        cands: list[Candidate],
        teacher: tuple[int, str] | None,
        budget: int,
    ) -> list[Scored]:
        """Score the candidates with the teacher in the same batch (the teacher last), then store the
        candidates, their length records and every score in one transaction."""
        from annotations.store import NewResponse, add_responses

        texts = [c.text.strip() for c in cands] + ([teacher[1]] if teacher else [])
        metas = self.length_meta(task, cands, budget)
        scorer = self.config.scorer(sample, task)
        if scorer == "ensemble":
            values = self.video_scores(sample, texts)
        elif scorer == "faithfulness":
            values = self.faithfulness_scores(sample, texts)
        else:
            values = self.judge_scores(texts)
        rows = [
            NewResponse(t, "model", model=c.model, beam_rank=i, meta=m, scores=v[1])
            for i, (t, c, m, v) in enumerate(zip(texts[: len(cands)], cands, metas, values, strict=False))
        ]
        ids = add_responses(self.db, sample.id, int(task), rows, {teacher[0]: values[-1][1]} if teacher else None)
        # A random-weight generator's length is forced by the backend: reaching the budget says nothing.
        pairable = [not m["at_limit"] or c.random_weights for m, c in zip(metas, cands, strict=True)]
        if teacher is not None:
            ids, pairable = [*ids, teacher[0]], [*pairable, True]
        return [
            Scored(rid, t, rank, all_, ok)
            for rid, t, (rank, all_), ok in zip(ids, texts, values, pairable, strict=True)
        ]

    def video_scores(self, sample: SampleInfo, texts: list[str]) -> list[tuple[float | None, dict[str, float]]]:
        assert sample.video is not None  # the ensemble scores only samples with a video
        report = self.studio.score(sample.video, texts, self.config.evaluators)
        return [(r.mean, {**r.scores, ENSEMBLE_SCORE: r.mean}) for r in report.rows]

    def faithfulness_scores(self, sample: SampleInfo, texts: list[str]) -> list[tuple[float | None, dict[str, float]]]:
        """Rank value and stored scores per text: the sample's tagged elements kept (its stored tags, else
        tags read off its short prompt), then richness (engine.faithfulness.rank)."""
        from annotations.tags import tags_by_sample
        from engine.faithfulness.rank import elements_for, rank_value, score_all, stored_scores

        elements = elements_for(sample.short_prompt, tags_by_sample(self.db, [sample.id]).get(sample.id))
        return [(rank_value(s), stored_scores(s)) for s in score_all(texts, elements, sample.short_prompt)]

    def judge_scores(self, texts: list[str]) -> list[tuple[float | None, dict[str, float]]]:
        results = self.studio.judge_many(texts, model=self.config.judge_model)
        self.report.unparsed_judgements += sum(not r.parsed for r in results)
        return [(r.score, {JUDGE_SCORE: r.score} if r.score is not None else {}) for r in results]

    def select(self, scored: list[Scored], teacher: tuple[int, str] | None) -> tuple[Scored | None, list[Scored]]:
        """Chosen and rejected under engine.mining_select.select_pairs's rules."""
        return select_pairs(scored, teacher, self.config.num_rejected)

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
            meta = {"chosen_score": chosen.score, "rejected_score": r.score, "scorer": self.scorer_name(sample, task)}
            add_pair(self.db, sample.id, int(task), chosen.response_id, r.response_id, "mined", "dpo", meta=meta)
            written += 1
        self.report.pairs_written += written
        return written

    def scorer_name(self, sample: SampleInfo, task: Task) -> str:
        scorer = self.config.scorer(sample, task)
        if scorer == "ensemble":
            return ENSEMBLE_SCORE + ":" + "+".join(self.config.evaluators)
        return "faithfulness" if scorer == "faithfulness" else JUDGE_SCORE
