"""Training runtime: chunked driver, logging, progress, checkpoints, plots (heavy imports lazy).

``jaxrl.run(cfg, key, out_dir=...)`` trains any registered algorithm in jitted chunks, streaming
metrics to disk, with evaluation, checkpoints/resume, NaN detection and a learning-curve PNG.
"""

from jaxrl.runtime.checkpoint import CheckpointError
from jaxrl.runtime.driver import ChunkInfo, NonFiniteError, RunResult, load_state, resume, run

__all__ = ["CheckpointError", "ChunkInfo", "NonFiniteError", "RunResult", "load_state", "resume", "run"]
