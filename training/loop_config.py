"""The loop's configuration (which samples, which teacher, how to mine, which training config, how to
evaluate) and its run state (`LoopRun`: folder, database, models, state.json), shared by training.loop
and training.loop_report.

A loop YAML (configs/loops/tiny.yaml, configs/loops/hdpo.yaml) loads into `LoopConfig`; unknown keys are
errors, and `check_models` names any unknown preset or evaluator before a stage runs, so a typo costs
one line, not a half-written run. Relative paths (samples, the training config) resolve against the
current folder first, then the project root.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from annotations.files import atomic_write
from engine.evaluators.registry import TINY_EVALUATORS
from engine.mining import TASK3_SCORERS, find_config
from training.config import ConfigError, TrainConfig, load_config

LABEL_MODES = ("auto", "human")


@dataclass
class TeacherSection:
    model: str | None = None
    """Teacher for every task (the paper: VILA-34B); None: the Studio default per task."""
    text_model: str | None = None
    """Teacher for Task 3 when set (the paper: Llama-3-70B)."""
    max_new_tokens: int = 512
    """Budget per teacher response."""
    split: str | None = None
    """Only samples of this split get a teacher response (None: every split)."""
    limit: int | None = None
    """At most this many samples (None: all)."""
    best_of: int = 1
    """Text-only Task 3: sample this many and keep the best by faithfulness, then richness (best-of-N
    self-distillation where no larger teacher exists; engine.teacher)."""
    temperature: float = 0.7
    """Sampling temperature of the best-of-N candidates."""
    top_p: float = 0.9
    """Nucleus mass of the best-of-N candidates."""
    require_faithful: bool = True
    """With best_of > 1: no teacher response for an item none of whose candidates keeps every element."""
    batch: int = 1
    """Items per generate call."""


@dataclass
class SftSection:
    enabled: bool = False
    """Fine-tune on the teacher responses first (paper 3.2, 3.4): mining then samples the rejected beams
    from the SFT checkpoint, and preference training starts from it, so it is the reference pi_ref."""
    train: str = "configs/baselines/sft.yaml"
    """The SFT training config (loss.kind sft); its model.name is replaced by the loop's base policy."""
    train_set: dict[str, Any] = field(default_factory=dict)
    """Overrides of the SFT config, dotted keys."""
    split: str = "train"
    """Teacher responses of this split are the SFT data."""
    run_dir: str | None = None
    """The SFT run's folder (default <out>/sft). Loops that start from the same SFT model share one (the
    configs/loops/smollm2-*.yaml): a finished run there is reused, one of another config refused."""


@dataclass
class MiningSection:
    model: str | None = None
    """Beam model (None: the policy the training config trains, as the paper samples from the SFT model)."""
    evaluators: list[str] = field(default_factory=lambda: list(TINY_EVALUATORS))
    """CLIP-style ensemble ranking the beams of samples with a video (section 3.5)."""
    judge_model: str | None = None
    """Judge for text-only Task-3 samples (None: the Studio's)."""
    task3_scorer: str = "ensemble"
    """Task 3 of a sample with a video: ensemble (against the video) or judge."""
    num_beams: int = 5
    """Beam width (paper: 5)."""
    num_rejected: int = 2
    """Lowest-scored beams taken as rejected (paper: 2)."""
    max_new_tokens: int | None = None
    """Fixed beam budget (None: the teacher's length x budget_margin, capped)."""
    budget_margin: float = 2.0
    """Budget = teacher tokens x this."""
    max_new_tokens_cap: int = 512
    """Upper bound of that budget."""
    split: str = "train"
    """Samples of this split are mined."""
    limit: int | None = None
    """Mine at most this many samples (None: all)."""
    require_teacher: bool = False
    """Mine only (sample, task) items with a teacher response (the chosen side); others are skipped."""
    batch: int = 1
    """(sample, task) items per generate call."""

    def __post_init__(self) -> None:
        if self.task3_scorer not in TASK3_SCORERS:
            raise ConfigError(f"mining.task3_scorer: {self.task3_scorer!r} is not one of {', '.join(TASK3_SCORERS)}")


