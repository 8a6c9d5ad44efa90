"""One GPU check that fits a lent accelerator's time (issue #21): parts, each with its own time cap.

Parts, in order (each runs in its own process, killed at its cap; the orchestrator rewrites
``DIR/gpu_check.json`` after every part, so a cut-off run still returns what it measured):

  device         backend, devices, versions (a GPU run refuses to go on without a GPU backend)
  correctness    the fast test subset that matters on a new backend: losses, the env contract (gymnax,
                 probes, envpool), PPO/DQN probe environments, chunked == unchunked runs, the
                 transformer's KV-cache sampler (GRPO's); float32 matmuls at full precision and XLA's
                 deterministic GPU ops, so the tests' tolerances mean what they mean on the CPU
  ppo_cartpole   PPO CartPole-v1, 2048 vmapped seeds x 999,936 steps (PureJaxRL's CartPole config with
                 TOTAL_TIMESTEPS=1e6: 4 envs x 128 steps, 1953 updates, 4 epochs x 4 minibatches, Adam
                 2.5e-4 annealed, clip 0.2, ent 0.01, vf 0.5, grad norm 0.5, GAE 0.99/0.95, 64x64 tanh
                 actor and critic); anchor: ~98 s on an A100 for this work (PureJaxRL, as quoted in #21)
  ppo_minatar    PPO Breakout-MinAtar, 1 agent x ~1M steps, MinAtar CNN; anchor: rejax ~10.5 s on an A100
  dqn_minatar    DQN Breakout-MinAtar, benchmarks/dqn_minatar.py's settings, steps/s over its time cap
  grpo_builtin   GRPO iterations/s, completions/s and peak device memory on the built-in transformer
                 (addition task)
  grpo_qwen      the same on a Qwen2.5-0.5B-shaped random checkpoint (jaxrl.lm; skipped until it exists)
  envpool_pong   PPO on envpool Pong-v5 (CleanRL's envpool-XLA settings), env steps/s for 60 s

    python benchmarks/gpu_check.py --out DIR                      # on a GPU (scripts/gpu_check.sh)
    python benchmarks/gpu_check.py --cpu --tiny --out DIR         # the CPU dry run (tests/test_gpu_check.py)

Timed figures exclude compilation (reported as ``compile_s``). ``--budget`` (default 460 s) bounds the
whole run: a part gets the smaller of its cap and what is left, and is skipped when less than
``MIN_PART_S`` is left.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MIN_PART_S = 15.0
DEFAULT_BUDGET_S = 460.0


@dataclass(frozen=True)
class Part:
    name: str
    cap_s: float  # on a GPU
    what: str
    anchor: str = ""
    tiny_cap_s: float = 240  # in the CPU dry run (--tiny): a backstop only, the machine may be loaded


PARTS = [
    Part("device", 30, what="backend, devices, versions"),
    Part("correctness", 110, what="fast pytest subset on this backend"),
    Part(
        "ppo_cartpole",
        100,
        what="PPO CartPole-v1, 2048 vmapped seeds x 999,936 steps",
        anchor="PureJaxRL ~98 s on an A100 (figure quoted in issue #21)",
    ),
    Part(
        "ppo_minatar",
        45,
        what="PPO Breakout-MinAtar, 1 agent x 999,424 steps",
        anchor="rejax ~10.5 s on an A100 (figure quoted in issue #21)",
    ),
    Part("dqn_minatar", 40, what="DQN Breakout-MinAtar, steps/s", anchor="none published at these settings"),
    Part(
        "grpo_builtin",
        45,
        what="GRPO on the built-in transformer",
        anchor="none (CPU: 0.063 s/step, RESULTS.md)",
    ),
    Part("grpo_qwen", 100, what="GRPO on a Qwen2.5-0.5B-shaped random checkpoint", anchor="none"),
    Part(
        "envpool_pong",
        90,
        what="PPO envpool Pong-v5, env steps/s for 60 s",
        anchor="CleanRL PPO envpool-XLA Pong: 10M steps in ~37 min on an A100 (~4,500 steps/s)",
    ),
]
PART_NAMES = [p.name for p in PARTS]

# the anchors as numbers, for the ratio column: (seconds, env steps of the anchored work)
ANCHORS = {
    "ppo_cartpole": (98.0, 2048 * 999_936),
    "ppo_minatar": (10.5, 1_000_000),
    "envpool_pong": (37 * 60.0, 10_000_000),
}


# ====================================================================================== child side
class Recorder:
    """A part's result, rewritten to its file after every change (the orchestrator reads it even if the
    part is killed)."""

    def __init__(self, path: Path, name: str):
        self.path, self.data = path, {"part": name, "status": "running"}

    def update(self, **kw: Any) -> None:
        self.data.update(kw)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=_jsonable))
        tmp.replace(self.path)


def _jsonable(x: Any) -> Any:
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def _block(x: Any) -> Any:
    import jax

    return jax.block_until_ready(x)


def _chunked(
    rec: Recorder,
    run_chunk,
    state,
    n_chunks: int,
    steps_per_chunk: int,
    deadline: float,
    measure_s: float = float("inf"),
):
    """Compile ``run_chunk`` (ahead of time, so compilation is timed apart), then call it up to
    ``n_chunks`` times while the next chunk is expected to end before ``deadline`` and within
    ``measure_s`` of the end of compilation; records env steps, training seconds and steps/s after
    every chunk. Returns (state, last chunk's metrics)."""
    import jax

    t0 = time.perf_counter()
    compiled = jax.jit(run_chunk).lower(state).compile()
    rec.update(compile_s=time.perf_counter() - t0)
    deadline = min(deadline, time.time() + measure_s)
    train_s, done, metrics, last = 0.0, 0, None, 0.0
    for i in range(n_chunks):
        if i > 0 and time.time() + last * 1.1 > deadline:
            rec.update(stopped_early=f"time limit: {i} of {n_chunks} chunks done")
            break
        t = time.perf_counter()
        state, metrics = _block(compiled(state))
        last = time.perf_counter() - t
        train_s += last
        done += steps_per_chunk
        rec.update(
            chunks_done=i + 1,
            chunks=n_chunks,
            env_steps=done,
            train_s=train_s,
            env_steps_per_s=done / train_s,
        )
    return state, metrics


def _steps_per_iteration(cfg: Any) -> int:
    """Env steps one ``train_step`` takes (DQN names it; PPO's is its rollout, num_envs x rollout_steps)."""
    return getattr(cfg, "env_steps_per_iteration", None) or cfg.num_envs * cfg.rollout_steps


def _finite_mean(x: Any) -> float | None:
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


def part_device(rec: Recorder, tiny: bool, deadline: float, want_gpu: bool) -> None:
    import jax

    devs = jax.devices()
    info: dict[str, Any] = {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in devs],
        "device_kind": devs[0].device_kind,
        "python": sys.version.split()[0],
        "jax": jax.__version__,
    }
    for dist, mod in (("jaxlib", "jaxlib"), ("flax", "flax"), ("optax", "optax"), ("chex", "chex"),
                      ("gymnax", "gymnax"), ("envpool", "envpool"), ("numpy", "numpy"),
                      ("transformers", "transformers")):  # fmt: skip
        spec = importlib.util.find_spec(mod)  # where it would be imported from, without importing it
        if spec is None or spec.origin is None:
            info[dist] = "not installed"
            continue
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "version unknown"
        info[dist] = f"{version} ({Path(spec.origin).parent.parent})"
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        info["nvidia_smi"] = f"unavailable: {e}"
    rec.update(**info, headline=f"{info['device_kind']} ({info['backend']})")
    if want_gpu and info["backend"] != "gpu":
        raise RuntimeError(
            f"no GPU backend: jax.default_backend() is {info['backend']!r} (devices {info['devices']}); "
            "install jax with CUDA, or pass --cpu for the dry run"
        )


