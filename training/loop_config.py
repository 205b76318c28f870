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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotations.files import atomic_write
from engine import configfile
from engine.evaluate import EvalConfig
from engine.mining import MiningConfig, find_config
from engine.teacher import TeacherConfig
from training.config import ConfigError, TrainConfig, load_config

LABEL_MODES = ("auto", "human")


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
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    """The teacher step (engine.teacher.TeacherConfig: its fields, defaults and checks)."""
    sft: SftSection = field(default_factory=SftSection)
    mining: MiningConfig = field(default_factory=MiningConfig)
    """Mining (engine.mining.MiningConfig); its model None: the start model (the SFT checkpoint, else the policy)."""
    evaluation: EvalConfig = field(default_factory=lambda: EvalConfig(split="test"))
    """Table 1 (engine.evaluate.EvalConfig); the loop fills in its models and output folder."""

    def __post_init__(self) -> None:
        if self.labels not in LABEL_MODES:
            raise ConfigError(f"labels: {self.labels!r} is not one of {', '.join(LABEL_MODES)}")
        if self.votes_per_pair < 1:
            raise ConfigError("votes_per_pair: must be >= 1")
        if self.train is None and not self.sft.enabled:
            raise ConfigError("train: null needs sft.enabled: true (a loop must train something)")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (tuples as lists): what the pinned loop.yaml holds and is compared with."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

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


def load_loop_config(
    path: str | Path, overrides: dict[str, Any] | None = None, sets: list[str] | None = None
) -> LoopConfig:
    """A LoopConfig from YAML (`base:` followed; engine.configfile), top-level overrides applied (the CLI's
    --samples, --labels, --db), then dotted `--set` overrides (mining.num_beams=3)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"loop config {path} not found")
    data = configfile.read_yaml(path)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return configfile.build(LoopConfig, configfile.apply_overrides(data, sets))


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
