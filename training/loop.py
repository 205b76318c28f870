"""The paper's loop in one command: import, teacher, mine, (human labels), export, HDPO, evaluate, report.

    python -m training loop --config configs/loops/tiny.yaml [--labels human|auto] [--out DIR]

Each stage skips work already done, so a killed loop resumes: import is idempotent, the teacher and
mining steps skip (sample, task) items already in the database, training resumes from its latest
checkpoint, and a stage that finished is recorded in <out>/state.json and not run again. With
`--labels human` the loop stops after mining until every mined pair has its votes (the app's Label
tab), then continues on the next call. The report folder <out>/report holds Table 1 for the base model
and the trained checkpoint side by side, the loss and reward-margin curves per HDPO term, the exact
configs, the data counts and the wall time of each stage.

Exit status: 0 done; 2 one line `error: ...` for bad input (config, unknown preset, a missing clip, a
model that cannot load) with nothing written for that stage; 3 waiting for human votes; 1 training
stopped before its end (SIGTERM / SIGINT: it checkpoints; run the command again to resume).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from annotations.errors import ImportRejected, StoreError
from annotations.files import atomic_dir, atomic_write
from engine import configfile
from engine.errors import StudioError
from engine.mining import find_config
from training.config import ConfigError
from training.loop_config import LoopConfig, LoopRun, check_models, load_loop_config
from training.stand_ins import STAND_IN_MODES, apply_stand_ins, stand_in_line

STAGES = ("import", "teacher", "sft", "mine", "labels", "export", "train", "evaluate", "report")
#: Stages of the preference step, skipped by an SFT-only loop (train: null).
PREFERENCE_STAGES = ("mine", "labels", "export", "train")
WAITING = 3


class LoopStop(Exception):
    """The loop stops here on purpose (waiting for votes, training interrupted); `code` is the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- stages


def stage_import(run: LoopRun) -> dict[str, Any]:
    from annotations.importer import import_rows

    if not run.config.samples:
        raise ConfigError("samples: no sample file (set it in the loop config or pass --samples)")
    path = find_config(run.config.samples)
    try:
        report = import_rows(run.db, path, media_root=run.config.media_root, extract_to=run.out / "media")
    except ImportRejected as exc:
        bad = exc.report.bad
        more = f" (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
        raise StoreError(f"{path}:{bad[0].line}: {bad[0].reason}{more}; nothing imported") from None
    keys = ("rows", "imported", "existing", "videos", "text_only", "lacking_teacher", "tagged", "task3_missing")
    return {k: getattr(report, k) for k in keys}


def stage_teacher(run: LoopRun) -> dict[str, Any]:
    from engine.teacher import write_teacher_responses

    config = run.config.teacher  # engine.teacher.TeacherConfig, as the loop YAML set it
    report = write_teacher_responses(run.studio, run.db, config, progress=True)
    keys = ("written", "skipped_done", "skipped_unusable", "skipped_unfaithful", "empty")
    return {k: getattr(report, k) for k in keys}


def stage_sft(run: LoopRun) -> dict[str, Any]:
    """Fine-tune the base policy on the teacher responses (the paper's SFT model, 3.2 and 3.4)."""
    from annotations.sft import export_teacher_rows
    from training.trainer import Trainer

    if not run.config.sft.enabled:
        return {"skipped": "sft.enabled is false"}
    run_dir = Path(run.config.sft.run_dir) if run.config.sft.run_dir else run.out / "sft"
    export = run_dir / "export.jsonl"
    rows = export_teacher_rows(run.db, export, run.config.sft.split)
    if not rows:
        raise StoreError("no teacher responses to fine-tune on: the teacher stage wrote none")
    cfg = run.config.sft_config(export=str(export), out=run_dir.parent, model=run.policy)
    cfg.run.name = run_dir.name
    pinned = run_dir / "config.yaml"
    if pinned.is_file() and configfile.read_yaml(pinned) != json.loads(json.dumps(cfg.to_dict())):
        raise ConfigError(f"sft.run_dir: {run_dir} holds an SFT run of another config; pick another folder")
    resume = (run_dir / "checkpoints").is_dir()
    result = Trainer(cfg, run_dir, cfg.data.path, resume=resume).train()
    if result.status != "finished":
        raise LoopStop(f"SFT {result.status} at step {result.step}; run the same command again to resume", 1)
    return {"rows": rows, "steps": result.step, "checkpoint": result.checkpoint, "resumed": resume}


