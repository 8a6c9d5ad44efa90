"""Flax networks used by jaxrl's algorithms."""

from jaxrl.networks.heads import ActorCritic, PolicyOutput
from jaxrl.networks.mlp import MLP

__all__ = ["MLP", "ActorCritic", "PolicyOutput"]
