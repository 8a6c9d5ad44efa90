"""The chunked driver equals one ``jaxrl.train`` call; populations, NaN stop, Ctrl-C, host callbacks."""

import dataclasses
import io
import json
import os
import signal
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from jax.flatten_util import ravel_pytree
from runtime_tiny import CHUNK, ITERATIONS, leaves_equal, tiny_config

import jaxrl
from jaxrl import runtime
from jaxrl.algos import base, named_metrics, registry
from jaxrl.runtime import chunks, driver, logs


def test_chunked_equals_unchunked_and_metrics_stream_to_csv(tmp_path):
    cfg = tiny_config()
    key = jax.random.key(0)
    ref_state, ref_metrics = jax.jit(jaxrl.train)(cfg, key)
    res = runtime.run(
        cfg, key, str(tmp_path / "run"), chunk_size=CHUNK, eval_episodes=0, progress=False, plot=False
    )
    assert res.iterations == ITERATIONS and res.status == "finished"
    # Same key, same iterations: the parameters are bitwise identical (allclose would hide a key reuse).
    assert leaves_equal(res.state.params, ref_state.params)
    assert leaves_equal(res.state.opt_state, ref_state.opt_state)
    # Every iteration's metrics reached metrics.csv, in order, equal to train's stacked metrics.
    csv = logs.read_csv(str(tmp_path / "run" / "metrics.csv"))
    np.testing.assert_array_equal(csv["iteration"], np.arange(1, ITERATIONS + 1))
    np.testing.assert_array_equal(csv["env_steps"], np.asarray(ref_metrics.env_steps))
    np.testing.assert_allclose(csv["total_loss"], np.asarray(ref_metrics.total_loss), rtol=1e-6)
    np.testing.assert_allclose(csv["episode_return"], np.asarray(ref_metrics.episode_return), rtol=1e-6)
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert [r["iteration"] for r in rows] == list(range(1, ITERATIONS + 1))
    assert rows[0]["episode_return"] is None  # NaN (no episode finished yet) is written as null
    summary = json.load(open(tmp_path / "run" / "summary.json"))
    assert summary["status"] == "finished" and summary["iterations"] == ITERATIONS


def test_any_chunk_boundaries_give_the_same_state(reference_run):
    """One compiled program serves every chunk length n <= capacity; boundaries do not matter."""
    cfg = tiny_config()
    algo = registry.algorithm_for(cfg)
    state = chunks.make_init_fn(algo)(cfg, jax.random.key(0))
    fn = chunks.make_chunk_fn(algo, CHUNK)
    seen = []
    for n in (1, 4, 3, 0, 2, 4, 4, 4, 2):  # 24 in all, uneven
        state, out = fn(cfg, state, jnp.int32(n))
        seen.append(np.asarray(out.metrics.env_steps)[:n])
        assert not np.asarray(out.nonfinite).any()
    np.testing.assert_array_equal(np.concatenate(seen), 16 * np.arange(1, ITERATIONS + 1))
    assert leaves_equal(state.params, reference_run.state.params)


def test_sweep_and_seeds_population_equals_separate_runs(tmp_path):
    cfg = tiny_config()
    key = jax.random.key(3)
    lrs = [2.5e-4, 1e-3]
    res = runtime.run(
        cfg,
        key,
        str(tmp_path / "pop"),
        seeds=2,
        sweep={"learning_rate": lrs},
        chunk_size=CHUNK,
        eval_episodes=0,
        progress=False,
        plot=False,
    )
    assert [(m["learning_rate"], m["seed"]) for m in res.members] == [(lr, s) for lr in lrs for s in (0, 1)]
    seed_keys = jax.random.split(key, 2)
    for i, m in enumerate(res.members):
        single = runtime.run(
            cfg.replace(learning_rate=m["learning_rate"]),
            seed_keys[m["seed"]],
            None,
            chunk_size=CHUNK,
            eval_episodes=0,
            progress=False,
        )
        member = jax.tree_util.tree_map(lambda x, i=i: x[i], res.state.params)
        np.testing.assert_allclose(
            ravel_pytree(member)[0], ravel_pytree(single.state.params)[0], rtol=1e-5, atol=1e-6
        )
    # Per-member rows plus a mean/min/max summary over the 4 members.
    csv = logs.read_csv(str(tmp_path / "pop" / "metrics.csv"))
    assert len(csv["iteration"]) == 4 * ITERATIONS and set(csv["learning_rate"]) == set(lrs)
    summ = logs.read_csv(str(tmp_path / "pop" / "summary.csv"))
    last = csv["iteration"] == ITERATIONS
    assert summ["total_loss_min"][-1] == pytest.approx(csv["total_loss"][last].min(), rel=1e-6)
    assert summ["total_loss_max"][-1] == pytest.approx(csv["total_loss"][last].max(), rel=1e-6)
    assert summ["total_loss_mean"][-1] == pytest.approx(csv["total_loss"][last].mean(), rel=1e-6)