def stage_mine(run: LoopRun) -> dict[str, Any]:
    # engine.mining.MiningConfig as the loop YAML set it; beams from the start model unless it names one.
    config = dataclasses.replace(run.config.mining, model=run.config.mining.model or run.start_model())
    report = run.studio.mine(run.db, config, progress=True)
    keys = (
        "mined",
        "pairs_written",
        "skipped_done",
        "skipped_no_teacher",
        "short_of_rejected",
        "at_limit",
        "unparsed_judgements",
    )
    return {k: getattr(report, k) for k in keys} | {"scorers": report.scorers, "model": report.model}


def stage_labels(run: LoopRun) -> dict[str, Any]:
    """With labels: human, stop until each mined pair has its votes; with auto, nothing to wait for."""
    from sqlmodel import col, func, select

    from annotations.db import read_session
    from annotations.models import Pair

    need = run.config.votes_per_pair
    with read_session(run.db) as session:
        total = session.exec(select(func.count()).select_from(Pair).where(Pair.origin == "mined")).one()
        short = select(func.count()).select_from(Pair).where(Pair.origin == "mined", col(Pair.n_judgements) < need)
        waiting = session.exec(short).one()
    counts = {"mode": run.config.labels, "pairs": total, "waiting": waiting if run.config.labels == "human" else 0}
    if run.config.labels == "human" and waiting:
        raise LoopStop(
            f"{waiting} of {total} mined pairs still need {need} vote(s) each: label them in the app's Label tab "
            f"(python app.py --db {run.db_url}), then run this command again",
            WAITING,
        )
    return counts


def stage_export(run: LoopRun) -> dict[str, Any]:
    from annotations.io import export_pairs

    report = export_pairs(run.db, run.out / "export.jsonl", "jsonl")
    if not report.rows:
        raise StoreError("no pairs to train on: mining wrote none (see the mine stage's short_of_rejected)")
    return {"rows": report.rows, "by_task": report.by_task, "excluded": report.excluded}


def stage_train(run: LoopRun) -> dict[str, Any]:
    from training.trainer import Trainer

    cfg = run.config.train_config(export=str(run.out / "export.jsonl"), out=run.out, model=run.start_model())
    run_dir = run.out / "train"
    resume = (run_dir / "checkpoints").is_dir()
    result = Trainer(cfg, run_dir, cfg.data.path, resume=resume).train()
    if result.status != "finished":
        raise LoopStop(f"training {result.status} at step {result.step}; run the same command again to resume", 1)
    return {"steps": result.step, "checkpoint": result.checkpoint, "resumed": resume}


def stage_evaluate(run: LoopRun) -> dict[str, Any]:
    """Table 1 for the base policy and the trained checkpoint, through the Studio's evaluate verb."""
    models = run.evaluated_models()
    with atomic_dir(run.out / "eval") as tmp:
        config = dataclasses.replace(
            run.config.evaluation,
            models=tuple(models.values()),
            out_dir=str(tmp),
            notes=tuple(filter(None, [stand_in_line(run.config.stand_in_notes)])),
        )
        result = run.studio.evaluate(run.db, config, progress=True)
    return {"models": models, "summary": result.summary, "rows": len(result.rows)}


def stage_report(run: LoopRun) -> dict[str, Any]:
    from training.loop_report import write_report

    return {"folder": str(write_report(run))}


RUNNERS: dict[str, Callable[[LoopRun], dict[str, Any]]] = {
    "import": stage_import,
    "teacher": stage_teacher,
    "sft": stage_sft,
    "mine": stage_mine,
    "labels": stage_labels,
    "export": stage_export,
    "train": stage_train,
    "evaluate": stage_evaluate,
    "report": stage_report,
}


# --------------------------------------------------------------------------- the loop


