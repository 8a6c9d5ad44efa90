"""Keys: what an algorithm's ``init`` accepts as its key."""

from __future__ import annotations

from typing import Any

import jax


def as_key(key: Any) -> jax.Array:
    """Accept ``jax.random.key(k)``, ``jax.random.PRNGKey(k)`` or an int seed."""
    if isinstance(key, int):
        return jax.random.key(key)
    return key
