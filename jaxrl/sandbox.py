"""Run untrusted Python (model-written code) isolated by the operating system.

GRPO's code reward executes what the policy writes, and a policy trained by RL learns to exploit any gap
in its checker, so the child is treated as hostile. Every guarantee below is enforced by the kernel, not
by Python code inside the child (which the child could switch off):

* **bubblewrap** (``bwrap``, Debian/Ubuntu package ``bubblewrap``, the sandbox Flatpak uses: maintained,
  unprivileged, no daemon) puts the child in fresh user, PID, network, IPC, UTS and cgroup namespaces:
  every descendant dies with the call (even after ``setsid``), there is no network at all (loopback
  included), and it sees no other process.
* Its filesystem is a new root holding only read-only ``/usr`` (plus the ``/bin``, ``/lib`` links) and
  the interpreter's own prefix, a private ``/proc`` and ``/dev``, and a small tmpfs ``/scratch`` (its
  cwd, the only writable place, gone after the call). The project, home, ``/etc``, ``/tmp`` and run
  directories do not exist in it.
* A seccomp filter (compiled with libseccomp, package ``libseccomp2``) refuses ``ptrace``, other
  processes' memory, mounts, new namespaces, kernel keyrings, BPF, ``io_uring``, module loading,
  ``perf_event_open``, ``userfaultfd`` and sockets other than ``AF_UNIX``; bwrap sets ``no_new_privs``.
* rlimits (CPU seconds, address space, file size, open files, processes) are set before the code runs;
  a wall-clock timeout kills the namespace's init, which takes every process in it down.
* When the trainer runs as root, bwrap itself runs as ``nobody``.

The parent treats everything the child prints as untrusted: the result line is parsed under a strict
schema and anything else (forged, truncated, huge, missing) becomes a failure scored 0; output is read
up to a bound; ``run_python`` never raises because of the code it ran.

Where the isolation cannot be had (no ``bwrap``, user namespaces disabled, no libseccomp), running code
raises :class:`SandboxUnavailable` saying what is missing, unless the caller opts in to the weak mode with
``unsafe_local_exec=True`` (``GRPOConfig(unsafe_local_exec=True)``, ``--set unsafe_local_exec=true``,
which the GRPO trainer passes on through :func:`local_exec_allowed`) or ``JAXRL_UNSAFE_LOCAL_EXEC=1``: a
plain subprocess with rlimits, which hostile code can escape.
"""

from __future__ import annotations

import ast
import concurrent.futures
import contextlib
import contextvars
import ctypes
import ctypes.util
import dataclasses
import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any, NamedTuple

UNSAFE_ENV = "JAXRL_UNSAFE_LOCAL_EXEC"
#: what a SandboxUnavailable raised by run_python adds: how to opt in to the weak mode instead
OPT_IN_HINT = (
    "or, to run the code without isolation (hostile code can escape), opt in with "
    "GRPOConfig(unsafe_local_exec=True) (CLI: --set unsafe_local_exec=true), "
    f"run_python(..., unsafe_local_exec=True) or {UNSAFE_ENV}=1"
)
# set by local_exec_allowed(); read by run_python when its unsafe_local_exec argument is None
_UNSAFE_SCOPE: contextvars.ContextVar[bool] = contextvars.ContextVar("jaxrl_unsafe_local_exec", default=False)


class SandboxUnavailable(RuntimeError):
    """The machine cannot isolate untrusted code (the message says what is missing)."""


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed run."""

    timeout_s: float = 3.0  # wall clock, then every process of the call is killed
    cpu_s: int = 2  # CPU seconds (RLIMIT_CPU)
    memory_mb: int = 256  # address space per process (RLIMIT_AS)
    file_mb: int = 1  # largest file or output the code may write (RLIMIT_FSIZE)
    max_processes: int = 16  # processes and threads (RLIMIT_NPROC, counted inside the sandbox)
    output_kb: int = 64  # stdout/stderr kept
    scratch_mb: int = 16  # size of the writable tmpfs


class ExecResult(NamedTuple):
    """Outcome of one sandboxed run. status: "ok" (ran to the end), "error" (the code raised, exited
    early or printed no valid result), "timeout" (wall clock), "killed" (a signal, e.g. the CPU limit)."""

    status: str
    passed: int  # test cases whose value equalled the expected one
    total: int
    stdout: str
    stderr: str

    @property
    def fraction(self) -> float:
        return self.passed / self.total if self.total else float(self.status == "ok")


# Runs in the child: reads {"nonce", "source", "tests", "rlimits"} from stdin, sets the limits, runs the
# code, evaluates each test expression and prints one result line. It is a convenience, not a barrier:
# the code it runs may rewrite it, and the parent trusts nothing it prints.
_RUNNER = r"""
import json, resource, sys
_req = json.loads(sys.stdin.read())
for _name, _v in _req["rlimits"].items():
    resource.setrlimit(getattr(resource, _name), (_v, _v))
