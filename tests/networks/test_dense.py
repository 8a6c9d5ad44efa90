"""jaxrl.networks.dense: the fused dense+SiLU layer (AVX-512 kernels on the CPU where they build, XLA
elsewhere) gives silu(x w + b) and its three gradients against a float64 reference, under jit and vmap
(batched and shared parameters), for odd shapes; MLP keeps nn.Dense's parameters; the switch off gives
XLA's layers exactly; other backends never see the kernels."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.networks import dense, dense_kernels, mlp

needs_kernels = pytest.mark.skipif(
    not dense_kernels.available(), reason="no AVX-512 CPU or no C++ compiler here"
)


def reference(x, w, b, g):
    """float64: y = silu(x w + b) and the gradients of sum(y * g) with respect to x, w, b."""
    x, w, b, g = (np.asarray(a, np.float64) for a in (x, w, b, g))
    z = x @ w + b[..., None, :]
    s = 1.0 / (1.0 + np.exp(-z))
    y = z * s
    dz = g * s * (1.0 + z * (1.0 - s))
    return y, dz @ np.swapaxes(w, -1, -2), np.swapaxes(x, -1, -2) @ dz, dz.sum(-2)


def close(got, want, rtol=2e-5, scaled_atol=1e-5):
    # the kernels sum in another order than XLA and numpy: float32 rounding relative to the summed terms,
    # so the absolute tolerance scales with each array's largest entry
    for a, r in zip(got, want, strict=True):
        a, r = np.asarray(a, np.float64), np.asarray(r)
        assert a.shape == r.shape
        np.testing.assert_allclose(
            a, r, rtol=rtol, atol=1e-6 + scaled_atol * float(np.abs(r).max(initial=0.0))
        )


def operands(m, k, n, lead=(), seed=0):
    kx, kw, kb, kg = jax.random.split(jax.random.key(seed), 4)
    x = 2.0 * jax.random.normal(kx, (*lead, m, k))
    w = jax.random.normal(kw, (*lead, k, n)) / np.sqrt(k)
    b = 0.5 * jax.random.normal(kb, (*lead, n))
    g = jax.random.normal(kg, (*lead, m, n))
    return x, w, b, g


def value_and_grads(x, w, b, g):
    y, pull = jax.vjp(dense.dense_silu, x, w, b)
    return (y, *pull(g))


# (rows, input width, output width): SAC's layers, the tiny first layers, widths not a multiple of 16
# (masked last vector), rows not a multiple of the kernels' row blocks or tiles, a single row or column
SHAPES = [(256, 64, 64), (256, 3, 64), (256, 4, 64), (97, 17, 70), (7, 5, 20), (1, 64, 130), (130, 33, 1)]


@pytest.mark.parametrize("m, k, n", SHAPES)
@pytest.mark.parametrize("kernels", ["1", "0"])
def test_layer_and_gradients_match_float64(m, k, n, kernels, monkeypatch):
    monkeypatch.setenv("JAXRL_DENSE_KERNELS", kernels)
    x, w, b, g = operands(m, k, n)
    f = jax.jit(lambda *a: value_and_grads(*a))  # a new function: jax caches traces per function
    close(f(x, w, b, g), reference(x, w, b, g))
    hlo = f.lower(x, w, b, g).compile().as_text()
    assert ("jaxrl_dense_silu_forward_train" in hlo) == (kernels == "1" and dense_kernels.available())
    assert ("jaxrl_dense_silu_weight_grad" in hlo) == (
        kernels == "1" and dense_kernels.available() and k >= 16
    )


@needs_kernels
def test_under_vmap_batched_and_shared_parameters():
    # twin critics per seed: x, w, b all batched [3, 2, ...]; then one set of parameters shared by a batch
    x, w, b, g = operands(256, 4, 64, lead=(3, 2), seed=1)
    got = jax.jit(jax.vmap(jax.vmap(value_and_grads)))(x, w, b, g)
    close(got, reference(x, w, b, g))
    x, w, b, g = operands(50, 64, 48, lead=(3,), seed=2)
    got = jax.jit(jax.vmap(value_and_grads, in_axes=(0, None, None, 0)))(x, w[0], b[0], g)
    ref = reference(x, w[0], b[0], g)
    close(got, ref)
    # leading axes of x itself ([T, B, K] rows) fold into the rows
    y = jax.jit(dense.dense_silu)(x.reshape(3, 5, 10, 64), w[0], b[0])
    close([y.reshape(3, 50, 48)], ref[:1])


def reference_mlp(x, layers, g):
    """float64: the SiLU MLP's output and the gradients of sum(y * g) w.r.t. x and every (w, b)."""
    x = np.asarray(x, np.float64)
    xs, ss, zs = [], [], []
    for w, b in layers:
        w, b = np.asarray(w, np.float64), np.asarray(b, np.float64)
        z = x @ w + b[..., None, :]
        xs.append(x)
        zs.append(z)
        ss.append(1.0 / (1.0 + np.exp(-z)))
        x = z * ss[-1]
    dy, grads = np.asarray(g, np.float64), []
    for i in reversed(range(len(layers))):
        dz = dy * ss[i] * (1.0 + zs[i] * (1.0 - ss[i]))
        w = np.asarray(layers[i][0], np.float64)
        grads.append((np.swapaxes(xs[i], -1, -2) @ dz, dz.sum(-2)))
        dy = dz @ np.swapaxes(w, -1, -2)
    return x, dy, grads[::-1]


