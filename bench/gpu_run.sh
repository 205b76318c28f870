#!/usr/bin/env bash
# The one device check (run on a lent GPU machine from the repo root; $OUT collects the results):
# engine CUDA tests (bf16 generation + log-probs) and bench/gpu_check.py (a ~2.3B-param random
# Qwen2.5-VL-style bf16 training step: tokens/s, peak memory, MFU; then the real trainer on CUDA).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false VIDPROMPTER_CACHE=/tmp/vpcache
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
} 2>&1 | tee "$OUT/env.txt"
timeout 120 python3 -m pytest -p no:cacheprovider -q -o addopts="" tests/engine/test_gpu.py 2>&1 | tee "$OUT/pytest.log"
timeout 330 python3 bench/gpu_check.py 2>&1 | tee "$OUT/gpu_check.json"
