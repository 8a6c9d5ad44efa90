"""Do refactors change behaviour? Train each RL algorithm a few iterations with a fixed key and compare
the final state and metrics with a baseline saved from an earlier commit.

    PYTHONPATH=$PWD python scripts/same_results.py            # compare with the saved baseline
    PYTHONPATH=$PWD python scripts/same_results.py --save     # write a new baseline (say which commit)

What is compared, bit for bit (SHA-256 of each array's bytes):
* the parameters (``state.params``; Q-learning's ``state.q``) leaf by leaf, in tree order;
* every metric, by name;
* the whole final state as a multiset of arrays (sorted hashes), so that moving a field into a shared
  sub-state (a refactor) still compares, while any changed value does not.
Sums of each array are saved too, to say how far a mismatch is. Same machine and jax version as the
baseline: XLA may round differently elsewhere.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys

import jax
import numpy as np

BASELINE = os.path.join(os.path.dirname(__file__), "same_results_baseline.json")


def runs() -> dict:
    """Name -> config: small, fixed, covering each algorithm's branches."""
    import jaxrl

    def ppo(**kw):
        return jaxrl.PPOConfig(num_envs=4, rollout_steps=16, num_epochs=2, num_minibatches=2, **kw)

    def dqn(**kw):
        return jaxrl.DQNConfig(
            env="CartPole-v1", num_envs=4, buffer_size=256, minibatch_size=32, learning_starts=64,
            train_frequency=4, target_update_period=64, total_timesteps=4 * 100, **kw,
        )  # fmt: skip

    return {
        "ppo_cartpole": ppo(env="CartPole-v1", total_timesteps=4 * 16 * 3),
        "ppo_cartpole_shared_normobs": ppo(
            env="CartPole-v1", total_timesteps=4 * 16 * 3, shared_network=True, normalize_obs=True
        ),
        "ppo_pendulum": ppo(env="Pendulum-v1", total_timesteps=4 * 16 * 3),
        "a2c_cartpole": jaxrl.A2CConfig(
            env="CartPole-v1", num_envs=4, rollout_steps=8, total_timesteps=4 * 8 * 4
        ),
        "a2c_pendulum_gae": jaxrl.A2CConfig(
            env="Pendulum-v1", num_envs=4, rollout_steps=8, total_timesteps=4 * 8 * 4, gae_lambda=0.9
        ),
        "reinforce_cartpole": jaxrl.ReinforceConfig(
            env="CartPole-v1", num_envs=4, total_timesteps=4 * 500 * 2
        ),
        "reinforce_baseline": jaxrl.ReinforceConfig(
            env="CartPole-v1", num_envs=4, total_timesteps=4 * 500 * 2, baseline=True, shared_network=True
        ),
        "dqn_cartpole": dqn(),
        "dqn_double_dueling_huber": dqn(
            double_dqn=True, dueling=True, loss="huber", tau=0.5, store_next_obs=False, max_grad_norm=10.0
        ),
        "qlearning": jaxrl.QLearningConfig(
            env="FrozenLake-misc", num_envs=8, rollout_steps=8, total_timesteps=8 * 8 * 5
        ),
    }


def _arrays(tree) -> list[np.ndarray]:
    out = []
    for x in jax.tree_util.tree_leaves(tree):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        out.append(np.asarray(x))
    return out


def _digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()[:16]


def _summary(a: np.ndarray) -> float:
    return float(np.nansum(a.astype(np.float64))) if a.dtype != bool else float(a.sum())


def measure(cfg) -> dict:
    import jaxrl

    state, metrics = jaxrl.train(cfg, jax.random.key(0))
    params = state.q if hasattr(state, "q") else state.params
    p = _arrays(params)
    s = _arrays(state)
    return {
        "params": [_digest(a) for a in p],
        "params_sum": [_summary(a) for a in p],
        "metrics": {k: _digest(np.asarray(v)) for k, v in metrics.items()},
        "metrics_last": {k: _summary(np.asarray(v)[-1:]) for k, v in metrics.items()},
        "state": sorted(_digest(a) for a in s),
    }


def compare(name: str, old: dict, new: dict) -> list[str]:
    bad = []
    if old["params"] != new["params"]:
        diffs = [
            f"leaf {i}: sum {a} -> {b}"
            for i, (h1, h2, a, b) in enumerate(
                zip(old["params"], new["params"], old["params_sum"], new["params_sum"], strict=False)
            )
            if h1 != h2
        ]
        bad.append(
            f"{name}: params differ ({len(old['params'])} -> {len(new['params'])} leaves; {diffs[:3]})"
        )
    for k, h in old["metrics"].items():
        if k not in new["metrics"]:
            bad.append(f"{name}: metric {k} missing")
        elif new["metrics"][k] != h:
            bad.append(
                f"{name}: metric {k} differs (last {old['metrics_last'][k]} -> {new['metrics_last'][k]})"
            )
    if old["state"] != new["state"]:
        bad.append(f"{name}: final state differs ({len(old['state'])} -> {len(new['state'])} arrays)")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save", action="store_true", help="write the baseline from this checkout")
    ap.add_argument("--only", nargs="*", help="run only these names")
    args = ap.parse_args()
    from jaxrl import cpu

    cpu.set_cpu_threads(1)  # fast for these tiny programs; the baseline was saved with it too
    todo = {k: v for k, v in runs().items() if not args.only or k in args.only}
    results = {name: measure(cfg) for name, cfg in todo.items()}
    if args.save:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout
        payload = {"commit": commit.strip(), "jax": jax.__version__, "results": results}
        with open(BASELINE, "w") as f:
            json.dump(payload, f, indent=1, sort_keys=True)
        print(f"saved {len(results)} runs to {BASELINE} (commit {payload['commit']})")
        return 0
    with open(BASELINE) as f:
        base = json.load(f)
    bad = []
    for name, new in results.items():
        problems = compare(name, base["results"][name], new)
        print(f"{name:30s} {'SAME' if not problems else 'DIFFERENT'}")
        bad += problems
    print("\n".join(bad))
    print(f"baseline commit {base['commit']}, jax {base['jax']} (now {jax.__version__})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