# (rows, widths): SAC's actor and critic, three layers with odd widths
MLPS = [(256, (3, 64, 64)), (256, (4, 64, 64)), (37, (5, 20, 70, 17))]


@pytest.mark.parametrize("m, widths", MLPS)
@pytest.mark.parametrize("kernels", ["1", "0"])
def test_mlp_of_layers_and_gradients_match_float64(m, widths, kernels, monkeypatch):
    # the whole MLP in one custom VJP: the backward pass hands each layer's input cotangent, with the SiLU
    # derivative of the layer below already applied, from one call to the next
    monkeypatch.setenv("JAXRL_DENSE_KERNELS", kernels)
    keys = jax.random.split(jax.random.key(m), 2 * len(widths))
    x = 2.0 * jax.random.normal(keys[0], (m, widths[0]))
    layers = [
        (jax.random.normal(keys[2 * i], (k, n)) / np.sqrt(k), 0.5 * jax.random.normal(keys[2 * i + 1], (n,)))
        for i, (k, n) in enumerate(zip(widths[:-1], widths[1:], strict=True))
    ]
    g = jax.random.normal(keys[1], (m, widths[-1]))

    def f(x, layers):
        y, pull = jax.vjp(dense.silu_mlp, x, layers)
        return y, *pull(g)

    y, dx, grads = jax.jit(f)(x, layers)
    y_ref, dx_ref, grads_ref = reference_mlp(x, layers, g)
    close([y, dx, *jax.tree.leaves(grads)], [y_ref, dx_ref, *jax.tree.leaves(grads_ref)])
    hlo = jax.jit(f).lower(x, layers).compile().as_text()
    assert ("jaxrl_dense_silu_input_grad" in hlo) == (kernels == "1" and dense_kernels.available())
    # vmapped over a leading batch of parameters and inputs (SAC's seeds and twin critics)
    xb, gb = jnp.stack([x, -x]), jnp.stack([g, g])
    lb = jax.tree.map(lambda a: jnp.stack([a, 0.5 * a]), layers)
    yb, dxb, gradsb = jax.jit(jax.vmap(lambda x, ls, g: f_with(x, ls, g)))(xb, lb, gb)
    for j in range(2):
        r = reference_mlp(xb[j], take(lb, j), gb[j])
        close([yb[j], dxb[j], *jax.tree.leaves(take(gradsb, j))], [r[0], r[1], *jax.tree.leaves(r[2])])


