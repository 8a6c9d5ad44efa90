"""DQN on gymnax CartPole-v1: jaxrl vs rejax 0.1.3 on the same work, in one invocation.

Same work for both: 8 seeds vmapped in one jit, 500k env steps each, 10 envs, replay 10,000, batch
128, Adam lr 2.5e-4, hard target copy every 500 env steps, epsilon 1 -> 0.05 over half the run,
learning after 10,000 steps, one gradient step per 10 env steps, 0.5 * td^2 loss, MLP (64, 64) ReLU
(rejax's DQN network is fixed at 64-64), vanilla (not double) DQN, no evaluation during training.
Final figure: greedy return of each seed's final network over 128 episodes.

Differences we cannot remove: rejax clips gradients elementwise (``optax.clip``), jaxrl by global
norm (both at 10, rarely active here); rejax treats time-limit truncation as termination (jaxrl
bootstraps, the correct target); rejax samples minibatches without replacement, jaxrl with.

rejax runs in its own venv (``--rejax-python``, default /work/venv-rejax/bin/python) in a subprocess.
rejax 0.1.3 expects gymnax < 1.0's 5-tuple ``step``; that venv has gymnax 1.0.1, so the worker wraps
the env to return ``done = terminated | truncated`` (what gymnax 0.0.9 returned).

    python benchmarks/dqn_cartpole_vs_rejax.py                 # full run (minutes on a CPU)
    python benchmarks/dqn_cartpole_vs_rejax.py --total-timesteps 100000 --seeds 2   # quick look

Writes benchmarks/results/dqn_cartpole_vs_rejax.json. Never asserts timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

SETTINGS = dict(
    num_envs=10,
    buffer_size=10_000,
    batch_size=128,
    learning_rate=2.5e-4,
    gamma=0.99,
    target_update_period=500,
    epsilon_start=1.0,
    epsilon_end=0.05,
    exploration_fraction=0.5,
    learning_starts=10_000,
    train_frequency=10,
    max_grad_norm=10.0,
)
EVAL_EPISODES = 128


def machine() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "loadavg_at_start": load}


def run_jaxrl(total: int, seeds: int) -> dict:
    import jax
    import numpy as np

    import jaxrl

    cfg = jaxrl.DQNConfig(
        env="CartPole-v1", total_timesteps=total, hidden=(64, 64), activation="relu", loss="l2", **SETTINGS
    )
    keys = jax.random.split(jax.random.key(0), seeds)
    train = jax.jit(jax.vmap(jaxrl.train, in_axes=(None, 0)))
    t0 = time.perf_counter()
    compiled = train.lower(cfg, keys).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    states, metrics = compiled(cfg, keys)
    jax.block_until_ready(states)
    run_s = time.perf_counter() - t0
    ev = jax.jit(
        jax.vmap(lambda s, k: jaxrl.evaluate(cfg, s, k, num_episodes=EVAL_EPISODES), in_axes=(0, None))
    )
    returns = np.asarray(ev(states, jax.random.key(1)))
    return {
        "library": "jaxrl",
        "version": jaxrl.__version__,
        "jax": jax.__version__,
        "compile_s": compile_s,
        "run_s": run_s,
        "env_steps_per_s": seeds * cfg.num_updates * cfg.env_steps_per_iteration / run_s,
        "final_greedy_return_per_seed": returns.mean(axis=1).tolist(),
        "final_greedy_return_mean": float(returns.mean()),
        "train_return_last_iteration_per_seed": np.asarray(metrics.episode_return[:, -1]).tolist(),
    }


def run_rejax(total: int, seeds: int) -> dict:
    """Runs inside the rejax venv."""
    import gymnax
    import jax
    import jax.numpy as jnp
    import numpy as np
    import rejax
    from gymnax.environments.classic_control.cartpole import CartPole
    from rejax import DQN
    from rejax.evaluate import evaluate

    class FiveTupleCartPole(CartPole):
        """gymnax >= 1.0 CartPole with the gymnax 0.0.x ``step`` rejax 0.1.3 calls (done = term | trunc)."""

        def step(self, key, state, action, params=None):
            obs, state, reward, term, trunc, info = super().step(key, state, action, params)
            return obs, state, reward, jnp.logical_or(term, trunc), info

    env = FiveTupleCartPole()
    env_params = env.default_params
    s = SETTINGS
    algo = DQN.create(
        env=env,
        env_params=env_params,
        total_timesteps=total,
        eval_freq=total,  # one evaluation call at the very end; replaced by a no-op below
        skip_initial_evaluation=True,
        num_envs=s["num_envs"],
        buffer_size=s["buffer_size"],
        fill_buffer=s["learning_starts"],
        batch_size=s["batch_size"],
        learning_rate=s["learning_rate"],
        gamma=s["gamma"],
        target_update_freq=s["target_update_period"],
        polyak=0.0,  # hard copy
        eps_start=s["epsilon_start"],
        eps_end=s["epsilon_end"],
        exploration_fraction=s["exploration_fraction"],
        max_grad_norm=s["max_grad_norm"],
        ddqn=False,
        agent_kwargs={"activation": "relu"},
    )
    algo = algo.replace(eval_callback=lambda a, ts, rng: jnp.zeros(()))
    keys = jax.random.split(jax.random.key(0), seeds)
    train = jax.jit(jax.vmap(algo.train))
    t0 = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ts, _ = compiled(keys)
    jax.block_until_ready(ts)
    run_s = time.perf_counter() - t0
    iterations = int(np.ceil(total / s["num_envs"]))  # eval_freq = total: one block of train iterations

    def greedy_returns(params, key):
        act = lambda obs, rng: jnp.argmax(algo.agent.apply(params, obs[None]), axis=-1)[0]
        _, returns = evaluate(act, key, env, env_params, EVAL_EPISODES, env_params.max_steps_in_episode)
        return returns

    returns = np.asarray(
        jax.jit(jax.vmap(greedy_returns, in_axes=(0, None)))(ts.q_ts.params, jax.random.key(1))
    )
    return {
        "library": "rejax",
        "version": getattr(rejax, "__version__", "0.1.3"),
        "jax": jax.__version__,
        "gymnax": getattr(gymnax, "__version__", "?"),
        "compile_s": compile_s,
        "run_s": run_s,
        "env_steps_per_s": seeds * iterations * s["num_envs"] / run_s,
        "final_greedy_return_per_seed": returns.mean(axis=1).tolist(),
        "final_greedy_return_mean": float(returns.mean()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--total-timesteps", type=int, default=500_000)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--rejax-python", default="/work/venv-rejax/bin/python")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "dqn_cartpole_vs_rejax.json"))
    p.add_argument("--rejax-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--skip-rejax", action="store_true")
    args = p.parse_args()

    if args.rejax_worker:
        print(json.dumps(run_rejax(args.total_timesteps, args.seeds)))
        return

    result = {
        "benchmark": "DQN CartPole-v1, same work (see script docstring)",
        "settings": {
            **SETTINGS,
            "total_timesteps": args.total_timesteps,
            "seeds": args.seeds,
            "hidden": [64, 64],
        },
        "machine": machine(),
        "note": "shared 2-core machine: timings are noisy; re-run on a quiet machine for firm figures",
    }
    print("jaxrl ...", flush=True)
    result["jaxrl"] = run_jaxrl(args.total_timesteps, args.seeds)
    print(json.dumps(result["jaxrl"], indent=1), flush=True)
    if not args.skip_rejax:
        print("rejax (subprocess) ...", flush=True)
        cmd = [
            args.rejax_python,
            __file__,
            "--rejax-worker",
            "--total-timesteps",
            str(args.total_timesteps),
            "--seeds",
            str(args.seeds),
        ]
        env = {**os.environ, "PYTHONPATH": ""}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode:
            result["rejax"] = {"error": proc.stderr[-3000:]}
        else:
            result["rejax"] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(result["rejax"], indent=1), flush=True)
        if "run_s" in result["rejax"]:
            result["speedup_run"] = result["rejax"]["run_s"] / result["jaxrl"]["run_s"]
            result["speedup_compile_plus_run"] = (result["rejax"]["run_s"] + result["rejax"]["compile_s"]) / (
                result["jaxrl"]["run_s"] + result["jaxrl"]["compile_s"]
            )
    result["machine"]["loadavg_at_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