_nonce, _source, _tests = _req["nonce"], _req["source"], _req["tests"]
del _req
_out = sys.stdout
_ns = {"__name__": "__main__"}
_values = []
try:
    exec(compile(_source, "solution.py", "exec"), _ns)
    for _expr in _tests:
        try:
            _values.append(repr(eval(_expr, _ns)))
        except BaseException:
            _values.append(None)
    _status = "ok"
except BaseException as _e:
    _status = "error"
    print("%s: %s" % (type(_e).__name__, _e), file=sys.stderr)
_out.write("\n" + _nonce + json.dumps({"status": _status, "values": _values}) + "\n")
_out.flush()
"""


def _rlimits(limits: SandboxLimits) -> dict[str, int]:
    mb = 1024 * 1024
    return {
        "RLIMIT_CPU": limits.cpu_s,
        "RLIMIT_AS": limits.memory_mb * mb,
        "RLIMIT_FSIZE": limits.file_mb * mb,
        "RLIMIT_NOFILE": 64,
        "RLIMIT_CORE": 0,
        "RLIMIT_NPROC": limits.max_processes,
    }


# --------------------------------------------------------------------------------------- SECCOMP
_REFUSED_SYSCALLS = (
    # other processes and the kernel
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "bpf", "perf_event_open", "userfaultfd", "syslog", "acct", "quotactl", "lookup_dcookie",
    "keyctl", "add_key", "request_key", "iopl", "ioperm", "uselib", "personality", "vhangup",
    "swapon", "swapoff", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    # filesystems and namespaces
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "mount_setattr", "move_mount",
    "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "name_to_handle_at", "open_by_handle_at",
    "sethostname", "setdomainname",
    # io_uring bypasses per-syscall filtering
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)  # fmt: skip
_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_CMP_NE, _SCMP_CMP_EQ, _SCMP_CMP_MASKED_EQ = 1, 4, 7
_AF_UNIX, _CLONE_NEWUSER, _TIOCSTI = 1, 0x10000000, 0x5412


def _errno_action(errno: int) -> int:
    return 0x00050000 | (errno & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]


@functools.cache
def _seccomp_bpf() -> bytes:
    """The compiled seccomp program (classic BPF for this machine's architecture; other ABIs, such as
    32-bit calls on x86-64, are killed by libseccomp's default bad-arch action)."""
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as e:
        raise SandboxUnavailable(
            f"libseccomp is missing ({e}); install it (Debian: apt-get install libseccomp2)"
        ) from e
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp)
    ]  # fmt: skip
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(_SCMP_ACT_ALLOW)
    if not ctx:
        raise SandboxUnavailable("libseccomp could not create a filter")
    eperm, enosys = _errno_action(1), _errno_action(38)

    def rule(syscall: str, action: int, *cmps: tuple[int, int, int, int]) -> None:
        nr = lib.seccomp_syscall_resolve_name(syscall.encode())
        if nr < 0:  # not on this architecture
            return
        arr = (_ArgCmp * max(1, len(cmps)))(*[_ArgCmp(*c) for c in cmps])
        rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr)
        if rc < 0:
            raise SandboxUnavailable(f"libseccomp refused the rule for {syscall} ({rc})")

    try:
        for syscall in _REFUSED_SYSCALLS:
            rule(syscall, eperm)
        rule("socket", eperm, (0, _SCMP_CMP_NE, _AF_UNIX, 0))  # netns has no route anyway
        rule("clone", eperm, (0, _SCMP_CMP_MASKED_EQ, _CLONE_NEWUSER, _CLONE_NEWUSER))
        rule("clone3", enosys)  # flags sit behind a pointer; ENOSYS makes libc fall back to clone
        rule("ioctl", eperm, (1, _SCMP_CMP_MASKED_EQ, 0xFFFFFFFF, _TIOCSTI))
        fd = os.memfd_create("jaxrl-seccomp")
        try:
            if lib.seccomp_export_bpf(ctx, fd) < 0:
                raise SandboxUnavailable("libseccomp could not export the filter")
            os.lseek(fd, 0, os.SEEK_SET)
            return os.read(fd, 1 << 20)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)