@dataclass
class EvaluationSection:
    split: str = "test"
    """Split evaluated (Table 1)."""
    evaluators: list[str] = field(default_factory=lambda: list(TINY_EVALUATORS))
    """CLIP-style columns of Tasks 1-2."""
    judge_model: str | None = None
    """LLM judge of the Task-3 column (the paper: Llama-3-70B)."""
    max_new_tokens: int | None = None
    """Fixed budget (None: covering each sample's teacher response)."""
    limit: int | None = None
    """At most this many samples."""
    task3_scorer: str = "judge"
    """Task-3 column: judge (the paper's LLM judge) or faithfulness (% of outputs keeping every tagged
    element of the short prompt; engine.faithfulness)."""
    batch: int = 1
    """Samples per generate call."""
    cache_dir: str | None = None
    """Greedy outputs kept here and read back by later runs with the same model, input and budget (loops
    sharing a database and their base / SFT rows: configs/loops/smollm2-*.yaml); None: none kept."""

    def __post_init__(self) -> None:
        if self.task3_scorer not in ("judge", "faithfulness"):
            raise ConfigError(f"evaluation.task3_scorer: {self.task3_scorer!r} is not one of judge, faithfulness")


@dataclass
class LoopConfig:
    name: str = "loop"
    """Run name: the default output folder is runs/<name>."""
    samples: str | None = None
    """Sample rows to import (JSONL / CSV / zip; the import format)."""
    media_root: str | None = None
    """Folder relative clip paths resolve against (default: the samples file's folder)."""
    db: str | None = None
    """Annotations DB URL (default: sqlite:///<out>/loop.db; PostgreSQL for shards on many machines)."""
    train: str | None = "configs/hdpo.yaml"
    """Preference training config; its model.name is the base policy (Table 1's base row; it mines the
    beams unless an SFT stage runs first). None: no preference stage (an SFT-only loop: mine, labels,
    export and train are skipped)."""
    train_set: dict[str, Any] = field(default_factory=dict)
    """Overrides of the training config, dotted keys (optim.max_steps: 8)."""
    labels: str = "auto"
    """auto: the evaluators' order; human: stop until each mined pair has votes_per_pair votes."""
    votes_per_pair: int = 1
    """Votes each pair needs with labels: human."""
    paper: bool = False
    """The paper's recipe: every model the paper names (the teachers, the judges) must be set, or the run
    refuses in one line unless --allow-stand-ins (training.stand_ins)."""
    stand_in_notes: list[str] = field(default_factory=list)
    """Models standing in for the paper's (set by --allow-stand-ins); every report prints them."""
    teacher: TeacherSection = field(default_factory=TeacherSection)
    sft: SftSection = field(default_factory=SftSection)
    mining: MiningSection = field(default_factory=MiningSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)

    def __post_init__(self) -> None:
        if self.labels not in LABEL_MODES:
            raise ConfigError(f"labels: {self.labels!r} is not one of {', '.join(LABEL_MODES)}")
        if self.votes_per_pair < 1:
            raise ConfigError("votes_per_pair: must be >= 1")
        if self.train is None and not self.sft.enabled:
            raise ConfigError("train: null needs sft.enabled: true (a loop must train something)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def train_config(
        self, export: str | None = None, out: Path | None = None, model: str | None = None
    ) -> TrainConfig:
        """The preference training config with the loop's overrides (and, when given, its export, run folder
        and starting model: the SFT checkpoint when an SFT stage ran)."""
        if self.train is None:
            raise ConfigError("train: this loop has no preference stage (train: null)")
        return _loop_train_config(self.train, self.train_set, export, out, "train", model)

    def sft_config(self, export: str | None = None, out: Path | None = None, model: str | None = None) -> TrainConfig:
        """The SFT stage's training config, starting from `model` (the loop's base policy)."""
        cfg = _loop_train_config(self.sft.train, self.sft.train_set, export, out, "sft", model)
        if cfg.loss.kind != "sft":
            raise ConfigError(f"sft.train: {self.sft.train} has loss.kind {cfg.loss.kind!r}; the SFT stage needs sft")
        return cfg

    def base_policy(self) -> str:
        """The model the loop starts from: the preference config's model.name (else the SFT config's)."""
        if self.train is not None:
            return self.train_config().model.name
        return self.sft_config().model.name


