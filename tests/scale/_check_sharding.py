"""Run under 4 simulated CPU devices (the test sets XLA_FLAGS before JAX starts); prints one JSON line."""

import contextlib
import json
import logging
import os
import sys
import tempfile

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import numpy as np  # noqa: E402

import jaxrl  # noqa: E402
from jaxrl import parallel, runtime  # noqa: E402


@contextlib.contextmanager
def compiles():
    """Names of the programs JAX compiles inside the block (``jax_log_compiles``)."""
    names = []

    class Handler(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if msg.startswith("Compiling "):
                names.append(msg.split()[1])

    handler = Handler()
    logging.getLogger("jax").addHandler(handler)
    jax.config.update("jax_log_compiles", True)
    try:
        yield names
    finally:
        jax.config.update("jax_log_compiles", False)
        logging.getLogger("jax").removeHandler(handler)


def maxdiff(a, b):
    # on the host: each shard is copied out alone (no cross-device program between differently placed arrays)
    return max(
        float(np.max(np.abs(np.asarray(x, np.float32) - np.asarray(y, np.float32))))
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )


out = {"devices": len(jax.devices())}
cfg = jaxrl.PPOConfig(total_timesteps=4 * 32 * 3, rollout_steps=32)
which = sys.argv[1]
if which == "population":
    # 7 members over 4 devices: uneven, padded to two vmapped members per device (which deadlocked before
    # jaxrl.networks.init took jax's batched-QR orthogonal initialiser out of vmapped programs).
    keys = jax.random.split(jax.random.key(0), 8)[:7]
    s1, m1 = parallel.train_population(cfg, keys)
    s2, m2 = jax.jit(jax.vmap(jaxrl.train, in_axes=(None, 0)))(cfg, keys)
    out["pop_params"] = maxdiff(s1.params, s2.params)
    out["pop_metrics"] = maxdiff(m1, m2)
    out["pop_shape"] = list(m1.total_loss.shape)
    try:
        parallel.train_population(cfg, keys, pad=False)
        out["uneven_refused"] = False
    except ValueError as e:
        out["uneven_refused"] = "divide" in str(e)
    cfgs = jaxrl.stack_configs([cfg.replace(learning_rate=lr) for lr in (1e-4, 3e-4, 1e-3, 3e-3)])
    s3, m3 = parallel.train_population(cfgs, jax.random.split(jax.random.key(0), 4))
    s4, m4 = jax.jit(jax.vmap(jaxrl.train))(cfgs, jax.random.split(jax.random.key(0), 4))
    out["sweep_params"] = maxdiff(s3.params, s4.params)
    out["pop_devices_used"] = len(jax.tree_util.tree_leaves(s3.params)[0].sharding.device_set)
    # the runtime driver (CLI --seeds / jaxrl.run(seeds=N)) spreads its members over the devices too
    res = jaxrl.run(cfg, keys[0], seeds=4, eval_episodes=0, progress=False, plot=False)
    s7, _ = jax.jit(jax.vmap(jaxrl.train, in_axes=(None, 0)))(cfg, jax.random.split(keys[0], 4))
    out["run_params"] = maxdiff(res.state.params, s7.params)
    out["run_devices_used"] = len(jax.tree_util.tree_leaves(res.state.params)[0].sharding.device_set)
    # ... and compiles its chunk program and its evaluation once each: the members' initial state is
    # split over the devices as the chunk's outputs are (before, init's replicated parameters made the
    # second chunk call compile a second program inside the timed training, and evaluation likewise)
    with compiles() as compiled:
        jaxrl.run(
            cfg.replace(total_timesteps=4 * 32 * 5),
            keys[1],
            seeds=4,
            eval_episodes=2,
            progress=False,
            plot=False,
        )
    out["run_chunk_compiles"] = compiled.count("jit(one)")  # chunks.make_chunk_fn's program
    out["run_init_and_eval_compiles"] = compiled.count("jit(fn)")  # make_init_fn's and make_eval_fn's

    # a population spread over the devices, crashed after a checkpoint and resumed, ends bit-identical to
    # the uninterrupted run
    class Crash(Exception):
        pass

    def crash(info):
        if info.iteration == 4:
            raise Crash

    long_cfg = cfg.replace(total_timesteps=4 * 32 * 6)
    opts = dict(seeds=4, chunk_size=2, eval_episodes=0, progress=False, plot=False)
    with tempfile.TemporaryDirectory() as tmp:
        full = runtime.run(long_cfg, 11, None, **opts)
        out["resume_crashed"] = False
        try:
            runtime.run(long_cfg, 11, tmp + "/run", checkpoint_every=1, host_callback=crash, **opts)
        except Crash:
            out["resume_crashed"] = True
        out["resume_checkpoints"] = sorted(
            int(d) for d in os.listdir(tmp + "/run/checkpoints") if d.isdigit()
        )
        resumed = runtime.resume(tmp + "/run", progress=False, plot=False)
    out["resume_devices_used"] = len(jax.tree_util.tree_leaves(resumed.state.params)[0].sharding.device_set)
    out["resume_identical"] = all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(
            jax.tree_util.tree_leaves(full.state.params),
            jax.tree_util.tree_leaves(resumed.state.params),
            strict=True,
        )
    )
    # a second train_population call of the same shapes compiles nothing (it used to build a new jit)
    with compiles() as compiled:
        parallel.train_population(cfg, jax.random.split(jax.random.key(5), 8))
    out["pop_second_call_train_compiles"] = compiled.count("jit(train)")
elif which == "data":
    cfg = jaxrl.PPOConfig(total_timesteps=8 * 32 * 3, num_envs=8, rollout_steps=32)
    s5, m5 = parallel.train_data_parallel(cfg, jax.random.key(3))
    with compiles() as compiled:  # the second call compiles nothing
        parallel.train_data_parallel(cfg, jax.random.key(4))
    out["dp_second_call_compiles"] = compiled.count("jit(run)")
    s6, m6 = jax.jit(jaxrl.train)(cfg, jax.random.key(3))
    out["dp_params"] = maxdiff(s5.params, s6.params)
    out["dp_loss"] = float(np.max(np.abs(np.asarray(m5.total_loss) - np.asarray(m6.total_loss))))
    mesh = parallel.make_mesh("data")
    with parallel.data_parallel(mesh):
        # A fresh function: jax.jit caches traces per function, and the constraints are set at trace time.
        hlo = jax.jit(lambda c, k: jaxrl.train(c, k)).lower(cfg, jax.random.key(3)).compile().as_text()
    out["dp_all_reduce"] = "all-reduce" in hlo
    try:
        parallel.train_data_parallel(cfg.replace(num_envs=6, num_minibatches=2), jax.random.key(0))
        out["bad_envs_refused"] = False
    except ValueError as e:
        out["bad_envs_refused"] = "divide" in str(e)
print(json.dumps(out))
