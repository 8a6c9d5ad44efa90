"""One framework's PPO CartPole-v1 benchmark, run in that framework's own Python (a subprocess of
``ppo_vs_rejax.py``); prints one JSON document on its last stdout line.

    python benchmarks/_ppo_runner.py --framework jaxrl --seeds 1 --repeats 3
    /path/to/rejax-venv/bin/python benchmarks/_ppo_runner.py --framework rejax --seeds 16

Both frameworks get the same work (PureJaxRL's CartPole settings): 4 envs x 128 steps per update,
``--timesteps`` env steps per seed (524,288), 4 epochs x 4 minibatches, Adam lr 2.5e-4 linearly annealed
to 0 once per update, gamma 0.99, GAE lambda 0.95, clip 0.2, entropy 0.01, value 0.5, gradient clip 0.5,
tanh 64x64 separate actor and critic. ``--seeds N > 1`` trains N seeds in one ``jax.jit(jax.vmap(train))``.
What is timed is the training function alone (no evaluation inside); afterwards every seed is evaluated
greedily (argmax action) on 32 fresh episodes with the same procedure for both frameworks.

rejax 0.1.3 needs gymnax 0.0.9 (the pre-1.0 ``step`` API): give it its own virtual environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

NUM_ENVS, NUM_STEPS, EPOCHS, MINIBATCHES = 4, 128, 4, 4
LR, GAMMA, LAMBDA, CLIP, ENT, VF, MAX_GRAD = 2.5e-4, 0.99, 0.95, 0.2, 0.01, 0.5, 0.5
EVAL_EPISODES = 32


# ------------------------------------------------------------------------------------------ jaxrl
def jaxrl_config(timesteps: int):
    import jaxrl

    return jaxrl.PPOConfig(
        env="CartPole-v1",
        total_timesteps=timesteps,
        num_envs=NUM_ENVS,
        rollout_steps=NUM_STEPS,
        num_epochs=EPOCHS,
        num_minibatches=MINIBATCHES,
        learning_rate=LR,
        anneal_lr=True,
        gamma=GAMMA,
        gae_lambda=LAMBDA,
        clip_eps=CLIP,
        ent_coef=ENT,
        vf_coef=VF,
        max_grad_norm=MAX_GRAD,
        hidden=(64, 64),
        activation="tanh",
        shared_network=False,
    )


def jaxrl_problem(timesteps: int):
    import jax

    import jaxrl

    cfg = jaxrl_config(timesteps)

    def train(key):
        return jaxrl.train(cfg, key)

    def evaluate(state, key):
        return jaxrl.evaluate(cfg, state, key, num_episodes=EVAL_EPISODES)

    def train_returns(metrics):  # mean return of the episodes finished in the last update
        return metrics.episode_return[..., -1]

    return train, evaluate, train_returns, jax.random.key


def jaxrl_population(timesteps: int, devices: int):
    """``keys [N] -> (states, metrics)`` with the seeds split over ``devices`` CPU devices by
    ``jaxrl.parallel.train_population`` (each device runs its share as one vmapped program; members
    never communicate; the result equals the one-device ``jit(vmap(train))``)."""
    import jax

    from jaxrl import parallel

    if len(jax.devices()) != devices:
        raise RuntimeError(f"asked for {devices} CPU devices, JAX has {jax.devices()}")
    cfg = jaxrl_config(timesteps)
    return lambda keys: parallel.train_population(cfg, keys)


# ------------------------------------------------------------------------------------------ rejax
def rejax_problem(timesteps: int):
    import jax
    import jax.numpy as jnp
    import rejax

    num_updates = timesteps // (NUM_ENVS * NUM_STEPS)

    def annealed(count):  # PureJaxRL's schedule: lowered once per update (epochs x minibatches steps)
        return LR * (1.0 - (count // (EPOCHS * MINIBATCHES)) / num_updates)

    algo = rejax.PPO.create(
        env="CartPole-v1",
        total_timesteps=timesteps,
        num_envs=NUM_ENVS,
        rollout_steps=NUM_STEPS,
        num_epochs=EPOCHS,
        num_minibatches=MINIBATCHES,
        learning_rate=annealed,  # closed over by jit (the algorithm object is not traced)
        gamma=GAMMA,
        gae_lambda=LAMBDA,
        clip_eps=CLIP,
        ent_coef=ENT,
        vf_coef=VF,
        max_grad_norm=MAX_GRAD,
        agent_kwargs={"activation": "tanh", "hidden_layer_sizes": (64, 64)},
        # one "evaluation" at the very end, and it does nothing: only training is timed
        eval_freq=timesteps,
        skip_initial_evaluation=True,
    )
    algo = algo.replace(eval_callback=lambda algo, ts, key: ())
    env, env_params = algo.env, algo.env_params
    max_steps = int(env_params.max_steps_in_episode)

    def train(key):
        ts, _ = algo.train(key)
        return ts

    def evaluate(ts, key):
        """Greedy return of each of EVAL_EPISODES envs' first episode (as ``jaxrl.evaluate``)."""

        def logits(obs):
            return algo.actor.apply(
                ts.actor_ts.params, obs, method=lambda m, o: m.action_logits(m.features(o))
            )

        k_reset, k_run = jax.random.split(key)
        obs, state = jax.vmap(env.reset, (0, None))(jax.random.split(k_reset, EVAL_EPISODES), env_params)

        def step(c, k):
            obs, state, finished, ret, first = c
            action = jnp.argmax(logits(obs), axis=-1)
            obs, state, reward, done, _ = jax.vmap(env.step, (0, 0, 0, None))(
                jax.random.split(k, EVAL_EPISODES), state, action, env_params
            )
            ret = ret + jnp.where(finished, 0.0, reward)
            return (obs, state, finished | done, ret, first), None

        zeros = jnp.zeros((EVAL_EPISODES,))
        init = (obs, state, jnp.zeros((EVAL_EPISODES,), bool), zeros, zeros)
        (_, _, _, ret, _), _ = jax.lax.scan(step, init, jax.random.split(k_run, max_steps + 1))
        return ret

    def train_returns(ts):
        return None

    return train, evaluate, train_returns, jax.random.PRNGKey


