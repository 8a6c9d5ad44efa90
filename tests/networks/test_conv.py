"""jaxrl.networks.conv: the CPU-layout convolution gives flax.linen.Conv's outputs and gradients (under
jit, vmap and inside lax.scan), keeps its parameter tree, and its gradients stay in the canonical
layout inside a rolled scan (the cause of the CPU slowdown it fixes)."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.networks import conv as conv_mod
from jaxrl.networks import conv_kernels
from jaxrl.networks.cnn import ConvTorso
from jaxrl.networks.conv import Conv, conv2d, use_cpu_conv

TOL = dict(rtol=2e-5, atol=2e-6)
# the AVX-512 kernels (conv_kernels) sum in another order than XLA: float32 rounding relative to the
# size of the summed terms, so the absolute tolerance scales with each array's largest entry
SCALED_ATOL = 1e-5


def flax_conv(features, kernel, stride):
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding="VALID")


def close(a, b):
    def check(x, y):
        x, y = np.asarray(x), np.asarray(y)
        atol = TOL["atol"] + SCALED_ATOL * float(np.abs(y).max(initial=0.0))
        np.testing.assert_allclose(x, y, rtol=TOL["rtol"], atol=atol)

    jax.tree.map(check, a, b)


# (H, W, C_in, features, kernel, stride): the three Nature-CNN layers, MinAtar's, and shapes where the
# stride does not tile the input (rows/cols the forward pass never reads get zero gradient)
CASES = [
    (84, 84, 4, 32, 8, 4),
    (20, 20, 32, 64, 4, 2),
    (10, 10, 7, 16, 3, 1),
    (11, 13, 3, 5, 3, 2),
    (12, 10, 2, 3, 4, 3),
]


@pytest.mark.parametrize("h, w, c, features, kernel, stride", CASES)
def test_gradients_equal_flax_conv_under_jit(h, w, c, features, kernel, stride):
    key_p, key_x, key_t = jax.random.split(jax.random.key(h * w + stride), 3)
    x = jax.random.normal(key_x, (3, h, w, c))
    ref, ours = flax_conv(features, kernel, stride), Conv(features, kernel, stride, impl="cpu")
    params = ref.init(key_p, x)
    assert jax.tree.map(jnp.shape, ours.init(key_p, x)) == jax.tree.map(jnp.shape, params)
    target = jax.random.normal(key_t, ref.apply(params, x).shape)

    def loss(net):
        return lambda p, x: jnp.sum(jnp.tanh(net.apply(p, x)) * target)  # a non-trivial dy

    @jax.jit
    def outputs_and_grads(params, x):
        return [(n.apply(params, x), jax.grad(loss(n), argnums=(0, 1))(params, x)) for n in (ours, ref)]

    (y_ours, g_ours), (y_ref, g_ref) = outputs_and_grads(params, x)
    close(y_ours, y_ref)
    close(g_ours, g_ref)
    assert float(jnp.abs(g_ref[1]).max()) > 0 and float(jnp.abs(g_ref[0]["params"]["kernel"]).max()) > 0


def torso_pair(convs=((6, 4, 2), (5, 3, 1))):
    """ConvTorso with the CPU conv and with plain flax.linen.Conv (impl="lax"), two conv layers so the
    input gradient of the second one is exercised, on 12x12x3 float images. The default channels are
    not multiples of 16 (XLA's convolutions inside conv2d); ``KERNEL_CONVS`` take the AVX-512 kernels."""
    ours, ref = ConvTorso(convs, 8, conv_impl="cpu"), ConvTorso(convs, 8, conv_impl="lax")
    x = jax.random.normal(jax.random.key(1), (4, 2, 12, 12, 3))  # [steps, batch, H, W, C]
    params = ref.init(jax.random.key(0), x[0])
    return ours, ref, params, x


def sgd_scan(net, params, xs):
    grad = jax.grad(lambda p, x: jnp.sum(net.apply(p, x) ** 2))

    def body(p, x):
        g = grad(p, x)
        return jax.tree.map(lambda a, b: a - 1e-2 * b, p, g), g

    return jax.lax.scan(body, params, xs)


KERNEL_CONVS = ((16, 4, 2), (32, 3, 1))


@pytest.mark.parametrize("convs", [None, KERNEL_CONVS], ids=["xla_convs", "kernel_convs"])
def test_torso_gradients_equal_under_vmap_and_inside_scan(convs):
    ours, ref, params, x = torso_pair(*([convs] if convs else []))
    # parameter trees are flax.linen.Conv's (Conv_0, Conv_1, Dense_0): checkpoints load either way
    assert jax.tree.map(jnp.shape, ours.init(jax.random.key(0), x[0])) == jax.tree.map(jnp.shape, params)
    assert sorted(params["params"]) == ["Conv_0", "Conv_1", "Dense_0"]

    population = jax.vmap(lambda k: ref.init(k, x[0]))(jax.random.split(jax.random.key(2), 3))

    @jax.jit
    def everything(net, params, population, x):
        grad = jax.grad(lambda p, x: jnp.sum(net.apply(p, x) ** 2))
        return dict(
            # inside a rolled lax.scan: 4 SGD steps, every step's gradient and the final parameters
            scan=sgd_scan(net, params, x),
            # vmap over the data (per-step gradients) and over the parameters (a population of 3 seeds)
            vmap_data=jax.vmap(grad, (None, 0))(params, x),
            vmap_params=jax.vmap(grad, (0, None))(population, x[0]),
            # a vmapped population training inside a scan
            vmap_scan=jax.vmap(lambda p: sgd_scan(net, p, x)[0])(population),
        )

    everything = jax.jit(everything.__wrapped__, static_argnums=0)
    close(everything(ours, params, population, x), everything(ref, params, population, x))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA CPU layout check")
def test_gradient_convs_keep_the_canonical_layout_inside_a_rolled_scan():
    # The slowdown's cause: inside a while loop XLA CPU leaves lax's gradient convolutions in layouts
    # (e.g. f01b_i01o->01bf) its fast Eigen kernel does not take; conv2d writes them as b01f_01io->b01f.
    ours, ref, params, x = torso_pair()

    def layouts(net):
        hlo = jax.jit(lambda p, xs: sgd_scan(net, p, xs)).lower(params, x).compile().as_text()
        return re.findall(r"convolution\(.*?dim_labels=(\S+?)[,\s}]", hlo)

    ours_layouts = layouts(ours)
    assert len(ours_layouts) == 5  # 2 forward, 2 kernel gradients, 1 input gradient (conv 2)
    assert set(ours_layouts) == {"b01f_01io->b01f"}
    assert set(layouts(ref)) != {"b01f_01io->b01f"}  # still true of plain lax: the fix is still needed


def test_impl_choice():
    assert use_cpu_conv("cpu") and not use_cpu_conv("lax")
    assert use_cpu_conv("auto") == (jax.default_backend() == "cpu")
    with pytest.raises(ValueError, match="conv impl"):
        use_cpu_conv("fast")
    with pytest.raises(ValueError, match="conv impl"):
        ConvTorso(((4, 3, 1),), 8, conv_impl="cudnn").init(jax.random.key(0), jnp.zeros((5, 5, 1)))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA CPU compiled-program check")
def test_dqn_update_computes_no_gradient_for_the_frames():
    # A DQN Nature-CNN update (online Q(s) forward + backward, target Q(s') forward) on uint8 frames:
    # 3 + 3 forward convolutions, 3 kernel gradients and only 2 input gradients (conv 3 -> conv 2 ->
    # conv 1's output); the frames' own gradient (conv 1's input gradient, an 84x84 convolution as
    # costly as its forward pass) must not be computed. Checked inside a rolled scan, where
    # jaxrl.train runs the update.
    from jaxrl.algos import dqn
    from jaxrl.algos.offpolicy import Batch
    from jaxrl.networks.q import QNetwork

    cfg = dqn.Config(env="CartPole-v1", loss="l2")  # only the loss settings are read
    net = QNetwork(num_actions=6, torso="nature_cnn")
    frames = jnp.zeros((2, 84, 84, 4), jnp.uint8)
    batch = Batch(frames, jnp.zeros(2, jnp.int32), jnp.ones(2), jnp.zeros(2, bool), frames + 1, jnp.ones(2))
    params = net.init(jax.random.key(0), frames)
    learner = dqn.Learner(params, params, dqn._optimizer(cfg).init(params))

    def scanned(lr, b):
        batches = jax.tree.map(lambda a: jnp.stack([a, a]), b)
        return jax.lax.scan(lambda c, bb: dqn.update(cfg, net, c, bb), lr, batches)

    hlo = jax.jit(scanned).lower(learner, batch).compile().as_text()
    # XLA convolutions, and the AVX-512 kernels' custom calls where they are in use (conv_kernels)
    convs = re.findall(r"= (f32\[[\d,]+\])\{[\d,]*\} (?:convolution\(|custom-call\(.*jaxrl_conv_)", hlo)
    assert len(convs) == 11, convs
    assert "f32[2,84,84,4]" not in convs


@pytest.mark.skipif(not conv_kernels.available(), reason="no AVX-512 CPU or no C++ compiler here")
@pytest.mark.parametrize(
    "h, w, c, features, kernel, stride",
    [c for c in CASES if c[3] % 16 == 0] + [(9, 11, 5, 48, 2, 2), (11, 13, 16, 16, 2, 3)],
)
def test_kernels_equal_xla_and_are_used_by_default(h, w, c, features, kernel, stride):
    # the kernels directly, against XLA's convolution and its gradients, with leading vmap axes; the
    # last two shapes leave input rows/cols unread (zero input gradient there), the last one with gaps
    kx, kk, kd = jax.random.split(jax.random.key(features), 3)
    x = jax.random.uniform(kx, (2, 3, h, w, c))
    k = jax.random.normal(kk, (2, kernel, kernel, c, features))
    y_ref = jax.vmap(lambda x, k: conv_mod._conv(x, k, stride))(x, k)
    dy = jax.random.normal(kd, y_ref.shape)
    dk_ref = jax.vmap(lambda x, k, dy: jax.vjp(lambda k: conv_mod._conv(x, k, stride), k)[1](dy)[0])(x, k, dy)
    y = jax.jit(jax.vmap(lambda x, k: conv_kernels.forward(x, k, stride)))(x, k)
    dk = jax.jit(jax.vmap(lambda x, dy: conv_kernels.kernel_grad(x, dy, k.shape[1:], stride)))(x, dy)
    close((y, dk), (y_ref, dk_ref))
    # conv2d's compiled gradients call them on the CPU backend
    grads = jax.jit(jax.grad(lambda x, k: jnp.sum(conv2d(x, k, stride) ** 2), argnums=(0, 1)))
    hlo = grads.lower(x[0], k[0]).compile().as_text()
    assert "jaxrl_conv_forward" in hlo and "jaxrl_conv_kernel_grad" in hlo
    if conv_kernels.supports_input_grad(k):
        dx_ref = jax.vmap(lambda x, k, dy: jax.vjp(lambda x: conv_mod._conv(x, k, stride), x)[1](dy)[0])(
            x, k, dy
        )
        dx = jax.jit(jax.vmap(lambda dy, k: conv_kernels.input_grad(dy, k, x.shape[1:], stride)))(dy, k)
        close(dx, dx_ref)
        assert "jaxrl_conv_input_grad" in hlo


@pytest.mark.skipif(not conv_kernels.available(), reason="no AVX-512 CPU or no C++ compiler here")
def test_other_backends_never_see_the_cpu_kernels():
    # conv2d's gradient lowered for GPU takes XLA's convolutions (cuDNN there), for the CPU the kernels;
    # lowered for both, the kernels sit only in the CPU branch of the platform switch
    x, k = jnp.ones((2, 84, 84, 4)), jnp.full((8, 8, 4, 32), 0.01)
    grad = jax.jit(jax.grad(lambda k, x: jnp.sum(conv2d(x, k, 4) ** 2)))
    names = ("jaxrl_conv_forward", "jaxrl_conv_kernel_grad", "jaxrl_conv_input_grad")
    checks = [jax.export.DisabledSafetyCheck.custom_call(n) for n in names]

    def lowered(platforms):
        return jax.export.export(grad, platforms=platforms, disabled_checks=checks)(k, x).mlir_module()

    gpu, cpu, both = lowered(["cuda"]), lowered(["cpu"]), lowered(["cpu", "cuda"])
    assert "jaxrl_conv" not in gpu and gpu.count("stablehlo.convolution") == 2
    assert "stablehlo.convolution" not in cpu and "jaxrl_conv_kernel_grad" in cpu
    assert "jaxrl_conv_kernel_grad" in both and "stablehlo.convolution" in both