# ------------------------------------------------------------------------------------ BUBBLEWRAP
@dataclasses.dataclass(frozen=True)
class _Setup:
    bwrap: str
    interpreter: str
    binds: tuple[str, ...]  # bwrap arguments building the read-only root
    run_as: int | None  # uid/gid to run bwrap as (root trainer -> nobody)


def _root_binds(interpreter: str) -> tuple[str, ...]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    prefix = os.path.dirname(os.path.dirname(interpreter))  # <prefix>/bin/python3.x
    if not prefix.startswith("/usr/") and prefix != "/usr":
        args += ["--ro-bind", prefix, prefix]
    return tuple(args)


def _bwrap_argv(setup: _Setup, limits: SandboxLimits, seccomp_fd: int, info_fd: int) -> list[str]:
    return [
        setup.bwrap,
        "--unshare-all",  # user, pid, net, ipc, uts, cgroup namespaces
        "--unshare-user",
        "--disable-userns",  # and no nested user namespace (no new capabilities inside)
        "--die-with-parent",
        "--new-session",  # no terminal injection (TIOCSTI)
        "--cap-drop", "ALL",
        *setup.binds,
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(limits.scratch_mb * 1024 * 1024), "--tmpfs", "/scratch",
        "--chdir", "/scratch",
        "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
        "--setenv", "HOME", "/scratch",
        "--seccomp", str(seccomp_fd),
        "--info-fd", str(info_fd),
        "--",
        setup.interpreter, "-I", "-S", "-c", _RUNNER,
    ]  # fmt: skip


def _probe(setup: _Setup) -> str | None:
    """Run a trivial program through the full sandbox; None if it worked, else what went wrong."""
    nonce = secrets.token_hex(8)
    payload = json.dumps({"nonce": nonce, "source": "x = 6 * 7", "tests": ["x"], "rlimits": {}}).encode()
    rc, timed_out, out, err = _run_bwrap(setup, payload, SandboxLimits(timeout_s=30.0))
    if _score(nonce, [("x", 42)], rc, timed_out, out, err, SandboxLimits()).passed == 1:
        return None
    return f"exit {rc}{' (timed out)' if timed_out else ''}: {err.strip()[-300:]}"


def _user_kwargs(uid: int | None) -> dict[str, Any]:
    return {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}


def _seccomp_pipe() -> int:
    """A pipe's read end holding the compiled filter (bwrap reads it to the end)."""
    r, w = os.pipe()
    try:
        os.write(w, _seccomp_bpf())  # a few hundred bytes, well under the pipe buffer
    finally:
        os.close(w)
    return r


@functools.cache
def _setup() -> _Setup:
    """Find bwrap, an interpreter the sandbox can run, and check the whole thing once (cached)."""
    if sys.platform != "linux":
        raise SandboxUnavailable(f"the code sandbox needs Linux namespaces; this is {sys.platform}")
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(
            "bubblewrap is not installed: install it (Debian/Ubuntu: apt-get install bubblewrap)"
        )
    _seccomp_bpf()
    run_as = None
    if os.geteuid() == 0:
        import pwd

        try:
            run_as = pwd.getpwnam("nobody").pw_uid
        except KeyError:
            raise SandboxUnavailable(
                "running as root, and there is no user 'nobody' to run the sandbox as"
            ) from None
    candidates = [os.path.realpath(sys.executable), "/usr/bin/python3", "/usr/local/bin/python3"]
    errors = []
    for exe in dict.fromkeys(os.path.realpath(c) for c in candidates if os.path.exists(c)):
        setup = _Setup(bwrap, exe, _root_binds(exe), run_as)
        try:
            problem = _probe(setup)
        except (OSError, subprocess.SubprocessError) as e:
            problem = str(e)
        if problem is None:
            return setup
        errors.append(f"{exe}: {problem}")
    who = "as user nobody" if run_as is not None else "as this user"
    raise SandboxUnavailable(
        f"bubblewrap could not start a sandbox {who} (unprivileged user namespaces may be disabled: "
        "sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces, or an AppArmor "
        "restriction); tried: " + "; ".join(errors)
    )


def check_available() -> str:
    """Describe the sandbox this machine provides, or raise :class:`SandboxUnavailable`."""
    s = _setup()
    who = "as nobody" if s.run_as is not None else f"as uid {os.geteuid()}"
    return f"bubblewrap ({s.bwrap}) {who}, interpreter {s.interpreter}, seccomp filter"