def take(tree, j):
    return jax.tree.map(lambda a: a[j], tree)


def f_with(x, layers, g):
    y, pull = jax.vjp(dense.silu_mlp, x, layers)
    return y, *pull(g)


@needs_kernels
def test_unused_gradients_are_not_computed():
    # the weight gradient and the input gradient are separate calls, so XLA drops the one nothing reads
    x, w, b, g = operands(64, 32, 64)
    only_x = jax.jit(jax.grad(lambda x: jnp.sum(dense.dense_silu(x, w, b) * g))).lower(x).compile().as_text()
    only_w = jax.jit(jax.grad(lambda w: jnp.sum(dense.dense_silu(x, w, b) * g))).lower(w).compile().as_text()
    assert "jaxrl_dense_silu_weight_grad" not in only_x and "jaxrl_dense_silu_forward_train" in only_x
    assert "jaxrl_dense_silu_weight_grad" in only_w and not re.search(
        r"f32\[64,32\]\{[\d,]+\} (dot|fusion)", only_w
    )
    # two layers, the input's gradient only (SAC's critics in the actor loss): no weight-gradient kernel
    v = jax.random.normal(jax.random.key(9), (64, 64)) / 8.0
    two = (
        jax.jit(jax.grad(lambda x: jnp.sum(dense.silu_mlp(x, [(w, b), (v, b)]) * g)))
        .lower(x)
        .compile()
        .as_text()
    )
    assert "jaxrl_dense_silu_input_grad" in two and "jaxrl_dense_silu_weight_grad" not in two
    # no gradient at all: the forward kernel without the derivative
    plain = jax.jit(dense.dense_silu).lower(x, w, b).compile().as_text()
    assert "jaxrl_dense_silu_forward" in plain and "forward_train" not in plain


@needs_kernels
def test_kernel_silu_is_silu_to_float32_rounding():
    # the kernel's own exponential and reciprocal, through a 1x1 layer (w = 1, b = 0): the bounds of
    # tests/networks/test_mlp.py for jaxrl.networks.mlp.silu
    x = np.concatenate([np.linspace(-40.0, 40.0, 20_001), [0.0, -0.0, 1e-30, -1e-30, 3.0, -3.0]]).astype(
        np.float32
    )
    y, d = jax.jit(dense_kernels.forward_train)(jnp.asarray(x)[:, None], jnp.ones((1, 1)), jnp.zeros((1,)))
    x64 = x.astype(np.float64)
    s = 1.0 / (1.0 + np.exp(-x64))
    np.testing.assert_allclose(np.asarray(y[:, 0], np.float64), x64 * s, rtol=2e-6, atol=3e-6)
    np.testing.assert_allclose(
        np.asarray(d[:, 0], np.float64), s * (1.0 + x64 * (1.0 - s)), rtol=2e-6, atol=3e-6
    )
    assert float(y[-6, 0]) == 0.0 and float(d[-6, 0]) == 0.5
    # far tails stay finite and of the right size
    far = jnp.asarray([[-1e4], [-200.0], [-88.0], [88.0], [200.0], [1e4]])
    y, d = dense_kernels.forward_train(far, jnp.ones((1, 1)), jnp.zeros((1,)))
    np.testing.assert_allclose(y[3:, 0], [88.0, 200.0, 1e4])
    np.testing.assert_allclose(d[3:, 0], [1.0, 1.0, 1.0])
    assert np.all(np.abs(np.asarray(y[:3])) < 1e-30) and np.all(np.abs(np.asarray(d[:3])) < 1e-30)
    # huge negative inputs give exactly 0 (not z times a tiny clamped sigmoid: 1e30 * 2e-38 is not small
    # in a weight gradient), -inf and NaN give NaN, as jax.nn.silu does
    odd = jnp.asarray([[-1e30], [-3e38], [-1e10], [-90.0], [-jnp.inf], [jnp.nan], [jnp.inf]])
    y, d = dense_kernels.forward_train(odd, jnp.ones((1, 1)), jnp.zeros((1,)))
    want_y = jax.nn.silu(odd)
    want_d = jax.vmap(jax.grad(lambda z: jax.nn.silu(z)[0]))(odd)
    np.testing.assert_array_equal(np.asarray(y[:4]), 0.0)
    np.testing.assert_array_equal(np.asarray(d[:4]), 0.0)
    assert np.isnan(np.asarray(y[4:6])).all() and np.isnan(np.asarray(want_y[4:6])).all()
    assert np.isnan(np.asarray(d[4:6])).all() and np.isnan(np.asarray(want_d[4:6])).all()
    assert float(y[6, 0]) == np.inf == float(want_y[6, 0])
    # and through a layer's weight gradient: 0 there, as XLA's
    x = jnp.full((3, 64), -1e30)
    w, b = jnp.full((64, 16), 0.01), jnp.zeros((16,))
    got = jax.grad(lambda w: jnp.sum(dense.dense_silu(x, w, b)))(w)
    np.testing.assert_array_equal(np.asarray(got), 0.0)


