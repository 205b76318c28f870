#!/usr/bin/env bash
# The one device check (run on a lent GPU machine from the repo root; $OUT collects the results):
# engine + training CUDA tests (bf16 generation and log-probs; block vision attention and chunked
# log-probs against their stock paths), the log-prob step's peak memory on the GPU (chunked vs logits),
# and bench/gpu_check.py: a ~2.3B-param random Qwen2.5-VL-style training step per variant (stock / block
# vision attention x full / chunked log-probs): tokens/s, MFU, peak memory, kernel share; then the real
# trainer on CUDA.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false VIDPROMPTER_CACHE=/tmp/vpcache
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
} 2>&1 | tee "$OUT/env.txt"
timeout 150 python3 -m pytest -p no:cacheprovider -q -rA -o addopts="" tests/engine/test_gpu.py \
  tests/training/test_gpu_kernels.py 2>&1 | tee "$OUT/pytest.log"
timeout 90 python3 bench/bench_logps_memory.py --device cuda --repeats 2 2>&1 | tee "$OUT/logps_memory.json"
timeout 420 python3 bench/gpu_check.py 2>&1 | tee "$OUT/gpu_check.json"
