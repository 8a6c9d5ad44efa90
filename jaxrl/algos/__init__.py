"""Algorithms. Importing this package registers every built-in algorithm."""

from jaxrl.algos import ppo  # noqa: F401
