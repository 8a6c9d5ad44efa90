"""Where one DQN Nature-CNN update goes on the CPU, op by op (``atari_vs_cleanrl.py --algo dqn``
settings: batch 32, 84x84x4 uint8 frames, 6 actions, L2 TD loss, Adam 1e-4), for each convolution
implementation given, in one process, alternating rounds.

For each implementation (``--impls``; see ``jaxrl.networks.conv``) it prints and writes:

* the process CPU time of one update, compiled at top level and inside a rolled ``lax.scan`` of
  ``--scan`` updates (where ``jaxrl.train`` runs it), median over ``--calls`` calls per round;
* the split by compiled op: XLA's profiler (``jax.profiler``) times every op of ``--calls`` top-level
  updates, and each op is labelled from the compiled HLO with its layer and pass (``fwd`` = a forward
  pass, online or target network; ``d_kernel``/``d_input`` = gradients) and whether XLA runs it through
  its YNNPACK library (``ynn``) or its own emitters, or in ``jaxrl.networks.conv_kernels`` (``kernels``).

Figures are wall time per op as the profiler sees it (CPU time per update for the totals): on a shared
machine give the load (printed) with them.

    python benchmarks/dqn_update_ops.py --impls cpu lax --rounds 3
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

import jaxrl  # noqa: E402
from jaxrl.algos import dqn  # noqa: E402
from jaxrl.algos.offpolicy import Batch  # noqa: E402
from jaxrl.networks.cnn import ConvTorso, NatureCNN  # noqa: E402

_NATURE = NatureCNN()  # an unbound preset: its fields only


class NatureQ(nn.Module):
    """``jaxrl.networks.q.QNetwork(torso="nature_cnn")`` (same parameter tree) with a chosen conv impl."""

    num_actions: int
    conv_impl: str

    @nn.compact
    def __call__(self, obs):
        h = ConvTorso(_NATURE.convs, _NATURE.features, conv_impl=self.conv_impl, name="ConvTorso_0")(obs)
        return nn.Dense(self.num_actions, name="q")(h)


def make_update(impl: str, batch_size: int, scan: int):
    cfg = jaxrl.DQNConfig(env="CartPole-v1", loss="l2", learning_rate=1e-4)
    net = NatureQ(6, impl)
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    frames = lambda k: jax.random.randint(k, (batch_size, 84, 84, 4), 0, 256).astype(jnp.uint8)
    batch = Batch(
        frames(k1),
        jax.random.randint(k3, (batch_size,), 0, 6),
        jax.random.normal(k3, (batch_size,)),
        jnp.zeros(batch_size, bool),
        frames(k2),
        jnp.ones(batch_size),
    )
    params = net.init(k3, batch.obs[:1])
    learner = dqn.Learner(params, params, dqn._optimizer(cfg).init(params))
    top = jax.jit(lambda lr, b: dqn.update(cfg, net, lr, b))

    def scanned(lr, b):
        bs = jax.tree.map(lambda x: jnp.broadcast_to(x, (scan,) + x.shape), b)
        return jax.lax.scan(lambda c, bb: dqn.update(cfg, net, c, bb), lr, bs)

    return top, jax.jit(scanned), learner, batch


_LAYER = re.compile(r"(Conv_\d|Dense_\d|/q/)")
_PASS = re.compile(r"/(d_kernel|d_input)/")


def op_labels(compiled_text: str) -> dict[str, str]:
    """HLO op name -> ``"<layer> <pass> [ynn]"`` for the convolutions and matrix products (the passes
    of ``jaxrl.networks.conv.conv2d``'s gradients are named scopes; ``lax``'s own gradients are ``bwd``)."""
    labels = {}
    for line in compiled_text.splitlines():
        m = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = (\S+) ", line)
        meta = re.search(r'op_name="([^"]+)"', line)
        if not m or not meta or not re.search(r"__ynn_fusion|convolution\(|dot\(|jaxrl_conv_", line):
            continue
        kernel = re.search(r'custom_call_target="jaxrl_conv_(\w+)"', line)
        if kernel:  # jaxrl.networks.conv_kernels' AVX-512 kernels
            layer = _LAYER.search(meta.group(1))
            kind = {"forward": "fwd", "kernel_grad": "d_kernel", "input_grad": "d_input"}[kernel.group(1)]
            labels[m.group(1)] = f"{layer.group(1).strip('/') if layer else '?'} {kind} kernels"
            continue
        if not re.search(r"conv_general_dilated|dot_general", meta.group(1)) and "dot(" not in line:
            continue  # a library fusion of a reduction (bias gradients)
        op = meta.group(1)
        layer = _LAYER.search(op)
        layer = (layer.group(1).strip("/") if layer else "?").replace("q", "head")
        named = _PASS.search(op)
        if "transpose(jvp" not in op:
            kind = "fwd"
        elif named:
            kind = named.group(1)
        elif "dot_general" in op or "dot(" in line:
            kind = "d_kernel" if "lhs_contracting_dims={0}" in line else "d_input"
        else:
            kind = "bwd"
        labels[m.group(1)] = f"{layer} {kind}" + (" ynn" if "__ynn_fusion" in line else "")
    return labels


def profile_ops(fn, args, calls: int) -> dict[str, float]:
    """ms per call of every op the profiler records on XLA's CPU worker threads: the median over the
    calls (robust to the odd call in which another process took the core mid-op)."""
    from jax._src.lib import _profile_data

    with tempfile.TemporaryDirectory() as d:
        jax.profiler.start_trace(d)
        for _ in range(calls):
            jax.block_until_ready(fn(*args))
        jax.profiler.stop_trace()
        (path,) = Path(d).rglob("*.xplane.pb")
        data = _profile_data.ProfileData.from_file(str(path))
    times = collections.defaultdict(list)
    for plane in data.planes:
        for line in plane.lines:
            if "XLAEigen" not in line.name:
                continue
            for ev in line.events:
                if not ev.name.startswith(("ThunkExecutor", "end: ")):
                    times[ev.name].append(ev.duration_ns / 1e6)
    # an op that ran k times per call: k x its median
    return {k: statistics.median(v) * len(v) / calls for k, v in times.items()}


def cpu_ms(fn, args, calls: int) -> float:
    ts = []
    for _ in range(calls):
        t = time.process_time()
        jax.block_until_ready(fn(*args))
        ts.append(time.process_time() - t)
    return 1e3 * statistics.median(ts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--impls", nargs="+", default=["cpu", "lax"], help="conv_impl values to compare")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--scan", type=int, default=4, help="updates in the rolled scan")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--cpu-threads", type=int, default=1)
    p.add_argument("--out", default=str(H.RESULTS_DIR / "dqn_update_ops.json"))
    args = p.parse_args()
    H.set_cpu_threads(args.cpu_threads)

    progs = {}
    for impl in args.impls:
        top, scanned, learner, batch = make_update(impl, args.batch_size, args.scan)
        top_c = top.lower(learner, batch).compile()
        scan_c = scanned.lower(learner, batch).compile()
        jax.block_until_ready(top_c(learner, batch))
        jax.block_until_ready(scan_c(learner, batch))
        progs[impl] = (top_c, scan_c, (learner, batch), op_labels(top_c.as_text()))

    rounds = []
    for r in range(args.rounds):
        order = args.impls if r % 2 == 0 else args.impls[::-1]
        row = {"load_avg_1min": H.load_average()}
        for impl in order:
            top_c, scan_c, a, labels = progs[impl]
            ops = profile_ops(top_c, a, args.calls)
            by_label = collections.Counter()
            for name, ms in ops.items():
                by_label[labels.get(name, "other (elementwise, Adam, transposes)")] += ms
            row[impl] = {
                "update_cpu_ms_top_level": cpu_ms(top_c, a, args.calls),
                "update_cpu_ms_in_scan": cpu_ms(scan_c, a, max(1, args.calls // args.scan)) / args.scan,
                "ops_wall_ms": dict(sorted(by_label.items(), key=lambda kv: -kv[1])),
            }
        rounds.append(row)
        print(
            json.dumps(
                {
                    k: (
                        v
                        if k == "load_avg_1min"
                        else {
                            "top": round(v["update_cpu_ms_top_level"], 1),
                            "scan": round(v["update_cpu_ms_in_scan"], 1),
                        }
                    )
                    for k, v in row.items()
                }
            ),
            flush=True,
        )

    summary = {}
    for impl in args.impls:
        med = lambda key, impl=impl: statistics.median(r[impl][key] for r in rounds)  # noqa: E731
        labels = {lab for r in rounds for lab in r[impl]["ops_wall_ms"]}
        summary[impl] = {
            "update_cpu_ms_top_level": med("update_cpu_ms_top_level"),
            "update_cpu_ms_in_scan": med("update_cpu_ms_in_scan"),
            "ops_wall_ms": dict(
                sorted(
                    (
                        (lab, statistics.median(r[impl]["ops_wall_ms"].get(lab, 0.0) for r in rounds))
                        for lab in labels
                    ),
                    key=lambda kv: -kv[1],
                )
            ),
        }
        print(
            f"\n{impl}: update {summary[impl]['update_cpu_ms_top_level']:.1f} ms CPU top level, "
            f"{summary[impl]['update_cpu_ms_in_scan']:.1f} in a rolled scan; ops (wall ms, median):"
        )
        for lab, ms in summary[impl]["ops_wall_ms"].items():
            if ms >= 0.05:
                print(f"  {ms:7.2f}  {lab}")
    H.write_run(args.out, args, rounds=rounds, median=summary)


if __name__ == "__main__":
    main()
