"""DQN on gymnax CartPole-v1: jaxrl vs rejax 0.1.3 on the same work, in one invocation.

    python benchmarks/dqn_cartpole_vs_rejax.py                        # 500k steps x 8 vmapped seeds
    python benchmarks/dqn_cartpole_vs_rejax.py --timesteps 100000 --seeds 2   # quick look

Same work for both (CleanRL dqn.py CartPole settings, 10 envs): ``--seeds`` seeds in one
``jax.jit(jax.vmap(train))``, ``--timesteps`` env steps each, replay 10,000, batch 128, Adam lr 2.5e-4,
hard target copy every 500 env steps, epsilon 1 -> 0.05 over half the run, learning after 10,000 steps,
one gradient step per 10 env steps, loss 0.5 td^2, MLP 64-64 ReLU (rejax's DQN network is fixed at
64-64), vanilla DQN, no gradient clipping, no evaluation during training. Timed: compile
(``lower().compile()``) and ``--repeats`` calls of the compiled training (no warm-up call: one call is
minutes long). Afterwards every seed's final network is evaluated greedily (argmax) on 128 episodes.

Differences that remain: rejax treats time-limit truncation as termination (jaxrl bootstraps); rejax samples minibatches
without replacement (a weighted ``jax.random.choice`` over the whole buffer), jaxrl uniformly with
replacement, as DQN does.

Each framework runs in a subprocess of its own interpreter (rejax in its venv with gymnax 0.0.9:
``--rejax-python`` or ``$REJAX_PYTHON``; default ../venv-rejax). Results: results/dqn_cartpole_vs_rejax.json
and a Markdown table. Timings depend on what else runs on the machine: compare rows of one invocation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _harness as H  # noqa: E402

SETTINGS = dict(
    num_envs=10,
    buffer_size=10_000,
    minibatch_size=128,
    learning_rate=2.5e-4,
    gamma=0.99,
    target_update_period=500,
    epsilon_start=1.0,
    epsilon_end=0.05,
    exploration_fraction=0.5,
    learning_starts=10_000,
    train_frequency=10,
)
EVAL_EPISODES = 128


def problem(framework: str, timesteps: int):
    """(train(key) -> state, greedy returns(state, key) -> [EVAL_EPISODES], env steps per seed)."""
    s = SETTINGS
    if framework == "jaxrl":
        import jaxrl

        cfg = jaxrl.DQNConfig(
            env="CartPole-v1", total_timesteps=timesteps, hidden=(64, 64), activation="relu", loss="l2", **s
        )
        return (*H.jaxrl_train_and_returns(cfg, EVAL_EPISODES), cfg.num_iterations * cfg.env_steps_per_iteration)
    import jax.numpy as jnp
    from rejax import DQN

    def make_act(algo, ts):
        return lambda obs, rng: jnp.argmax(algo.agent.apply(ts.q_ts.params, obs[None]), axis=-1)[0]

    train, returns = H.rejax_train_and_returns(
        DQN,
        "CartPole-v1",
        timesteps,
        EVAL_EPISODES,
        make_act,
        num_envs=s["num_envs"],
        buffer_size=s["buffer_size"],
        fill_buffer=s["learning_starts"],
        batch_size=s["minibatch_size"],
        learning_rate=s["learning_rate"],
        gamma=s["gamma"],
        target_update_freq=s["target_update_period"],
        polyak=0.0,  # hard copy
        eps_start=s["epsilon_start"],
        eps_end=s["epsilon_end"],
        exploration_fraction=s["exploration_fraction"],
        ddqn=False,
        agent_kwargs={"activation": "relu"},
    )
    return train, returns, -(-timesteps // s["num_envs"]) * s["num_envs"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timesteps", type=int, default=500_000, help="env steps per seed")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--repeats", type=int, default=1, help="timed calls per framework and round")
    p.add_argument("--rounds", type=int, default=1, help="alternating jaxrl/rejax rounds (fresh processes)")
    p.add_argument("--rejax-python", default=H.default_rejax_python())
    p.add_argument("--no-rejax", action="store_true")
    H.add_cpu_threads_arg(p)
    p.add_argument("--framework", choices=["jaxrl", "rejax"], help=argparse.SUPPRESS)  # worker mode
    args = p.parse_args()
    if args.framework:
        t = args.cpu_threads[0]
        print(json.dumps(H.peer_worker(problem, args.framework, args.timesteps, args.seeds, args.repeats, t)))
        return
    if not args.no_rejax and not (args.rejax_python and Path(args.rejax_python).exists()):
        sys.exit(
            "rejax's interpreter not found: pass --rejax-python PATH (a venv with rejax==0.1.3 gymnax==0.0.9) or --no-rejax"
        )

    machine = H.machine_info()
    peers = [("jaxrl", sys.executable)] + ([] if args.no_rejax else [("rejax", args.rejax_python)])
    rounds = H.alternate_peers(__file__, peers, args)
    rows = [r for rnd in rounds for r in rnd]

    def speedup(r: H.Timing) -> str:
        """A jaxrl row against the faster rejax row of the same round (whatever its thread setting)."""
        same_round = next(rnd for rnd in rounds if any(q is r for q in rnd))
        peers = [q for q in same_round if q.name.startswith("rejax")]
        if not peers or not r.name.startswith("jaxrl"):
            return ""
        peer = min(peers, key=lambda q: q.run_best_s)
        return (
            f"{peer.run_best_s / r.run_best_s:.2f}x faster (wall), {peer.cpu_best_s / r.cpu_best_s:.2f}x (CPU time) "
            f"than {peer.name}; compile {peer.extra['compile_cpu_s'] / r.extra['compile_cpu_s']:.2f}x (CPU time)"
        )

    cols = [
        (
            "greedy return (mean ± sd over seeds)",
            lambda r: f"{r.extra['eval_return_mean']:.1f} ± {r.extra['eval_return_std_over_seeds']:.1f}",
        ),
        ("jaxrl vs the faster rejax row (same round)", speedup),
    ]
    print(
        f"\nDQN CartPole-v1, {args.timesteps:,} steps x {args.seeds} seeds; {machine['cpu']}, {machine['cores']} cores, "
        f"load {machine['load_avg_1min']}, jax {machine['jax']}"
    )
    print(H.table(rows, cols))
    machine["load_avg_1min_at_end"] = H.load_average()
    path = H.write_json(
        "dqn_cartpole_vs_rejax",
        {
            "work": {
                **SETTINGS,
                "env": "CartPole-v1",
                "timesteps_per_seed": args.timesteps,
                "seeds": args.seeds,
                "network": "relu 64x64",
                "loss": "0.5 td^2",
                "eval_episodes_per_seed": EVAL_EPISODES,
                "cpu_threads": args.cpu_threads,
            },
            "rows": [r.as_dict() for r in rows],
            "machine": machine,
        },
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
