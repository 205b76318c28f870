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
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import yaml

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
    train: str = "configs/hdpo.yaml"
    """Training config; its model.name is the policy: it mines the beams and is the base of Table 1."""
    train_set: dict[str, Any] = field(default_factory=dict)
    """Overrides of the training config, dotted keys (optim.max_steps: 8)."""
    labels: str = "auto"
    """auto: the evaluators' order; human: stop until each mined pair has votes_per_pair votes."""
    votes_per_pair: int = 1
    """Votes each pair needs with labels: human."""
    teacher: TeacherSection = field(default_factory=TeacherSection)
    mining: MiningSection = field(default_factory=MiningSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)

    def __post_init__(self) -> None:
        if self.labels not in LABEL_MODES:
            raise ConfigError(f"labels: {self.labels!r} is not one of {', '.join(LABEL_MODES)}")
        if self.votes_per_pair < 1:
            raise ConfigError("votes_per_pair: must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def train_config(self, export: str | None = None, out: Path | None = None) -> TrainConfig:
        """The training config with the loop's overrides (and, when given, its export and run folder)."""
        overrides = dict(self.train_set)
        if export is not None:
            overrides["data.path"] = export
        if out is not None:
            overrides.update({"run.output_dir": str(out), "run.name": "train"})
        cfg = load_config(find_config(self.train), overrides)
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

            self._studio = Studio(StudioConfig(max_models=4))  # policy, checkpoint, judge, teacher
        return self._studio

    def stage(self, name: str) -> dict[str, Any]:
        return self.state.setdefault("stages", {}).setdefault(name, {"status": "pending"})

    def save_state(self) -> None:
        write_atomic(self.out / "state.json", json.dumps(self.state, indent=2, sort_keys=True, default=str))


def write_atomic(path: Path, text: str) -> None:
    """Write through a temp file + rename: a reader sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