def prepare(config: LoopConfig, out: Path) -> LoopRun:
    """Check everything a stage could trip on late, then pin the config in the folder."""
    if not config.stand_in_notes:
        apply_stand_ins(config, "none")  # a paper config with a model unset refuses here, in one line
    policy = config.base_policy()
    check_models(config, policy)
    if config.samples and not find_config(config.samples).is_file():
        raise ConfigError(f"samples: {config.samples} not found")
    pinned = out / "loop.yaml"
    mine = {k: v for k, v in config.to_dict().items() if k != "labels"}
    if pinned.is_file():
        theirs = {k: v for k, v in configfile.read_yaml(pinned).items() if k != "labels"}
        if theirs != mine:
            raise ConfigError(f"{out} holds a loop of another config: pass another --out, or delete the folder")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(pinned, yaml.safe_dump(config.to_dict(), sort_keys=False))
    db_url = config.db or f"sqlite:///{(out / 'loop.db').resolve()}"
    state_path = out / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    return LoopRun(config, out, db_url, policy, state)


def run_loop(
    config: LoopConfig, out: Path, stop_after: str | None = None, echo: Callable[[str], None] = print
) -> LoopRun:
    """Run every stage not done yet, in order; returns the run (state, folder)."""
    run = prepare(config, out)
    for name in STAGES:
        record = run.stage(name)
        always = name in ("labels", "report")  # cheap, and what they read may have changed since
        if config.train is None and name in PREFERENCE_STAGES:
            record.update(status="done", counts={"skipped": "no preference stage (train: null)"}, seconds=0.0)
            run.save_state()
        elif record.get("status") == "done" and not always:
            echo(f"[{name}] done before ({record.get('seconds', 0):.1f} s): skipped")
        else:
            record["attempts"] = record.get("attempts", 0) + 1
            record["status"] = "running"
            run.save_state()
            start = time.perf_counter()
            record["counts"] = RUNNERS[name](run)
            record.update(status="done", seconds=round(time.perf_counter() - start, 2))
            run.save_state()
            echo(f"[{name}] {record['seconds']:.1f} s: {json.dumps(record['counts'], default=str)[:300]}")
        if name == stop_after:
            break
    return run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training loop", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="loop YAML (configs/loops/tiny.yaml, configs/loops/hdpo.yaml)")
    p.add_argument("--labels", choices=("auto", "human"), help="override the config's labels mode")
    p.add_argument("--out", help="output folder (default runs/<name>)")
    p.add_argument("--samples", help="sample rows to import (overrides the config's samples)")
    p.add_argument("--db", help="annotations DB URL (default sqlite:///<out>/loop.db)")
    p.add_argument("--stop-after", choices=STAGES, help="stop after this stage")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a loop config field, dotted: --set mining.num_beams=3 --set evaluation.limit=20",
    )
    p.add_argument(
        "--allow-stand-ins",
        nargs="?",
        const="default",
        default="none",
        choices=STAND_IN_MODES[1:],
        help="a paper config with models unset runs anyway: default (the Studio's models) or tiny (every model "
        "tiny and random: a pipeline check); every report names the stand-ins",
    )
    p.add_argument("--json", action="store_true", help="print the final state as JSON")
    return p


USER_ERRORS = (ConfigError, StudioError, StoreError, FileNotFoundError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    echo = (lambda _line: None) if args.json else print
    try:
        overrides = {"labels": args.labels, "samples": args.samples, "db": args.db}
        config = apply_stand_ins(load_loop_config(args.config, overrides, args.sets), args.allow_stand_ins)
        out = Path(args.out or Path("runs") / config.name)
        run = run_loop(config, out, args.stop_after, echo)
    except LoopStop as exc:
        print(str(exc), file=sys.stderr if exc.code != WAITING else sys.stdout)
        return exc.code
    except USER_ERRORS as exc:
        print(f"error: {' '.join(str(exc).split()) or type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(run.state, default=str))
    elif "report" in run.state.get("stages", {}) and run.stage("report").get("status") == "done":
        print(f"report: {run.stage('report')['counts']['folder']}/report.md")
    return 0
