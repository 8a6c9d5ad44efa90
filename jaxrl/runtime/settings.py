"""The runtime's settings: how ``jaxrl.run`` / ``jaxrl train`` drive a run (chunks, logging, evaluation,
checkpoints), as opposed to what is trained (the algorithm's config).

:class:`RuntimeSettings` holds each default once; the driver's keyword arguments and the CLI's flags read
them from :data:`DEFAULTS`, and :meth:`RuntimeSettings.resolve` turns the settings into the ``runtime``
section of a run's ``config.json`` (every value concrete for the run's number of iterations).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

#: chunk programs scan over this many iterations at most (only the first ``n`` run)
CHUNK_CAPACITY = 2048
#: rows per member written to metrics.csv at most, by default (``log_every`` decimates beyond)
MAX_LOG_ROWS = 2000


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    chunk_size: int | None = None  # iterations per jitted chunk (None: adaptive, ~1 s per chunk)
    log_every: int | None = None  # write every k-th iteration (None: at most MAX_LOG_ROWS rows per member)
    eval_every: int | None = (
        None  # greedy evaluation every k iterations (None: 10 over the run; 0: final only)
    )
    eval_episodes: int = 32  # episodes per greedy evaluation (0: no evaluation)
    checkpoint_every: int = 10  # checkpoint every k chunks, and at the end (0: never)
    keep_checkpoints: int = 3  # newest checkpoints kept

    def resolve(self, num_iterations: int) -> dict[str, Any]:
        """The values a run of ``num_iterations`` iterations uses (``config.json``'s ``runtime``)."""
        return {
            "chunk_size": self.chunk_size,
            "chunk_capacity": min(
                num_iterations, int(self.chunk_size) if self.chunk_size else CHUNK_CAPACITY
            ),
            "log_every": (
                int(self.log_every) if self.log_every else max(1, math.ceil(num_iterations / MAX_LOG_ROWS))
            ),
            "eval_every": (
                max(1, math.ceil(num_iterations / 10)) if self.eval_every is None else int(self.eval_every)
            ),
            "eval_episodes": int(self.eval_episodes),
            "checkpoint_every": int(self.checkpoint_every),
            "keep_checkpoints": int(self.keep_checkpoints),
        }


DEFAULTS = RuntimeSettings()


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A run's resolved settings (``config.json``'s ``runtime``, see :meth:`RuntimeSettings.resolve`)
    as the driver reads them."""

    chunk_size: int | None  # fixed iterations per chunk (None: adaptive)
    chunk_capacity: int  # the chunk program's scan length (the longest chunk)
    log_every: int
    eval_every: int  # 0: final evaluation only
    eval_episodes: int  # 0: no evaluation
    checkpoint_every: int  # chunks between checkpoints; 0: never
    keep_checkpoints: int

    @classmethod
    def of(cls, runtime: dict[str, Any]) -> Schedule:
        return cls(**{f.name: runtime[f.name] for f in dataclasses.fields(cls)})