# ------------------------------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--framework", choices=("jaxrl", "rejax"), required=True)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--timesteps", type=int, default=524_288)
    p.add_argument("--cpu-threads", type=int, default=0, help="XLA CPU threads (0: XLA's default)")
    p.add_argument(
        "--devices",
        type=int,
        default=1,
        help="jaxrl only: split the seeds over this many CPU devices (XLA's "
        "--xla_force_host_platform_device_count) with jaxrl.parallel.train_population, e.g. 2 to use "
        "both cores of a 2-core machine for a population (default 1: one device, plain jit(vmap))",
    )
    args = p.parse_args()
    if args.devices > 1:
        if args.framework != "jaxrl":
            p.error("--devices is a jaxrl option (jaxrl.parallel.train_population)")
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={args.devices}"
        ).strip()
    H.set_cpu_threads(args.cpu_threads)

    import jax
    import numpy as np

    make = jaxrl_problem if args.framework == "jaxrl" else rejax_problem
    train, evaluate, train_returns, make_key = make(args.timesteps)
    n = args.seeds
    if n == 1:
        fn, ev = train, evaluate
    else:
        fn, ev = jax.vmap(train), jax.vmap(evaluate)
    if args.devices > 1:
        if n % args.devices:
            p.error(f"--seeds {n} does not divide over --devices {args.devices}")
        fn = jaxrl_population(args.timesteps, args.devices)

    def args_for(i):  # a fresh key per call: nothing can be cached
        k = make_key(1000 * i)
        return (k,) if n == 1 else (jax.random.split(k, n),)

    timing, out = H.measure(
        f"{args.framework} {n} seed{'s' if n > 1 else ''}"
        + (f", {args.devices} CPU devices" if args.devices > 1 else "")
        + (
            f", {args.cpu_threads} thread{'s' if args.cpu_threads > 1 else ''}"
            if args.cpu_threads
            else ", XLA threads"
        ),
        fn,
        args_for,
        steps=args.timesteps * n,
        repeats=args.repeats,
    )
    state = out if args.framework == "rejax" else out[0]
    eval_key = make_key(7)
    eval_keys = eval_key if n == 1 else jax.random.split(eval_key, n)
    returns = np.asarray(jax.jit(ev)(state, eval_keys)).reshape(n, EVAL_EPISODES)
    per_seed = returns.mean(axis=1)
    timing.extra = {
        "eval_return_mean": float(per_seed.mean()),
        "eval_return_std_over_seeds": float(per_seed.std()),
        "eval_return_min_seed": float(per_seed.min()),
        "eval_return_per_seed": [float(x) for x in per_seed],
        "seeds": n,
        "timesteps_per_seed": args.timesteps,
        "cpu_threads": args.cpu_threads,
        "devices": args.devices,
    }
    if args.framework == "jaxrl":
        tr = np.asarray(train_returns(out[1])).reshape(n)
        timing.extra["train_return_last_update_mean"] = float(tr.mean())
    print(json.dumps({"timing": timing.as_dict(), "machine": H.machine_info()}, default=float))


if __name__ == "__main__":
    main()