def test_absurd_learning_rate_stops_with_a_message_naming_metric_update_and_seed(tmp_path):
    cfg = tiny_config(learning_rate=1e38)
    out = tmp_path / "nan"
    with pytest.raises(runtime.NonFiniteError) as err:
        runtime.run(cfg, 0, str(out), chunk_size=CHUNK, eval_episodes=0, checkpoint_every=1, progress=False)
    info, msg = err.value.info, str(err.value)
    assert f"update {info['update']} of {ITERATIONS}" in msg and "seed 0" in msg
    assert info["metric"] in msg and "learning_rate" in msg
    # Metrics stop at the bad update (it is the last row, with its non-finite value on record).
    csv = logs.read_csv(str(out / "metrics.csv"))
    assert csv["iteration"][-1] == info["update"]
    # Only checkpoints from before the bad chunk exist: the last good one is kept and named.
    steps = sorted(int(s) for s in os.listdir(out / "checkpoints") if s.isdigit())
    assert all(s < info["update"] for s in steps)
    if steps:
        assert f"checkpoints/{steps[-1]}" in msg
    assert json.load(open(out / "summary.json"))["status"] == "nonfinite"


def test_ctrl_c_checkpoints_then_resume_is_identical(tmp_path, reference_run):
    out = str(tmp_path / "int")

    def interrupt(info):
        if info.iteration == 8:
            os.kill(os.getpid(), signal.SIGINT)  # as a user's Ctrl-C: the handler sets a flag

    with pytest.raises(KeyboardInterrupt):
        runtime.run(
            tiny_config(),
            0,
            out,
            chunk_size=CHUNK,
            eval_episodes=0,
            checkpoint_every=100,
            progress=False,
            host_callback=interrupt,
        )
    assert sorted(os.listdir(os.path.join(out, "checkpoints"))) == ["8"]
    assert json.load(open(os.path.join(out, "summary.json")))["status"] == "interrupted"
    res = runtime.resume(out, progress=False, plot=False)
    assert res.iterations == ITERATIONS
    assert leaves_equal(res.state.params, reference_run.state.params)
    csv = logs.read_csv(os.path.join(out, "metrics.csv"))
    np.testing.assert_array_equal(csv["iteration"], np.arange(1, ITERATIONS + 1))  # no duplicated rows


def test_host_callback_sees_every_chunk_and_can_replace_the_state():
    calls = []

    def cb(info):
        calls.append((info.iteration, info.metrics["env_steps"].shape))
        if info.iteration == ITERATIONS:
            return info.state._replace(last_return=jnp.float32(-1.0))
        return None

    res = runtime.run(
        tiny_config(), 0, None, chunk_size=CHUNK, eval_episodes=0, progress=False, host_callback=cb
    )
    assert calls == [(i, (1, CHUNK)) for i in range(CHUNK, ITERATIONS + 1, CHUNK)]
    assert float(res.state.last_return) == -1.0


def test_log_every_decimates_rows_and_keeps_the_last(tmp_path):
    runtime.run(
        tiny_config(),
        0,
        str(tmp_path / "r"),
        chunk_size=CHUNK,
        log_every=5,
        eval_episodes=0,
        checkpoint_every=0,
        progress=False,
        plot=False,
    )
    csv = logs.read_csv(str(tmp_path / "r" / "metrics.csv"))
    np.testing.assert_array_equal(csv["iteration"], [5, 10, 15, 20, 24])
    assert not os.path.exists(tmp_path / "r" / "checkpoints")


def test_config_errors_fail_before_anything_is_compiled(tmp_path):
    with pytest.raises(ValueError, match="divide evenly"):
        runtime.run(tiny_config(num_minibatches=3), 0, str(tmp_path / "a"), progress=False)
    assert not (tmp_path / "a").exists()  # nothing written either
    with pytest.raises(ValueError, match="static"):
        runtime.run(tiny_config(), 0, None, sweep={"num_envs": [2, 4]}, progress=False)
    with pytest.raises(ValueError, match="seeds"):
        runtime.run(tiny_config(), 0, None, seeds=0, progress=False)
    with pytest.raises(ValueError, match="Unknown environment"):
        runtime.run(tiny_config(env="CartPol-v1"), 0, None, progress=False)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--resume"):
        runtime.run(tiny_config(), 0, str(tmp_path / "b"), progress=False)


# ------------------------------------------------------------------ host-loop algorithms (GRPO-like)
class _HState(NamedTuple):
    params: jax.Array
    iteration: jax.Array


