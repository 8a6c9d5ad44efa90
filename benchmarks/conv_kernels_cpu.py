"""The AVX-512 convolution kernels (``jaxrl.networks.conv_kernels``, the CPU default where they build)
against XLA's convolutions (what ``conv2d`` runs with ``JAXRL_CONV_KERNELS=0``, and what
``flax.linen.Conv`` runs at top level), per Nature-CNN layer at batch 32: forward, kernel gradient,
input gradient; one process, alternating rounds; wall and process CPU ms per call (the kernels use
XLA's intra-op threads, XLA's convolutions here run on one).

    python benchmarks/conv_kernels_cpu.py --rounds 3
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

from jaxrl.networks import conv, conv_kernels  # noqa: E402

N = 32
LAYERS = {
    "1 (8x8/4, 84x84x4)": (84, 4, 32, 8, 4),
    "2 (4x4/2, 20x20x32)": (20, 32, 64, 4, 2),
    "3 (3x3/1, 9x9x64)": (9, 64, 64, 3, 1),
}


def programs(h, c, o, k, s):
    kx, kk, kd = jax.random.split(jax.random.key(0), 3)
    x = jax.random.uniform(kx, (N, h, h, c))
    w = jax.random.normal(kk, (k, k, c, o)) * 0.05
    oh = (h - k) // s + 1
    dy = jax.random.normal(kd, (N, oh, oh, o))
    used = (oh - 1) * s + k
    xla = {
        "forward": (jax.jit(lambda x, w: conv._conv(x, w, s)), (x, w)),
        "kernel grad": (jax.jit(lambda x, dy: conv._xla_kernel_grad(x, dy, w, s, used, used)), (x, dy)),
        "input grad": (jax.jit(lambda dy, w: conv._xla_input_grad(dy, w, x, s, used, used)), (dy, w)),
    }
    kernels = {
        "forward": (jax.jit(lambda x, w: conv_kernels.forward(x, w, s)), (x, w)),
        "kernel grad": (jax.jit(lambda x, dy: conv_kernels.kernel_grad(x, dy, w.shape, s)), (x, dy)),
        "input grad": (jax.jit(lambda dy, w: conv_kernels.input_grad(dy, w, x.shape, s)), (dy, w)),
    }
    return xla, kernels


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, args, calls):
    fn(*args).block_until_ready()
    t0, c0 = time.perf_counter(), cpu_s()
    for _ in range(calls):
        fn(*args).block_until_ready()
    return 1e3 * (time.perf_counter() - t0) / calls, 1e3 * (cpu_s() - c0) / calls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--out", default=str(H.RESULTS_DIR / "conv_kernels_cpu.json"))
    args = p.parse_args()
    if not conv_kernels.available():
        sys.exit("the kernels are not available here (no AVX-512, no C++ compiler, or JAXRL_CONV_KERNELS=0)")
    rows = []
    for layer, shape in LAYERS.items():
        xla, kernels = programs(*shape)
        for op in xla:
            if op == "input grad" and not conv_kernels.supports_input_grad(kernels[op][1][1]):
                continue
            got = {"xla": [], "kernels": []}
            for _ in range(args.rounds):
                for name, progs in (("xla", xla), ("kernels", kernels)):
                    got[name].append(timed(*progs[op], args.calls))
            row = {"layer": layer, "op": op, "load_avg_1min": H.load_average()}
            for name, runs in got.items():
                row[f"{name}_wall_ms"] = statistics.median(r[0] for r in runs)
                row[f"{name}_cpu_ms"] = statistics.median(r[1] for r in runs)
            rows.append(row)
            print(
                f"layer {layer} {op}: XLA {row['xla_wall_ms']:.2f} wall / {row['xla_cpu_ms']:.2f} CPU ms, "
                f"kernels {row['kernels_wall_ms']:.2f} / {row['kernels_cpu_ms']:.2f}",
                flush=True,
            )
    H.write_run(args.out, args, rows=rows)


if __name__ == "__main__":
    main()
