#!/usr/bin/env bash
# Everything the test suite needs beyond the venv, then the whole suite this machine can run:
# Debian's chromium (browser tests) and a throwaway PostgreSQL server (store suite on PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if [[ ! -x /usr/bin/chromium ]] && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; browser tests will skip"
fi
if [[ -x tests/pg.sh ]] || [[ -f tests/pg.sh ]]; then
  # Prints the URL of a running server, or nothing (the PostgreSQL tests then skip with the reason).
  VIDPROMPTER_PG_URL=$(bash tests/pg.sh 2>/tmp/vidprompter-pg.log | tail -n 1) || VIDPROMPTER_PG_URL=""
  export VIDPROMPTER_PG_URL
  [[ -n $VIDPROMPTER_PG_URL ]] || echo "warning: PostgreSQL did not start (see /tmp/vidprompter-pg.log)"
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
