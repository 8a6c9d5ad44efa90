"""How close jaxrl's DQN (CartPole-v1, the rejax-comparison settings) runs to its naive compute floor.

The floor is the learning work alone, written plainly in one jitted scan with no RL logic: per
iteration, a minibatch of 128 random transitions, the online forward pass on s, the target forward pass
on s', the TD loss 0.5 (r + gamma max Q_target(s') - Q(s, a))^2, its gradient and an Adam step, on the
same MLP (64-64 ReLU, 2 actions). jaxrl's run adds everything else: acting epsilon-greedily in 10 envs,
the env steps, writing and sampling the replay memory, the target copies and the metrics. Both are
``jit(vmap(...))`` over ``--seeds`` seeds for ``--iterations`` iterations (jaxrl: ``learning_starts=0``
so every iteration learns, 10 env steps per iteration as in the benchmark).

    taskset -c 0 python benchmarks/floor_dqn.py            # writes results/floor_dqn.json

If jaxrl runs at ~1.0x the floor, nothing but fewer or faster matrix products can make it faster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _harness as H  # noqa: E402


def floor_train(iterations: int):
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Dense(64)(x))
            x = nn.relu(nn.Dense(64)(x))
            return nn.Dense(2)(x)

    net, opt = MLP(), optax.adam(2.5e-4)

    def train(key):
        params = net.init(key, jnp.zeros((4,)))

        def body(carry, k):
            p, target, opt_state = carry
            k_obs, k_act, k_rew = jax.random.split(k, 3)
            obs = jax.random.normal(k_obs, (128, 4))
            next_obs = obs + 0.01
            action = jax.random.randint(k_act, (128,), 0, 2)
            reward = jax.random.uniform(k_rew, (128,))

            def loss(p):
                q = net.apply(p, obs)
                q_next = net.apply(target, next_obs)
                td = reward + 0.99 * q_next.max(-1) - jnp.take_along_axis(q, action[:, None], -1)[:, 0]
                return 0.5 * jnp.mean(td**2)

            updates, opt_state = opt.update(jax.grad(loss)(p), opt_state, p)
            return (optax.apply_updates(p, updates), target, opt_state), None

        carry, _ = jax.lax.scan(body, (params, params, opt.init(params)), jax.random.split(key, iterations))
        return carry[0]

    return train


def jaxrl_train(iterations: int):
    import jaxrl

    cfg = jaxrl.DQNConfig(
        env="CartPole-v1",
        total_timesteps=iterations * 10,
        hidden=(64, 64),
        activation="relu",
        loss="l2",
        learning_starts=0,
    )
    return lambda key: jaxrl.train(cfg, key)[0].params


def time_it(name: str, train, seeds: int, repeats: int, steps: int = 0) -> H.Timing:
    """``jit(vmap(train))`` over ``seeds`` keys: compile, one warm-up call, best of ``repeats``."""
    import jax

    keys = jax.random.split(jax.random.key(0), seeds)
    timing, _ = H.measure(name, jax.vmap(train), lambda i: (keys,), steps=steps, repeats=repeats)
    return timing


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=10_000)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    rows = [
        time_it("naive floor (learning work only)", floor_train(args.iterations), args.seeds, args.repeats),
        time_it(
            "jaxrl DQN (everything)",
            jaxrl_train(args.iterations),
            args.seeds,
            args.repeats,
            steps=args.iterations * 10 * args.seeds,
        ),
    ]
    ratio = rows[1].run_best_s / rows[0].run_best_s
    for r in rows:
        per_it = r.run_best_s / args.iterations * 1e6
        print(
            f"{r.name}: compile {r.compile_s:.1f} s, best run {r.run_best_s:.2f} s ({per_it:.0f} us / iteration)"
        )
    print(f"jaxrl / floor: {ratio:.3f}")
    path = H.write_json(
        "floor_dqn",
        {
            "iterations": args.iterations,
            "seeds": args.seeds,
            "rows": [r.as_dict() for r in rows],
            "jaxrl_over_floor": ratio,
            "machine": H.machine_info(),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
