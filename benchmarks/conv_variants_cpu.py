"""Other ways to write the Nature CNN's convolutions on XLA CPU, against ``jaxrl.networks.conv.conv2d``
(the CPU default), per layer and for the whole DQN update, in one process, alternating rounds; process
CPU time (less disturbed than wall time on a shared machine), one XLA thread, batch 32.

Per layer (forward, kernel gradient ``dW``, input gradient ``dX`` where the update needs one):

* ``conv2d``: the default (a ``lax`` convolution forward; custom-VJP gradients in ``NHWC x HWIO``);
* layer 1 (8x8 stride 4 on 84x84x4 uint8 frames):
  ``s2d``: space-to-depth of the uint8 frames (84x84x4 -> 21x21x64, a transpose of 4-byte pixels
  viewed as uint32) and a 2x2 stride-1 ``conv2d`` with 64 input channels;
  ``im2col``: patches ``[N*400, 256]`` built from the uint32 view and one matmul with the
  ``[256, 32]`` kernel (its gradient is a matmul too; no input gradient: the frames are not differentiated);
  ``im2col_bf16``: the same matmul in bfloat16 with float32 accumulation (AVX512-BF16 where XLA uses it);
* layers 2 (4x4/2 on 20x20x32) and 3 (3x3/1 on 9x9x64): ``im2col`` (strided slices + concatenate + matmul);
  ``subpixel_dx``: ``conv2d`` with the input gradient written without an lhs-dilated convolution (which
  XLA leaves to its own emitter): an explicitly padded VALID convolution, and for a stride ``s`` one
  convolution producing the ``s*s`` output phases as channels, then depth-to-space.

Whole update (``dqn_update_ops.make_update``: online Q(s) forward/backward, target Q(s') forward,
Adam): ``f32`` (the default) against ``bf16`` (parameters cast to bfloat16 inside the loss, frames
scaled to bfloat16: every convolution and matrix product in bfloat16).

    python benchmarks/conv_variants_cpu.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
from jax import lax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402
import dqn_update_ops as U  # noqa: E402

from jaxrl.networks import cnn  # noqa: E402
from jaxrl.networks.conv import conv2d  # noqa: E402

N = 32


def scale(x):
    return x.astype(jnp.float32) / 255.0


def s2d_frames(x):
    """uint8 ``[N, 84, 84, 4]`` -> ``[N, 21, 21, 64]`` (order: row in block, column in block, channel)."""
    n, h, w, _ = x.shape
    u = lax.bitcast_convert_type(x, jnp.uint32).reshape(n, h // 4, 4, w // 4, 4).transpose(0, 1, 3, 2, 4)
    return lax.bitcast_convert_type(u, jnp.uint8).reshape(n, h // 4, w // 4, 64)


def s2d_kernel(k):
    kh, kw, c, o = k.shape
    return (
        k.reshape(kh // 4, 4, kw // 4, 4, c, o)
        .transpose(0, 2, 1, 3, 4, 5)
        .reshape(kh // 4, kw // 4, 16 * c, o)
    )


def frame_patches(x):
    """uint8 ``[N, 84, 84, 4]`` -> uint8 patches ``[N, 20, 20, 256]`` of the 8x8/4 layer, ordered as the
    kernel ``[8, 8, 4, 32]`` reshaped to ``[256, 32]``."""
    n = x.shape[0]
    u = lax.bitcast_convert_type(x, jnp.uint32).reshape(n, 21, 4, 21, 4)  # [n, P, a', Q, b']
    cols = jnp.stack([jnp.stack([u[:, a : a + 20, :, b : b + 20, :] for b in range(2)]) for a in range(2)])
    cols = cols.transpose(2, 3, 5, 0, 4, 1, 6)  # [n, p, q, a, a', b, b']
    return lax.bitcast_convert_type(cols, jnp.uint8).reshape(n, 20, 20, 256)


def im2col(x, w, stride):
    k = w.shape[0]
    oh, ow = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    cols = [
        x[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride]
        for i in range(k)
        for j in range(k)
    ]
    p = jnp.concatenate(cols, -1)
    return (p.reshape(-1, p.shape[-1]) @ w.reshape(-1, w.shape[-1])).reshape(x.shape[0], oh, ow, -1)


def dx_subpixel(kernel, dy, stride, h, w):
    """``d x`` of a VALID ``stride`` convolution without lhs dilation: ``dx[n, s*u + r, s*v + t, c] =
    sum_{a, b, o} dy[n, u - a, v - b, o] kernel[s*a + r, s*b + t, c, o]``, all ``(r, t)`` phases in one
    convolution (``s*s*C_in`` output channels), then depth-to-space."""
    kh, kw, cin, cout = kernel.shape
    n, oh, ow, _ = dy.shape
    s = stride
    ka, kb = -(-kh // s), -(-kw // s)
    k = jnp.pad(kernel, ((0, ka * s - kh), (0, kb * s - kw), (0, 0), (0, 0)))
    k = k.reshape(ka, s, kb, s, cin, cout)[::-1, :, ::-1]  # [a, r, b, t, c, o], a and b flipped
    k = jnp.transpose(k, (0, 2, 5, 1, 3, 4)).reshape(ka, kb, cout, s * s * cin)
    dyp = jnp.pad(dy, ((0, 0), (ka - 1, ka - 1), (kb - 1, kb - 1), (0, 0)))
    z = lax.conv_general_dilated(dyp, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    u, v = z.shape[1:3]
    z = z.reshape(n, u, v, s, s, cin).transpose(0, 1, 3, 2, 4, 5).reshape(n, u * s, v * s, cin)[:, :h, :w]
    return jnp.pad(z, ((0, 0), (0, h - z.shape[1]), (0, w - z.shape[2]), (0, 0)))


def conv2d_subpixel_dx(stride):
    @jax.custom_vjp
    def f(x, w):
        return conv2d(x, w, stride)

    def fwd(x, w):
        return f(x, w), (x, w)

    def bwd(res, dy):
        x, w = res
        d_w = jax.vjp(lambda w: conv2d(x, w, stride), w)[1](dy)[0]
        return dx_subpixel(w, dy, stride, x.shape[1], x.shape[2]), d_w

    f.defvjp(fwd, bwd)
    return f


LAYER1 = {
    "conv2d": lambda x, w: conv2d(scale(x), w, 4),
    "s2d": lambda x, w: conv2d(scale(s2d_frames(x)), s2d_kernel(w), 1),
    "im2col": lambda x, w: (scale(frame_patches(x)).reshape(-1, 256) @ w.reshape(256, -1)).reshape(
        N, 20, 20, -1
    ),
    "im2col_bf16": lambda x, w: jnp.dot(
        frame_patches(x).astype(jnp.bfloat16).reshape(-1, 256),
        (w / 255.0).astype(jnp.bfloat16).reshape(256, -1),
        preferred_element_type=jnp.float32,
    ).reshape(N, 20, 20, -1),
}


def strided_variants(stride: int) -> dict:
    """Layers 2 and 3's variants at their stride: conv2d, im2col, the sub-pixel input gradient."""
    return {
        "conv2d": lambda x, w: conv2d(x, w, stride),
        "im2col": lambda x, w: im2col(x, w, stride),
        "subpixel_dx": conv2d_subpixel_dx(stride),
    }


