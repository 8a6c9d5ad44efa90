"""Automated graders for GRPO: a number grader for math answers (GSM8K ``#### x``, ``\\boxed{x}``, the
last number), exact and regex matching, format rewards (``<think>...</think><answer>...</answer>``),
and a sandboxed Python-code verifier.

Every grader maps a completion's text to a float reward on the host (between jitted steps); the text
graders never raise, whatever the completion.

The Python verifier runs generated code in a separate process, never in the trainer:

* ``python -I -S`` (isolated: no environment variables, no user or site packages), cwd a fresh
  scratch directory that is deleted afterwards;
* ``resource.setrlimit``: CPU seconds, address space (memory), file size, open files, and (when the
  trainer runs as root) the child drops to user ``nobody`` so the process-count limit applies too;
* an audit hook installed before the code runs refuses sockets, ``fork``/``exec``/``subprocess``/
  ``os.system``, ``ctypes``, signals to other processes, and writes outside the scratch directory; when
  run as root the child also gets an empty network namespace;
* a wall-clock timeout, after which the whole process group is killed (also done after every normal
  exit, so nothing it started survives);
* test cases are ``(expression, expected)`` pairs: the child prints ``repr(eval(expression))`` and the
  PARENT compares with ``expected``, which the child never sees, so code cannot fake a pass by
  printing "passed".
"""

from __future__ import annotations

import ast
import concurrent.futures
import dataclasses
import functools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any, NamedTuple

# ------------------------------------------------------------------------------------ NUMBERS
# Text graders never raise on a completion: whatever the model wrote, they return a score, or ``None``
# ("could not parse": no number where one was expected), which the task scores 0 and counts.
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_FRAC = re.compile(r"\\d?frac\{\s*(" + _NUMBER + r")\s*\}\{\s*(" + _NUMBER + r")\s*\}")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_HASHES = re.compile(r"####([^\n]*)")
_ANSWER_IS = re.compile(r"answer(?: is|:)([^\n]*)", re.IGNORECASE)


def _first_number(text: str) -> float | None:
    frac = _FRAC.search(text)
    if frac and not _NUMBER_RE.search(text[: frac.start()]):
        num, den = float(frac.group(1)), float(frac.group(2))
        return num / den if den != 0 else None
    m = _NUMBER_RE.search(text)
    return float(m.group()) if m else None


def extract_number(text: str) -> float | None:
    """The answer in ``text``, or ``None`` if it holds no number. Where the answer is marked, the first
    number of the last marked span: ``<answer>x</answer>``, ``\\boxed{x}`` (also ``\\frac{a}{b}``),
    ``#### x`` (GSM8K), ``answer: x`` / ``answer is x``; otherwise the last number of the text. Thousands
    separators (``1,234``) are removed first; units and currency around the number are ignored
    (``$1,234.50``, ``12 km``, ``50%``). Never raises: any string (or non-string) gives a float or None."""
    if not isinstance(text, str):
        return None
    text = _THOUSANDS.sub("", text)
    for pattern in (_ANSWER_TAG, _BOXED, _HASHES, _ANSWER_IS):
        spans = pattern.findall(text)
        if spans:
            value = _first_number(spans[-1])
            if value is not None:
                return value
    found = _NUMBER_RE.findall(text)
    return float(found[-1]) if found else None


def grade_number(text: str, target: float, *, tol: float = 1e-6) -> float | None:
    """1.0 if the answer in ``text`` (:func:`extract_number`) equals ``target`` within ``tol`` (absolute,
    or relative for large targets), 0.0 if it differs, ``None`` if ``text`` holds no number."""
    value = extract_number(text)
    if value is None:
        return None
    target = float(target)
    return float(abs(value - target) <= max(tol, tol * abs(target)))


def number_reward(text: str, target: float, *, exact: bool = False, tol: float = 1e-6) -> float:
    """1.0 if the answer in ``text`` equals ``target`` (within ``tol``), else 0.0.

    ``exact=True``: the whole text must be the canonical decimal of ``target`` (``"42"``, not ``"042"``,
    ``"42.0"`` or ``"x=42"``), as a strict format for small models.
    """
    if exact:
        canonical = str(int(target)) if float(target).is_integer() else repr(float(target))
        return float(text == canonical)
    return grade_number(text, target, tol=tol) or 0.0


# ------------------------------------------------------------------------------ TEXT MATCHING
def answer_span(text: str) -> str:
    """The content of the last ``<answer>...</answer>`` in ``text`` if there is one, else ``text``."""
    if not isinstance(text, str):
        return ""
    spans = _ANSWER_TAG.findall(text)
    return spans[-1] if spans else text


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def exact_match(text: str, target: str) -> float:
    """1.0 if the answer (:func:`answer_span`) equals ``target`` up to case and runs of whitespace."""
    return float(_normal(answer_span(text)) == _normal(str(target)))


