#!/usr/bin/env bash
# One GPU check that fits a lent accelerator's time: correctness subset, PPO CartPole 2048 seeds x 1M,
# PPO/DQN Breakout-MinAtar, GRPO steps/s (built-in model, Qwen2.5-0.5B-shaped random checkpoint),
# envpool Pong PPO env steps/s. <= 8 min wall on one GPU including compilation; every part has its
# own time cap and DIR/gpu_check.json is rewritten after each one (benchmarks/gpu_check.py).
#
#   scripts/gpu_check.sh --fetch-wheels [DIR]        # here, with registry access: wheels for the GPU
#                                                    # image's Python 3.12 into DIR (default wheels/)
#   scripts/gpu_check.sh [--wheels DIR] [--out DIR] [--budget S] [--parts a,b] [--cpu] [--tiny]
#
# --wheels DIR  install the carried wheels (gymnax, gymnasium, envpool cut to Atari + classic control,
#               ...) into /tmp/jaxrl-site first; flax only if the image's flax is not 0.12.x.
# --cpu --tiny  the dry run: every part on the CPU at toy sizes (tests/test_gpu_check.py runs it).
# PYTHON=...    the interpreter (default python3: on the GPU image the one holding jax with CUDA).
#
# The whole call on a lent machine (after --fetch-wheels in the checkout the session started in):
#   run(command="PYTHONUNBUFFERED=1 scripts/gpu_check.sh --wheels wheels --out $OUT", carry=["wheels"], timeout_s=560)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}

fetch_wheels() {
  local dir=${1:-wheels}
  local hostpy=${HOST_PYTHON:-python3}
  mkdir -p "$dir"
  rm -f "$dir"/*.whl
  # Pins: what jaxrl is tested with here (pyproject: gymnax==1.0.1, envpool==1.2.5, flax 0.12);
  # gymnasium/farama-notifications/dm-env/optree are the imports gymnax and envpool need that the
  # GPU image lacks (its package list: /work/.library/device/KINDS.md).
  "$hostpy" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dir" \
    gymnax==1.0.1 gymnasium==1.3.0 farama-notifications==0.0.6 dm-env==1.6 optree==0.20.0 \
    flax==0.12.8 envpool==1.2.5 envpool-assets==0.3.0 || return 1
  "$hostpy" scripts/cut_envpool_wheels.py "$dir" || return 1
  du -ch "$dir"/*.whl | tail -n 1
}

install_wheels() {
  local dir=$1 site=/tmp/jaxrl-site
  local wheels=()
  for w in "$dir"/*.whl; do
    case "$(basename "$w")" in
      flax-*)
        # the image has flax; jaxrl needs 0.12.x
        "$PY" -c "import flax, sys; sys.exit(not flax.__version__.startswith('0.12.'))" 2>/dev/null && continue ;;
    esac
    wheels+=("$w")
  done
  [ ${#wheels[@]} -eq 0 ] && { echo "no wheels to install in $dir" >&2; return 1; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "${wheels[@]}" || return 1
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  echo "installed into $site: $(for w in "${wheels[@]}"; do basename "$w"; done | tr '\n' ' ')"
}

ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --fetch-wheels)
      shift
      if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then fetch_wheels "$1"; else fetch_wheels; fi
      exit $? ;;
    --wheels)
      [ $# -ge 2 ] || { echo "--wheels needs a folder" >&2; exit 2; }
      [ -d "$2" ] || { echo "--wheels: no folder $2 (run scripts/gpu_check.sh --fetch-wheels here first)" >&2; exit 2; }
      install_wheels "$2" || { echo "installing the wheels from $2 failed" >&2; exit 2; }
      shift 2 ;;
    -h|--help)
      sed -n '2,/^set -uo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
      exec "$PY" benchmarks/gpu_check.py --help ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" benchmarks/gpu_check.py ${ARGS[@]+"${ARGS[@]}"}