def layer_programs():
    k = jax.random.split(jax.random.key(0), 4)
    frames = jax.random.randint(k[0], (N, 84, 84, 4), 0, 256).astype(jnp.uint8)
    w2, w3 = (jax.random.normal(k[1], shape) * 0.05 for shape in ((4, 4, 32, 64), (3, 3, 64, 64)))
    layers = {
        "layer1": (frames, jax.random.normal(k[1], (8, 8, 4, 32)) * 0.05, LAYER1, False),
        "layer2": (jax.random.normal(k[2], (N, 20, 20, 32)), w2, strided_variants(2), True),
        "layer3": (jax.random.normal(k[3], (N, 9, 9, 64)), w3, strided_variants(1), True),
    }
    progs, errors = {}, {}
    for layer, (x, w, variants, with_dx) in layers.items():
        y_ref = None
        for name, f in variants.items():
            y = jax.jit(f)(x, w)
            dy = jax.random.normal(k[3], y.shape)
            y_ref = y if y_ref is None else y_ref
            errors[f"{layer} {name}"] = float(jnp.abs(y - y_ref).max() / jnp.abs(y_ref).max())
            progs[f"{layer} {name} fwd"] = (jax.jit(f), (x, w))
            progs[f"{layer} {name} dW"] = (
                jax.jit(lambda x, w, dy, f=f: jax.vjp(lambda w: f(x, w), w)[1](dy)[0]),
                (x, w, dy),
            )
            if with_dx:
                dx = jax.vjp(lambda x, f=f, w=w: f(x, w), x)[1](dy)[0]
                dx_ref = jax.vjp(lambda x, g=variants["conv2d"], w=w: g(x, w), x)[1](dy)[0]
                errors[f"{layer} {name} dX"] = float(jnp.abs(dx - dx_ref).max() / jnp.abs(dx_ref).max())
                progs[f"{layer} {name} dX"] = (
                    jax.jit(lambda x, w, dy, f=f: jax.vjp(lambda x: f(x, w), x)[1](dy)[0]),
                    (x, w, dy),
                )
    return progs, errors


