"""Checkpoints: host round trip, resume identity, corrupted and mismatched checkpoints refused."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from runtime_tiny import CHUNK, leaves_equal, tiny_config

from jaxrl import runtime
from jaxrl.runtime import checkpoint, rundir


def test_host_round_trip_keeps_typed_keys_and_dtypes():
    tree = {
        "k": jax.random.split(jax.random.key(1), 3),
        "raw": jax.random.PRNGKey(2),
        "x": jnp.arange(6, dtype=jnp.float32).reshape(2, 3),
        "i": jnp.int32(7),
    }
    host = checkpoint.to_host(tree)
    assert all(isinstance(x, np.ndarray) for x in host)
    assert checkpoint.describe(host) == checkpoint.to_host_shapes(tree)
    back = checkpoint.from_host(host, tree)
    assert back["k"].dtype == tree["k"].dtype
    assert np.array_equal(jax.random.key_data(back["k"]), jax.random.key_data(tree["k"]))
    assert leaves_equal(
        {k: v for k, v in back.items() if k != "k"}, {k: v for k, v in tree.items() if k != "k"}
    )
    # CRC32 of a flipped byte differs.
    flipped = [x.copy() for x in host]
    flipped[2].view(np.uint8)[0] ^= 1
    assert checkpoint.crc32(flipped)[2] != checkpoint.crc32(host)[2]


@pytest.fixture
def interrupted_run(tmp_path):
    """A run stopped (as by a crash) after update 12, with checkpoints at 4, 8 and 12."""
    out = str(tmp_path / "run")

    class Crash(Exception):
        pass

    def crash(info):
        if info.iteration == 12:
            raise Crash

    with pytest.raises(Crash):
        runtime.run(
            tiny_config(),
            0,
            out,
            chunk_size=CHUNK,
            eval_episodes=0,
            checkpoint_every=1,
            keep_checkpoints=3,
            progress=False,
            host_callback=crash,
        )
    return out


def test_keep_last_and_resume_identical(interrupted_run, reference_run):
    ck = checkpoint.Checkpointer(os.path.join(interrupted_run, "checkpoints"), keep=3)
    assert ck.steps() == [4, 8]  # update 12's checkpoint would have come after the crash
    ck.close()
    res = runtime.resume(interrupted_run, progress=False, plot=False)
    assert leaves_equal(res.state, reference_run.state)
    ck = checkpoint.Checkpointer(os.path.join(interrupted_run, "checkpoints"), keep=3)
    assert ck.steps() == [16, 20, 24]  # the newest 3
    ck.close()
    cfg, state = runtime.load_state(interrupted_run)
    assert leaves_equal(state, reference_run.state)


def _data_files(step_dir):
    out = []
    for root, _, files in os.walk(os.path.join(step_dir, "state")):
        out += [os.path.join(root, f) for f in files if os.path.basename(root) == "d"]
    return out


@pytest.mark.parametrize("how", ["flip", "truncate", "delete_meta"])
def test_corrupted_checkpoint_is_refused(interrupted_run, how):
    step_dir = os.path.join(interrupted_run, "checkpoints", "8")
    if how == "delete_meta":
        os.remove(os.path.join(step_dir, "meta", "metadata"))
    else:
        files = _data_files(step_dir)
        assert files
        for path in files:
            data = bytearray(open(path, "rb").read())
            if how == "flip":
                for i in range(len(data) // 2, len(data), 7):  # damage the array bytes
                    data[i] ^= 0x5A
            else:
                data = data[: len(data) // 3]
            open(path, "wb").write(bytes(data))
    with pytest.raises(runtime.CheckpointError) as err:
        runtime.resume(interrupted_run, progress=False)
    msg = str(err.value)
    assert "checkpoints/8" in msg and ("corrupted" in msg or "cannot be read" in msg)
    assert "previous checkpoint (step 4)" in msg  # says what to do


def test_checkpoint_of_another_config_is_refused(interrupted_run):
    # The checkpoint's own record of the config is compared, not only config.json.
    path = os.path.join(interrupted_run, "config.json")
    spec = json.load(open(path))
    spec["config"]["gamma"] = 0.5
    json.dump(spec, open(path, "w"))
    with pytest.raises(runtime.CheckpointError, match=r"config\.gamma: 0\.99 -> 0\.5"):
        runtime.resume(interrupted_run, progress=False)


def test_resume_with_different_settings_is_refused(interrupted_run):
    with pytest.raises(runtime.CheckpointError, match="learning_rate"):
        runtime.run(tiny_config(learning_rate=1e-3), 0, interrupted_run, resume=True, progress=False)
    with pytest.raises(runtime.CheckpointError, match="key"):
        runtime.run(tiny_config(), 1, interrupted_run, resume=True, progress=False)


def test_resume_spec_round_trips_keys():
    for key in (0, jax.random.key(5), jax.random.PRNGKey(5)):
        spec = rundir.key_spec(key)
        back = rundir.key_from_spec(spec)
        want = jax.random.key(key) if isinstance(key, int) else key
        if jax.dtypes.issubdtype(want.dtype, jax.dtypes.prng_key):
            assert np.array_equal(jax.random.key_data(back), jax.random.key_data(want))
        else:
            assert np.array_equal(back, want)


def test_load_state_of_a_run_with_another_key_implementation(tmp_path):
    # the saved state's keys are rbg keys (4 words, not threefry's 2): the template that reads them is
    # built from the run's own key, and they come back as rbg keys equal to the run's
    key = jax.random.key(5, impl="rbg")
    out = str(tmp_path / "rbg")
    res = runtime.run(tiny_config(), key, out, chunk_size=CHUNK, eval_episodes=0, progress=False, plot=False)
    _, state = runtime.load_state(out)
    assert str(jax.random.key_impl(state.key)) == str(jax.random.key_impl(key))
    assert leaves_equal(state, res.state)
