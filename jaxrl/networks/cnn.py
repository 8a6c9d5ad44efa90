"""Convolutional torsos for image observations ``[..., H, W, C]`` (channels last).

``NatureCNN``: Mnih et al. 2015 ("Human-level control through deep RL", Nature 518), for 84x84x4
stacked grey frames: conv 32 8x8/4 -> conv 64 4x4/2 -> conv 64 3x3/1 -> dense 512, ReLU throughout.
uint8 frames are scaled by 1/255 inside the network, so replay memory keeps them as uint8.

``MinAtarCNN``: Young & Tian 2019 (MinAtar, arXiv:1903.03176), for 10x10xC 0/1 planes:
conv 16 3x3/1 -> dense 128, ReLU.

Both return features ``[..., F]``; a head (``jaxrl.networks.q.QNetwork``) maps them to outputs.
Their convolutions are :class:`jaxrl.networks.conv.Conv` (``flax.linen.Conv``'s parameters, with
gradients XLA CPU runs fast inside ``lax.scan``; the plain ``lax`` convolution on GPU/TPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.networks.conv import Conv
from jaxrl.networks.init import orthogonal


def _as_float_image(x: jax.Array) -> jax.Array:
    """uint8 pixels -> [0, 1] floats; float inputs pass unchanged."""
    if x.dtype == jnp.uint8:
        return x.astype(jnp.float32) / 255.0
    return x.astype(jnp.float32)


def _apply_batched(module_fn, x: jax.Array) -> jax.Array:
    """Run a conv stack on ``[..., H, W, C]`` with any number of leading axes (none included)."""
    lead = x.shape[:-3]
    y = module_fn(x.reshape((int(np.prod(lead)),) + x.shape[-3:]) if lead else x[None])
    return y.reshape(lead + y.shape[1:]) if lead else y[0]


class ConvTorso(nn.Module):
    """``Conv -> ReLU`` per ``(channels, kernel, stride)`` entry (VALID padding), flatten, ``Dense -> ReLU``.
    Orthogonal(sqrt 2) initialisation, zero biases."""

    convs: Sequence[tuple[int, int, int]]
    features: int
    #: see jaxrl.networks.conv.Conv: "auto" (the loop-friendly CPU conv on the CPU backend), "lax", "cpu"
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        init = orthogonal(np.sqrt(2))

        def net(h):
            h = _as_float_image(h)
            for i, (channels, kernel, stride) in enumerate(self.convs):
                # named as flax.linen.Conv would be, so parameter trees (and checkpoints) are unchanged
                conv = Conv(channels, kernel, stride, kernel_init=init, impl=self.conv_impl, name=f"Conv_{i}")
                h = nn.relu(conv(h))
            h = h.reshape((h.shape[0], -1))
            return nn.relu(nn.Dense(self.features, kernel_init=init)(h))

        return _apply_batched(net, x)


def NatureCNN() -> ConvTorso:  # noqa: N802  (a preset, named like the module it builds)
    """The DQN Nature torso: ``[..., 84, 84, 4]`` uint8 (or float) -> ``[..., 512]``."""
    return ConvTorso(convs=((32, 8, 4), (64, 4, 2), (64, 3, 1)), features=512)


def MinAtarCNN() -> ConvTorso:  # noqa: N802
    """The MinAtar torso: ``[..., 10, 10, C]`` -> ``[..., 128]``."""
    return ConvTorso(convs=((16, 3, 1),), features=128)
