"""The code sandbox against hostile programs (``hostile.CASES``), as this user and as an unprivileged
one: 0 escapes (no file created, changed or removed outside scratch, no connection to listeners the
test holds, no process left alive, no secret read, the trainer alive and every call answered)."""

import json
import os
import shutil
import subprocess
import time

import hostile
import pytest

from jaxrl import sandbox

LIMITS = sandbox.SandboxLimits(timeout_s=2.0, cpu_s=1)
STATUSES = {"ok", "error", "timeout", "killed"}
SANDBOX_FILE = os.path.abspath(sandbox.__file__)
LEAK_CASES = {c.name for c in hostile.CASES if c.leaks}


def _check_report(results: dict[str, list], escapes: list[str]) -> None:
    assert set(results) == {c.name for c in hostile.CASES}
    assert escapes == []
    for name, (status, passed, _) in results.items():
        assert status in STATUSES, name
        if name in LEAK_CASES:
            assert passed == 0, f"{name}: a secret was read or a forbidden call succeeded"
    # the attacks failed the way the OS makes them fail
    for name in ("write_absolute", "remove_victim", "dir_fd_write_and_remove", "tcp_loopback", "write_usr"):
        assert results[name][0] == "error", name
    assert results["cpu_burn"][0] in ("killed", "timeout")
    assert results["setsid_sleep_past_deadline"][0] == "timeout"
    for name in ("forged_result_wrong_type", "forged_result_missing_keys"):
        assert results[name][:2] == ["error", 0], name
    assert results["forged_result_deep_value"][1] == 0  # well-formed, but no value equals the expected one


def test_hostile_programs_are_contained(isolation):
    arena = hostile.Arena(project_file=SANDBOX_FILE)
    try:
        jobs = arena.jobs()
        t = time.perf_counter()
        out = sandbox.run_python_batch([(s, tests) for _, s, tests in jobs], limits=LIMITS, max_workers=4)
        seconds = time.perf_counter() - t
        results = {name: [r.status, r.passed, r.total] for (name, _, _), r in zip(jobs, out, strict=True)}
        escapes = arena.escapes()
        big = {name: r for (name, _, _), r in zip(jobs, out, strict=True) if name.startswith("infinite")}
    finally:
        arena.close()
    _check_report(results, escapes)
    for r in big.values():  # output kept is bounded
        assert len(r.stdout) <= LIMITS.output_kb * 1024 and len(r.stderr) <= LIMITS.output_kb * 1024
    # every call ends within its deadline (plus start-up), even with 4 at a time on a loaded machine
    assert seconds < len(jobs) * (LIMITS.timeout_s + 1.0) / 4 + 10