def regex_match(text: str, pattern: str | re.Pattern) -> float:
    """1.0 if the regular expression ``pattern`` matches somewhere in the answer (:func:`answer_span`)."""
    return float(re.search(pattern, answer_span(text)) is not None)


def format_reward(text: str, pattern: str | re.Pattern) -> float:
    """1.0 if the whole completion matches the regular expression ``pattern``, else 0.0."""
    if not isinstance(text, str):
        return 0.0
    return float(re.fullmatch(pattern, text, flags=re.DOTALL) is not None)


_NO_TAG = r"(?:(?!</?think>|</?answer>).)*"
THINK_ANSWER = rf"\s*<think>{_NO_TAG}</think>\s*<answer>{_NO_TAG}</answer>\s*"


def think_answer_format(text: str) -> float:
    """1.0 if the completion is ``<think>...</think><answer>...</answer>`` (whitespace around the
    parts allowed, no nested or repeated tags), else 0.0 (DeepSeek-R1's format reward)."""
    return format_reward(text, THINK_ANSWER)


# ----------------------------------------------------------------------------- PYTHON SANDBOX
@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed run."""

    timeout_s: float = 3.0  # wall clock, then the process group is killed
    cpu_s: int = 2  # CPU seconds (RLIMIT_CPU; SIGXCPU/SIGKILL beyond)
    memory_mb: int = 256  # address space (RLIMIT_AS)
    file_mb: int = 1  # largest file the code may write (RLIMIT_FSIZE)
    max_processes: int = 16  # RLIMIT_NPROC (effective when the child runs as a non-root user)
    output_kb: int = 64  # stdout/stderr kept


class ExecResult(NamedTuple):
    """Outcome of one sandboxed run. status: "ok" (ran to the end), "error" (the code raised or
    exited early), "timeout" (wall clock), "killed" (a signal, e.g. the CPU limit)."""

    status: str
    passed: int  # test cases whose value equalled the expected one
    total: int
    stdout: str
    stderr: str

    @property
    def fraction(self) -> float:
        return self.passed / self.total if self.total else float(self.status == "ok")


# Runs in the child. Reads {"nonce", "source", "tests"} from stdin, installs the audit hook, runs the code.
_RUNNER = r"""
import json, os, sys
_req = json.loads(sys.stdin.read())
_nonce, _source, _tests = _req["nonce"], _req["source"], _req["tests"]
# limits first (set here, not in a preexec_fn: forking a multithreaded trainer must run no Python)
import resource
for _name, _v in _req["rlimits"].items():
    resource.setrlimit(getattr(resource, _name), (_v, _v))
if _req["drop_to"] is not None:  # root: empty network namespace, then become an unprivileged user
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).unshare(0x40000000)  # CLONE_NEWNET
    except Exception:
        pass
    os.setgroups([])
    os.setgid(_req["drop_to"])
    os.setuid(_req["drop_to"])
del _req
_root = os.path.realpath(os.getcwd())
_blocked_prefixes = ("socket.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
                     "os.forkpty", "os.system", "os.kill", "os.killpg", "signal.pthread_kill", "ctypes.",
                     "pty.", "resource.setrlimit", "sys.addaudithook", "os.putenv", "os.unsetenv",
                     "os.chmod", "os.chown", "os.link", "os.symlink", "os.truncate")
_blocked_modules = {"ctypes", "_ctypes", "multiprocessing", "_posixsubprocess", "socket", "_socket",
                    "ssl", "_ssl", "subprocess", "pty", "asyncio"}
_writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def _inside(path):
    try:
        p = os.path.realpath(os.fsdecode(path) if not isinstance(path, int) else "/proc/self/fd/%d" % path)
    except Exception:
        return False
    return p == _root or p.startswith(_root + os.sep)

def _hook(event, args):
    if event.startswith(_blocked_prefixes):
        raise PermissionError("sandbox: %s is not allowed" % event)
    if event == "import" and args[0].split(".")[0] in _blocked_modules:
        raise PermissionError("sandbox: import %s is not allowed" % args[0])
    if event == "open" and not isinstance(args[0], int):
        mode, flags = args[1], args[2]
        writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (flags or 0) & _writes
        if writing and not _inside(args[0]):
            raise PermissionError("sandbox: writing outside the scratch directory is not allowed")
    if event in ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "shutil.rmtree", "os.replace"):
        if not _inside(args[0]):
            raise PermissionError("sandbox: %s outside the scratch directory is not allowed" % event)

