"""MinAtar DQN env steps/s with the plain ``lax`` convolution (jaxrl before #22) against
``jaxrl.networks.conv`` (the CPU default now), in one process, alternating timed windows.

Both programs are ``registry.run_iterations`` (the scan ``jaxrl.train`` runs) with ``dqn_minatar.py``'s
settings, learning from step ``--learning-starts`` on; the "lax" one is traced with
``jaxrl.networks.conv.use_cpu_conv`` forced off, which is what ``conv_impl="lax"`` selects; "cpu" is the
default (``conv2d``, with the AVX-512 kernels of ``jaxrl.networks.conv_kernels`` where they build);
"cpu_xla" is ``conv2d`` with XLA's convolutions (what ``JAXRL_CONV_KERNELS=0`` selects).

    nice -n 10 python benchmarks/dqn_minatar_conv_impl.py --env Breakout-MinAtar
    python benchmarks/dqn_minatar_conv_impl.py --impls cpu_xla cpu --out-suffix _kernels
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402
from dqn_minatar import SETTINGS  # noqa: E402

import jaxrl  # noqa: E402
from jaxrl.algos import registry  # noqa: E402
from jaxrl.networks import conv, conv_kernels  # noqa: E402


def compiled_chunk(cfg, per_chunk: int, impl: str):
    algo = registry.algorithm_for(cfg)
    real, real_supports = conv.use_cpu_conv, conv_kernels.supports
    conv.use_cpu_conv = lambda _impl: impl != "lax"  # only read while tracing
    if impl == "cpu_xla":
        conv_kernels.supports = lambda *_: False
    try:
        state = jax.jit(lambda k: algo.init(cfg, k))(jax.random.key(0))
        run = jax.jit(lambda s: registry.run_iterations(algo, cfg, s, per_chunk)).lower(state).compile()
    finally:
        conv.use_cpu_conv, conv_kernels.supports = real, real_supports
    return run, state


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="Breakout-MinAtar")
    p.add_argument("--window", type=int, default=10_000, help="env steps per timed window")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--learning-starts", type=int, default=5_000)
    p.add_argument("--impls", nargs="+", default=["lax", "cpu"], choices=["lax", "cpu_xla", "cpu"])
    p.add_argument("--out-suffix", default="", help="appended to the results file's name")
    args = p.parse_args()
    settings = dict(SETTINGS, learning_starts=args.learning_starts)
    cfg = jaxrl.DQNConfig(env=args.env, total_timesteps=1_000_000, exploration_fraction=0.1, **settings)
    per_chunk = args.window // cfg.env_steps_per_iteration
    runs = {impl: compiled_chunk(cfg, per_chunk, impl) for impl in args.impls}
    states = {impl: r[1] for impl, r in runs.items()}
    for impl in runs:  # warm-up: past learning_starts, first-call allocations
        for _ in range(-(-args.learning_starts // args.window)):
            states[impl], _ = runs[impl][0](states[impl])
        jax.block_until_ready(states[impl])
    result = {
        "benchmark": f"DQN {args.env} (MinAtar CNN): " + " vs ".join(args.impls),
        "command": " ".join(["python", *sys.argv]),
        "machine": H.machine_info(),
        "rounds": [],
    }
    impls = list(runs)
    for i in range(args.rounds):
        row = {}
        for impl in impls if i % 2 == 0 else impls[::-1]:
            t = time.perf_counter()
            states[impl], _ = runs[impl][0](states[impl])
            jax.block_until_ready(states[impl])
            row[impl] = args.window / (time.perf_counter() - t)
        row["load_avg_1min"] = H.load_average()
        result["rounds"].append(row)
        print(json.dumps(row), flush=True)
    for impl in impls:
        result[f"{impl}_env_steps_per_s"] = statistics.median(r[impl] for r in result["rounds"])
    H.write_json(f"dqn_minatar_conv_impl_{args.env.split('-')[0].lower()}{args.out_suffix}", result)
    print(json.dumps({k: v for k, v in result.items() if k.endswith("per_s")}), flush=True)


if __name__ == "__main__":
    main()
