"""envpool benchmarks: DQN and PPO on Atari (Pong, Breakout), PPO on MuJoCo (HalfCheetah), CleanRL settings.

Presets (``--preset``), each with CleanRL's hyperparameters for the same task:
  ppo-pong, ppo-breakout     ``ppo_atari_envpool_xla_jax_scan.py``: 8 envs x 128 steps, 4 epochs of 4
                             minibatches, Adam 2.5e-4 annealed, clip 0.1, ent 0.01, Nature CNN shared
                             by both heads, 10M env steps (40M frames).
  dqn-pong, dqn-breakout     ``dqn_atari_jax.py``: 1 env, replay 1M, batch 32, Adam 1e-4, target copy
                             every 1,000 steps, epsilon 1 -> 0.01 over the first 10%, learning after
                             80k steps, one gradient step per 4 env steps, L2 loss, no gradient clip,
                             10M env steps. Observations are stored once (``store_next_obs=False``),
                             as one newest frame per step (``dedup_frames=True``: ~7 KB per transition).
  ppo-halfcheetah            ``ppo_continuous_action.py``: 1 env x 2048 steps, 10 epochs of 32
                             minibatches, Adam 3e-4 annealed, clip 0.2, ent 0, 64x64 tanh, observation
                             normalisation, 1M env steps (CleanRL also normalises rewards; jaxrl does not).
Atari preprocessing is the DQN paper's, done inside envpool (see ``jaxrl.envs.envpool``); training
returns are full-game raw scores (as CleanRL logs them).

The run is cut into chunks of ``--chunk`` env steps (one jitted ``lax.scan`` of ``train_step`` each, the
same program ``jaxrl.train`` runs); after each chunk the script records env steps/s, the mean training
return of the episodes that ended, and rewrites the JSON, so a cut-short run keeps its curve. "Time to
score" is the wall time (training only, compile excluded) of the first chunk whose mean return reaches
``--target``. The curve is also written as ``<out>.csv``/``<out>.png`` after every chunk. A greedy evaluation (``jaxrl.evaluate``: full games, raw score) runs at the end,
and after every ``--eval-every`` chunks if set (``--eval-epsilon``: DQN's ``epsilon_end`` instead of greedy).

    python benchmarks/envpool_train.py --preset ppo-pong --target 18                # GPU, full run
    nice -n 10 python benchmarks/envpool_train.py --preset ppo-pong --total-timesteps 20480 \
        --chunk 10240 --eval-episodes 0                                             # CPU throughput
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

import jaxrl  # noqa: E402
from jaxrl.algos import registry  # noqa: E402
from jaxrl.envs import envpool as ep  # noqa: E402

PPO_ATARI = dict(
    total_timesteps=10_000_000,
    num_envs=8,
    rollout_steps=128,
    num_minibatches=4,
    num_epochs=4,
    learning_rate=2.5e-4,
    anneal_lr=True,
    gamma=0.99,
    gae_lambda=0.95,
    clip_eps=0.1,
    clip_value=True,
    ent_coef=0.01,
    vf_coef=0.5,
    max_grad_norm=0.5,
    network="nature_cnn",
)
DQN_ATARI = dict(
    total_timesteps=10_000_000,
    num_envs=1,
    buffer_size=1_000_000,
    minibatch_size=32,
    learning_rate=1e-4,
    gamma=0.99,
    tau=1.0,
    target_update_period=1_000,
    epsilon_start=1.0,
    epsilon_end=0.01,
    exploration_fraction=0.10,
    learning_starts=80_000,
    train_frequency=4,
    loss="l2",
    max_grad_norm=None,
    network="nature_cnn",
    store_next_obs=False,
    dedup_frames=True,
)
PPO_MUJOCO = dict(
    total_timesteps=1_000_000,
    num_envs=1,
    rollout_steps=2048,
    num_minibatches=32,
    num_epochs=10,
    learning_rate=3e-4,
    anneal_lr=True,
    gamma=0.99,
    gae_lambda=0.95,
    clip_eps=0.2,
    clip_value=True,
    ent_coef=0.0,
    vf_coef=0.5,
    max_grad_norm=0.5,
    hidden=(64, 64),
    activation="tanh",
    normalize_obs=True,
)
# preset: (config class name, task, settings, CleanRL's published figure for comparison)
PRESETS = {
    "ppo-pong": (
        "PPOConfig",
        "Pong-v5",
        PPO_ATARI,
        "CleanRL PPO envpool-XLA: 20.8 at 10M steps in ~37 min (A100)",
    ),
    "ppo-breakout": ("PPOConfig", "Breakout-v5", PPO_ATARI, "CleanRL PPO envpool-XLA: ~400 at 10M steps"),
    "dqn-pong": ("DQNConfig", "Pong-v5", DQN_ATARI, "CleanRL DQN (JAX): 20.4 at 10M steps"),
    "dqn-breakout": ("DQNConfig", "Breakout-v5", DQN_ATARI, "CleanRL DQN (JAX): 378 at 10M steps"),
    "ppo-halfcheetah": (
        "PPOConfig",
        "HalfCheetah-v4",
        PPO_MUJOCO,
        "CleanRL PPO continuous: ~1,500-2,500 at 1M steps",
    ),
}


def build_config(preset: str, args: argparse.Namespace):
    cls_name, task, settings, _ = PRESETS[preset]
    settings = dict(settings)
    if args.total_timesteps:
        settings["total_timesteps"] = args.total_timesteps
    if args.buffer_size and cls_name == "DQNConfig":
        settings["buffer_size"] = args.buffer_size
    if args.learning_starts is not None and cls_name == "DQNConfig":
        settings["learning_starts"] = args.learning_starts
    params = ep.EnvpoolParams(
        seed=args.seed, options={"num_threads": args.num_threads} if args.num_threads else {}
    )
    return getattr(jaxrl, cls_name)(env="envpool:" + task, env_params=params, **settings)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), required=True)
    p.add_argument("--total-timesteps", type=int, default=0, help="override the preset's env steps")
    p.add_argument("--chunk", type=int, default=100_000, help="env steps between curve points")
    p.add_argument("--target", type=float, default=None, help="score for the time-to-score figure")
    p.add_argument("--seed", type=int, default=0, help="agent key and envpool seed")
    p.add_argument("--buffer-size", type=int, default=0, help="DQN: override the 1M replay (host memory)")
    p.add_argument("--learning-starts", type=int, default=None, help="DQN: override the 80k warm-up")
    p.add_argument("--num-threads", type=int, default=0, help="envpool threads (0: envpool's default)")
    p.add_argument("--eval-episodes", type=int, default=16, help="final greedy evaluation (0: none)")
    p.add_argument("--eval-max-steps", type=int, default=None, help="cap evaluation length (default: 27k)")
    p.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="also evaluate (--eval-episodes games) after every N chunks, so a cut-short run has scores",
    )
    p.add_argument(
        "--eval-epsilon",
        action="store_true",
        help="DQN: evaluate epsilon-greedily with the preset's epsilon_end instead of greedily "
        "(a greedy Breakout agent that never presses FIRE after a lost life stalls until the cap)",
    )
    p.add_argument("--out", default=None)
    args = p.parse_args()
    out = Path(args.out or H.RESULTS_DIR / f"envpool_{args.preset.replace('-', '_')}.json")

    cfg = build_config(args.preset, args)
    algo = registry.algorithm_for(cfg)
    algo.validate(cfg)
    steps_per_it = algo.steps_per_iteration(cfg)
    per_chunk = max(1, args.chunk // steps_per_it)
    n_iters = algo.num_iterations(cfg)
    n_chunks = max(1, n_iters // per_chunk)
    run_chunk = jax.jit(lambda s: registry.run_iterations(algo, cfg, s, per_chunk), donate_argnums=0)

    result = {
        "benchmark": f"{args.preset} ({cfg.env})",
        "cleanrl": PRESETS[args.preset][3],
        "settings": {k: v for k, v in vars(cfg).items() if k not in ("env_params",)} | {"seed": args.seed},
        "machine": H.machine_info(),
        "frames_per_env_step": 4 if "Pong" in cfg.env or "Breakout" in cfg.env else 1,
        "command": " ".join(["python", *sys.argv]),
        "curve": [],
        "time_to_target_s": None,
        "status": "running",
    }
    if isinstance(cfg, jaxrl.DQNConfig):
        from jaxrl.algos import dqn

        env = dqn.make_env(cfg, 1)
        example = np.zeros(env.observation_space.shape, env.observation_space.dtype)
        buf = dqn.make_buffer(cfg, example)
        result["replay_bytes_per_transition"] = buf.bytes_per_transition
        result["replay_gb"] = buf.nbytes / 1e9

    t0 = time.perf_counter()
    state = jax.jit(lambda k: algo.init(cfg, k))(jax.random.key(args.seed))
    compiled = run_chunk.lower(state).compile()
    result["init_and_compile_s"] = time.perf_counter() - t0

    ev = jax.jit(
        lambda s, k: jaxrl.evaluate(
            cfg, s, k, args.eval_episodes, max_steps=args.eval_max_steps, deterministic=not args.eval_epsilon
        )
    )
    policy = "epsilon-greedy (epsilon_end)" if args.eval_epsilon else "greedy"

    train_s, steps = 0.0, 0
    for i in range(n_chunks):
        t = time.perf_counter()
        state, m = compiled(state)
        jax.block_until_ready(m)
        dt = time.perf_counter() - t
        train_s += dt
        steps = int(m.env_steps[-1])
        returns = np.asarray(m.episode_return, np.float64)
        point = {
            "env_steps": steps,
            "train_return": float(np.nanmean(returns)) if np.isfinite(returns).any() else None,
            "train_s": train_s,
            "chunk_env_steps_per_s": per_chunk * steps_per_it / dt,
        }
        losses = {k: float(np.mean(np.asarray(v))) for k, v in m.items() if "loss" in k}
        point.update(losses)
        if not all(np.isfinite(v) for v in losses.values()):
            result["status"] = "non-finite loss"
        result["curve"].append(point)
        # chunk 0 pays first-call allocations; steady-state throughput from the later chunks
        later = result["curve"][1:] or result["curve"]
        result["env_steps_per_s"] = float(np.median([c["chunk_env_steps_per_s"] for c in later]))
        result["frames_per_s"] = result["env_steps_per_s"] * result["frames_per_env_step"]
        if (
            args.target is not None
            and result["time_to_target_s"] is None
            and (point["train_return"] or -1e9) >= args.target
        ):
            result["time_to_target_s"] = train_s
            result["steps_to_target"] = steps
        if args.eval_every and args.eval_episodes and (i + 1) % args.eval_every == 0:
            t = time.perf_counter()
            scores = np.asarray(ev(state, jax.random.key(20_000 + i)))
            point["eval_return"] = float(scores.mean())
            point["eval_std"] = float(scores.std())
            point["eval_s"] = time.perf_counter() - t
        point["loadavg_1min"] = H.load_average()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=float) + "\n")
        curve_keys = ("train_return", "eval_return") if args.eval_every else ("train_return",)
        H.write_curve(out.with_suffix(""), result["curve"], curve_keys, result["benchmark"])
        print(json.dumps(point), flush=True)
        if result["status"] != "running":
            break

    if args.eval_episodes:
        t = time.perf_counter()
        scores = np.asarray(ev(state, jax.random.key(10_000 + args.seed)))
        result["eval"] = {
            "policy": policy,
            "mean": float(scores.mean()),
            "std": float(scores.std()),
            "episodes": len(scores),
            "max_steps": args.eval_max_steps,
            "wall_s": time.perf_counter() - t,
        }
    if result["status"] == "running":
        result["status"] = "done"
    result["env_steps"] = steps
    result["train_s"] = train_s
    result["load_avg_1min_at_end"] = H.load_average()
    out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(
        json.dumps(
            {
                k: result.get(k)
                for k in (
                    "benchmark",
                    "env_steps_per_s",
                    "frames_per_s",
                    "time_to_target_s",
                    "eval",
                    "status",
                )
            },
            default=float,
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
