"""Fixtures for the runtime tests (helpers live in ``runtime_tiny``)."""

import pytest
from runtime_tiny import CHUNK, tiny_config


@pytest.fixture(scope="session")
def reference_run():
    """One uninterrupted driver run (no files), shared by the equality tests."""
    from jaxrl import runtime

    return runtime.run(tiny_config(), 0, None, chunk_size=CHUNK, eval_episodes=0, progress=False)
