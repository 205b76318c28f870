"""Where per-step metrics go: <run>/metrics.jsonl, TensorBoard (<run>/tb), the annotations DB run tables."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any


class MetricsSink:
    """Writes only on the main process (`enabled`); the DB part only with a db url and a run id."""

    def __init__(self, run_dir: Path, cfg: Any, db_url: str | None, run_id: int | None, enabled: bool = True):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        self.db = None
        self.run_id = run_id
        if not enabled:
            return
        if cfg.run.tensorboard:
            self.tb = _tensorboard(run_dir / "tb")
        if db_url and run_id is not None:
            from annotations.db import make_engine

            self.db = make_engine(db_url)

    def _db_call(self, fn: str, *args: Any, **kwargs: Any) -> None:
        """DB writes never kill a training run: a locked or gone DB is reported on stderr and skipped."""
        if self.db is None:
            return
        from annotations import store

        try:
            getattr(store, fn)(self.db, self.run_id, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - logging must not stop training
            print(f"warning: annotations DB {fn} failed: {exc}", file=sys.stderr)

    def started(self, total_steps: int) -> None:
        if self.enabled:
            self._db_call("update_run", status="running", total_steps=total_steps)

    def log(self, step: int, values: dict[str, float], total_steps: int) -> None:
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": step, **clean}) + "\n")
        if self.tb is not None:
            for name, value in clean.items():
                self.tb.add_scalar(name, value, step)
            self.tb.flush()
        self._db_call("add_run_metrics", step, clean)
        self._db_call("update_run", step=step, progress=step / max(1, total_steps))

    def finished(self, status: str, step: int, checkpoint: str | None) -> None:
        if self.enabled:
            fields = {"status": status, "step": step}
            if checkpoint:
                fields["checkpoint_dir"] = checkpoint
            self._db_call("update_run", **fields)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed (e.g. a bare GPU box): JSONL and the DB still work
        return None
    return SummaryWriter(str(folder))


def read_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
