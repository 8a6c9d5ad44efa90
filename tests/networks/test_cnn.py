"""Nature and MinAtar CNN torsos: output shapes, parameter counts from the papers, uint8 scaling."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.networks.cnn import MinAtarCNN, NatureCNN


def n_params(params):
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))


def shape_of(net, params, shape, dtype=jnp.uint8):
    """Output shape without computing anything."""
    return jax.eval_shape(net.apply, params, jax.ShapeDtypeStruct(shape, dtype)).shape


def test_nature_cnn_shapes_and_size():
    x = jax.ShapeDtypeStruct((2, 84, 84, 4), jnp.uint8)
    net = NatureCNN()
    params = jax.eval_shape(net.init, jax.random.key(0), x)
    assert shape_of(net, params, (2, 84, 84, 4)) == (2, 512)
    # conv 8x8x4x32 + 32 = 8224; 4x4x32x64 + 64 = 32832; 3x3x64x64 + 64 = 36928;
    # 84 -> 20 -> 9 -> 7, so dense (7*7*64 = 3136) x 512 + 512 = 1606144; total 1684128
    assert n_params(params) == 1_684_128
    # any leading axes (none, or [T, B])
    assert shape_of(net, params, (84, 84, 4)) == (512,)
    assert shape_of(net, params, (3, 2, 84, 84, 4)) == (3, 2, 512)


def test_uint8_frames_are_scaled_by_255():
    # the scaling lives in ConvTorso, shared by both presets: checked on the small one (cheap on a CPU)
    x = jax.random.randint(jax.random.key(1), (3, 10, 10, 4), 0, 256).astype(jnp.uint8)
    net = MinAtarCNN()
    params = jax.jit(net.init)(jax.random.key(0), x)
    apply = jax.jit(net.apply)
    np.testing.assert_allclose(
        apply(params, x), apply(params, x.astype(jnp.float32) / 255.0), rtol=1e-5, atol=1e-6
    )


def test_minatar_cnn_shapes_and_size():
    net = MinAtarCNN()
    params = jax.eval_shape(net.init, jax.random.key(0), jax.ShapeDtypeStruct((5, 10, 10, 4), jnp.float32))
    assert shape_of(net, params, (5, 10, 10, 4), jnp.float32) == (5, 128)
    # conv 3x3x4x16 + 16 = 592; 10 -> 8, dense (8*8*16 = 1024) x 128 + 128 = 131200; total 131792
    assert n_params(params) == 131_792