def unsafe_local_exec_from_env() -> bool:
    return os.environ.get(UNSAFE_ENV, "") not in ("", "0")


def unsafe_local_exec_default() -> bool:
    """The weak mode is opted in to by ``$JAXRL_UNSAFE_LOCAL_EXEC`` or an enclosing
    :func:`local_exec_allowed(True) <local_exec_allowed>`."""
    return _UNSAFE_SCOPE.get() or unsafe_local_exec_from_env()


@contextlib.contextmanager
def local_exec_allowed(allowed: bool):
    """Within the block, ``run_python`` calls that do not say otherwise may fall back to the weak mode
    when the sandbox is unavailable (``allowed=False`` changes nothing). How a config's
    ``unsafe_local_exec`` reaches the code reward of a task that does not know the config."""
    token = _UNSAFE_SCOPE.set(True) if allowed else None
    try:
        yield
    finally:
        if token is not None:
            _UNSAFE_SCOPE.reset(token)


def require(unsafe_local_exec: bool | None = None) -> None:
    """Raise :class:`SandboxUnavailable` (saying what is missing and how to opt in to the weak mode) if
    untrusted code could not run here: no sandbox and no opt-in. For checks before long work."""
    if unsafe_local_exec is None:
        unsafe_local_exec = unsafe_local_exec_default()
    if not unsafe_local_exec:
        _setup_or_hint()


def _setup_or_hint() -> _Setup:
    try:
        return _setup()
    except SandboxUnavailable as e:
        raise SandboxUnavailable(f"{e}; {OPT_IN_HINT}") from None


# ----------------------------------------------------------------------------------------- RUN
def run_python(
    source: str,
    tests: Sequence[tuple[str, Any]] = (),
    *,
    limits: SandboxLimits = SandboxLimits(),
    unsafe_local_exec: bool | None = None,
) -> ExecResult:
    """Run ``source`` in the sandbox, then evaluate each test expression; a test passes when its value
    equals the expected one (compared in the parent: the child never sees it).

    Never raises for anything the code does. Raises :class:`SandboxUnavailable` when the machine cannot
    isolate it, unless ``unsafe_local_exec`` (default: :func:`unsafe_local_exec_default`) is true.
    """
    if unsafe_local_exec is None:
        unsafe_local_exec = unsafe_local_exec_default()
    try:
        setup = _setup_or_hint()
    except SandboxUnavailable:
        if not unsafe_local_exec:
            raise
        setup = None
    nonce = secrets.token_hex(16)
    payload = json.dumps(
        {"nonce": nonce, "source": source, "tests": [t[0] for t in tests], "rlimits": _rlimits(limits)}
    ).encode()
    if setup is None:
        returncode, timed_out, stdout, stderr = _run_unsafe(payload, limits)
    else:
        returncode, timed_out, stdout, stderr = _run_bwrap(setup, payload, limits)
    return _score(nonce, tests, returncode, timed_out, stdout, stderr, limits)


