"""REINFORCE and A2C on gymnax CartPole-v1 and Acrobot-v1: time, steps/s, final return, curves.

    python benchmarks/classic_pg.py                        # every run below, 8 vmapped seeds each
    python benchmarks/classic_pg.py --only a2c-acrobot --seeds 4
    python benchmarks/classic_pg.py --repeats 2            # time 2 calls after the warm-up call

Each run trains all seeds in one ``jax.jit(jax.vmap(jaxrl.train))`` program (timed with
``benchmarks/_harness.py``: compile time, then the best of ``--repeats`` calls after one warm-up call),
then evaluates each seed's greedy policy on 32 fresh episodes (``jaxrl.evaluate``).
"Training return" is the mean over seeds of the mean return of the episodes finished in the last 1%
of updates (the sampling policy). Random play scores about 22 on CartPole-v1 and -500 on Acrobot-v1.
rejax and PureJaxRL have no REINFORCE/A2C, so there is no peer in this invocation.

Writes ``benchmarks/results/classic_pg.json`` (rows + machine; rows of runs not repeated are kept) and ``classic_pg_<run>.csv``
(the mean learning curve over seeds, one row per update).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

import jaxrl  # noqa: E402
from jaxrl.algos import registry  # noqa: E402

RUNS = {
    # The defaults: 8 whole episodes per update, normalised reward-to-go, no baseline, 1M steps.
    "reinforce-cartpole": jaxrl.ReinforceConfig(),
    # REINFORCE with a learned state-value baseline (separate network), rewards scaled by 0.01 so that
    # one value step per update can fit the returns (unscaled it lags: RESULTS.md).
    "reinforce-baseline-cartpole": jaxrl.ReinforceConfig(baseline=True, reward_scale=0.01),
    # The defaults: shared trunk, one-step TD advantage, 16 envs x 8 steps, 1M steps.
    "a2c-cartpole": jaxrl.A2CConfig(),
    # Acrobot, shared trunk: rewards scaled by 0.1 (at 1.0 the value loss swamps the trunk, RESULTS.md).
    "a2c-acrobot": jaxrl.A2CConfig(env="Acrobot-v1", total_timesteps=500_000, reward_scale=0.1),
    # Acrobot with separate actor and critic networks, rewards unscaled.
    "a2c-separate-acrobot": jaxrl.A2CConfig(env="Acrobot-v1", total_timesteps=500_000, shared_network=False),
}


def run(name: str, cfg, seeds: int, repeats: int) -> H.Timing:
    algo = registry.algorithm_for(cfg)
    steps = seeds * algo.num_iterations(cfg) * algo.steps_per_iteration(cfg)
    train = jax.vmap(jaxrl.train, in_axes=(None, 0))
    timing, (states, metrics) = H.measure(
        name,
        lambda keys: train(cfg, keys),
        lambda i: (jax.random.split(jax.random.key(i), seeds),),
        steps=steps,
        repeats=repeats,
    )
    evaluate = jax.jit(jax.vmap(lambda s, k: jaxrl.evaluate(cfg, s, k, num_episodes=32)))
    greedy = np.asarray(evaluate(states, jax.random.split(jax.random.key(10_000), seeds))).mean(axis=1)
    ret = np.asarray(metrics["episode_return"])  # [seeds, updates]
    n = ret.shape[1]
    train_ret = np.nanmean(ret[:, -max(1, n // 100) :], axis=1)
    curve = np.nanmean(ret, axis=0)
    env_steps = np.asarray(metrics["env_steps"][0])
    timing.extra = {
        "env": cfg.env,
        "seeds": seeds,
        "steps_per_seed": int(env_steps[-1]),
        "greedy_return_mean": float(greedy.mean()),
        "greedy_return_per_seed": greedy.round(1).tolist(),
        "train_return_mean": float(train_ret.mean()),
        "train_return_per_seed": train_ret.round(1).tolist(),
        "curve": {
            int(env_steps[i]): round(float(curve[i]), 1) for i in np.linspace(0, n - 1, 11).astype(int)
        },
    }
    path = H.RESULTS_DIR / f"classic_pg_{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["env_steps", "return_mean"] + [f"return_seed{i}" for i in range(seeds)])
        for i in range(n):
            w.writerow([int(env_steps[i]), f"{curve[i]:.2f}"] + [f"{r:.2f}" for r in ret[:, i]])
    print(f"{name}: {timing.extra}", flush=True)
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=8, help="seeds trained in parallel (vmapped)")
    parser.add_argument("--repeats", type=int, default=1, help="timed calls after the warm-up call")
    parser.add_argument("--only", action="append", choices=sorted(RUNS), help="run only these (repeatable)")
    args = parser.parse_args()

    args_runs = args.only or list(RUNS)
    rows = [run(name, RUNS[name], args.seeds, args.repeats) for name in args_runs]
    print(
        H.table(
            rows,
            [
                ("env", lambda r: r.extra["env"]),
                ("steps/seed", lambda r: f"{r.extra['steps_per_seed']:,}"),
                ("greedy return", lambda r: f"{r.extra['greedy_return_mean']:.1f}"),
                ("training return", lambda r: f"{r.extra['train_return_mean']:.1f}"),
            ],
        )
    )
    # Keep the rows of runs not repeated this time (--only), so the file always holds every run.
    old = H.RESULTS_DIR / "classic_pg.json"
    kept = [
        r for r in (json.loads(old.read_text())["rows"] if old.exists() else []) if r["name"] not in args_runs
    ]
    path = H.write_json(
        "classic_pg", {"rows": kept + [r.as_dict() for r in rows], "machine": H.machine_info()}
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
