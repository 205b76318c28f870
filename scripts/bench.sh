#!/usr/bin/env bash
# `make bench`: every benchmark in bench/, each with quick-but-meaningful arguments (smaller than the
# full runs docs/benchmarks.md reports; the ratios are what the goals are set on), then each one's
# ratio lines. Full output of each bench goes to its log; BENCH_VERBOSE=1 streams it too.
#
#   bash scripts/bench.sh                    # all of them (long on a 2-core box: ~30+ minutes)
#   bash scripts/bench.sh video evaluators   # a subset, by name (bench_<name>.py / .sh)
#
# A script in bench/ that the lists below do not know (or a listed one that is gone) stops the run
# before anything starts.
# GPU-only scripts are skipped, with the reason printed, where torch sees no CUDA device.
set -uo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PY:-.venv/bin/python}
LOG_DIR=${BENCH_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/vidprompter-bench.XXXXXX")}
mkdir -p "$LOG_DIR"

# script | arguments | what to print from its output (an extended regex; "ratio" for most) | needs
BENCHES=(
  "bench_video.py||ratio|cpu"
  "bench_generation.py||ratio|tokens/s|cpu"
  "bench_beautify.py|--prompts 8 --max-new-tokens 48|ratio|^(before|after) |cpu"
  "bench_hallucination_text.py|--n 150 --repeat 3|ratio|cpu"
  "bench_hallucination_video.py||ratio|cpu"
  "bench_evaluators.py|--reps 3|ratio|cpu"
  "bench_annotations_votes.py|--procs 20 --votes 100 --rounds 1|ratio|^\\| (path|store[a-z-]*) \\||cpu"
  "bench_active_queue.py|--seeds 3|ratio|^\\| (order|fifo|active) \\||cpu"
  "bench_annotations_crash.py|--iterations 10|\"(iterations|acked_total|missing_total|integrity_ok)\"|cpu"
  "bench_app.py|--starts 2 --clients 20 --votes 5|ratio|cpu"
  "bench_training_steps.py|all --steps 4|ratio|cpu"
  "bench_logps_memory.py|--repeats 2|ratio|cpu"
  "bench_t2v.py|--clips 3|ratio|cpu"
  "bench_shards.py|--samples 18 --repeats 2|ratio|cpu"
  "bench_loop.py||ratio|^  [a-z]+ +[0-9.]+ s|cpu"
  "bench_grounding.py|--reps 2|ratio|cpu"
  "bench_idle.py|--seconds 30|ratio|cpu"
  "bench_import_votes.py|--rows 2000|p95 during|errors|cpu"
  "bench_login_load.py|--attackers 50 --votes 20|^/vote|goal|cpu"
  "bench_reader.py|--prompts 4 --only today --only draw8 --threads 1|^\\||cpu"
  "bench_faithfulness.py|--split dev --limit 20 --model base=smollm2-135m --model shipped=smollm2-135m-hdpo --paired-against base --out outputs/faithfulness-make-bench|^\\||cpu"
  "bench_arenas.py|--calls 8 --rounds 2|RSS|growth|cpu"
  "bench_demo_rss.py|--minutes 2|RSS|growth|cpu"
  "bench_rss_phases.py|--minutes-scale 0.25|: rss|cpu"
  "bench_soak.py|--minutes 4 --annotators 6 --import-rows 1000 --train-steps 40|^votes|RSS|fds|cpu"
  "gpu_run.sh||\"(tokens_per_s|mfu|peak_mem)[a-z_]*\"|cuda"
)
# Scripts in bench/ that are not benchmarks of their own, and why.
NOT_BENCHMARKS=(
  "make_random_lm.py|a helper: saves a real-sized random LM for bench_training_steps.py refcache --model"
  "gpu_check.py|run by gpu_run.sh (its --tiny CPU form is a test: tests/training/test_gpu_check.py)"
)

field() { cut -d'|' -f"$2" <<<"$1"; }

unknown=()
for path in bench/*.py bench/*.sh; do
  name=$(basename "$path")
  known=0
  for entry in "${BENCHES[@]}" "${NOT_BENCHMARKS[@]}"; do
    [[ $(field "$entry" 1) == "$name" ]] && known=1
  done
  ((known)) || unknown+=("$name")
done
for entry in "${BENCHES[@]}"; do
  [[ -f bench/$(field "$entry" 1) ]] || unknown+=("$(field "$entry" 1) (listed, but not in bench/)")
done
if ((${#unknown[@]})); then
  echo "error: scripts/bench.sh and bench/ disagree on: ${unknown[*]}. List each benchmark in BENCHES" \
    "(with its arguments), other scripts in NOT_BENCHMARKS" >&2
  exit 2
fi

matches() {  # matches WANT NAME: WANT is the file name, its stem, or the stem without "bench_"
  [[ $1 == "$2" || $1 == "${2%.*}" || "bench_$1" == "${2%.*}" ]]
}
SELECTED=("$@")
for want in "${SELECTED[@]}"; do
  hit=0
  for entry in "${BENCHES[@]}"; do
    matches "$want" "$(field "$entry" 1)" && hit=1
  done
  ((hit)) || { echo "error: no benchmark named $want (see BENCHES in scripts/bench.sh)" >&2; exit 2; }
done
wanted() {  # no names given: every benchmark
  ((${#SELECTED[@]} == 0)) && return 0
  for want in "${SELECTED[@]}"; do
    matches "$want" "$1" && return 0
  done
  return 1
}

if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  has_cuda=1
else
  has_cuda=0
fi

summary=()
failed=0
for entry in "${BENCHES[@]}"; do
  name=$(field "$entry" 1)
  args=$(field "$entry" 2)
  needs=${entry##*|}
  pattern=${entry#*|*|}
  pattern=${pattern%|*}
  wanted "$name" || continue
  if [[ $needs == cuda && $has_cuda == 0 ]]; then
    line="SKIP $name: needs a CUDA GPU (torch.cuda.is_available() is False here)"
    echo "$line"
    summary+=("$line")
    continue
  fi
  log="$LOG_DIR/${name%.*}.log"
  if [[ $name == *.sh ]]; then
    cmd=(env OUT="$LOG_DIR/${name%.*}" bash "bench/$name")
  else
    # shellcheck disable=SC2206  # the arguments are plain words, split on purpose
    cmd=("$PY" "bench/$name" $args)
  fi
  echo "== ${cmd[*]}   (log: $log)"
  start=$(date +%s)
  if [[ ${BENCH_VERBOSE:-0} == 1 ]]; then
    "${cmd[@]}" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
  else
    "${cmd[@]}" >"$log" 2>&1
    rc=$?
  fi
  took=$(($(date +%s) - start))
  head="-- $name ($took s, exit $rc)"
  if ((rc != 0)); then
    failed=1
    head+=" FAILED; last lines of its log:"
    lines=$(tail -n 5 "$log")
  else
    lines=$(grep -E -i -- "$pattern" "$log" || echo "(no line matched /$pattern/: see $log)")
  fi
  echo "$head"
  echo "$lines"
  summary+=("$head" "$lines")
done

echo
echo "==== summary (logs in $LOG_DIR)"
printf '%s\n' "${summary[@]}"
exit $failed