def _run_bwrap(setup: _Setup, payload: bytes, limits: SandboxLimits) -> tuple[int, bool, str, str]:
    seccomp_r = _seccomp_pipe()
    info_r, info_w = os.pipe()
    # Output goes to unnamed files; RLIMIT_FSIZE bounds them and the parent reads a bounded prefix.
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        try:
            proc = subprocess.Popen(
                _bwrap_argv(setup, limits, seccomp_r, info_w),
                stdin=subprocess.PIPE, stdout=out_f, stderr=err_f,
                pass_fds=(seccomp_r, info_w), start_new_session=True, cwd="/",
                **_user_kwargs(setup.run_as),
            )  # fmt: skip
        finally:
            os.close(seccomp_r)
            os.close(info_w)
        timed_out = False
        try:
            proc.communicate(payload, timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        except OSError:  # e.g. the child closed stdin early: wait for it within the deadline
            timed_out = _wait(proc, limits.timeout_s)
        finally:
            if proc.returncode is None:
                # Killing the namespace's init takes every process in it down before bwrap can exit.
                _kill_sandbox_init(info_r)
                _kill_group(proc.pid)
                proc.wait()
            os.close(info_r)
        cap = limits.file_mb * 1024 * 1024
        return proc.returncode, timed_out, _read(out_f, cap), _read(err_f, cap)


def _wait(proc: subprocess.Popen, timeout: float) -> bool:
    try:
        proc.wait(timeout)
        return False
    except subprocess.TimeoutExpired:
        return True


def _kill_sandbox_init(info_fd: int) -> None:
    """SIGKILL the sandbox's PID-namespace init (from bwrap's ``--info-fd`` report), if known."""
    try:
        os.set_blocking(info_fd, False)
        info = json.loads(os.read(info_fd, 4096) or b"{}")
        pid = int(info.get("child-pid", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return
    if pid > 1:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _run_unsafe(payload: bytes, limits: SandboxLimits) -> tuple[int, bool, str, str]:
    """The opted-in weak mode: a plain subprocess with rlimits in a scratch directory (escapable)."""
    scratch = tempfile.mkdtemp(prefix="jaxrl-unsafe-exec-")
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _RUNNER],
            stdin=subprocess.PIPE, stdout=out_f, stderr=err_f, cwd=scratch,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, start_new_session=True, close_fds=True,
        )  # fmt: skip
        timed_out = False
        try:
            proc.communicate(payload, timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        except OSError:
            timed_out = _wait(proc, limits.timeout_s)
        finally:
            _kill_group(proc.pid)
            if proc.returncode is None:
                proc.wait()
            shutil.rmtree(scratch, ignore_errors=True)
        cap = limits.file_mb * 1024 * 1024
        return proc.returncode, timed_out, _read(out_f, cap), _read(err_f, cap)


def _score(
    nonce: str,
    tests: Sequence[tuple[str, Any]],
    returncode: int,
    timed_out: bool,
    stdout: str,
    stderr: str,
    limits: SandboxLimits,
) -> ExecResult:
    """Map the child's (untrusted) output to a result: a valid result line or a failure scored 0."""
    keep = limits.output_kb * 1024
    total = len(tests)
    report = None
    at = stdout.rfind("\n" + nonce)
    if at >= 0:
        line = stdout[at + 1 + len(nonce) :].split("\n", 1)[0]
        report = _parse_report(line, total)
        stdout = stdout[:at]
    stdout, stderr = stdout[:keep], stderr[:keep]
    if timed_out:
        return ExecResult("timeout", 0, total, stdout, stderr)
    if report is None:
        killed = returncode < 0 or returncode > 128  # bwrap reports a signal as 128 + n
        return ExecResult("killed" if killed else "error", 0, total, stdout, stderr)
    status, values = report
    passed = sum(_equal(v, t[1]) for v, t in zip(values, tests, strict=True)) if status == "ok" else 0
    return ExecResult(status, passed, total, stdout, stderr)


def _parse_report(line: str, total: int) -> tuple[str, list[str | None]] | None:
    try:
        report = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(report, dict) or report.get("status") not in ("ok", "error"):
        return None
    values = report.get("values")
    if not isinstance(values, list) or any(v is not None and not isinstance(v, str) for v in values):
        return None
    if report["status"] == "ok" and len(values) != total:
        return None
    return report["status"], values


def _read(f, limit: int) -> str:
    f.seek(0)
    return f.read(limit).decode(errors="replace")


def _equal(printed: str | None, expected: Any) -> bool:
    if printed is None or len(printed) > 100_000:
        return False
    try:
        return bool(ast.literal_eval(printed) == expected)
    except Exception:  # malformed, too deep, or an == that raises: not a pass
        return False


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_python_batch(
    jobs: Sequence[tuple[str, Sequence[tuple[str, Any]]]],
    *,
    limits: SandboxLimits = SandboxLimits(),
    max_workers: int | None = None,
    unsafe_local_exec: bool | None = None,
) -> list[ExecResult]:
    """``run_python`` on many ``(source, tests)`` jobs, a few at a time; identical jobs run once."""
    if not jobs:
        return []
    if unsafe_local_exec is None:  # resolved here: the worker threads do not see this context
        unsafe_local_exec = unsafe_local_exec_default()
    if not unsafe_local_exec:
        _setup_or_hint()  # raise SandboxUnavailable once, here, not from every worker
    keys = [json.dumps([s, [list(map(repr, t)) for t in tests]]) for s, tests in jobs]
    unique = dict(zip(keys, jobs, strict=True))
    workers = max_workers or max(1, min(4, os.cpu_count() or 1))
    kw = {"limits": limits, "unsafe_local_exec": unsafe_local_exec}
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = {k: pool.submit(run_python, s, t, **kw) for k, (s, t) in unique.items()}
        results = {k: f.result() for k, f in futures.items()}
    return [results[k] for k in keys]
