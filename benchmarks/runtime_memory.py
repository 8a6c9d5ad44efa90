"""Peak memory of a short and a long run: the chunked driver's metrics memory does not grow.

    python benchmarks/runtime_memory.py                  # 2,000 vs 100,000 updates
    python benchmarks/runtime_memory.py --short 500 --long 20000

Each measurement runs in a fresh subprocess (peak RSS = ``ru_maxrss`` of that process) on a tiny PPO
config (1 env x 4 steps, one 8-unit layer) whose updates are cheap, so a long run has many updates.
``jaxrl.run`` streams metrics to ``metrics.csv`` chunk by chunk; one ``jaxrl.train`` call, for
comparison, returns every update's metrics at once (its memory grows with the number of updates).
Prints a markdown table for ``benchmarks/RESULTS.md``. Timings/RSS are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import jax, jaxrl
    mode, updates, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    cfg = jaxrl.PPOConfig(num_envs=1, rollout_steps=4, total_timesteps=4 * updates, hidden=(8,),
                          num_epochs=1, num_minibatches=1)
    t = time.perf_counter()
    if mode == "run":
        r = jaxrl.run(cfg, 0, out, eval_episodes=0, checkpoint_every=0, progress=False, plot=False)
        n = r.iterations
    else:
        state, metrics = jax.jit(jaxrl.train)(cfg, jax.random.key(0))
        n = int(jax.device_get(metrics.env_steps)[-1]) // 4
    wall = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "updates": n, "wall_s": wall, "peak_rss_mb": rss_mb}))
    """
)


def measure(mode: str, updates: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, mode, str(updates), d + "/run"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", type=int, default=2_000)
    p.add_argument("--long", type=int, default=100_000)
    args = p.parse_args()
    rows = [measure(mode, n) for mode in ("run", "train") for n in (args.short, args.long)]
    print("| call | updates | wall time (s) | peak RSS (MB) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        call = (
            "jaxrl.run (chunked, metrics streamed to CSV)" if r["mode"] == "run" else "jaxrl.train (one call)"
        )
        print(f"| {call} | {r['updates']:,} | {r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} |")
    run_short, run_long = rows[0]["peak_rss_mb"], rows[1]["peak_rss_mb"]
    print(
        f"\njaxrl.run: long/short peak RSS = {run_long / run_short:.3f} ({run_long - run_short:+.0f} MB for "
        f"{args.long // args.short}x the updates)"
    )


if __name__ == "__main__":
    main()
