"""What one SAC gradient step costs on this CPU, and how much of it any implementation must pay.

    python benchmarks/sac_update_cost.py                 # 4 vmapped seeds, 500 steps, 5 alternating rounds
    python benchmarks/sac_update_cost.py --rounds 3 --steps 200
    python benchmarks/sac_update_cost.py --quick --rounds 8 --steps 300 --out sac_update_cost_dense

Times ``jaxrl.algos.sac.update`` alone (critics, actor, temperature, three Adam steps, Polyak) on fixed
minibatches, with the settings of ``benchmarks/sac_pendulum_vs_rejax.py`` (MLP 64-64, batch 256,
``--seeds`` seeds in one ``jax.vmap``, one XLA CPU thread), in one ``lax.scan`` of ``--steps`` steps, best
process CPU time of ``--rounds`` rounds run in alternation, for:

  * ``silu``: the benchmark's network (SiLU/swish, as rejax's), as jaxrl runs it by default (each
    Dense+SiLU layer one fused AVX-512 kernel per direction where ``jaxrl.networks.dense_kernels`` builds);
  * ``silu, XLA layers``: the same with ``JAXRL_DENSE_KERNELS=0`` (XLA's products and SiLU);
  * ``relu`` and ``identity``: the same step with a cheaper activation (measurement only: they show what
    the activation costs; ``identity`` is registered here, not in jaxrl);
  * ``matmul floor``: the step's 64x64 products alone (16 batched 256x64x64 products per seed and step,
    the forward and transposed forms the step uses), which every SAC with these sizes must compute.

The step's arithmetic is fixed by the algorithm: actor on s' and both target critics (target), both critics
forward and backward (critic loss), actor forward and backward through both critics (actor loss). So
``silu - matmul floor`` bounds what layout, fusion or optimiser changes can still remove.
``--quick`` times only the two SiLU variants. Results: results/<--out>.json (default sac_update_cost).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import _harness as H  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--steps", type=int, default=500, help="gradient steps per timed call")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="only silu with and without the dense kernels")
    p.add_argument("--out", default="sac_update_cost", help="results/<out>.json")
    args = p.parse_args()
    H.set_cpu_threads(1)

    import jax
    import jax.numpy as jnp

    import jaxrl
    from jaxrl.algos import offpolicy, sac
    from jaxrl.networks import mlp

    mlp.ACTIVATIONS.setdefault("identity", lambda x: x)  # measurement only
    rows, s = 256, args.seeds

    def update_loop(activation: str):
        cfg = jaxrl.SACConfig(env="Pendulum-v1", hidden=(64, 64), activation=activation, minibatch_size=rows)
        nets = sac.make_networks(cfg, sac.make_env(cfg))

        def learner(key):
            st = sac.init(cfg, key)
            return sac.Learner(*st[:7])

        keys = jax.random.split(jax.random.key(0), s)
        k = jax.random.split(jax.random.key(1), 4)
        batch = offpolicy.Batch(
            obs=jax.random.normal(k[0], (s, rows, 3)),
            action=jax.random.uniform(k[1], (s, rows, 1), minval=-1, maxval=1),
            reward=jax.random.normal(k[2], (s, rows)),
            terminated=jnp.zeros((s, rows), bool),
            next_obs=jax.random.normal(k[3], (s, rows, 3)),
            weight=jnp.ones((s, rows)),
        )

        def run(lr, b, key):
            def body(lr, k):
                lr, losses = sac.update(cfg, nets, lr, sac.Minibatch(b, k))
                return lr, losses.critic_loss

            return jax.lax.scan(body, lr, jax.random.split(key, args.steps))

        args_ = (jax.jit(jax.vmap(learner))(keys), batch, keys)
        return jax.jit(jax.vmap(run)).lower(*args_).compile(), args_

    def matmul_floor():
        # per seed and step, as counted for SAC's step (twin critics: 2 per critic product): 8 forward-form
        # (x W), 5 input-gradient-form (g W^T) and 3 weight-gradient-form (x^T g) 256x64x64 products.
        # Values stay at 1 (no denormals): W = 1/64, and x^T x is rescaled before it is used.
        w = jnp.full((s, 64, 64), 1.0 / 64, jnp.float32)

        def body(x, _):
            for _ in range(3):
                gram = jnp.einsum("bnk,bnm->bkm", x, x) * (1.0 / (rows * 64))  # weight-gradient form
                x = jnp.einsum("bnk,bkm->bnm", x, gram)
            for _ in range(5):
                x = jnp.einsum("bnk,bkm->bnm", x, w)
            for _ in range(5):
                x = jnp.einsum("bnm,bkm->bnk", x, w)  # input-gradient form
            return x, None

        x0 = jnp.ones((s, rows, 64), jnp.float32)
        f = jax.jit(lambda x: jax.lax.scan(body, x, None, args.steps)[0])
        return f.lower(x0).compile(), (x0,)

    variants = {"silu": update_loop("silu")}
    os.environ["JAXRL_DENSE_KERNELS"] = "0"  # read while tracing: XLA's dot + mlp.silu for these variants
    variants["silu, XLA layers"] = update_loop("silu")
    if not args.quick:
        variants |= {"relu": update_loop("relu"), "identity": update_loop("identity")}
        variants["matmul floor"] = matmul_floor()
    del os.environ["JAXRL_DENSE_KERNELS"]
    for n, (c, a) in variants.items():
        jax.block_until_ready(c(*a))  # warm-up
        print(f"{n}: {c.as_text().count('jaxrl_dense')} dense-kernel calls in the compiled step")
    machine = H.machine_info()
    cpu = {n: [] for n in variants}
    for _ in range(args.rounds):
        for n, (c, a) in variants.items():
            t = time.process_time()
            jax.block_until_ready(c(*a))
            cpu[n].append((time.process_time() - t) / args.steps * 1e6)
    machine["load_avg_1min_at_end"] = H.load_average()
    base = min(cpu["silu"])
    print(
        f"\nSAC update, {s} vmapped seeds, batch {rows}, MLP 64-64; load {machine['load_avg_1min']} -> "
        f"{machine['load_avg_1min_at_end']}; best of {args.rounds} rounds, CPU us per step (all seeds)"
    )
    for n, v in cpu.items():
        print(
            f"  {n:13s} {min(v):8.1f}   ({min(v) / base:.2f} of silu)   rounds: {' '.join(f'{x:.0f}' for x in v)}"
        )
    flop = 16 * 2 * rows * 64 * 64 * s
    if "matmul floor" in cpu:
        print(
            f"  matmul floor rate: {flop / min(cpu['matmul floor']) / 1e3:.1f} GFLOP/s ({flop / 1e6:.0f} MFLOP per step)"
        )
    path = H.write_json(
        args.out,
        {"seeds": s, "steps": args.steps, "cpu_us_per_step": cpu, "machine": machine},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
