"""DQN with the MinAtar CNN on a gymnax MinAtar game (default Breakout-MinAtar): a learning curve.

Settings after Young & Tian 2019 (MinAtar, arXiv:1903.03176) -- replay 100k, batch 32, target update
every 1,000 steps, epsilon 1 -> 0.1 over the first 100k steps, learning after 5,000, Huber loss,
gamma 0.99 -- except one gradient step per 4 env steps (4 envs; as in Atari DQN) instead of one per
step, to fit a CPU budget, and Adam 2.5e-4 instead of RMSProp. Observations are stored once
(``store_next_obs=False``).

The run is cut in chunks (``--chunk`` env steps, each one jitted ``lax.scan`` of train steps; the same
``train_step`` as ``jaxrl.train``); after each chunk the script records the mean training return of
the episodes that ended in it and a greedy evaluation, and rewrites the JSON, so a cut-short run
keeps its curve; the curve is also written as ``<out>.csv`` and ``<out>.png``.

    nice -n 10 python benchmarks/dqn_minatar.py --total-timesteps 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

import jaxrl  # noqa: E402
from jaxrl.algos import registry  # noqa: E402

SETTINGS = dict(
    num_envs=4,
    buffer_size=100_000,
    minibatch_size=32,
    learning_rate=2.5e-4,
    gamma=0.99,
    target_update_period=1_000,
    epsilon_start=1.0,
    epsilon_end=0.1,
    learning_starts=5_000,
    train_frequency=4,
    loss="huber",
    network="minatar_cnn",
    store_next_obs=False,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="Breakout-MinAtar")
    p.add_argument("--total-timesteps", type=int, default=1_000_000)
    p.add_argument("--chunk", type=int, default=50_000, help="env steps between curve points")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-episodes", type=int, default=32)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    out = Path(
        args.out or Path(__file__).parent / "results" / f"dqn_{args.env.split('-')[0].lower()}_minatar.json"
    )

    cfg = jaxrl.DQNConfig(
        env=args.env,
        total_timesteps=args.total_timesteps,
        exploration_fraction=min(1.0, 100_000 / args.total_timesteps),
        **SETTINGS,
    )
    algo = registry.algorithm_for(cfg)
    algo.validate(cfg)
    per_chunk = max(1, args.chunk // cfg.env_steps_per_iteration)
    n_chunks = cfg.num_iterations // per_chunk
    run_chunk = jax.jit(lambda s: registry.run_iterations(algo, cfg, s, per_chunk))
    evaluate = jax.jit(lambda s, k: jaxrl.evaluate(cfg, s, k, num_episodes=args.eval_episodes))

    state = jax.jit(lambda k: algo.init(cfg, k))(jax.random.key(args.seed))
    result = {
        "benchmark": f"DQN {args.env}, MinAtar CNN",
        "settings": {
            **SETTINGS,
            "total_timesteps": args.total_timesteps,
            "exploration_fraction": cfg.exploration_fraction,
        },
        "replay_bytes_per_transition": jaxrl.algos.dqn.make_buffer(
            cfg, state.env.timestep.obs[0]
        ).bytes_per_transition,
        "machine": {"cpu_count": os.cpu_count(), "loadavg_at_start": os.getloadavg()},
        "command": " ".join(["python", *sys.argv]),
        "note": "shared 2-core machine under load: wall times are noisy",
        "curve": [],
    }
    t0 = time.perf_counter()
    compiled = run_chunk.lower(state).compile()
    result["compile_s"] = time.perf_counter() - t0
    t_start, train_s = time.perf_counter(), 0.0
    for i in range(n_chunks):
        t = time.perf_counter()
        state, m = compiled(state)
        jax.block_until_ready(state)
        train_s += time.perf_counter() - t
        ended = np.asarray(m.episode_return)
        greedy = evaluate(state, jax.random.key(1000 + i))
        point = {
            "env_steps": int(m.env_steps[-1]),
            "train_return": float(ended[-1]),
            "greedy_return": float(jnp.mean(greedy)),
            "loss": float(jnp.mean(m.loss)),
            "q_value": float(jnp.mean(m.q_value)),
            "epsilon": float(m.epsilon[-1]),
            "train_s": train_s,
            "wall_s": time.perf_counter() - t_start,  # incl. evaluations
            "loadavg_1min": os.getloadavg()[0],
        }
        result["curve"].append(point)
        result["env_steps_per_s"] = point["env_steps"] / train_s
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        H.write_curve(
            out.with_suffix(""), result["curve"], ("train_return", "greedy_return"), result["benchmark"]
        )
        print(json.dumps(point), flush=True)


if __name__ == "__main__":
    main()
