"""Environments: one batched contract (:mod:`jaxrl.envs.base`) for every backend."""

from jaxrl.envs.base import Box, Discrete, Env, TimeStep, is_discrete, num_actions
from jaxrl.envs.registry import available_names, check_name, holds_state_outside_jax, make
from jaxrl.envs.wrappers import EpisodeStats, EpisodeStatsState

__all__ = [
    "Box",
    "Discrete",
    "Env",
    "EpisodeStats",
    "EpisodeStatsState",
    "TimeStep",
    "available_names",
    "check_name",
    "holds_state_outside_jax",
    "is_discrete",
    "make",
    "num_actions",
]