def _unprivileged_python() -> list[str] | None:
    """argv prefix running the system interpreter as ``nobody``, if this machine allows it."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"):
        return None
    try:
        import pwd

        pwd.getpwnam("nobody")
    except KeyError:
        return None
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3"]


def test_hostile_programs_are_contained_for_an_unprivileged_trainer(isolation):
    """The same suite with the trainer itself unprivileged (no drop to nobody: bwrap runs as the
    trainer's user in its own user namespace)."""
    prefix = _unprivileged_python()
    if prefix is None:
        pytest.skip("needs root (to become nobody), setpriv and /usr/bin/python3")
    script = os.path.join(os.path.dirname(__file__), "run_as_user.py")
    probe = subprocess.run([*prefix, "-c", f"open({script!r}).read(); open({SANDBOX_FILE!r}).read()"])
    if probe.returncode != 0:
        pytest.skip("user nobody cannot read this checkout")
    r = subprocess.run(
        [*prefix, script, SANDBOX_FILE], capture_output=True, text=True, timeout=300, cwd="/",
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["uid"] != 0 and "as uid" in report["setup"]
    _check_report(report["results"], report["escapes"])


def test_forged_and_garbage_output_is_scored_zero_and_never_raises(isolation):
    tests = [("f(1)", 2)]
    forged = [
        '{"status":"ok","values":5}',
        '{"status":"ok","values":["2","2"]}',  # more values than tests
        '{"status":"ok","values":[2]}',  # not a string
        '{"status":"fine","values":["2"]}',
        '{"status":"ok","values":["' + "[" * 5000 + '"]}',
        "[" * 100000,
        "null",
    ]
    jobs = [
        (
            "import sys, os\nn = sys.modules['__main__']._nonce\n"
            f"sys.stdout.write('\\n' + n + {line!r} + '\\n')\nsys.stdout.flush()\nos._exit(0)",
            tests,
        )
        for line in forged
    ]
    results = sandbox.run_python_batch(jobs, limits=LIMITS, max_workers=4)
    assert [r.passed for r in results] == [0] * len(forged)
    # all malformed but the deep value (well-formed, its value just is not 2)
    assert [r.status for r in results] == ["error"] * 4 + ["ok"] + ["error"] * 2
    # a correct program's own result line still counts
    assert sandbox.run_python("f = lambda x: x + 1", tests, limits=LIMITS).passed == 1


def test_sandbox_sees_only_its_scratch(isolation):
    src = "import os\nroot = sorted(os.listdir('/'))\nopen('a', 'w').write('hi')\nv = open('a').read()"
    r = sandbox.run_python(src, [("root", None), ("v", "hi"), ("os.getcwd()", "/scratch")], limits=LIMITS)
    assert r.passed == 2
    r = sandbox.run_python(
        "import os\nroot = sorted(os.listdir('/'))",
        [("'etc' in root", False), ("'home' in root or 'root' in root or 'work' in root", False)],
        limits=LIMITS,
    )
    assert r.passed == 2


def test_unavailable_sandbox_is_refused_unless_opted_in(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    monkeypatch.delenv(sandbox.UNSAFE_ENV, raising=False)
    sandbox._setup.cache_clear()
    try:
        with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap is not installed.*apt-get install"):
            sandbox.run_python("x = 1", [("x", 1)])
        with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap"):
            sandbox.run_python_batch([("x = 1", [("x", 1)])])
        # the explicit weak mode runs it (escapable: only rlimits and a scratch directory)
        assert sandbox.run_python("x = 1", [("x", 1)], unsafe_local_exec=True).passed == 1
        monkeypatch.setenv(sandbox.UNSAFE_ENV, "1")
        assert sandbox.run_python_batch([("x = 2", [("x", 2)])])[0].passed == 1
    finally:
        sandbox._setup.cache_clear()


def test_the_escape_checks_catch_escapes_of_the_unsafe_mode(monkeypatch):
    """The same checks on the opted-in weak mode (a plain subprocess) do see the escapes, so the 0
    above is a measurement, not a check that cannot fail."""
    import signal

    def unavailable():
        raise sandbox.SandboxUnavailable("pretend: no bubblewrap")

    monkeypatch.setattr(sandbox, "_setup", unavailable)

    arena = hostile.Arena(project_file=SANDBOX_FILE)
    wanted = {"write_absolute", "tcp_loopback", "setsid_grandchild", "read_etc_passwd"}
    try:
        jobs = [j for j in arena.jobs() if j[0] in wanted]
        out = sandbox.run_python_batch([(s, t) for _, s, t in jobs], limits=LIMITS, unsafe_local_exec=True)
        time.sleep(0.5)  # the grandchild's exec
        escapes = arena.escapes()
        leaked = {name: r.passed for (name, _, _), r in zip(jobs, out, strict=True)}
    finally:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if arena.sleep_token.encode() in f.read():
                        os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        arena.close()
    assert any("canary directory" in e for e in escapes), (escapes, out)
    assert any("tcp listener accepted" in e for e in escapes)
    assert any("still alive" in e for e in escapes)
    assert leaked["read_etc_passwd"] == 1