# the correctness subset: fast tests that exercise what a new backend can get wrong
CORRECTNESS_TESTS = [
    "tests/losses",
    "tests/envs/test_contract.py",
    "tests/algos/test_ppo.py::test_constant_reward_value_is_one",
    "tests/algos/test_ppo.py::test_delayed_reward_value_needs_gamma",
    "tests/algos/test_ppo.py::test_truncated_endless_episode_bootstraps",
    "tests/algos/test_ppo.py::test_action_reward_learns_the_obs_dependent_action",
    "tests/algos/test_dqn.py::TestProbes::test_discount",
    "tests/algos/test_dqn.py::TestProbes::test_bootstraps_through_truncation",
    "tests/algos/test_dqn.py::TestProbes::test_sign_and_action_dependence",
    "tests/runtime/test_driver.py::test_chunked_equals_unchunked_and_metrics_stream_to_csv",
    "tests/networks/test_transformer.py::TestModel::test_cached_decode_equals_full_forward",
    "tests/networks/test_transformer.py::TestSampling",
]
# the dry run only proves the plumbing: two hand-computed loss tests
CORRECTNESS_TESTS_TINY = [
    "tests/losses/test_returns.py::TestGAE::test_hand_computed_terminating",
    "tests/losses/test_value.py::TestQLearning::test_hand_computed",
]


