"""What the runtime costs on top of one ``jaxrl.train`` call: chunking, logging, evaluation, checkpoints.

    python benchmarks/runtime_overhead.py                 # PPO CartPole-v1 defaults (524,288 steps)
    python benchmarks/runtime_overhead.py --set total_timesteps=131072

In one process, on the same config and key:
  train        ``jax.jit(jaxrl.train)``, compiled first (AOT), then timed
  run          ``jaxrl.run`` with files (metrics.csv/jsonl), no evaluation, no checkpoints
  run+eval     + greedy evaluation, 10 over the run x 32 episodes (the CLI default)
  run+eval+ck  + orbax checkpoints every 10 chunks (the CLI default)
Wall times exclude compilation (reported apart); CPU time (all threads of this process) is the best
round's, which has nothing left to compile. The evaluation program compiles in a background thread
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
    p.add_argument("--repeats", type=int, default=3, help="rounds over all variants (>= 2); the best is kept")
    args = p.parse_args()
    cfg = configs.apply_overrides(jaxrl.PPOConfig(), args.overrides)
    key = jax.random.key(0)

    t = time.perf_counter()
    compiled = jax.jit(jaxrl.train).lower(cfg, key).compile()
    compile_s = {"train": time.perf_counter() - t}

    def train() -> tuple[float, float]:
        w = time.perf_counter()
        jax.block_until_ready(compiled(cfg, key)[0])
        return time.perf_counter() - w, 0.0

    def run(name: str, **kw):
        def go() -> tuple[float, float]:
            with tempfile.TemporaryDirectory() as d:
                r = jaxrl.run(cfg, key, d + "/run", progress=False, plot=False, **kw)
            compile_s.setdefault(name, r.compile_time)
            return r.wall_time - r.compile_time, r.eval_time

        return go

    variants = {
        "train": train,
        "run": run("run", eval_episodes=0, checkpoint_every=0),
        "run+eval": run("run+eval", eval_episodes=32, checkpoint_every=0),
        "run+eval+ck": run("run+eval+ck", eval_episodes=32, checkpoint_every=10),
    }
    best: dict[str, tuple[float, float]] = {}
    cpu: dict[str, float] = {}
    for _ in range(args.repeats):  # round robin, so load changes hit every variant alike
        for name, fn in variants.items():
            c = time.process_time()
            wall, ev = fn()
            c = time.process_time() - c  # (the first round's includes compilation; the best is later)
            if name not in best or wall < best[name][0]:
                best[name] = (wall, ev)
            cpu[name] = min(cpu.get(name, float("inf")), c)

    base_wall, base_cpu = best["train"][0], cpu["train"]
    steps = cfg.num_iterations * cfg.env_steps_per_iteration
    print(
        f"PPO {cfg.env}, {steps:,} env steps, {cfg.num_iterations} updates; seconds, best of {args.repeats} "
        f"(round robin); compilation excluded\n"
    )
    print(
        "| variant | compile | wall | of which evaluation | CPU time | env steps/s (wall) | wall vs train | CPU vs train |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in variants:
        wall, ev = best[name]
        print(
            f"| {name} | {compile_s.get(name, 0.0):.1f} | {wall:.2f} | {ev:.2f} | {cpu[name]:.1f} | "
            f"{steps / wall:,.0f} | {100 * (wall / base_wall - 1):+.1f}% | {100 * (cpu[name] / base_cpu - 1):+.1f}% |"
        )


if __name__ == "__main__":
    main()
