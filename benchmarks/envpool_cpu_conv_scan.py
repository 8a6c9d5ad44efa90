"""Why Atari training is so slow on CPU: XLA CPU runs convolution *gradients* inside a rolled
``lax.scan`` (a while loop) far slower than the same gradients at top level or in an unrolled scan.

PPO's minibatch epochs and DQN's update loop are such scans, so on CPU they paid this with
``flax.linen.Conv``/plain ``lax`` convolutions (``conv_impl="lax"``); ``jaxrl.networks.conv`` (the
default on CPU, ``conv_impl="auto"``) writes the gradients in the layout XLA CPU runs fast. Prints the
wall time of 2 Nature-CNN gradient steps (batch 64) three ways, for each implementation.

    nice -n 10 python benchmarks/envpool_cpu_conv_scan.py
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from jaxrl.networks.cnn import NatureCNN


def main() -> None:
    for impl in ("lax", "cpu"):
        measure(impl)


def measure(impl: str) -> None:
    net = NatureCNN().clone(conv_impl=impl)
    xs = jnp.zeros((2, 64, 84, 84, 4), jnp.uint8)
    params = net.init(jax.random.key(0), xs[0])
    grad = jax.grad(lambda p, x: net.apply(p, x).sum())

    def scanned(unroll):
        def body(p, x):
            return jax.tree_util.tree_map(lambda a, b: a - 1e-6 * b, p, grad(p, x)), None

        return jax.jit(lambda p, xs: jax.lax.scan(body, p, xs, unroll=unroll)[0])

    top, rolled, unrolled = jax.jit(grad), scanned(1), scanned(True)
    runs = {
        "top level (2 calls)": lambda: [jax.block_until_ready(top(params, x)) for x in xs],
        "lax.scan, rolled": lambda: jax.block_until_ready(rolled(params, xs)),
        "lax.scan, unrolled": lambda: jax.block_until_ready(unrolled(params, xs)),
    }
    for name, fn in runs.items():
        fn()  # compile and warm up
        t = time.perf_counter()
        fn()
        print(f"conv {impl}: {name:22s} {time.perf_counter() - t:8.2f} s   ({jax.default_backend()})", flush=True)


if __name__ == "__main__":
    main()
