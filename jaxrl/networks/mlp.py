"""Multi-layer perceptrons."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.networks import dense
from jaxrl.networks.init import orthogonal


@jax.custom_jvp
def silu(x: jax.Array) -> jax.Array:
    """SiLU (swish), ``x sigmoid(x)``, written as ``x (1 + tanh(x / 2)) / 2``: the same function, but XLA's
    CPU tanh is one rational approximation where its logistic is an exponential and a division, and the
    derivative ``s + y (1 - s)`` (``s = sigmoid(x)``, ``y = silu(x)``) reuses the forward values instead of
    a second logistic. Far in the negative tail (x < -10) ``1 + tanh`` cancels, so the result is exact only
    to an absolute ~1e-7 |x| there (``jax.nn.silu``: relative); gradients alike."""
    return x * (0.5 + 0.5 * jnp.tanh(0.5 * x))


@silu.defjvp
def _silu_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y, d = dense.silu_and_grad(x)
    return y, t * d


ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu, "silu": silu}


def activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class DenseParams(nn.Module):
    """``nn.Dense(features)``'s parameters (``kernel [K, N]``, ``bias [N]``) for ``K`` inputs, returned
    rather than applied (the fused SiLU MLP applies all layers in one function)."""

    features: int
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, inputs: int) -> tuple[jax.Array, jax.Array]:
        kernel = self.param("kernel", self.kernel_init, (inputs, self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        return kernel, bias


class MLP(nn.Module):
    """``Dense -> act`` per hidden size; zero bias; orthogonal(sqrt 2) kernels (PPO practice) unless
    ``kernel_init`` is given (DQN passes flax's lecun-normal default, as rejax; CleanRL uses PyTorch's).
    With SiLU, where jaxrl's dense kernels are available (``jaxrl.networks.dense_kernels``; CPU with
    AVX-512, ``JAXRL_DENSE_KERNELS`` not ``0``), the layers are one :func:`jaxrl.networks.dense.silu_mlp`
    (fused kernels per layer and direction) with the same parameters (same names and shapes as
    ``nn.Dense``'s); it has a custom VJP, so differentiate such an MLP in reverse mode (``jax.grad``/
    ``vjp``), or turn the kernels off for forward mode."""

    hidden: Sequence[int]
    activation: str = "tanh"
    kernel_init: Callable | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation(self.activation)
        init = self.kernel_init or orthogonal(np.sqrt(2))
        x = x.astype(jnp.float32)
        if self.activation == "silu" and self.hidden and dense.supports(x):
            widths = [x.shape[-1], *self.hidden[:-1]]
            layers = [
                DenseParams(h, kernel_init=init, name=f"Dense_{i}")(k)
                for i, (k, h) in enumerate(zip(widths, self.hidden, strict=True))
            ]
            return dense.silu_mlp(x, layers)
        for h in self.hidden:
            x = act(nn.Dense(h, kernel_init=init)(x))
        return x
