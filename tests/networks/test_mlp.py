"""The MLP's activations: SiLU written through tanh is SiLU."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.networks import mlp


def _silu64(x):
    s = 1.0 / (1.0 + np.exp(-x))
    return x * s, s * (1.0 + x * (1.0 - s))


def test_silu_equals_x_sigmoid_x_and_its_derivative():
    x = np.concatenate([np.linspace(-40.0, 40.0, 20_001), [0.0, -0.0, 1e-30, -1e-30, 3.0, -3.0]]).astype(
        np.float32
    )
    y_ref, d_ref = _silu64(x.astype(np.float64))
    for f in (mlp.silu, jax.jit(mlp.silu)):
        y = np.asarray(f(jnp.asarray(x)), np.float64)
        d = np.asarray(jax.vmap(jax.grad(f))(jnp.asarray(x)), np.float64)
        # float32 rounding: jax.nn.silu itself is off by 1.3e-6 at |x| = 40 (y ~ 40, spacing 3.8e-6)
        np.testing.assert_allclose(y, y_ref, rtol=2e-6, atol=3e-6)
        np.testing.assert_allclose(d, d_ref, rtol=2e-6, atol=3e-6)
    assert float(mlp.silu(jnp.float32(0.0))) == 0.0
    assert float(jax.grad(mlp.silu)(jnp.float32(0.0))) == 0.5
    np.testing.assert_allclose(mlp.silu(jnp.asarray(x)), jax.nn.silu(jnp.asarray(x)), rtol=1e-5, atol=3e-6)


def test_silu_second_derivative_and_under_vmap():
    x = jnp.linspace(-6.0, 6.0, 101)
    s = jax.nn.sigmoid(x)
    d2_ref = s * (1 - s) * (2 + x * (1 - 2 * s))  # d/dx [s + x s (1 - s)]
    d2 = jax.vmap(jax.grad(jax.grad(mlp.silu)))(x)
    np.testing.assert_allclose(d2, d2_ref, rtol=1e-4, atol=1e-5)
    assert mlp.activation("silu") is mlp.silu
