#!/usr/bin/env bash
# envpool benchmarks on a GPU machine: raw stepping throughput, then PPO on Pong to a score of 18
# (the issue's must-show), then the other presets as far as the time budget allows.
#
#   scripts/envpool_gpu_bench.sh [BUDGET_SECONDS] [PRESET ...]
#
# Needs a Python with jax[cuda12] and envpool installed: pip install -e '.[envpool,cuda12]'
# (PYTHON=... to choose one). Results: JSON per preset under $OUT (default benchmarks/results),
# rewritten after every chunk, so a run cut by the budget keeps its curve. Each preset gets the
# budget left, at most BUDGET_SECONDS in all.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
BUDGET=${1:-3000}
shift || true
PRESETS=("$@")
[ ${#PRESETS[@]} -eq 0 ] && PRESETS=(ppo-pong ppo-breakout dqn-pong dqn-breakout ppo-halfcheetah)
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"

if ! "$PY" -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')"; then
  echo "no GPU backend in $PY (jax.default_backend() != 'gpu'); install jax[cuda12]" >&2
  exit 2
fi
"$PY" -c "import envpool" || { echo "envpool is not installed: pip install -e '.[envpool]'" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/envpool_gpu.txt"

start=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - start) )); }

"$PY" benchmarks/envpool_throughput.py --num-envs 8 64 --steps 2000 | tee -a "$OUT/envpool_gpu.txt"

declare -A TARGET=([ppo-pong]=18 [ppo-breakout]=300 [dqn-pong]=18 [dqn-breakout]=300 [ppo-halfcheetah]=1500)
for preset in "${PRESETS[@]}"; do
  t=$(left)
  if [ "$t" -lt 120 ]; then echo "budget spent; skipping $preset" | tee -a "$OUT/envpool_gpu.txt"; continue; fi
  echo "== $preset (up to ${t}s)" | tee -a "$OUT/envpool_gpu.txt"
  timeout --signal=INT "$t" "$PY" benchmarks/envpool_train.py --preset "$preset" \
    --target "${TARGET[$preset]}" --out "$OUT/envpool_${preset//-/_}.json" 2>&1 | tail -n 5 | tee -a "$OUT/envpool_gpu.txt"
done
