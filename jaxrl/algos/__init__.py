"""Algorithms. Importing this package registers every built-in algorithm (in this order: the CLI lists them so)."""

# ruff: noqa: I001

from jaxrl.algos import ppo  # noqa: F401
from jaxrl.algos import a2c, reinforce  # noqa: F401
from jaxrl.algos import dqn, qlearning  # noqa: F401
from jaxrl.algos import sac  # noqa: F401
from jaxrl.algos import grpo  # noqa: F401
from jaxrl.algos import reward_model  # noqa: F401
