"""Multi-layer perceptrons."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.networks.init import orthogonal

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu, "silu": nn.silu}


def activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """``Dense -> act`` per hidden size; zero bias; orthogonal(sqrt 2) kernels (PPO practice) unless
    ``kernel_init`` is given (DQN passes flax's lecun-normal default, as rejax; CleanRL uses PyTorch's)."""

    hidden: Sequence[int]
    activation: str = "tanh"
    kernel_init: Callable | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation(self.activation)
        init = self.kernel_init or orthogonal(np.sqrt(2))
        x = x.astype(jnp.float32)
        for h in self.hidden:
            x = act(nn.Dense(h, kernel_init=init)(x))
        return x
