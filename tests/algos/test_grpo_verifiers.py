"""GRPO verifiers: number grader, format reward, and the Python sandbox's containment."""

import os
import tempfile
import time

import pytest

from jaxrl.algos.grpo import verifiers as V

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


class TestSandbox:
    def test_passes_and_fails_tests_in_the_parent(self):
        src = "def f(x):\n    return 2 * x + 1\n"
        r = V.run_python(src, [("f(1)", 3), ("f(4)", 9), ("f(0)", 0)], limits=FAST)
        assert (r.status, r.passed, r.total) == ("ok", 2, 3)
        assert abs(r.fraction - 2 / 3) < 1e-9
        r = V.run_python("f = lambda x: [x, 'a']", [("f(2)", [2, "a"])], limits=FAST)
        assert r.passed == 1
        r = V.run_python("def f(:", ONE, limits=FAST)
        assert r.status == "error" and "SyntaxError" in r.stderr and r.fraction == 0.0

    def test_infinite_loop_is_stopped(self):
        t = time.perf_counter()
        r = V.run_python("while True:\n    pass", ONE, limits=FAST)
        assert r.status in ("killed", "timeout") and r.passed == 0
        assert time.perf_counter() - t < FAST.timeout_s + 5
        t = time.perf_counter()
        r = V.run_python("import time\ntime.sleep(60)", ONE, limits=V.SandboxLimits(timeout_s=1.0))
        assert r.status == "timeout" and time.perf_counter() - t < 6

    def test_memory_bomb_is_contained(self):
        for src in (
            "x = bytearray(8 * 1024**3)",
            "x = [0] * (2 * 10**9)",
            "s = 'a'\nwhile True:\n    s += s",
        ):
            r = V.run_python(src, ONE, limits=FAST)
            assert r.status in ("error", "killed", "timeout") and r.passed == 0, (src, r)

    def test_fork_and_subprocess_are_blocked(self):
        for src in (
            "import os\nos.fork()",
            "import os\nos.system('echo hi')",
            "import subprocess\nsubprocess.run(['true'])",
            "import os\nos.execv('/bin/true', ['true'])",
            "import os\nos.posix_spawn('/bin/true', ['true'], {})",
            "import multiprocessing",
        ):
            r = V.run_python(src, ONE, limits=FAST)
            assert r.status == "error" and "not allowed" in r.stderr, (src, r)

    def test_network_is_blocked(self):
        for src in (
            "import socket\nsocket.create_connection(('127.0.0.1', 80))",
            "s = __import__('_socket').socket()",
            "import urllib.request\nurllib.request.urlopen('http://127.0.0.1')",
        ):
            r = V.run_python(src, ONE, limits=FAST)
            assert r.status == "error" and "not allowed" in r.stderr, (src, r)

    def test_files_only_in_the_scratch_dir(self, tmp_path):
        target = tmp_path / "pwned"
        r = V.run_python(f"open({str(target)!r}, 'w').write('x')", ONE, limits=FAST)
        assert r.status == "error" and not target.exists()
        r = V.run_python(
            "open('a.txt', 'w').write('hi')\nv = open('a.txt').read()", [("v", "hi")], limits=FAST
        )
        assert r.passed == 1
        # every scratch dir was deleted
        assert not [p for p in os.listdir(tempfile.gettempdir()) if p.startswith("jaxrl-sandbox-")]

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

    @pytest.mark.skipif(os.geteuid() != 0, reason="privileges are dropped only when the trainer runs as root")
    def test_runs_unprivileged_when_the_trainer_is_root(self):
        r = V.run_python("import os\nuid = os.getuid()", [("uid == 0", False)], limits=FAST)
        assert r.passed == 1
