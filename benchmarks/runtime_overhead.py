"""What the runtime costs on top of one ``jaxrl.train`` call: chunking, logging, evaluation, checkpoints.

    python benchmarks/runtime_overhead.py                 # PPO CartPole-v1 defaults (524,288 steps)
    python benchmarks/runtime_overhead.py --set total_timesteps=131072

In one process, on the same config and key:
  train        ``jax.jit(jaxrl.train)``, compiled first (AOT), then timed
  run          ``jaxrl.run`` with files (metrics.csv/jsonl), no evaluation, no checkpoints
  run+eval     + greedy evaluation, 10 over the run x 32 episodes (the CLI default)
  run+eval+ck  + orbax checkpoints every 10 chunks (the CLI default)
Times exclude compilation (reported apart); the evaluation program compiles in a background thread
while the chunk program compiles, so its compile time is mostly hidden. Prints a markdown table for
``benchmarks/RESULTS.md``. Timings are noisy when other jobs share the CPU: re-run on a quiet machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import jax

import jaxrl
from jaxrl.runtime import configs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="FIELD=VALUE")
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    cfg = configs.apply_overrides(jaxrl.PPOConfig(), args.overrides)
    key = jax.random.key(0)

    t = time.perf_counter()
    compiled = jax.jit(jaxrl.train).lower(cfg, key).compile()
    train_compile = time.perf_counter() - t
    rows = []
    best = float("inf")
    for _ in range(args.repeats):
        t = time.perf_counter()
        state, _ = compiled(cfg, key)
        jax.block_until_ready(state)
        best = min(best, time.perf_counter() - t)
    rows.append(("train", train_compile, best, 0.0, None))

    variants = [
        ("run", dict(eval_episodes=0, checkpoint_every=0)),
        ("run+eval", dict(eval_episodes=32, checkpoint_every=0)),
        ("run+eval+ck", dict(eval_episodes=32, checkpoint_every=10)),
    ]
    for name, kw in variants:
        best_r = None
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as d:
                r = jaxrl.run(cfg, key, d + "/run", progress=False, plot=False, **kw)
            if best_r is None or r.wall_time - r.compile_time < best_r.wall_time - best_r.compile_time:
                best_r = r
        r = best_r
        rows.append((name, r.compile_time, r.wall_time - r.compile_time, r.eval_time, r))

    base = rows[0][2]
    steps = cfg.num_updates * cfg.batch_size
    print(f"PPO {cfg.env}, {steps:,} env steps, {cfg.num_updates} updates; times in seconds (best of {args.repeats})\n")
    print("| variant | compile | run (excl. compile) | of which evaluation | env steps/s | overhead vs train |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, comp, run_s, ev, _ in rows:
        print(
            f"| {name} | {comp:.1f} | {run_s:.2f} | {ev:.2f} | {steps / run_s:,.0f} | "
            f"{100 * (run_s / base - 1):+.1f}% |"
        )


if __name__ == "__main__":
    main()
