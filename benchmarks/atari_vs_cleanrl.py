"""Nature-CNN DQN and PPO training throughput on an envpool Atari task: jaxrl against CleanRL's JAX
scripts (re-written in ``benchmarks/cleanrl_atari.py``), same task, network, update ratio and batch, in
one process, alternating timed windows.

DQN (``dqn_atari_jax.py`` settings, ``envpool_train.DQN_ATARI``): 1 env, batch 32, one gradient step
per 4 env steps, Adam 1e-4, target copy every 1,000 steps; to measure the training phase quickly the
replay holds ``--buffer-size`` transitions, learning starts after ``--learning-starts`` steps and
epsilon reaches 0.01 there (both frameworks alike); both store each observation stack once
(``store_next_obs=False``; jaxrl's frame de-duplication only with ``--dedup-frames``). The untimed
warm-up fills the replay and compiles.
PPO (``ppo_atari_envpool_xla_jax_scan.py`` settings, ``envpool_train.PPO_ATARI``): 8 envs x 128 steps,
4 epochs x 4 minibatches; the first iteration (compilation) is untimed.

Each round times ``--window`` env steps of each framework, the order alternating between rounds; the
figure is the median over rounds of env steps / wall second. The JSON goes to
``results/atari_vs_cleanrl_<algo>_<task>.json``.

    nice -n 10 python benchmarks/atari_vs_cleanrl.py --algo dqn --task Pong-v5
    nice -n 10 python benchmarks/atari_vs_cleanrl.py --algo ppo --task Pong-v5 --window 1024
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
import cleanrl_atari  # noqa: E402
from envpool_train import DQN_ATARI, PPO_ATARI  # noqa: E402

import jaxrl  # noqa: E402
from jaxrl.algos import registry  # noqa: E402
from jaxrl.envs import envpool as ep  # noqa: E402


class JaxrlRunner:
    """``jaxrl``'s own program (``registry.run_iterations``: the scan ``jaxrl.train`` runs), ``chunk`` env
    steps per compiled call."""

    def __init__(self, cfg, chunk: int, seed: int):
        self.algo = registry.algorithm_for(cfg)
        self.algo.validate(cfg)
        per_it = self.algo.steps_per_iteration(cfg)
        self.per_call = max(1, chunk // per_it) * per_it
        n = self.per_call // per_it
        self.state = jax.jit(lambda k: self.algo.init(cfg, k))(jax.random.key(seed))
        self.run = jax.jit(lambda s: registry.run_iterations(self.algo, cfg, s, n)).lower(self.state).compile()

    def advance(self, steps: int) -> None:
        for _ in range(max(1, -(-steps // self.per_call))):
            self.state, self.metrics = self.run(self.state)
        jax.block_until_ready(self.state)


def make_runners(args):
    env = "envpool:" + args.task
    params = ep.EnvpoolParams(seed=args.seed)
    if args.algo == "dqn":
        total = DQN_ATARI["total_timesteps"]
        settings = dict(
            DQN_ATARI,
            buffer_size=args.buffer_size,
            learning_starts=args.learning_starts,
            dedup_frames=args.dedup_frames,
        )
        settings["exploration_fraction"] = args.learning_starts / total
        cfg = jaxrl.DQNConfig(env=env, env_params=params, **settings)
        jx = JaxrlRunner(cfg, args.chunk, args.seed)
        cr = cleanrl_atari.DQN(
            args.task, seed=args.seed, buffer_size=cfg.buffer_size, batch_size=cfg.minibatch_size,
            learning_rate=cfg.learning_rate, gamma=cfg.gamma, target_update_period=cfg.target_update_period,
            epsilon_start=cfg.epsilon_start, epsilon_end=cfg.epsilon_end, exploration_steps=args.learning_starts,
            learning_starts=args.learning_starts, train_frequency=cfg.train_frequency,
        )  # fmt: skip
        warmup = args.learning_starts + args.chunk
    else:
        cfg = jaxrl.PPOConfig(env=env, env_params=params, **PPO_ATARI)
        jx = JaxrlRunner(cfg, cfg.num_envs * cfg.rollout_steps, args.seed)
        cr = cleanrl_atari.PPO(
            args.task, seed=args.seed, num_envs=cfg.num_envs, num_steps=cfg.rollout_steps,
            num_minibatches=cfg.num_minibatches, num_epochs=cfg.num_epochs, learning_rate=cfg.learning_rate,
            num_iterations=cfg.total_timesteps // (cfg.num_envs * cfg.rollout_steps), gamma=cfg.gamma,
            gae_lambda=cfg.gae_lambda, clip_eps=cfg.clip_eps, ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef,
            max_grad_norm=cfg.max_grad_norm,
        )  # fmt: skip
        warmup = cfg.num_envs * cfg.rollout_steps
    return cfg, {"jaxrl": jx, "cleanrl": cr}, warmup


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algo", choices=("dqn", "ppo"), required=True)
    p.add_argument("--task", default="Pong-v5")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--window", type=int, default=2000, help="env steps timed per framework per round")
    p.add_argument("--chunk", type=int, default=1000, help="jaxrl DQN: env steps per compiled call")
    p.add_argument("--buffer-size", type=int, default=20_000)
    p.add_argument("--learning-starts", type=int, default=2_000)
    p.add_argument(
        "--dedup-frames",
        action="store_true",
        help="jaxrl DQN: the preset's de-duplicated frame store (default: full stacks stored once, the "
        "peer's layout)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    out = Path(
        args.out or H.RESULTS_DIR / f"atari_vs_cleanrl_{args.algo}_{args.task.split('-')[0].lower()}.json"
    )

    t0 = time.perf_counter()
    cfg, runners, warmup = make_runners(args)
    result = {
        "benchmark": f"{args.algo.upper()} {args.task}, Nature CNN: jaxrl vs CleanRL-style harness",
        "command": " ".join(["python", *sys.argv]),
        "args": vars(args),
        "machine": H.machine_info(),
        "rounds": [],
    }
    for name, r in runners.items():  # compile + fill the replay, untimed
        t = time.perf_counter()
        r.advance(warmup)
        result[f"{name}_warmup_s"] = time.perf_counter() - t
        print(f"{name}: warm-up {warmup} steps {result[f'{name}_warmup_s']:.1f} s", flush=True)
    result["setup_s"] = time.perf_counter() - t0
    names = list(runners)
    for i in range(args.rounds):
        row = {}
        for name in names if i % 2 == 0 else names[::-1]:
            cpu, t = time.process_time(), time.perf_counter()
            runners[name].advance(args.window)
            dt = time.perf_counter() - t
            row[name] = {
                "env_steps_per_s": args.window / dt,
                "wall_s": dt,
                "cpu_s": time.process_time() - cpu,
            }
        row["load_avg_1min"] = H.load_average()
        result["rounds"].append(row)
        for name in names:
            result[f"{name}_env_steps_per_s"] = statistics.median(
                r[name]["env_steps_per_s"] for r in result["rounds"]
            )
        result["speedup"] = result["jaxrl_env_steps_per_s"] / result["cleanrl_env_steps_per_s"]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=float) + "\n")
        print(json.dumps(row), flush=True)
    print(
        f"{result['benchmark']}: jaxrl {result['jaxrl_env_steps_per_s']:.1f} env steps/s, "
        f"CleanRL {result['cleanrl_env_steps_per_s']:.1f}, speedup {result['speedup']:.2f}x",
        flush=True,
    )


if __name__ == "__main__":
    main()