@pytest.mark.parametrize("kernels", ["1", "0"])
def test_mlp_keeps_dense_parameters_and_switch_off_is_xla(kernels, monkeypatch):
    monkeypatch.setenv("JAXRL_DENSE_KERNELS", kernels)
    net = mlp.MLP((64, 48), "silu", kernel_init=nn.initializers.lecun_normal())
    x = jax.random.normal(jax.random.key(3), (2, 33, 4))
    params = net.init(jax.random.key(4), x)
    shapes = jax.tree.map(jnp.shape, params)
    assert shapes == {
        "params": {
            "Dense_0": {"kernel": (4, 64), "bias": (64,)},
            "Dense_1": {"kernel": (64, 48), "bias": (48,)},
        }
    }

    def xla_mlp(p, x):  # the MLP as nn.Dense + mlp.silu
        for i in range(2):
            layer = p["params"][f"Dense_{i}"]
            x = mlp.silu(x @ layer["kernel"] + layer["bias"][None, None])
        return x

    def loss(f):
        return jax.jit(jax.value_and_grad(lambda p, x: jnp.sum(jnp.sin(f(p, x))), argnums=(0, 1)))

    got, want = loss(lambda p, x: net.apply(p, x))(params, x), loss(xla_mlp)(params, x)
    if kernels == "0":  # exactly XLA's layers
        jax.tree.map(np.testing.assert_array_equal, got, want)
    else:
        got, want = jax.tree.leaves(got), jax.tree.leaves(want)
        close(got, want, rtol=1e-4)


@needs_kernels
def test_other_backends_never_see_the_cpu_kernels():
    x, w, b, g = operands(256, 64, 64)
    grad = jax.jit(jax.grad(lambda w, x: jnp.sum(dense.silu_mlp(x, [(w, b), (w, b)]) * g), argnums=(0, 1)))
    names = [
        dense_kernels._FORWARD,
        dense_kernels._FORWARD_TRAIN,
        dense_kernels._WEIGHT_GRAD,
        dense_kernels._INPUT_GRAD,
    ]
    checks = [jax.export.DisabledSafetyCheck.custom_call(n) for n in names]

    def lowered(platforms):
        return jax.export.export(grad, platforms=platforms, disabled_checks=checks)(w, x).mlir_module()

    gpu, cpu, both = lowered(["cuda"]), lowered(["cpu"]), lowered(["cpu", "cuda"])
    assert "jaxrl_dense" not in gpu and gpu.count("stablehlo.dot_general") >= 3
    assert "jaxrl_dense_silu_forward_train" in cpu and "jaxrl_dense_silu_weight_grad" in cpu
    assert "jaxrl_dense_silu_input_grad" in cpu
    assert "jaxrl_dense_silu_weight_grad" in both and "stablehlo.dot_general" in both
