"""Raw envpool stepping throughput through the jaxrl adapter (jitted ``lax.scan``, random actions) next
to envpool's own numpy API driven from a Python loop, and the replay memory an Atari DQN needs.

What it shows: the cost of the adapter (XLA custom calls, channels-last transpose, float64 words) over
envpool itself, per task and batch size; env steps/s and frames/s (4 frames per Atari step).

    nice -n 10 python benchmarks/envpool_throughput.py                 # CPU, default tasks
    python benchmarks/envpool_throughput.py --num-envs 8 64 --steps 2000   # e.g. on a GPU machine
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

from jaxrl import envs, replay  # noqa: E402

FRAMES = {"Pong-v5": 4, "Breakout-v5": 4}


def adapter_rate(task: str, num_envs: int, steps: int) -> float:
    """env steps/s of ``steps`` jitted steps of ``num_envs`` environments (best of 3 runs)."""
    env = envs.make("envpool:" + task, num_envs)
    space = env.action_space

    def act(k):
        if isinstance(space, envs.Discrete):
            return jax.random.randint(k, (num_envs,), 0, space.n)
        return jax.random.uniform(k, (num_envs,) + space.shape, minval=-1.0, maxval=1.0)

    @jax.jit
    def run(key):
        state, ts = env.reset(key)

        def body(c, k):
            s, _ = c
            s, ts = env.step(s, act(k), k)
            return (s, ts.reward.sum()), None

        (s, r), _ = jax.lax.scan(body, (state, jnp.zeros(())), jax.random.split(key, steps))
        return r

    jax.block_until_ready(run(jax.random.key(0)))  # compile + warm up
    best = min(_timed(lambda: jax.block_until_ready(run(jax.random.key(1)))) for _ in range(3))
    return steps * num_envs / best


def numpy_rate(task: str, num_envs: int, steps: int) -> float:
    """The same with envpool's numpy API in a Python loop (no JAX)."""
    import envpool

    env = envs.make("envpool:" + task, num_envs)
    pool = envpool.make(task, env_type="gymnasium", **env.options)
    pool.reset()
    rng = np.random.default_rng(0)
    space = env.action_space
    dtype = pool.spec.action_array_spec["action"].dtype
    if isinstance(space, envs.Discrete):
        acts = rng.integers(0, space.n, (steps, num_envs)).astype(dtype)
    else:
        acts = rng.uniform(-1, 1, (steps, num_envs) + space.shape).astype(dtype)

    def loop():
        for a in acts:
            pool.step(a)

    return steps * num_envs / min(_timed(loop) for _ in range(3))


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def atari_replay_bytes() -> dict[str, int]:
    """Bytes per transition of a DQN replay memory (``jaxrl.replay`` layout) for 84x84x4 uint8 frames."""
    frame = jax.ShapeDtypeStruct((84, 84, 4), jnp.uint8)
    scalar = lambda d: jax.ShapeDtypeStruct((), d)
    base_fields = dict(
        action=scalar(jnp.int32),
        reward=scalar(jnp.float32),
        terminated=scalar(jnp.bool_),
        truncated=scalar(jnp.bool_),
    )
    with_next = replay.make_replay(1000, dict(obs=frame, next_obs=frame, **base_fields)).bytes_per_transition
    obs_once = replay.make_replay(1000, dict(obs=frame, **base_fields)).bytes_per_transition
    newest_frame = replay.make_replay(
        1000, dict(obs=jax.ShapeDtypeStruct((84, 84), jnp.uint8), **base_fields)
    ).bytes_per_transition
    return {"obs_and_next_obs": with_next, "obs_once": obs_once, "newest_frame_only": newest_frame}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", nargs="+", default=["CartPole-v1", "Pong-v5", "Breakout-v5", "HalfCheetah-v4"])
    p.add_argument("--num-envs", nargs="+", type=int, default=[8])
    p.add_argument("--steps", type=int, default=500, help="steps of all envs per timed run")
    args = p.parse_args()

    rows = []
    for task in args.tasks:
        for n in args.num_envs:
            a = adapter_rate(task, n, args.steps)
            b = numpy_rate(task, n, args.steps)
            f = FRAMES.get(task, 1)
            rows.append(
                {
                    "task": task,
                    "num_envs": n,
                    "adapter_steps_per_s": a,
                    "numpy_steps_per_s": b,
                    "adapter_frames_per_s": a * f,
                }
            )
            print(
                f"{task:15s} B={n:3d}  adapter {a:10,.0f} steps/s ({a * f:10,.0f} frames/s)   "
                f"envpool numpy loop {b:10,.0f} steps/s",
                flush=True,
            )
    mem = atari_replay_bytes()
    print(
        "Atari replay bytes/transition:",
        mem,
        "-> 1M transitions:",
        {k: f"{v * 1e6 / 1e9:.1f} GB" for k, v in mem.items()},
    )
    path = H.write_json(
        "envpool_throughput",
        {"rows": rows, "atari_replay_bytes_per_transition": mem, "machine": H.machine_info()},
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
