"""Timing helpers shared by the benchmark scripts (never asserts timings).

    from benchmarks import _harness as H          # or `import _harness as H` from inside benchmarks/
    r = H.measure("jaxrl 1 seed", fn, (key,), repeats=3, steps=524_288)
    print(H.table([r]))
    H.write_json("ppo_vs_rejax", {"rows": [r.as_dict()], "machine": H.machine_info()})

What is measured, the same way for every framework:
  * compile time: ``jax.jit(fn).lower(*args).compile()`` (tracing + lowering + XLA compilation);
  * run time: the compiled executable called ``repeats`` times (after one warm-up call), each call
    ended with ``jax.block_until_ready``; best and median wall time, and the process CPU time of the
    best call (CPU time is less disturbed than wall time when other processes share the cores);
  * steps/s: ``steps / best wall time`` (env steps of all seeds together).

A different random key is used for every call so no result can be cached.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def add_cpu_threads_arg(parser: Any) -> None:
    """``--cpu-threads N [N ...]``: the XLA CPU pool sizes a peer comparison runs each framework with."""
    parser.add_argument(
        "--cpu-threads",
        type=int,
        nargs="+",
        default=[1, 0],
        help="XLA CPU thread-pool sizes to run each framework with (0: XLA's default, one per CPU; "
        "jaxrl.cpu.set_cpu_threads, applied to both frameworks); default: 1 and 0",
    )


def default_rejax_python() -> str:
    """rejax's interpreter for the peer benchmarks: ``$REJAX_PYTHON``, else a venv named ``venv-rejax``
    next to the repository or ``.venv-rejax`` inside it (rejax 0.1.3 needs gymnax 0.0.9, so it lives in
    its own venv); empty if none exists."""
    if os.environ.get("REJAX_PYTHON"):
        return os.environ["REJAX_PYTHON"]
    root = Path(__file__).resolve().parent.parent
    for cand in (root.parent / "venv-rejax", root / ".venv-rejax"):
        if (cand / "bin" / "python").exists():
            return str(cand / "bin" / "python")
    return ""


def set_cpu_threads(n: int) -> None:
    """XLA CPU thread pool of ``n`` threads (0: XLA's default) for this process, jaxrl or not: loads
    ``jaxrl/cpu.py`` by path (it imports nothing from jaxrl), so a peer framework's interpreter gets the
    same setting. Call before the first JAX computation."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "jaxrl" / "cpu.py"
    spec = importlib.util.spec_from_file_location("_jaxrl_cpu", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.set_cpu_threads(n)


@dataclasses.dataclass
class Timing:
    """One benchmarked configuration (all times in seconds)."""

    name: str
    compile_s: float
    run_best_s: float
    run_median_s: float
    cpu_best_s: float  # process CPU time (all threads) of the call with the best wall time
    runs_s: list[float]
    steps: int  # env steps per call (all seeds)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # e.g. final returns

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.run_best_s

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["steps_per_s"] = self.steps_per_s
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Timing:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})


def measure(
    name: str,
    fn: Callable[..., Any],
    args_for: Callable[[int], Sequence[Any]],
    *,
    steps: int,
    repeats: int = 3,
    keep: Callable[[Any], dict[str, Any]] | None = None,
) -> tuple[Timing, Any]:
    """Compile ``fn`` once, then time ``repeats`` calls (after a warm-up call).

    ``args_for(i)`` gives the arguments of call ``i`` (0 is used to compile and to warm up, so use it
    for a new key each time). ``keep(output)`` may summarise the last output into ``Timing.extra``.
    Returns the timing and the output of the last call.
    """
    import jax

    t = time.perf_counter()
    compiled = jax.jit(fn).lower(*args_for(0)).compile()
    compile_s = time.perf_counter() - t
    out = jax.block_until_ready(compiled(*args_for(0)))  # warm-up (first-call allocations)
    runs, cpus = [], []
    for i in range(1, repeats + 1):
        args = args_for(i)
        c0, t0 = time.process_time(), time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        runs.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    best = min(range(len(runs)), key=runs.__getitem__)
    timing = Timing(
        name=name,
        compile_s=compile_s,
        run_best_s=runs[best],
        run_median_s=statistics.median(runs),
        cpu_best_s=cpus[best],
        runs_s=runs,
        steps=steps,
        extra=keep(out) if keep else {},
    )
    return timing, out


