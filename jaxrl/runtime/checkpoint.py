"""Checkpoints of the full training state with orbax-checkpoint (imported only when used).

The state pytree (params, optimiser, replay buffer, env state, RNG, counters: whatever the
algorithm's ``State`` holds) is flattened to a list of host arrays (typed PRNG keys as their key
data) and saved with the run's spec (config, seeds, sweep, runtime settings) and a CRC32 per leaf.
orbax writes every step into a temporary directory and renames it when complete, so a crash or
``kill -9`` leaves either a whole checkpoint or none; the newest ``keep`` are kept.

Restoring checks, and refuses with :class:`CheckpointError` saying what to do: the spec equals the
run being resumed, the pytree structure/shapes/dtypes equal the algorithm's state, and every leaf's
CRC32 matches (a corrupted or truncated file is never loaded silently).
"""

from __future__ import annotations

import os
import zlib
from typing import Any

import jax
import numpy as np

from jaxrl.runtime import configs

FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used for this run (corrupted, incomplete, or of another config)."""


# ------------------------------------------------------------------------------ HOST PYTREES
def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def to_host(tree: Any) -> list[np.ndarray]:
    """The leaves of ``tree`` as numpy arrays (typed keys as their ``key_data``), in flatten order."""
    leaves = jax.tree_util.tree_leaves(tree)
    leaves = [jax.random.key_data(x) if _is_key(x) else x for x in leaves]
    # Copies, never views of device buffers: the next chunk may donate (reuse) those buffers while an
    # asynchronous checkpoint may still be writing these arrays.
    return [np.array(x, copy=True) for x in jax.device_get(leaves)]


def from_host(leaves: list[np.ndarray], template: Any, key_impl: Any = None) -> Any:
    """Inverse of :func:`to_host`: ``template`` (a state of the same structure) gives the tree and
    the PRNG implementation of key leaves; ``key_impl`` gives it instead, for a template of
    ``jax.ShapeDtypeStruct`` leaves (``jax.eval_shape``), which do not carry one."""
    tmpl, treedef = jax.tree_util.tree_flatten(template)
    out = []
    for x, t in zip(leaves, tmpl, strict=True):
        if _is_key(t):
            impl = key_impl if key_impl is not None else jax.random.key_impl(t)
            out.append(jax.random.wrap_key_data(x, impl=impl))
        else:
            out.append(jax.numpy.asarray(x))
    return jax.tree_util.tree_unflatten(treedef, out)


def describe(leaves: list[np.ndarray]) -> list[list[Any]]:
    return [[list(x.shape), str(x.dtype)] for x in leaves]


def crc32(leaves: list[np.ndarray]) -> list[int]:
    return [zlib.crc32(np.ascontiguousarray(x).view(np.uint8).reshape(-1)) for x in leaves]


# -------------------------------------------------------------------------------- MANAGER
class Checkpointer:
    """Saves and restores ``(state, meta)`` under ``directory/<step>/`` (step = updates done)."""

    def __init__(self, directory: str, keep: int = 3):
        try:
            import orbax.checkpoint as ocp
        except ImportError as e:  # pragma: no cover - orbax comes with flax
            raise ImportError(
                "checkpoints need orbax-checkpoint: pip install 'jaxrl[checkpoint]' (or run without "
                "checkpoints: checkpoint_every=0 / --checkpoint-every 0)"
            ) from e
        self._ocp = ocp
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max(1, int(keep)),
            create=True,
            cleanup_tmp_directories=True,
            enable_async_checkpointing=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def path(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Save in the background (host copies are taken first, so training may go on at once)."""
        leaves = to_host(state)
        meta = dict(
            meta,
            format=FORMAT,
            step=int(step),
            treedef=str(jax.tree_util.tree_structure(state)),
            leaves=describe(leaves),
            crc32=crc32(leaves),
        )
        ocp = self._ocp
        tree = {f"leaf_{i:05d}": x for i, x in enumerate(leaves)}
        self._manager.save(
            int(step),
            args=ocp.args.Composite(state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)),
            force=True,
        )

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def restore(self, step: int, template: Any, spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Load step ``step`` into a state shaped like ``template``; check spec, structure, CRCs."""
        ocp = self._ocp
        path = self.path(step)
        hint = self._hint(step)
        try:
            meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        except Exception as e:
            raise CheckpointError(
                f"checkpoint {path} cannot be read ({type(e).__name__}: {e}). {hint}"
            ) from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CheckpointError(f"checkpoint {path} has no jaxrl metadata (or another format). {hint}")
        changes = configs.diff(meta.get("spec", {}), spec)
        if changes:
            raise CheckpointError(
                f"checkpoint {path} was written by a run with different settings; refusing to resume.\n  "
                + "\n  ".join(changes)
                + "\nResume with the run's own config.json (jaxrl train --resume <run_dir>), or start a new run."
            )
        want = to_host_shapes(template)
        if meta.get("treedef") != str(jax.tree_util.tree_structure(template)) or meta.get("leaves") != want:
            raise CheckpointError(
                f"checkpoint {path} holds a training state of another structure (saved by another "
                f"version of the algorithm?); it cannot be resumed by this code. Start a new run."
            )
        target = {f"leaf_{i:05d}": np.empty(s, d) for i, (s, d) in enumerate(want)}
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target))
            )["state"]
            leaves = [np.asarray(restored[f"leaf_{i:05d}"]) for i in range(len(want))]
        except Exception as e:
            raise CheckpointError(
                f"checkpoint {path} is corrupted ({type(e).__name__}: {e}). {hint}"
            ) from None
        bad = [i for i, (a, b) in enumerate(zip(crc32(leaves), meta["crc32"], strict=True)) if a != b]
        if bad:
            raise CheckpointError(
                f"checkpoint {path} is corrupted: {len(bad)} of {len(leaves)} arrays fail their CRC32 check. {hint}"
            )
        return from_host(leaves, template), meta

    def _hint(self, step: int) -> str:
        older = [s for s in self.steps() if s < step]
        if older:
            return (
                f"Delete {self.path(step)} to resume from the previous checkpoint (step {older[-1]}), "
                f"or start a new run."
            )
        return "No older checkpoint exists; start a new run."


def to_host_shapes(template: Any) -> list[list[Any]]:
    """``describe(to_host(template))`` without copying: shapes and dtypes of the host leaves."""
    out = []
    for x in jax.tree_util.tree_leaves(template):
        if _is_key(x):
            x = jax.eval_shape(jax.random.key_data, x)
        out.append([list(np.shape(x)), str(np.dtype(x.dtype))])
    return out