def _loop_train_config(
    path: str, overrides: dict[str, Any], export: str | None, out: Path | None, name: str, model: str | None
) -> TrainConfig:
    values = dict(overrides)
    if export is not None:
        values["data.path"] = export
    if out is not None:
        values.update({"run.output_dir": str(out), "run.name": name})
    if model is not None:
        values["model.name"] = model
    cfg = load_config(find_config(path), values)
    if cfg.data.separate_tasks:
        raise ConfigError("data.separate_tasks: the loop trains and evaluates one model; use the training CLI")
    return cfg


def _build(cls: type, data: Any, prefix: str) -> Any:
    """A dataclass from a mapping; unknown keys are errors naming the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'loop config'}: expected a mapping")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(prefix + k for k in unknown)}")
    kwargs = {
        k: _build(hints[k], v, f"{prefix}{k}.") if dataclasses.is_dataclass(hints[k]) else v for k, v in data.items()
    }
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{prefix or 'loop config'}: {exc}") from None


def load_loop_config(path: str | Path, overrides: dict[str, Any] | None = None) -> LoopConfig:
    """A LoopConfig from YAML, top-level overrides applied (the CLI's --samples, --labels, --db)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"loop config {path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({getattr(exc, 'problem', None) or 'syntax error'})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return _build(LoopConfig, data, "")


def check_models(config: LoopConfig, policy: str) -> None:
    """Every model and evaluator name the loop will use is a preset or a folder: one line otherwise."""
    from engine.errors import ModelLoadError
    from engine.evaluators.registry import get_preset
    from engine.models import resolve

    named = {
        "policy (the training config's model.name)": policy,
        "teacher.model": config.teacher.model,
        "teacher.text_model": config.teacher.text_model,
        "mining.model": config.mining.model,
        "mining.judge_model": config.mining.judge_model,
        "evaluation.judge_model": config.evaluation.judge_model,
    }
    try:
        for key, name in named.items():
            if name:
                _check(key, name, resolve)
        lists = {"mining.evaluators": config.mining.evaluators, "evaluation.evaluators": config.evaluation.evaluators}
        for key, names in lists.items():
            for name in names:
                _check(key, name, get_preset)
    except ModelLoadError as exc:
        raise ConfigError(str(exc)) from None


def _check(key: str, name: str, lookup: Any) -> None:
    from engine.errors import ModelLoadError

    try:
        lookup(name)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{key}: {exc}") from None


@dataclass
class LoopRun:
    """One loop's folder, database and models; stages read and write through it."""

    config: LoopConfig
    out: Path
    db_url: str
    policy: str
    state: dict[str, Any] = field(default_factory=dict)
    _db: Any = None
    _studio: Any = None

    @property
    def db(self) -> Any:
        if self._db is None:
            from annotations.db import open_db

            self._db = open_db(self.db_url)
        return self._db

    @property
    def studio(self) -> Any:
        if self._studio is None:
            from engine.service import Studio, StudioConfig

            # policy, checkpoint, judge, teacher; the frames training reads are the frames mining and evaluation read
            frames = (
                self.config.train_config().data.num_frames
                if self.config.train
                else self.config.sft_config().data.num_frames
            )
            self._studio = Studio(StudioConfig(max_models=4, num_frames=frames))
        return self._studio

    def checkpoint_model(self, stage: str) -> str | None:
        """The model folder of a finished training stage's last checkpoint ("sft" or "train"), or None."""
        counts = self.state.get("stages", {}).get(stage, {}).get("counts") or {}
        return str(Path(counts["checkpoint"]) / "model") if counts.get("checkpoint") else None

    def start_model(self) -> str:
        """What mining samples from and preference training starts from: the SFT checkpoint when the SFT
        stage ran (the paper's pi_ref), else the base policy."""
        return (self.checkpoint_model("sft") if self.config.sft.enabled else None) or self.policy

    def evaluated_models(self) -> dict[str, str]:
        """Table 1's rows: the base policy, the SFT checkpoint (when one ran) and the trained checkpoint."""
        rows = {"base": self.policy}
        if self.config.sft.enabled and (sft := self.checkpoint_model("sft")):
            rows["sft"] = sft
        if self.config.train is not None and (trained := self.checkpoint_model("train")):
            rows["trained"] = trained
        return rows

    def stage(self, name: str) -> dict[str, Any]:
        return self.state.setdefault("stages", {}).setdefault(name, {"status": "pending"})

    def save_state(self) -> None:
        atomic_write(self.out / "state.json", json.dumps(self.state, indent=2, sort_keys=True, default=str))
