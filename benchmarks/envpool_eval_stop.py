"""``jaxrl.evaluate`` on Atari stops when every game has ended: wall time and steps, against a scan
over the whole 27,000-step time limit (what evaluate did before).

    python benchmarks/envpool_eval_stop.py [--episodes 2]

An untrained DQN (Nature CNN, greedy) on envpool Pong, evaluation pools (full games, raw score).
Both programs are compiled first; the wall times are of one call each. Writes
``benchmarks/results/envpool_eval_stop.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

import jaxrl  # noqa: E402
from jaxrl import envs, evaluation, rollout  # noqa: E402
from jaxrl.algos import dqn  # noqa: E402


def full_scan(cfg, state, key, n):
    """The former evaluate: a lax.scan over max_episode_steps + 1 steps."""
    env = envs.EpisodeStats(envs.make(cfg.env, n, cfg.env_params, evaluation=True))
    act = dqn.make_policy(cfg, state)
    k_reset, k_run = jax.random.split(key)
    carry = rollout.reset(env, k_reset)

    def step(c, k):
        env_carry, finished, returns = c
        k_act, k_env = jax.random.split(k)
        env_state, ts = env.step(env_carry.env_state, act(env_carry.timestep.obs, k_act), k_env)
        first = jnp.logical_and(env_state.episode_end, ~finished)
        returns = jnp.where(first, env_state.returned_episode_return, returns)
        return (rollout.EnvCarry(env_state, ts), finished | env_state.episode_end, returns), None

    init = (carry, jnp.zeros((n,), bool), jnp.zeros((n,), jnp.float32))
    keys = jax.random.split(k_run, env.max_episode_steps + 1)
    (final, finished, returns), _ = jax.lax.scan(step, init, keys)
    return jnp.where(finished, returns, final.env_state.episode_return)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--episodes", type=int, default=2)
    args = p.parse_args()
    cfg = jaxrl.DQNConfig(env="envpool:Pong-v5", num_envs=1, train_frequency=4, network="nature_cnn")
    state = jax.jit(dqn.init, static_argnums=0)(cfg, jax.random.key(0))
    key = jax.random.key(1)
    out = {"task": cfg.env, "episodes": args.episodes, "machine": H.machine_info()}
    for name, fn in {
        "early_stop": lambda s, k: evaluation.run_episodes(cfg, s, k, args.episodes),
        "full_scan": lambda s, k: (full_scan(cfg, s, k, args.episodes), jnp.int32(27_001)),
    }.items():
        compiled = jax.jit(fn).lower(state, key).compile()
        t = time.perf_counter()
        returns, steps = jax.block_until_ready(compiled(state, key))
        out[name] = {
            "wall_s": time.perf_counter() - t,
            "steps": int(steps),
            "returns": np.asarray(returns).tolist(),
        }
        print(name, out[name])
    print("wrote", H.write_json("envpool_eval_stop", out))


if __name__ == "__main__":
    main()
