"""Is the de-duplicated frame store (``replay.make_replay(frames="obs")``, DQN's ``dedup_frames``) written
in place? Times a compiled scan of ``--steps`` DQN-style replay steps (one ``add`` of a 1-env 84x84x4
uint8 stack, one 32-transition ``sample`` with successors) for several replay sizes: if the store is
updated in place, the time per step does not grow with the store; if it is copied, it grows with the
store's bytes. Also counts the store's copies inside the compiled loop body (optimised HLO).

    python benchmarks/replay_frames_inplace.py --rows 2000 20000 100000

Run it on another commit (``PYTHONPATH=<checkout>``) to compare a change. JSON:
``results/replay_frames_inplace.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

from jaxrl.algos import offpolicy  # noqa: E402


def measure(rows: int, steps: int, repeats: int) -> dict:
    obs = jax.ShapeDtypeStruct((84, 84, 4), jnp.uint8)
    action = jax.ShapeDtypeStruct((), jnp.int32)
    buf = offpolicy.make_buffer(
        rows, 1, obs, action, store_next_obs=False, max_episode_steps=27_000, dedup_frames=True
    )

    def body(rs, key):
        k_obs, k_smp = jax.random.split(key)
        stack = jax.random.randint(k_obs, (1, 84, 84, 4), 0, 256).astype(jnp.uint8)
        no = jnp.zeros((1,), bool)
        item = offpolicy.Stored(stack, jnp.zeros((1,), jnp.int32), jnp.zeros((1,)), no, no, None)
        rs = buf.add(rs, item, ~no, end=stack, has_end=no)
        batch = offpolicy.sample_batches(buf, rs, k_smp, 1, 32)
        return rs, batch.obs.sum() + batch.next_obs.sum()

    run = jax.jit(lambda rs, key: jax.lax.scan(body, rs, jax.random.split(key, steps)))
    state = jax.jit(buf.init)()
    compiled = run.lower(state, jax.random.key(0)).compile()
    store = f"u8[{rows},1,84,84]"
    computation, copies = "", 0
    for line in compiled.as_text().splitlines():
        if line and not line.startswith(" ") and line.rstrip().endswith("{"):
            computation = line
        elif store in line and re.search(r" copy\(", line) and not computation.startswith("ENTRY"):
            copies += 1
    jax.block_until_ready(compiled(state, jax.random.key(1)))  # warm-up
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(compiled(state, jax.random.key(2 + i)))
        times.append(time.perf_counter() - t)
    best = min(times)
    return {
        "rows": rows,
        "store_mb": buf.nbytes / 1e6,
        "steps": steps,
        "best_s": best,
        "ms_per_step": 1e3 * best / steps,
        "store_copies_in_loop": copies,
        "load_avg_1min": H.load_average(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[2_000, 20_000, 100_000])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(H.RESULTS_DIR / "replay_frames_inplace.json"))
    args = p.parse_args()
    H.set_cpu_threads(1)
    result = {"command": " ".join(["python", *sys.argv]), "machine": H.machine_info(), "sizes": []}
    for rows in args.rows:
        r = measure(rows, args.steps, args.repeats)
        result["sizes"].append(r)
        print(json.dumps(r), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
