"""Training runtime: chunked driver, logging, progress, checkpoints, plots (heavy imports lazy).

``jaxrl.run(cfg, key, out_dir=...)`` trains any registered algorithm in jitted chunks, streaming
metrics to disk, with evaluation, checkpoints/resume, NaN detection and a learning-curve PNG.

The package imports nothing itself: the run-directory format (:mod:`jaxrl.runtime.rundir`), configs and
checkpoints sit below the algorithms (the reward model reads a GRPO run), the driver above them; the
names below are loaded from their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CheckpointError": "jaxrl.runtime.checkpoint",
    "ChunkInfo": "jaxrl.runtime.driver",
    "NonFiniteError": "jaxrl.runtime.driver",
    "RunResult": "jaxrl.runtime.driver",
    "load_state": "jaxrl.runtime.driver",
    "resume": "jaxrl.runtime.driver",
    "run": "jaxrl.runtime.driver",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'jaxrl.runtime' has no attribute {name!r}")
