"""Run every hostile case through the sandbox as whatever user runs this script, print a JSON report.

Standard library only, so an unprivileged user can run it with the system interpreter:
``python3 tests/sandbox/run_as_user.py <path to jaxrl/sandbox.py>``.
"""

import importlib.util
import json
import os
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import hostile  # noqa: E402

spec = importlib.util.spec_from_file_location("jaxrl_sandbox", sys.argv[1])
sandbox = importlib.util.module_from_spec(spec)
sys.modules["jaxrl_sandbox"] = sandbox
spec.loader.exec_module(sandbox)

limits = sandbox.SandboxLimits(timeout_s=2.0, cpu_s=1)
arena = hostile.Arena(project_file=sys.argv[1])
try:
    jobs = arena.jobs()
    t = time.perf_counter()
    results = sandbox.run_python_batch([(s, tests) for _, s, tests in jobs], limits=limits, max_workers=4)
    seconds = time.perf_counter() - t
    report = {
        "uid": os.geteuid(),
        "setup": sandbox.check_available(),
        "seconds": seconds,
        "results": {
            name: [r.status, r.passed, r.total] for (name, _, _), r in zip(jobs, results, strict=True)
        },
        "escapes": arena.escapes(),
    }
finally:
    arena.close()
print(json.dumps(report))