@named_metrics.metrics_type
class _HMetrics(NamedTuple):
    episode_return: jax.Array
    env_steps: jax.Array
    loss: jax.Array


@struct.dataclass
class _HConfig:
    iterations: int = struct.field(pytree_node=False, default=6)
    scale: float = 0.5


def _h_step(cfg, state):
    # Host-side work between device calls, as GRPO's scoring: numpy on fetched values.
    with np.errstate(over="ignore"):
        p = np.asarray(state.params) * cfg.scale + 1.0
    it = int(state.iteration) + 1
    new = _HState(jnp.asarray(p, jnp.float32), jnp.int32(it))
    return new, _HMetrics(jnp.float32(p.sum()), jnp.int32(10 * it), jnp.float32(p.mean()))


_HOST_ALGO = base.Algorithm(
    name="hostloop-test",
    config=_HConfig,
    init=lambda cfg, key: _HState(jnp.zeros(3, jnp.float32), jnp.int32(0)),
    train_step=_h_step,
    num_iterations=lambda cfg: cfg.iterations,
    make_policy=lambda cfg, state, deterministic=True: None,
    validate=lambda cfg: None,
    host_loop=True,
)


@pytest.fixture
def host_algo(monkeypatch):
    monkeypatch.setitem(base._REGISTRY, _HOST_ALGO.name, _HOST_ALGO)
    return _HOST_ALGO


def test_host_loop_algorithm_runs_in_python_chunks_with_checkpoints(tmp_path, host_algo):
    out = str(tmp_path / "h")
    res = runtime.run(_HConfig(), 0, out, chunk_size=4, checkpoint_every=1, progress=False, plot=False)
    # p_t = 0.5 p_{t-1} + 1 from 0: 1, 1.5, 1.75, 1.875, 1.9375, 1.96875
    np.testing.assert_allclose(np.asarray(res.state.params), [1.96875] * 3)
    csv = logs.read_csv(os.path.join(out, "metrics.csv"))
    np.testing.assert_allclose(csv["loss"], [1, 1.5, 1.75, 1.875, 1.9375, 1.96875])
    assert res.eval_returns is None  # no environment: no greedy evaluation
    assert sorted(os.listdir(os.path.join(out, "checkpoints"))) == ["4", "6"]
    with pytest.raises(ValueError, match="population"):
        runtime.run(_HConfig(), 0, None, seeds=2, progress=False)


def test_host_loop_nonfinite_parameters_stop_the_run(host_algo):
    with pytest.raises(
        runtime.NonFiniteError, match="episode_return = inf at update 3 of 6 .env steps 30., seed 0"
    ):
        runtime.run(_HConfig(scale=1e38), 0, None, chunk_size=4, progress=False)


@named_metrics.metrics_type
class _AccMetrics(NamedTuple):
    episode_return: jax.Array
    env_steps: jax.Array
    accuracy: jax.Array  # NaN between evaluations, as GRPO's heldout_accuracy


@struct.dataclass
class _AccConfig(_HConfig):
    pass


def _acc_step(cfg, state):
    it = int(state.iteration) + 1
    acc = it / 10 if it % 3 == 0 else np.nan
    new = _HState(state.params + 1.0, jnp.int32(it))
    return new, _AccMetrics(jnp.float32(it), jnp.int32(8 * it), jnp.float32(acc))


def test_an_algorithms_own_evaluation_goes_to_eval_csv_and_summary(tmp_path, monkeypatch):
    from jaxrl import cli

    algo = dataclasses.replace(
        _HOST_ALGO,
        name="hostloop-acc",
        config=_AccConfig,
        train_step=_acc_step,
        presentation=base.Presentation(
            steps="completions",
            steps_short="completions",
            curve_short="reward",
            eval_metric="accuracy",
            eval_label="held-out accuracy",
        ),
    )
    monkeypatch.setitem(base._REGISTRY, algo.name, algo)
    out = str(tmp_path / "acc")
    stream = io.StringIO()
    res = runtime.run(_AccConfig(), 0, out, chunk_size=2, plot=False, stream=stream)
    ev = logs.read_csv(os.path.join(out, "eval.csv"))
    assert list(ev["iteration"]) == [3, 6] and list(ev["accuracy"]) == pytest.approx([0.3, 0.6])
    assert list(ev["env_steps"]) == [24, 48]
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["final_eval"]["accuracy"] == pytest.approx(0.6)
    assert "Initialising hostloop-acc" in stream.getvalue() and "reward" in stream.getvalue()
    plan = driver.prepare(_AccConfig(), 0, None)
    text = cli.summary_text(res, plan)
    assert "Final held-out accuracy: 0.600" in text and "completions" in text
