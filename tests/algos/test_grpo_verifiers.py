"""GRPO verifiers: number grader, format reward, and the Python sandbox's containment."""

import time

import pytest

from jaxrl.tasks import verifiers as V

FAST = V.SandboxLimits(timeout_s=2.0, cpu_s=1, memory_mb=256)
ONE = [("1", 1)]  # a trivial test case: passes iff the code ran to the end


class TestNumbers:
    @pytest.mark.parametrize(
        "text,want",
        [
            ("42", 42.0),
            ("the answer is 17.", 17.0),
            ("3 apples and 5 pears: 8", 8.0),
            ("so \\boxed{12} and later 99", 12.0),
            ("work ... #### -7", -7.0),
            ("Answer: 2.5e1", 25.0),
            ("total 1,234", 1234.0),
            ("no digits", None),
        ],
    )
    def test_extract(self, text, want):
        assert V.extract_number(text) == want

    def test_number_reward(self):
        assert V.number_reward("x = 4, so 4", 4) == 1.0
        assert V.number_reward("4.0000001", 4, tol=1e-3) == 1.0
        assert V.number_reward("5", 4) == 0.0
        # exact: the whole completion must be the canonical decimal
        assert V.number_reward("143", 143, exact=True) == 1.0
        assert [V.number_reward(t, 143, exact=True) for t in ("0143", "143.0", " 143", "=143", "")] == [
            0.0
        ] * 5

    def test_format_reward(self):
        assert V.format_reward("123", r"\d+") == 1.0
        assert V.format_reward("12a", r"\d+") == 0.0
        assert V.format_reward("<think>x</think>\n7", r"<think>.*</think>\n\d+") == 1.0


@pytest.mark.usefixtures("isolation")
class TestSandbox:
    """The verifier's use of the sandbox; the hostile-code suite is ``tests/sandbox``."""

    def test_passes_and_fails_tests_in_the_parent(self):
        src = "def f(x):\n    return 2 * x + 1\n"
        r = V.run_python(src, [("f(1)", 3), ("f(4)", 9), ("f(0)", 0)], limits=FAST)
        assert (r.status, r.passed, r.total) == ("ok", 2, 3)
        assert abs(r.fraction - 2 / 3) < 1e-9
        r = V.run_python("f = lambda x: [x, 'a']", [("f(2)", [2, "a"])], limits=FAST)
        assert r.passed == 1
        r = V.run_python("def f(:", ONE, limits=FAST)
        assert r.status == "error" and "SyntaxError" in r.stderr and r.fraction == 0.0

    def test_infinite_loop_and_sleep_are_stopped(self):
        jobs = [("while True:\n    pass", ONE), ("import time\ntime.sleep(60)", ONE)]
        t = time.perf_counter()
        r = V.run_python_batch(jobs, limits=FAST, max_workers=2)
        assert r[0].status in ("killed", "timeout") and r[1].status == "timeout"
        assert r[0].passed == r[1].passed == 0
        assert time.perf_counter() - t < FAST.timeout_s + 5

    def test_memory_bomb_is_contained(self):
        srcs = ("x = bytearray(8 * 1024**3)", "x = [0] * (2 * 10**9)", "s = 'a'\nwhile True:\n    s += s")
        for src, r in zip(srcs, V.run_python_batch([(s, ONE) for s in srcs], limits=FAST), strict=True):
            assert r.status in ("error", "killed", "timeout") and r.passed == 0, (src, r)

    def test_no_network_and_no_subprocess_escape(self):
        r = V.run_python(
            "import socket\nsocket.create_connection(('127.0.0.1', 80), timeout=1)", ONE, limits=FAST
        )
        assert r.status == "error" and "PermissionError" in r.stderr  # seccomp refuses AF_INET
        # a child process may run, but only inside the sandbox (its own PID namespace, no /etc)
        src = "import subprocess\nout = subprocess.run(['/bin/ls', '/'], capture_output=True).stdout.decode()"
        r = V.run_python(
            src, [("'etc' in out.split()", False), ("'scratch' in out.split()", True)], limits=FAST
        )
        assert r.passed == 2

    def test_files_only_in_the_scratch_dir(self, tmp_path):
        target = tmp_path / "pwned"
        r = V.run_python(f"open({str(target)!r}, 'w').write('x')", ONE, limits=FAST)
        assert r.status == "error" and not target.exists()
        r = V.run_python(
            "open('a.txt', 'w').write('hi')\nv = open('a.txt').read()", [("v", "hi")], limits=FAST
        )
        assert r.passed == 1

    def test_cannot_fake_a_pass_or_flood_the_parent(self):
        # the child never sees the expected values, so printing a "passed" report does not help
        fake = 'print(\'passed 4/4\')\nprint(\'{"status": "ok", "values": ["7"]}\')\nf = lambda x: 0'
        r = V.run_python(fake, [("f(1)", 7)], limits=FAST)
        assert r.passed == 0
        r = V.run_python("while True:\n    print('x' * 10000)", ONE, limits=FAST)
        assert r.passed == 0 and len(r.stdout) <= FAST.output_kb * 1024

    def test_batch_keeps_order_and_runs_duplicates_once(self):
        jobs = [("f = lambda x: x + 1", [("f(1)", 2)]), ("f = lambda x: x", [("f(1)", 2)])] * 3
        results = V.run_python_batch(jobs, limits=FAST, max_workers=2)
        assert [r.passed for r in results] == [1, 0] * 3
        assert V.code_reward("f = lambda x: x * 3", [("f(2)", 6), ("f(3)", 9)], limits=FAST) == 1.0

    def test_runs_unprivileged(self):
        r = V.run_python("import os\nuid = os.getuid()", [("uid == 0", False)], limits=FAST)
        assert r.passed == 1
