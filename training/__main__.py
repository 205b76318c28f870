"""`python -m training --config PATH [--set key=value ...] [--db URL] [--run-id N] [--run-dir DIR] [--resume]`.

`python -m training loop --config configs/loops/tiny.yaml ...` runs the whole loop (training.loop);
`python -m training ship --checkpoint .../model --out assets/models/NAME` folds a LoRA chain into one shipped
adapter (training.ship).

Also runs under `accelerate launch -m training ...` (one GPU, many GPUs, many machines: same command).
Exit status:
- 0 when the run finishes, or is cancelled (SIGTERM / SIGINT during training: the trainer finishes its
  step, checkpoints and reports "cancelled");
- 2 with a one-line `error: ...` on stderr and no traceback for what the user can fix: a bad config or
  --set, a missing file, a bad DB URL, a model that cannot load (argparse's own usage errors exit 2 too);
- 1 for an interrupt before training starts and for any other error (the traceback stays in the log,
  followed by the one-line `error: ...`).
On 1 or 2 with --db and --run-id, rank 0 also marks the run failed in the DB with that line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from annotations.errors import StoreError, error_line
from engine.errors import StudioError
from training.config import ConfigError, TrainConfig, load_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training", description="HDPO training (paper section 3.3)")
    p.add_argument("--config", required=True, help="YAML preset (configs/hdpo.yaml, configs/tiny-cpu.yaml, ...)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, dotted: --set optim.lr=5e-7 --set loss.task_hallucination=false",
    )
    p.add_argument("--db", default=None, help="annotations DB URL: export pairs from it, log metrics to it")
    p.add_argument("--run-id", type=int, default=None, help="annotations training-run id to report to")
    p.add_argument("--run-dir", default=None, help="run folder (default <run.output_dir>/<run.name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") == "0"


def ensure_export(cfg: TrainConfig, run_dir: Path, db_url: str | None) -> str:
    """The export file to train on: data.path, or a fresh export of the DB into the run folder."""
    if cfg.data.path:
        return cfg.data.path
    if not db_url and cfg.data.sample_set:  # e.g. tiny-cpu: the bundled sample set's pairs
        from training.sampleset import bundled_export

        print(f"no data.path and no --db: training on {cfg.data.sample_set}", file=sys.stderr)
        return bundled_export(cfg.data.sample_set, run_dir)
    if not db_url:
        raise ConfigError("data.path: no export given and no --db to export from")
    out = run_dir / "export.jsonl"
    if _is_main_rank() and not out.exists():
        from annotations.db import make_engine
        from annotations.io import export_pairs

        export_pairs(make_engine(db_url), out, "jsonl")
    for _ in range(600):  # other ranks wait for rank 0's export
        if out.exists():
            return str(out)
        time.sleep(1)
    raise TimeoutError(f"export {out} did not appear")


def _mark_failed(db_url: str | None, run_id: int | None, message: str) -> None:
    if not (db_url and run_id is not None and _is_main_rank()):
        return
    try:
        from annotations.db import make_engine
        from annotations.store import update_run

        update_run(make_engine(db_url), run_id, status="failed", error=message[:2000])
    except Exception as exc:  # noqa: BLE001 - the original error matters more
        print(f"warning: could not mark run {run_id} failed: {exc}", file=sys.stderr)


def run(cfg: TrainConfig, run_dir: Path, db_url: str | None, run_id: int | None, resume: bool) -> list[dict]:
    """Train (one model, or one per task with data.separate_tasks); returns one result dict per model."""
    from training.trainer import Trainer

    export = ensure_export(cfg, run_dir, db_url)
    if not cfg.data.separate_tasks:
        result = Trainer(cfg, run_dir, export, db_url, run_id, resume).train()
        return [result.__dict__ | {"metrics": result.metrics[-1:]}]
    results = []
    for task in cfg.data.tasks:
        sub = load_config(cfg.to_dict(), {"data.tasks": [task], "data.separate_tasks": False})
        result = Trainer(sub, run_dir / f"task{task}", export, db_url, run_id, resume).train()
        results.append(result.__dict__ | {"metrics": result.metrics[-1:], "task": task})
        if result.status != "finished":
            break
    return results


USER_ERRORS = (ConfigError, StudioError, StoreError, FileNotFoundError)  # exit 2, one line, no traceback


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["loop"]:  # python -m training loop --config configs/loops/tiny.yaml
        from training.loop import main as loop_main

        return loop_main(argv[1:])
    if argv[:1] == ["ship"]:  # python -m training ship --checkpoint .../model --out assets/models/NAME
        from training.ship import main as ship_main

        return ship_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        run_dir = Path(args.run_dir or Path(cfg.run.output_dir) / cfg.run.name)
        results = run(cfg, run_dir, args.db, args.run_id, args.resume)
    except USER_ERRORS as exc:  # bad config, missing file, bad DB URL: one line, no traceback
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        _mark_failed(args.db, args.run_id, message)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted before training started", file=sys.stderr)
        _mark_failed(args.db, args.run_id, "interrupted before training started")
        return 1
    except Exception as exc:  # one line for the user and the DB; the log keeps the traceback
        import traceback

        traceback.print_exc()
        message = error_line(exc)
        print(f"error: {message}", file=sys.stderr)
        _mark_failed(args.db, args.run_id, message)
        return 1
    if args.json:
        print(json.dumps(results, default=str))
    else:
        for r in results:
            print(f"{r['status']}: step {r['step']}, checkpoint {r['checkpoint']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
