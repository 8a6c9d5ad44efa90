"""Actor-critic networks: a shared trunk with V- and pi-heads, or separate actor and critic MLPs.

Discrete actions: the policy head gives logits ``[..., A]``. Continuous actions: it gives the Gaussian
mean ``[..., D]`` and a state-independent ``log_std [D]`` parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.networks.cnn import MinAtarCNN, NatureCNN
from jaxrl.networks.init import orthogonal
from jaxrl.networks.mlp import MLP

IMAGE_TORSOS = {"nature_cnn": NatureCNN, "minatar_cnn": MinAtarCNN}


class PolicyOutput(NamedTuple):
    """logits [..., A] (discrete) or mean [..., D] (continuous); log_std [D] (continuous only, else
    an empty array); value [...]."""

    logits: jax.Array
    log_std: jax.Array
    value: jax.Array


class ActorCritic(nn.Module):
    """``shared=True``: one trunk, two heads (the bifurcated actor-critic); else two MLPs. An image
    ``torso`` is always shared."""

    action_dim: int
    discrete: bool = True
    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"
    shared: bool = False
    #: number of trailing observation axes, flattened into one feature axis (1 for vectors)
    obs_ndim: int = 1
    #: "mlp", or an image torso ("nature_cnn", "minatar_cnn" from jaxrl.networks.cnn) that both heads
    #: share (CleanRL's PPO Atari agent); uint8 images go in as they are (the CNN scales them).
    torso: str = "mlp"

    @nn.compact
    def __call__(self, obs: jax.Array) -> PolicyOutput:
        if self.torso in IMAGE_TORSOS:
            h = IMAGE_TORSOS[self.torso]()(obs)
            h_pi, h_v = h, h
        elif self.torso != "mlp":
            raise ValueError(
                f"unknown actor-critic torso {self.torso!r}; choose mlp or one of {list(IMAGE_TORSOS)}"
            )
        elif self.shared:
            x = flatten_obs(obs.astype(jnp.float32), self.obs_ndim)
            h = MLP(self.hidden, self.activation, name="trunk")(x)
            h_pi, h_v = h, h
        else:
            x = flatten_obs(obs.astype(jnp.float32), self.obs_ndim)
            h_pi = MLP(self.hidden, self.activation, name="actor")(x)
            h_v = MLP(self.hidden, self.activation, name="critic")(x)
        out = nn.Dense(self.action_dim, kernel_init=orthogonal(0.01), name="pi")(h_pi)
        value = nn.Dense(1, kernel_init=orthogonal(1.0), name="v")(h_v)[..., 0]
        if self.discrete:
            log_std = jnp.zeros((0,), jnp.float32)
        else:
            log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        return PolicyOutput(out, log_std, value)


def flatten_obs(x: jax.Array, obs_ndim: int) -> jax.Array:
    """Flatten the trailing ``obs_ndim`` axes into one (a scalar observation becomes one feature)."""
    if obs_ndim == 0:
        return x[..., None]
    if obs_ndim == 1:
        return x
    lead = x.shape[: x.ndim - obs_ndim]
    return x.reshape(lead + (int(np.prod(x.shape[x.ndim - obs_ndim :])),))