def part_correctness(rec: Recorder, tiny: bool, deadline: float, want_gpu: bool) -> None:
    import pytest

    tests = CORRECTNESS_TESTS_TINY if tiny else CORRECTNESS_TESTS
    counts: dict[str, int] = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    failed: list[str] = []
    why: dict[str, str] = {}

    class Count:
        def pytest_runtest_logreport(self, report):
            if report.when == "call" or report.outcome != "passed":
                key = report.outcome if report.when == "call" or report.outcome == "skipped" else "error"
                counts[key] = counts.get(key, 0) + 1
                if report.outcome == "failed":
                    failed.append(report.nodeid)
                    why[report.nodeid] = report.longreprtext[-1500:]  # the assertion, for the JSON
                rec.update(counts=counts, failed_tests=failed, failures=why)

    args = ["-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT), *[str(ROOT / t) for t in tests]]
    if want_gpu and importlib.util.find_spec("xdist") is not None:
        args += ["-n", "4"]  # compilation dominates: four workers on the GPU machine's 16 cores
    rec.update(tests=tests, pytest_extra_args=args[5 + len(tests) :])
    code = pytest.main(args, plugins=[Count()])
    summary = f"{counts['passed']} passed, {counts['failed']} failed, {counts['error']} errors, {counts['skipped']} skipped"
    rec.update(exit_code=int(code), headline=summary)
    if int(code) != 0:
        raise RuntimeError(f"pytest exit code {int(code)}: {summary}; failed: {failed[:10]}")


def _ppo_population(rec: Recorder, cfg, seeds: int, chunks: int, deadline: float) -> None:
    import jax

    from jaxrl.algos import registry

    algo = registry.algorithm_for(cfg)
    algo.validate(cfg)
    per_chunk = cfg.num_iterations // chunks
    steps_per_chunk = seeds * per_chunk * _steps_per_iteration(cfg)
    rec.update(
        seeds=seeds,
        updates=cfg.num_iterations,
        env_steps_per_seed=cfg.num_iterations * _steps_per_iteration(cfg),
        total_env_steps=seeds * cfg.num_iterations * _steps_per_iteration(cfg),
    )
    t0 = time.perf_counter()
    keys = jax.random.split(jax.random.key(0), seeds)
    state = _block(jax.jit(jax.vmap(lambda k: algo.init(cfg, k)))(keys))
    rec.update(init_s=time.perf_counter() - t0)
    run = jax.vmap(lambda s: registry.run_iterations(algo, cfg, s, per_chunk))
    state, metrics = _chunked(rec, run, state, chunks, steps_per_chunk, deadline)
    if metrics is not None:
        rec.update(final_mean_return=_finite_mean(metrics.episode_return[:, -1]))


def _anchored(rec: Recorder, name: str) -> None:
    """Projected time for the anchor's work at the measured rate, and anchor / projected (>1: faster)."""
    rate = rec.data.get("env_steps_per_s")
    if rec.data.get("tiny") or not rate or name not in ANCHORS:
        return
    anchor_s, anchor_steps = ANCHORS[name]
    projected = anchor_steps / rate
    rec.update(
        projected_s_for_anchor_work=projected,
        ratio_vs_anchor=anchor_s / projected,
        ratio_note="anchor seconds / this run's projected seconds for the same env steps (>1: faster); "
        "compilation excluded; the anchor's hardware differs",
    )


def part_ppo_cartpole(rec: Recorder, tiny: bool, deadline: float, want_gpu: bool) -> None:
    import jaxrl

    if tiny:
        cfg, seeds, chunks = jaxrl.PPOConfig(env="CartPole-v1", total_timesteps=2 * 512), 4, 2
    else:
        # PureJaxRL's CartPole config (purejaxrl/ppo.py) with TOTAL_TIMESTEPS=1e6: 1e6 // 4 // 128 = 1953
        # updates. jaxrl's PPOConfig defaults are that config; total_timesteps given as the steps run.
        # 21 chunks of 93 updates: a cut run still measures (chunk calls cost milliseconds)
        cfg, seeds, chunks = jaxrl.PPOConfig(env="CartPole-v1", total_timesteps=1953 * 512), 2048, 21
    rec.update(
        settings=dict(
            env=cfg.env,
            num_envs=cfg.num_envs,
            rollout_steps=cfg.rollout_steps,
            num_epochs=cfg.num_epochs,
            num_minibatches=cfg.num_minibatches,
            learning_rate=cfg.learning_rate,
            anneal_lr=cfg.anneal_lr,
            clip_eps=cfg.clip_eps,
            ent_coef=cfg.ent_coef,
            vf_coef=cfg.vf_coef,
            max_grad_norm=cfg.max_grad_norm,
            gamma=cfg.gamma,
            gae_lambda=cfg.gae_lambda,
            hidden=cfg.hidden,
            activation=cfg.activation,
        )
    )
    _ppo_population(rec, cfg, seeds, chunks, deadline)
    _anchored(rec, "ppo_cartpole")
    _headline_rate(rec)


def _headline_rate(rec: Recorder) -> None:
    d = rec.data
    if d.get("env_steps_per_s"):
        ret = d.get("final_mean_return")
        text = f"{d['env_steps_per_s']:,.0f} env steps/s, {d['train_s']:.1f} s train + {d['compile_s']:.1f} s compile"
        if ret is not None:
            text += f", return {ret:.1f}"
        if d.get("stopped_early"):
            text += f" ({d['stopped_early']})"
        rec.update(headline=text)


PPO_MINATAR = dict(
    num_envs=64,
    rollout_steps=128,
    num_epochs=4,
    num_minibatches=8,
    learning_rate=5e-4,
    anneal_lr=True,
    gamma=0.99,
    gae_lambda=0.95,
    clip_eps=0.2,
    ent_coef=0.01,
    vf_coef=0.5,
    max_grad_norm=0.5,
    network="minatar_cnn",
)


def part_ppo_minatar(rec: Recorder, tiny: bool, deadline: float, want_gpu: bool) -> None:
    import jaxrl

    settings = dict(PPO_MINATAR)
    if tiny:
        settings.update(num_envs=4, rollout_steps=16, num_minibatches=2, num_epochs=1)
        total, chunks = 2 * 64, 2
    else:
        total, chunks = 122 * 64 * 128, 61  # 122 updates of 8,192 steps = 999,424 env steps, 2 per chunk
    rec.update(settings={**settings, "env": "Breakout-MinAtar", "total_timesteps": total})
    cfg = jaxrl.PPOConfig(env="Breakout-MinAtar", total_timesteps=total, **settings)
    _ppo_population(rec, cfg, 1, chunks, deadline)
    _anchored(rec, "ppo_minatar")
    _headline_rate(rec)


def part_dqn_minatar(rec: Recorder, tiny: bool, deadline: float, want_gpu: bool) -> None:
    import jax

    import jaxrl
    from jaxrl.algos import registry

    sys.path.insert(0, str(HERE))
    from dqn_minatar import SETTINGS

    settings = dict(SETTINGS)
    if tiny:
        settings.update(buffer_size=256, learning_starts=32, minibatch_size=8)
        total, chunk_steps = 256, 64
    else:
        total, chunk_steps = 1_000_000, 25_000
    cfg = jaxrl.DQNConfig(
        env="Breakout-MinAtar",
        total_timesteps=total,
        exploration_fraction=min(1.0, 100_000 / total),
        **settings,
    )
    rec.update(settings={**settings, "env": "Breakout-MinAtar", "total_timesteps": total})
    algo = registry.algorithm_for(cfg)
    algo.validate(cfg)
    per_chunk = max(1, chunk_steps // _steps_per_iteration(cfg))
    chunks = cfg.num_iterations // per_chunk
    state = _block(jax.jit(lambda k: algo.init(cfg, k))(jax.random.key(0)))
    state, metrics = _chunked(
        rec,
        lambda s: registry.run_iterations(algo, cfg, s, per_chunk),
        state,
        chunks,
        per_chunk * _steps_per_iteration(cfg),
        deadline,
    )
    if metrics is not None:
        rec.update(last_chunk_mean_return=_finite_mean(metrics.episode_return))
    _headline_rate(rec)


def _peak_device_bytes() -> int | None:
    """The first device's peak allocated bytes since the process started (``memory_stats()
    ['peak_bytes_in_use']``), or None where the backend keeps no statistics (the CPU)."""
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 (a backend without the call raises; no figure then)
        return None
    peak = (stats or {}).get("peak_bytes_in_use")
    return None if peak is None else int(peak)


def _grpo_steps(rec: Recorder, cfg, deadline: float, max_iters: int) -> None:
    from jaxrl.algos.grpo import trainer

    t0 = time.perf_counter()
    state = trainer.init(cfg, __import__("jax").random.key(0))
    rec.update(init_s=time.perf_counter() - t0)
    t0 = time.perf_counter()
    state, _ = trainer.train_step(cfg, state)
    _block(state.params)
    rec.update(first_iteration_s=time.perf_counter() - t0)
    walls: list[float] = []
    while len(walls) < max_iters and (not walls or time.time() + 2 * walls[-1] < deadline):
        t = time.perf_counter()
        state, m = trainer.train_step(cfg, state)
        _block(state.params)
        walls.append(time.perf_counter() - t)
    walls.sort()
    med = walls[len(walls) // 2]
    peak = _peak_device_bytes()
    rec.update(
        peak_device_memory_bytes=peak,
        peak_device_memory_gib=None if peak is None else round(peak / 2**30, 3),
        iterations_timed=len(walls),
        completions_per_iteration=cfg.completions_per_iteration,
        median_iteration_s=med,
        iterations_per_s=1 / med,
        completions_per_s=cfg.completions_per_iteration / med,
        headline=f"{1 / med:.2f} it/s, {cfg.completions_per_iteration / med:,.0f} completions/s (median of {len(walls)})"
        + ("" if peak is None else f", peak device memory {peak / 2**30:.2f} GiB"),
    )


def part_grpo_builtin(rec: Recorder, tiny: bool, deadline: float, want_gpu: bool) -> None:
    import jaxrl

    # 64 completions per iteration, no oversampling, no warm-up: benchmarks/grpo_throughput.py's step
    model = "nano" if tiny else "tiny"
    cfg = jaxrl.GRPOConfig(model=model, warmup_steps=0, eval_every=10**9, num_iterations=10**6, oversample=1)
    rec.update(settings=dict(task="addition", model=model, completions=cfg.completions_per_iteration, oversample=1))
    _grpo_steps(rec, cfg, deadline, max_iters=3 if tiny else 50)


class Skip(Exception):
    """A part that cannot run here, with the reason."""


def part_grpo_qwen(rec: Recorder, tiny: bool, deadline: float, want_gpu: bool) -> None:
    if importlib.util.find_spec("jaxrl.lm") is None:
        raise Skip("jaxrl.lm (Hugging Face models, issue #18) is not in this checkout")
    try:
        from jaxrl import lm
    except ImportError as e:
        raise Skip(f"jaxrl.lm needs the lm extra (pip install -e '.[lm]'): {e}") from e
    import jaxrl

    preset = "llama-tiny" if tiny else "qwen2.5-0.5b"
    path = Path(tempfile.mkdtemp(prefix="gpu_check_lm_")) / preset
    t0 = time.perf_counter()
    lm.random_checkpoint(path, preset, dtype="bfloat16")
    # stored in bf16; GRPO loads an hf: model in float32 (GRPOConfig has no dtype field yet)
    rec.update(
        checkpoint_write_s=time.perf_counter() - t0,
        settings=dict(preset=preset, checkpoint_dtype="bfloat16", train_dtype="float32", completions=64),
    )
    cfg = jaxrl.GRPOConfig(
        model=f"hf:{path}", warmup_steps=0, eval_every=10**9, num_iterations=10**6, oversample=1
    )
    _grpo_steps(rec, cfg, deadline, max_iters=2 if tiny else 20)


def part_envpool_pong(rec: Recorder, tiny: bool, deadline: float, want_gpu: bool) -> None:
    if importlib.util.find_spec("envpool") is None:
        raise Skip("envpool is not installed (scripts/gpu_check.sh --wheels brings it)")
    import jax

    import jaxrl
    from jaxrl.algos import registry

    sys.path.insert(0, str(HERE))
    from envpool_train import PPO_ATARI

    settings = {k: v for k, v in PPO_ATARI.items() if k != "total_timesteps"}
    if tiny:
        settings.update(num_envs=2, rollout_steps=8, num_minibatches=1, num_epochs=1)
        updates, per_chunk = 2, 1
    else:
        updates, per_chunk = 10_000, 8  # far more than 60 s; the time cap stops it
    cfg = jaxrl.PPOConfig(
        env="envpool:Pong-v5",
        total_timesteps=updates * settings["num_envs"] * settings["rollout_steps"],
        **settings,
    )
    rec.update(settings={**settings, "env": cfg.env, "measure_s": 60})
    algo = registry.algorithm_for(cfg)
    algo.validate(cfg)
    state = _block(jax.jit(lambda k: algo.init(cfg, k))(jax.random.key(0)))
    state, metrics = _chunked(  # 60 s of stepping after compilation, or less if the cap comes first
        rec,
        lambda s: registry.run_iterations(algo, cfg, s, per_chunk),
        state,
        updates // per_chunk,
        per_chunk * _steps_per_iteration(cfg),
        deadline,
        measure_s=60,
    )
    _anchored(rec, "envpool_pong")
    _headline_rate(rec)


PART_FNS = {
    "device": part_device,
    "correctness": part_correctness,
    "ppo_cartpole": part_ppo_cartpole,
    "ppo_minatar": part_ppo_minatar,
    "dqn_minatar": part_dqn_minatar,
    "grpo_builtin": part_grpo_builtin,
    "grpo_qwen": part_grpo_qwen,
    "envpool_pong": part_envpool_pong,
}


def child_main(args: argparse.Namespace) -> int:
    rec = Recorder(Path(args.result), args.child)
    rec.update(tiny=args.tiny)
    if args.cpu and args.child != "correctness":  # tests/conftest.py sets it for pytest
        import jaxrl.cpu

        jaxrl.cpu.set_cpu_threads(1)
    try:
        PART_FNS[args.child](rec, args.tiny, args.deadline, not args.cpu)
    except Skip as e:
        rec.update(status="skipped", reason=str(e), cpu_s=_cpu_seconds())
        return 0
    except Exception as e:  # noqa: BLE001 - recorded for the report, then a non-zero exit
        traceback.print_exc()
        rec.update(status="failed", reason=f"{type(e).__name__}: {e}"[:2000], cpu_s=_cpu_seconds())
        return 1
    rec.update(status="done", cpu_s=_cpu_seconds())
    return 0


def _cpu_seconds() -> float:
    """This process's CPU time so far (user + system), for the record."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ================================================================================ orchestrator side
def _child_env(part: str, cpu: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if cpu:
        env["JAX_PLATFORMS"] = "cpu"
    else:
        # tests/conftest.py sets JAX_PLATFORMS=cpu unless it is set: name the GPU first
        env["JAX_PLATFORMS"] = env.get("JAX_PLATFORMS") or "cuda,cpu"
    if part == "correctness" and not cpu:
        env["JAX_DEFAULT_MATMUL_PRECISION"] = "highest"  # no TF32 under the tests' float32 tolerances
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true").strip()
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # several pytest workers share the GPU
    return env


def run_part(part: Part, cap: float, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Run one part in its own process (its own session, so the kill at ``cap`` reaches pytest's
    workers too); its output goes to ``workdir/<part>.log``."""
    result_file = workdir / f"{part.name}.json"
    deadline = time.time() + cap - 5  # the part's own stop, ahead of the kill
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", part.name, "--result", str(result_file)]
    cmd += (
        ["--deadline", f"{deadline:.1f}"]
        + (["--tiny"] if args.tiny else [])
        + (["--cpu"] if args.cpu else [])
    )
    t0 = time.time()
    with open(workdir / f"{part.name}.log", "w") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(part.name, args.cpu),
            cwd=ROOT,
            start_new_session=True,
        )
        killed = False
        try:
            rc = proc.wait(timeout=cap)
        except subprocess.TimeoutExpired:
            killed = True
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
    wall = time.time() - t0
    try:
        res = json.loads(result_file.read_text())
    except (OSError, ValueError):
        res = {"part": part.name}
    res.update(cap_s=cap, wall_s=wall, what=part.what)
    if part.anchor:
        res["anchor"] = part.anchor
    if killed:
        res["status"] = "failed"
        res["reason"] = f"killed at its time cap ({cap:.0f} s); figures are what it recorded before"
    elif res.get("status") in (None, "running"):
        res["status"] = "failed"
        res["reason"] = f"exited with code {rc} before recording a result (see gpu_check.log)"
    if res["status"] == "failed":
        res["log_tail"] = (workdir / f"{part.name}.log").read_text(errors="replace")[-1500:]
    return res


def print_table(report: dict[str, Any]) -> str:
    rows = ["| part | status | result | anchor | ratio | wall s |", "|---|---|---|---|---|---|"]
    for name in report["parts"]:
        r = report["parts"][name]
        result = r.get("headline") or r.get("reason") or ""
        if r["status"] != "done" and r.get("reason") and r.get("headline"):
            result += f" [{r['reason']}]"
        ratio = f"{r['ratio_vs_anchor']:.2f}x" if r.get("ratio_vs_anchor") else ""
        wall = f"{r['wall_s']:.0f}" if r.get("wall_s") is not None else ""
        result = result.replace("|", "/").replace("\n", " ")[:160]
        rows.append(f"| {name} | {r['status']} | {result} | {r.get('anchor', '')} | {ratio} | {wall} |")
    text = (
        f"device: {report.get('device', '?')}; {report['mode']}; wall {report['wall_s']:.0f} s\n"
        + "\n".join(rows)
    )
    print(text, flush=True)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(HERE / "results"), help="folder for gpu_check.json and gpu_check.log")
    p.add_argument("--cpu", action="store_true", help="run on the CPU (the dry run; no GPU needed)")
    p.add_argument("--tiny", action="store_true", help="toy sizes: proves every part runs, measures nothing")
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help=f"seconds for the whole run (default {DEFAULT_BUDGET_S:.0f})",
    )
    p.add_argument("--parts", default=",".join(PART_NAMES), help=f"comma-separated subset of {PART_NAMES}")
    p.add_argument(
        "--jobs", type=int, default=1, help="with --cpu: parts run this many at a time (a GPU run: one)"
    )
    p.add_argument(
        "--cap",
        action="append",
        default=[],
        metavar="PART=S",
        help="override one part's time cap in seconds (repeatable), e.g. --cap grpo_qwen=200",
    )
    p.add_argument("--child", choices=PART_NAMES, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, default=float("inf"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child_main(args)

    if args.jobs > 1 and not args.cpu:
        p.error("--jobs is for the CPU dry run: on a GPU each part takes the device's memory")
    wanted = [s.strip() for s in args.parts.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in PART_NAMES]
    if unknown:
        p.error(f"unknown part(s) {unknown}; choose from {PART_NAMES}")
    caps: dict[str, float] = {}
    for c in args.cap:
        name, _, sec = c.partition("=")
        if name not in PART_NAMES or not sec.replace(".", "", 1).isdigit():
            p.error(f"--cap wants PART=SECONDS with PART in {PART_NAMES}, got {c!r}")
        caps[name] = float(sec)
    if args.budget is not None:
        budget = args.budget
    else:
        budget = sum(p.tiny_cap_s for p in PARTS) if args.tiny else DEFAULT_BUDGET_S
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "gpu_check.json"
    start = time.time()
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "mode": ("CPU dry run" if args.cpu else "GPU") + (", tiny sizes" if args.tiny else ""),
        "tiny": args.tiny,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "budget_s": budget,
        "load_avg_1min": os.getloadavg()[0],
        "device": None,
        "parts": {
            p.name: {"status": "pending", "what": p.what, **({"anchor": p.anchor} if p.anchor else {})}
            for p in PARTS
            if p.name in wanted
        },
        "wall_s": 0.0,
    }

    lock = threading.Lock()  # --jobs: parts finish on several threads

    def write() -> None:
        with lock:
            report["wall_s"] = time.time() - start
            tmp = json_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")
            tmp.replace(json_path)

    write()

    def one(part: Part, wd: Path) -> dict[str, Any]:
        left = budget - (time.time() - start)
        cap = min(caps.get(part.name, part.tiny_cap_s if args.tiny else part.cap_s), left)
        if cap < MIN_PART_S:
            with lock:
                report["parts"][part.name].update(
                    status="skipped", reason=f"whole-run budget spent ({left:.0f} s left)"
                )
            write()
            return report["parts"][part.name]
        res = run_part(part, cap, args, wd)
        with lock, open(out / "gpu_check.log", "a") as log:
            report["parts"][part.name] = res
            log.write(f"\n===== {part.name} ({res['status']}, {res['wall_s']:.0f} s of cap {cap:.0f} s)\n")
            log.write((wd / f"{part.name}.log").read_text(errors="replace"))
        print(
            f"[{time.time() - start:5.0f} s] {part.name}: {res['status']} "
            f"{res.get('headline') or ''} {res.get('reason') or ''}".rstrip(),
            flush=True,
        )
        write()
        return res

    todo = [p for p in PARTS if p.name in wanted]
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as wd:
        if todo and todo[0].name == "device":
            if one(todo.pop(0), Path(wd))["status"] != "done":
                for rest in report["parts"].values():
                    if rest["status"] == "pending":
                        rest.update(status="skipped", reason="the device check failed")
                todo = []
            report["device"] = report["parts"]["device"].get("headline") or report["parts"]["device"].get(
                "reason"
            )
            write()
        if args.jobs > 1:  # the CPU dry run only: parts side by side
            with ThreadPoolExecutor(args.jobs) as pool:
                list(pool.map(lambda part: one(part, Path(wd)), todo))
        else:
            for part in todo:
                one(part, Path(wd))
    report["table"] = print_table(report)
    write()
    statuses = [r["status"] for r in report["parts"].values()]
    print(f"wrote {json_path}", flush=True)
    return 0 if "failed" not in statuses else 1


if __name__ == "__main__":
    sys.exit(main())
