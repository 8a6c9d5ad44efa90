"""Q-networks ``obs -> Q(obs, .) [..., A]`` (MLP or CNN torso; optional dueling head) and acting on Q.

Dueling head (Wang et al. 2016, arXiv:1511.06581): ``Q = V + A - mean_a A``.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl.networks.cnn import MinAtarCNN, NatureCNN
from jaxrl.networks.heads import flatten_obs
from jaxrl.networks.mlp import MLP

TORSOS = ("mlp", "nature_cnn", "minatar_cnn")


def pick_torso(obs_shape: tuple[int, ...]) -> str:
    """``"auto"`` rule: vectors (and scalars) get an MLP; ``H x W x C`` images the Nature CNN when
    at least 36 pixels on a side (its three VALID convolutions need that), else the MinAtar CNN."""
    if len(obs_shape) == 3:
        return "nature_cnn" if min(obs_shape[:2]) >= 36 else "minatar_cnn"
    return "mlp"


class QNetwork(nn.Module):
    """``obs [..., *obs_shape] -> Q [..., num_actions]``."""

    num_actions: int
    torso: str = "mlp"  # one of TORSOS
    hidden: Sequence[int] = (120, 84)  # MLP widths (torso="mlp")
    activation: str = "relu"  # MLP activation
    dueling: bool = False
    obs_ndim: int = 1  # trailing observation axes (MLP flattens them)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        if self.torso == "mlp":
            # lecun-normal kernels (flax's default): with PPO's orthogonal(sqrt 2) DQN on CartPole
            # ended worse (greedy 425 vs 493 over the same 8 seeds, benchmarks/RESULTS.md)
            mlp = MLP(self.hidden, self.activation, kernel_init=nn.initializers.lecun_normal())
            h = mlp(flatten_obs(obs.astype(jnp.float32), self.obs_ndim))
        elif self.torso == "nature_cnn":
            h = NatureCNN()(obs)
        elif self.torso == "minatar_cnn":
            h = MinAtarCNN()(obs)
        else:
            raise ValueError(f"unknown Q-network torso {self.torso!r}; choose one of {TORSOS}")
        if not self.dueling:
            return nn.Dense(self.num_actions, name="q")(h)
        value = nn.Dense(1, name="value")(h)
        adv = nn.Dense(self.num_actions, name="advantage")(h)
        return value + adv - jnp.mean(adv, axis=-1, keepdims=True)


def epsilon_greedy(key: jax.Array, q: jax.Array, epsilon: jax.Array | float) -> jax.Array:
    """Actions ``[...]`` int32 from Q-values ``[..., A]``: uniform with probability ``epsilon``, else
    ``argmax_a q`` (ties go to the lowest index)."""
    k_explore, k_action = jax.random.split(key)
    greedy = jnp.argmax(q, axis=-1).astype(jnp.int32)
    random = jax.random.randint(k_action, greedy.shape, 0, q.shape[-1], jnp.int32)
    explore = jax.random.uniform(k_explore, greedy.shape) < epsilon
    return jnp.where(explore, random, greedy)