sys.addaudithook(_hook)
_out = sys.stdout
_ns = {"__name__": "__main__"}
_values = []
try:
    exec(compile(_source, "solution.py", "exec"), _ns)
    for _expr in _tests:
        try:
            _values.append(repr(eval(_expr, _ns)))
        except BaseException as _e:
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


@functools.cache
def _sandbox_user() -> tuple[str, int | None]:
    """(interpreter, uid to drop to). As root, drop to ``nobody`` if it can run an interpreter."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return sys.executable, None
    try:
        import pwd

        nobody = pwd.getpwnam("nobody").pw_uid
    except (ImportError, KeyError):
        return sys.executable, None
    candidates = (
        sys.executable,
        os.path.realpath(sys.executable),
        "/usr/bin/python3",
        "/usr/local/bin/python3",
    )
    for exe in dict.fromkeys(candidates):
        try:
            r = subprocess.run(
                [exe, "-I", "-S", "-c", "print(1)"],
                user=nobody,
                group=nobody,
                extra_groups=[],
                capture_output=True,
                timeout=10,
                cwd="/",
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if r.returncode == 0:
            return exe, nobody
    return sys.executable, None


def run_python(
    source: str,
    tests: Sequence[tuple[str, Any]] = (),
    *,
    limits: SandboxLimits = SandboxLimits(),
) -> ExecResult:
    """Run ``source`` in the sandbox, then evaluate each test expression; a test passes when its value
    equals the expected one (compared in the parent). Never raises for anything the code does."""
    interpreter, drop_to = _sandbox_user()
    nonce = secrets.token_hex(16)
    scratch = tempfile.mkdtemp(prefix="jaxrl-sandbox-")
    if drop_to is not None:
        os.chown(scratch, drop_to, -1)
    payload = json.dumps(
        {
            "nonce": nonce,
            "source": source,
            "tests": [t[0] for t in tests],
            "rlimits": _rlimits(limits),
            "drop_to": drop_to,
        }
    )
    # Output goes to files outside the scratch dir; RLIMIT_FSIZE bounds them (a print loop is killed).
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        proc = subprocess.Popen(
            [interpreter, "-I", "-S", "-c", _RUNNER],
            stdin=subprocess.PIPE,
            stdout=out_f,
            stderr=err_f,
            cwd=scratch,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            start_new_session=True,  # its own process group, killed as a whole
            close_fds=True,
        )
        timed_out = False
        try:
            proc.communicate(payload.encode(), timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            proc.wait()
        finally:
            _kill_group(proc.pid)
            shutil.rmtree(scratch, ignore_errors=True)
        stdout, stderr = (_read(f, limits.file_mb * 1024 * 1024) for f in (out_f, err_f))
    keep = limits.output_kb * 1024
    report = None
    for line in reversed(stdout.splitlines()):
        if line.startswith(nonce):
            try:
                report = json.loads(line[len(nonce) :])
            except ValueError:
                report = None
            stdout = stdout[: stdout.rfind("\n" + nonce)]
            break
    total = len(tests)
    if timed_out:
        return ExecResult("timeout", 0, total, stdout[:keep], stderr[:keep])
    if report is None:
        status = "killed" if proc.returncode < 0 else "error"
        return ExecResult(status, 0, total, stdout[:keep], stderr[:keep])
    passed = sum(_equal(v, t[1]) for v, t in zip(report["values"], tests, strict=False))
    return ExecResult(report["status"], passed, total, stdout[:keep], stderr[:keep])


def _read(f, limit: int) -> str:
    f.seek(0)
    return f.read(limit).decode(errors="replace")


def _equal(printed: str | None, expected: Any) -> bool:
    if printed is None:
        return False
    try:
        return ast.literal_eval(printed) == expected
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return False


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def code_reward(
    source: str, tests: Sequence[tuple[str, Any]], *, limits: SandboxLimits = SandboxLimits()
) -> float:
    """Fraction of ``tests`` passed by ``source`` in the sandbox (0.0 if it fails to run)."""
    return run_python(source, tests, limits=limits).fraction


def run_python_batch(
    jobs: Sequence[tuple[str, Sequence[tuple[str, Any]]]],
    *,
    limits: SandboxLimits = SandboxLimits(),
    max_workers: int | None = None,
) -> list[ExecResult]:
    """``run_python`` on many ``(source, tests)`` jobs, a few processes at a time; identical jobs run once."""
    keys = [json.dumps([s, [list(map(repr, t)) for t in tests]]) for s, tests in jobs]
    unique = dict(zip(keys, jobs, strict=True))
    workers = max_workers or max(1, min(4, os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = {k: pool.submit(run_python, s, t, limits=limits) for k, (s, t) in unique.items()}
        results = {k: f.result() for k, f in futures.items()}
    return [results[k] for k in keys]