def merge_rounds(timings: Sequence[Timing]) -> Timing:
    """One row from the same setting measured in several rounds: every timed call pooled (best and
    median over all of them), the median compile time, the last round's ``extra`` plus
    ``rounds_best_s`` (each round's best)."""
    if len(timings) == 1:
        return timings[0]
    runs = [x for t in timings for x in t.runs_s]
    best = min(timings, key=lambda t: t.run_best_s)
    return Timing(
        name=timings[0].name,
        compile_s=statistics.median(t.compile_s for t in timings),
        run_best_s=best.run_best_s,
        run_median_s=statistics.median(runs),
        cpu_best_s=best.cpu_best_s,
        runs_s=runs,
        steps=timings[0].steps,
        extra={**timings[-1].extra, "rounds_best_s": [t.run_best_s for t in timings]},
    )


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """What the figures depend on: CPU, cores, load, versions."""
    import jax

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_avg_1min": load_average(),
        "python": sys.version.split()[0],
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def run_json_subprocess(cmd: Sequence[str], timeout: float | None = None, env: dict | None = None) -> Any:
    """Run ``cmd`` (a script that prints one JSON document as its last stdout line); return it parsed.

    Used to run a peer framework in its own virtual environment from the same benchmark invocation.
    """
    proc = subprocess.run(
        list(cmd), capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if not lines:
        raise RuntimeError(f"{' '.join(cmd)} printed nothing; stderr:\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1])


def write_json(stem: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{stem}.json"
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    return path


def write_run(out: str | Path, args: Any, **results: Any) -> Path:
    """``results`` with the command line, the machine and ``vars(args)``, as JSON at ``out``."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python", *sys.argv])
    payload = {"command": command, "machine": machine_info(), "args": vars(args), **results}
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    return path


def table(rows: Sequence[Timing], columns: Sequence[tuple[str, Callable[[Timing], str]]] = ()) -> str:
    """A Markdown table of timings (extra columns: ``(header, row -> text)``)."""
    cols = [
        ("run", lambda r: r.name),
        ("compile s", lambda r: f"{r.compile_s:.2f}"),
        ("run s (best)", lambda r: f"{r.run_best_s:.2f}"),
        ("run s (median)", lambda r: f"{r.run_median_s:.2f}"),
        ("steps/s", lambda r: f"{r.steps_per_s:,.0f}"),
        *columns,
    ]
    out = ["| " + " | ".join(h for h, _ in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        out.append("| " + " | ".join(f(r) for _, f in cols) + " |")
    return "\n".join(out)


def write_curve(path: Path, curve: Sequence[dict[str, Any]], ys: Sequence[str], title: str) -> None:
    """A learning curve as ``path.csv`` (one row per point, every key of the points) and ``path.png``
    (``ys`` against ``env_steps``); rewritten after every point so a cut-short run keeps its curve."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for point in curve for k in point))
    with open(path.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(curve)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for y in ys:
        pts = [(c["env_steps"], c[y]) for c in curve if c.get(y) is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=y)
    ax.set_xlabel("env steps")
    ax.set_ylabel("return")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=100)
    plt.close(fig)


def time_vmapped_training(
    framework: str,
    train: Callable[[Any], Any],
    returns: Callable[[Any, Any], Any],
    steps_per_seed: int,
    seeds: int,
    repeats: int,
    threads: int,
) -> Timing:
    """``jax.jit(jax.vmap(train))`` over ``seeds`` keys: compile (``lower().compile()``) and ``repeats``
    timed calls (no warm-up call: one call is minutes long), then ``returns(state, key)`` of every seed's
    final state (mean and spread over seeds in ``extra``). For the peer comparisons, where each framework
    runs this in its own interpreter; call :func:`set_cpu_threads` first."""
    import jax
    import numpy as np

    batched = jax.jit(jax.vmap(train))
    keys = lambda i: jax.random.split(jax.random.key(i), seeds)
    c0, t = time.process_time(), time.perf_counter()
    compiled = batched.lower(keys(0)).compile()
    compile_s, compile_cpu_s = time.perf_counter() - t, time.process_time() - c0
    runs, cpus = [], []
    for i in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        states = jax.block_until_ready(compiled(keys(i)))
        runs.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    ret = np.asarray(jax.jit(jax.vmap(returns, in_axes=(0, None)))(states, jax.random.key(1234)))
    per_seed = ret.mean(axis=1)
    best = int(np.argmin(runs))
    return Timing(
        name=f"{framework} {seeds} seed(s), " + (f"{threads} cpu thread(s)" if threads else "XLA threads"),
        compile_s=compile_s,
        run_best_s=runs[best],
        run_median_s=float(np.median(runs)),
        cpu_best_s=cpus[best],
        runs_s=runs,
        steps=steps_per_seed * seeds,
        extra={
            "compile_cpu_s": compile_cpu_s,
            "cpu_threads": threads,
            "eval_return_mean": float(per_seed.mean()),
            "eval_return_std_over_seeds": float(per_seed.std()),
            "eval_return_per_seed": per_seed.tolist(),
        },
    )


# ------------------------------------------------------------------------ PEER RUNS (vs rejax)
def jaxrl_train_and_returns(cfg: Any, episodes: int) -> tuple[Callable, Callable]:
    """``(train(key) -> state, returns(state, key) -> [episodes] greedy returns)`` of a jaxrl config, for
    :func:`time_vmapped_training`."""
    import jaxrl

    train = lambda key: jaxrl.train(cfg, key)[0]
    returns = lambda state, key: jaxrl.evaluate(cfg, state, key, num_episodes=episodes)
    return train, returns


def rejax_train_and_returns(
    algo_cls: Any, env_id: str, timesteps: int, episodes: int, make_act: Callable, **settings: Any
) -> tuple[Callable, Callable]:
    """The same pair for rejax's ``algo_cls`` on gymnax ``env_id``: trained as one block of iterations
    (``eval_freq=timesteps``, its evaluation callback a no-op), then evaluated with rejax's own
    ``evaluate`` on the policy ``make_act(algo, train_state)`` returns."""
    import gymnax
    import jax.numpy as jnp
    from rejax.evaluate import evaluate

    env, env_params = gymnax.make(env_id)
    algo = algo_cls.create(
        env=env,
        env_params=env_params,
        total_timesteps=timesteps,
        eval_freq=timesteps,
        skip_initial_evaluation=True,
        **settings,
    )
    algo = algo.replace(eval_callback=lambda a, ts, rng: jnp.zeros(()))
    train = lambda key: algo.train(key)[0]

    def returns(ts, key):
        act = make_act(algo, ts)
        return evaluate(act, key, env, env_params, episodes, env_params.max_steps_in_episode)[1]

    return train, returns


def peer_worker(
    problem: Callable, framework: str, timesteps: int, seeds: int, repeats: int, threads: int
) -> dict:
    """A peer script's worker mode (in the framework's own interpreter): ``problem(framework, timesteps)
    -> (train, returns, env steps per seed)`` timed by :func:`time_vmapped_training`; the JSON document
    :func:`alternate_peers` reads."""
    set_cpu_threads(threads)  # before the first JAX computation
    train, returns, steps = problem(framework, timesteps)
    return {
        "timing": time_vmapped_training(framework, train, returns, steps, seeds, repeats, threads).as_dict()
    }


def alternate_peers(
    script: str, peers: Sequence[tuple[str, str]], args: Any, worker_args: Sequence[str] = ()
) -> list[list[Timing]]:
    """Run ``script --framework NAME`` in each peer's interpreter (``peers``: ``(name, python)``) for
    every ``args.cpu_threads`` setting, ``args.rounds`` times, alternating so that drifts of the machine's
    load hit every peer; the timings of each round. ``args``: ``timesteps``, ``seeds``, ``repeats``."""
    rounds: list[list[Timing]] = []
    for rnd in range(args.rounds):
        rounds.append([])
        for threads in args.cpu_threads:
            for framework, python in peers:
                print(
                    f"... {framework}, cpu threads {threads or 'XLA default'} (round {rnd + 1})", flush=True
                )
                cmd = [python, script, "--framework", framework, "--timesteps", str(args.timesteps)]
                cmd += [
                    "--seeds",
                    str(args.seeds),
                    "--repeats",
                    str(args.repeats),
                    "--cpu-threads",
                    str(threads),
                ]
                cmd += list(worker_args)
                rounds[-1].append(Timing.from_dict(run_json_subprocess(cmd)["timing"]))
    return rounds
