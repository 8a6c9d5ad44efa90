"""Host memory of DQN's Atari replay memory (1M transitions, the ``dqn-pong`` preset), three layouts.

    python benchmarks/envpool_replay_memory.py                 # sizes, then allocate the 1M dedup buffer
    python benchmarks/envpool_replay_memory.py --no-allocate   # sizes only

Layouts (``jaxrl.algos.dqn.make_buffer``): ``store_next_obs=True`` (s and s' stacks per transition),
``store_next_obs=False`` (one stack per transition, s' read from the next row) and, in addition,
``dedup_frames=True`` (one 84x84 frame per transition, stacks rebuilt when sampled). Bytes come from
the buffer's own accounting (``ReplayBuffer.nbytes``, checked against the allocated arrays' ``nbytes``).
The allocation runs in a fresh subprocess: RSS before, after ``init()`` (every page written), and the
peak after a jitted ``add`` + ``sample`` of 32 with the state donated (updated in place, as the runtime
does on accelerators; on the CPU backend the runtime does not donate, so a chunk holds the old and the
new buffer at once: twice the figure). Also the time of one ``add`` (1 env) and one ``sample`` of 32
(stacks rebuilt) against the full-stack layout, on 100k-transition buffers. Writes
``benchmarks/results/envpool_replay_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import jax, jax.numpy as jnp, numpy as np
    import jaxrl
    from jaxrl.algos import dqn

    def rss_mb():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) / 1024

    capacity, dedup = int(sys.argv[1]), sys.argv[2] == "1"
    cfg = jaxrl.DQNConfig(env="envpool:Pong-v5", num_envs=1, train_frequency=4, buffer_size=capacity,
                          store_next_obs=False, dedup_frames=dedup)
    buf = dqn.make_buffer(cfg, jax.ShapeDtypeStruct((84, 84, 4), jnp.uint8), max_episode_steps=27_000)
    out = {"capacity": capacity, "dedup_frames": dedup, "nbytes": buf.nbytes, "rss_start_mb": rss_mb()}
    rs = jax.block_until_ready(jax.jit(buf.init)())
    out["allocated_nbytes"] = sum(x.nbytes for x in jax.tree_util.tree_leaves(rs))
    out["rss_after_init_mb"] = rss_mb()
    item = dqn.Stored(jnp.full((1, 84, 84, 4), 7, jnp.uint8), jnp.zeros(1, jnp.int32), jnp.zeros(1),
                      jnp.zeros(1, bool), jnp.zeros(1, bool), None)
    add = jax.jit(lambda r: buf.add(r, item, None, item.obs, jnp.zeros(1, bool)), donate_argnums=0)
    sample = jax.jit(lambda r, k: buf.sample(r, k, 32))
    for _ in range(8):
        rs = add(rs)
    jax.block_until_ready(sample(rs, jax.random.key(0)))
    t = time.perf_counter()
    for i in range(200):
        rs = add(rs)
    jax.block_until_ready(rs)
    out["add_us"] = (time.perf_counter() - t) / 200 * 1e6
    t = time.perf_counter()
    for i in range(200):
        s = sample(rs, jax.random.key(i))
    jax.block_until_ready(s)
    out["sample32_us"] = (time.perf_counter() - t) / 200 * 1e6
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))
    """
)


def sizes() -> dict:
    import jax
    import jax.numpy as jnp

    import jaxrl
    from jaxrl.algos import dqn

    obs = jax.ShapeDtypeStruct((84, 84, 4), jnp.uint8)
    rows = {}
    for name, kw in {
        "store_next_obs=True": dict(store_next_obs=True),
        "store_next_obs=False": dict(store_next_obs=False),
        "store_next_obs=False, dedup_frames=True": dict(store_next_obs=False, dedup_frames=True),
    }.items():
        cfg = jaxrl.DQNConfig(env="envpool:Pong-v5", num_envs=1, buffer_size=1_000_000, **kw)
        buf = dqn.make_buffer(cfg, obs, max_episode_steps=27_000)
        rows[name] = {
            "bytes_per_transition": buf.bytes_per_transition,
            "end_store_bytes": buf.end_nbytes,
            "nbytes_1M": buf.nbytes,
        }
    return rows


def child(capacity: int, dedup: bool) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(capacity), str(int(dedup))], capture_output=True, text=True
    )
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--no-allocate", action="store_true", help="skip the 1M allocation (~7 GB)")
    args = p.parse_args()
    out = {"layouts_1M": sizes(), "machine": H.machine_info()}
    print("| layout | bytes/transition | 1M buffer (GB) |\n|---|---:|---:|")
    for name, r in out["layouts_1M"].items():
        print(f"| {name} | {r['bytes_per_transition']:,} | {r['nbytes_1M'] / 1e9:.2f} |")
    out["speed_100k"] = [child(100_000, False), child(100_000, True)]
    for r in out["speed_100k"]:
        print(
            f"100k, dedup={r['dedup_frames']}: add {r['add_us']:.0f} us, sample 32 {r['sample32_us']:.0f} us"
        )
    if not args.no_allocate:
        out["allocation_1M"] = child(1_000_000, True)
        print(json.dumps(out["allocation_1M"], indent=1))
    print("wrote", H.write_json("envpool_replay_memory", out))


if __name__ == "__main__":
    main()
