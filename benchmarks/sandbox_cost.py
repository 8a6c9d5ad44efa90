"""Cost of the code sandbox per call, on the ``pyfunc`` task's batch: no sandbox (the opted-in weak mode,
``JAXRL_UNSAFE_LOCAL_EXEC=1``: a plain subprocess with rlimits), ``jaxrl.sandbox`` (bubblewrap + seccomp),
and the old in-process-audit-hook runner (``git show <rev>:jaxrl/algos/grpo/verifiers.py``; skip with
``--old-rev ''``).

Each round scores one batch of ``pyfunc`` completions (half correct solutions, half wrong ones) with
each runner in turn (alternating, so machine noise hits all of them): per-call latency (one program at a
time) and the batch's wall time through ``run_python_batch`` (4 at a time, as GRPO calls it). Prints a
JSON line per runner, with the 1-minute load average at the start and the end. Usage:
``python benchmarks/sandbox_cost.py [--rounds 3] [--batch 32] [--old-rev REV]``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jaxrl import sandbox, tasks  # noqa: E402


def load_old(rev: str):
    src = subprocess.run(
        ["git", "-C", ROOT, "show", f"{rev}:jaxrl/algos/grpo/verifiers.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = os.path.join(tempfile.mkdtemp(), "old_verifiers.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("old_verifiers", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_verifiers"] = mod
    spec.loader.exec_module(mod)
    return mod


def _unavailable():
    raise sandbox.SandboxUnavailable("benchmark: the weak mode, as on a machine without the sandbox")


@contextlib.contextmanager
def _no_sandbox():
    """``jaxrl.sandbox`` as on a machine without bubblewrap, opted in to the weak mode."""
    real = sandbox._setup
    sandbox._setup = _unavailable
    try:
        yield
    finally:
        sandbox._setup = real


def _unsafe_one(src, tests):
    with _no_sandbox():
        return sandbox.run_python(src, tests, unsafe_local_exec=True)


def _unsafe_many(jobs):
    with _no_sandbox():
        return sandbox.run_python_batch(jobs, unsafe_local_exec=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--old-rev", default="3c3f890")
    args = ap.parse_args()
    task = tasks.make_task("pyfunc")
    rng = np.random.default_rng(0)
    problems = [task.generate(rng) for _ in range(args.batch)]
    wrong = ["f=lambda x:x+1", "f=lambda x:", "f=lambda x:x*x"]
    jobs = [(p.solution if i % 2 == 0 else wrong[i % 3], p.answer) for i, p in enumerate(problems)]
    runners = {
        "no sandbox (JAXRL_UNSAFE_LOCAL_EXEC)": (_unsafe_one, _unsafe_many),
        "bubblewrap sandbox": (sandbox.run_python, sandbox.run_python_batch),
    }
    if args.old_rev:
        old = load_old(args.old_rev)
        runners["old (audit hook)"] = (old.run_python, old.run_python_batch)
    sandbox.check_available()  # the one-time probe outside the timings
    load_start = os.getloadavg()[0]
    lat: dict[str, list[float]] = {k: [] for k in runners}
    batch_s: dict[str, list[float]] = {k: [] for k in runners}
    scores: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, (one, many) in runners.items():
            for src, tests in jobs:
                t = time.perf_counter()
                one(src, tests)
                lat[name].append(time.perf_counter() - t)
            t = time.perf_counter()
            res = many(jobs)
            batch_s[name].append(time.perf_counter() - t)
            scores[name] = [r.fraction for r in res]
    first = next(iter(scores.values()))
    assert all(s == first for s in scores.values()), "the runners disagree on a score"
    load = os.getloadavg()[0]
    for name in runners:
        ms = np.asarray(lat[name]) * 1000
        print(json.dumps({
            "runner": name, "calls": len(ms), "median_ms": round(float(np.median(ms)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "batch_of": len(jobs), "batch_wall_s_median": round(float(np.median(batch_s[name])), 3),
            "load_1min_start": round(load_start, 2), "load_1min_end": round(load, 2), "cpus": os.cpu_count(),
        }))  # fmt: skip


if __name__ == "__main__":
    main()
