"""Exceptions shared across layers (a leaf module: it imports nothing from jaxrl)."""

from __future__ import annotations


class UserFunctionError(RuntimeError):
    """A function the user passed in (a GRPO reward, ...) raised or returned something unusable; the
    message names the function's owner and the input that triggered it. Runs stop on it cleanly (the
    run directory's ``summary.json`` records it)."""
