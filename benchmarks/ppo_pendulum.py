"""PPO on gymnax Pendulum-v1 (continuous actions): train, print and save the learning curve.

    python benchmarks/ppo_pendulum.py                       # the settings below, 4 vmapped seeds
    python benchmarks/ppo_pendulum.py --seeds 2 --set total_timesteps=1048576 --set learning_rate=3e-4

Writes ``benchmarks/results/ppo_pendulum.csv`` (one row per update: env_steps, the mean over seeds of
the mean return of the episodes finished in that update, and each seed's value; an update in which no
episode ended repeats the previous value, and the first is NaN because 200-step episodes outlast the
first 128-step rollout) and prints the final greedy evaluation (``jaxrl.evaluate``, 32 episodes/seed). A uniformly random policy scores about
-1200 per episode on Pendulum-v1, a good one about -150 to -200.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import pathlib
import time

import jax
import jax.numpy as jnp

import jaxrl

# Settings that learn Pendulum-v1 reliably (measured: see benchmarks/RESULTS.md, "PPO on Pendulum-v1").
CONFIG = jaxrl.PPOConfig(
    env="Pendulum-v1",
    total_timesteps=1_048_576,
    num_envs=16,
    rollout_steps=128,
    num_epochs=10,
    num_minibatches=32,
    learning_rate=1e-3,
    anneal_lr=True,
    normalize_obs=True,
    clip_value=False,
    gamma=0.99,
    gae_lambda=0.95,
    ent_coef=0.0,
    max_grad_norm=0.5,
)

OUT = pathlib.Path(__file__).parent / "results" / "ppo_pendulum.csv"


def parse_set(cfg: jaxrl.PPOConfig, items: list[str]) -> jaxrl.PPOConfig:
    """Apply ``key=value`` overrides, converting each value to the field's current type."""
    fields = {f.name for f in dataclasses.fields(cfg)}
    for item in items:
        key, _, value = item.partition("=")
        if key not in fields:
            raise SystemExit(f"unknown PPOConfig field {key!r}; fields: {', '.join(sorted(fields))}")
        current = getattr(cfg, key)
        if isinstance(current, bool):
            parsed = value.lower() in ("1", "true", "yes")
        elif isinstance(current, int):
            parsed = int(float(value))
        elif isinstance(current, float):
            parsed = float(value)
        elif isinstance(current, tuple):
            parsed = tuple(int(v) for v in value.split(",") if v)
        else:
            parsed = value
        cfg = cfg.replace(**{key: parsed})
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=4, help="seeds trained in parallel (vmapped)")
    parser.add_argument("--seed", type=int, default=0, help="base seed")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field")
    parser.add_argument("--out", type=pathlib.Path, default=OUT, help="CSV learning curve")
    args = parser.parse_args()

    cfg = parse_set(CONFIG, args.set)
    keys = jax.random.split(jax.random.key(args.seed), args.seeds)
    print(f"PPO on {cfg.env}: {args.seeds} seeds x {cfg.total_timesteps:,} steps; {cfg}")

    train = jax.jit(jax.vmap(jaxrl.train, in_axes=(None, 0)))
    t0 = time.perf_counter()
    compiled = train.lower(cfg, keys).compile()
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    states, metrics = jax.block_until_ready(compiled(cfg, keys))
    t_run = time.perf_counter() - t0

    steps = jax.device_get(metrics["env_steps"][0])
    returns = jax.device_get(metrics["episode_return"])  # [seeds, iterations]
    mean = returns.mean(axis=0)

    evaluate = jax.jit(jax.vmap(lambda s, k: jaxrl.evaluate(cfg, s, k, num_episodes=32)))
    eval_returns = jax.device_get(
        evaluate(states, jax.random.split(jax.random.key(args.seed + 1), args.seeds))
    )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["env_steps", "return_mean"] + [f"return_seed{i}" for i in range(args.seeds)])
        for i in range(len(steps)):
            w.writerow([int(steps[i]), f"{mean[i]:.2f}"] + [f"{r:.2f}" for r in returns[:, i]])

    n = len(steps)
    print(f"{'env_steps':>12} {'mean return':>12}")
    for i in sorted(
        {int(n * q) - 1 for q in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)} - {-1}
    ):
        print(f"{int(steps[i]):>12,} {mean[i]:>12.1f}")
    total_steps = args.seeds * cfg.num_iterations * cfg.env_steps_per_iteration
    print(f"compile {t_compile:.1f} s, run {t_run:.1f} s, {total_steps / t_run:,.0f} env steps/s (all seeds)")
    print(f"final training return per seed: {', '.join(f'{r:.1f}' for r in returns[:, -1])}")
    per_seed = eval_returns.mean(axis=1)
    print(
        f"greedy evaluation (32 episodes/seed): mean {float(jnp.mean(eval_returns)):.1f}, "
        f"per seed {', '.join(f'{r:.1f}' for r in per_seed)}"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