def update_programs(scan: int):
    progs = {}
    top, scanned, learner, batch = U.make_update("cpu", N, scan)
    progs["update f32"] = (top.lower(learner, batch).compile(), (learner, batch))
    progs[f"update f32, {scan} in a rolled scan (per update)"] = (
        scanned.lower(learner, batch).compile(),
        (learner, batch),
    )
    # bf16: frames scaled to bfloat16 and parameters cast to bfloat16 inside the loss
    as_float = cnn._as_float_image
    cnn._as_float_image = lambda x: as_float(x).astype(jnp.bfloat16)
    try:
        import jaxrl.algos.dqn as dqn

        class Bf16:
            def __init__(self, net):
                self.net = net

            def apply(self, params, obs):
                params = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
                return self.net.apply(params, obs).astype(jnp.float32)

        cfg = dqn.Config(env="CartPole-v1", loss="l2", learning_rate=1e-4)
        net = Bf16(U.NatureQ(6, "cpu"))
        upd = jax.jit(lambda lr, b: dqn.update(cfg, net, lr, b))
        progs["update bf16"] = (upd.lower(learner, batch).compile(), (learner, batch))
    finally:
        cnn._as_float_image = as_float
    return progs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--scan", type=int, default=4)
    p.add_argument("--out", default=str(H.RESULTS_DIR / "conv_variants_cpu.json"))
    args = p.parse_args()
    H.set_cpu_threads(1)
    progs, errors = layer_programs()
    progs.update(update_programs(args.scan))
    for fn, a in progs.values():
        jax.block_until_ready(fn(*a))
    print("forward output, max abs difference / max abs (vs conv2d):", json.dumps(errors), flush=True)
    rounds = []
    for r in range(args.rounds):
        names = list(progs) if r % 2 == 0 else list(progs)[::-1]
        row = {"load_avg_1min": H.load_average()}
        for name in names:
            fn, a = progs[name]
            calls = max(2, args.calls // args.scan) if "scan" in name else args.calls
            ms = U.cpu_ms(fn, a, calls)
            row[name] = ms / args.scan if "scan" in name else ms
        rounds.append(row)
        print(json.dumps({k: round(v, 2) for k, v in row.items()}), flush=True)
    median = {k: statistics.median(r[k] for r in rounds) for k in progs}
    for k, v in median.items():
        print(f"  {v:7.2f} ms CPU  {k}")
    H.write_run(args.out, args, forward_rel_error=errors, rounds=rounds, median_cpu_ms=median)


if __name__ == "__main__":
    main()
