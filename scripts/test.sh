#!/usr/bin/env bash
# Everything the test suite needs beyond the venv, then the whole suite this machine can run:
# Debian's chromium (browser tests) and a throwaway PostgreSQL server (store suite on PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# The tests, their app subprocesses and the browser share 2 cores: OpenMP threads that spin-wait for a busy
# core made torch 10x slower per call (engine/__init__.py); passive waiting keeps each process at full speed.
export OMP_WAIT_POLICY=PASSIVE

if [[ ! -x /usr/bin/chromium ]] && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; browser tests will skip"
fi
# A throwaway PostgreSQL server for the store suite; where it cannot start, those tests skip saying why.
if pg_env=$(bash tests/pg.sh 2>/tmp/vidprompter-pg.log); then
  eval "$pg_env"
  trap 'bash tests/pg.sh stop >/dev/null 2>&1 || true' EXIT
else
  echo "warning: PostgreSQL did not start (see /tmp/vidprompter-pg.log); its tests will skip"
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy  # the product packages, as pyproject.toml's [tool.mypy] lists them
# The 25 slowest tests close every run: the suite's budget (issue 24: <= 20 min) is watched from CI's own log.
.venv/bin/python -m pytest -p no:cacheprovider --durations=25 "$@"
