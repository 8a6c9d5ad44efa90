"""SAC on gymnax Pendulum-v1: jaxrl vs rejax 0.1.3 on the same work, in one invocation.

    python benchmarks/sac_pendulum_vs_rejax.py                     # 10k steps x 4 vmapped seeds
    python benchmarks/sac_pendulum_vs_rejax.py --timesteps 3000 --seeds 1   # quick look

Same work for both (rejax's Pendulum SAC settings, without its observation normalisation, which jaxrl's
SAC lacks): ``--seeds`` seeds in one ``jax.jit(jax.vmap(train))``, ``--timesteps`` env steps each, one
env, one gradient step per env step, replay 10,000, batch 256, Adam lr 3e-3 for actor, critics and
temperature, Polyak 0.98 (tau 0.02) every step, twin critics, MLP 64-64 swish, target entropy -|A|,
learning after 1,000 env steps. Timed: compile (``lower().compile()``) and ``--repeats`` calls of the
compiled training. Afterwards every seed is evaluated on 16 episodes (jaxrl: greedy tanh(mean); rejax:
its ``act``, which samples).

Differences that remain: before learning starts jaxrl acts uniformly at random, rejax with its initial
policy; rejax updates the actor before the critics within a step, jaxrl the critics first (as the
paper's Algorithm 1); rejax treats time-limit truncation as termination (jaxrl bootstraps; Pendulum's
episodes all end by the time limit). Each framework runs in a
subprocess of its own interpreter (rejax's venv: ``--rejax-python`` or ``$REJAX_PYTHON``; default
../venv-rejax). Results: results/sac_pendulum_vs_rejax.json and a Markdown table.
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
    buffer_size=10_000, batch_size=256, learning_rate=3e-3, gamma=0.99, tau=0.02, learning_starts=1_000
)
EVAL_EPISODES = 16


def problem(framework: str, timesteps: int):
    """(train(key) -> state, greedy returns(state, key) -> [EVAL_EPISODES], env steps per seed)."""
    s = SETTINGS
    if framework == "jaxrl":
        import jaxrl

        cfg = jaxrl.SACConfig(
            env="Pendulum-v1",
            total_timesteps=timesteps,
            hidden=(64, 64),
            activation="silu",
            buffer_size=s["buffer_size"],
            minibatch_size=s["batch_size"],
            learning_rate=s["learning_rate"],
            gamma=s["gamma"],
            tau=s["tau"],
            learning_starts=s["learning_starts"],
        )
        return (*H.jaxrl_train_and_returns(cfg, EVAL_EPISODES), timesteps)
    from rejax import SAC

    train, returns = H.rejax_train_and_returns(
        SAC,
        "Pendulum-v1",
        timesteps,
        EVAL_EPISODES,
        lambda algo, ts: algo.make_act(ts),
        num_envs=1,
        buffer_size=s["buffer_size"],
        fill_buffer=s["learning_starts"],
        batch_size=s["batch_size"],
        learning_rate=s["learning_rate"],
        gamma=s["gamma"],
        polyak=1.0 - s["tau"],
        num_epochs=1,
        target_entropy_ratio=None,  # continuous actions: -|A|
        normalize_observations=False,
        agent_kwargs={"activation": "swish"},
    )
    return train, returns, timesteps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timesteps", type=int, default=10_000, help="env steps per seed")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--repeats", type=int, default=1, help="timed calls per framework and round")
    p.add_argument("--rounds", type=int, default=1, help="alternating jaxrl/rejax rounds (fresh processes)")
    p.add_argument("--rejax-python", default=H.default_rejax_python())
    H.add_cpu_threads_arg(p)
    p.add_argument("--framework", choices=["jaxrl", "rejax"], help=argparse.SUPPRESS)  # worker mode
    args = p.parse_args()
    if args.framework:
        t = args.cpu_threads[0]
        print(json.dumps(H.peer_worker(problem, args.framework, args.timesteps, args.seeds, args.repeats, t)))
        return
    if not (args.rejax_python and Path(args.rejax_python).exists()):
        sys.exit("rejax's interpreter not found: pass --rejax-python PATH (a venv with rejax==0.1.3)")

    machine = H.machine_info()
    rounds = H.alternate_peers(__file__, [("jaxrl", sys.executable), ("rejax", args.rejax_python)], args)
    rows = [r for rnd in rounds for r in rnd]

    cols = [
        ("CPU s (best)", lambda r: f"{r.cpu_best_s:.1f}"),
        ("compile CPU s", lambda r: f"{r.extra['compile_cpu_s']:.1f}"),
        (
            "eval return (mean ± sd over seeds)",
            lambda r: f"{r.extra['eval_return_mean']:.1f} ± {r.extra['eval_return_std_over_seeds']:.1f}",
        ),
    ]
    print(
        f"\nSAC Pendulum-v1, {args.timesteps:,} steps x {args.seeds} seeds; {machine['cpu']}, {machine['cores']} "
        f"cores, load {machine['load_avg_1min']}, jax {machine['jax']}"
    )
    print(H.table(rows, cols))
    machine["load_avg_1min_at_end"] = H.load_average()
    work = {**SETTINGS, "env": "Pendulum-v1", "timesteps_per_seed": args.timesteps, "seeds": args.seeds}
    path = H.write_json(
        "sac_pendulum_vs_rejax", {"work": work, "rows": [r.as_dict() for r in rows], "machine": machine}
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
