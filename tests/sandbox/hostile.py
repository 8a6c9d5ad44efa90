"""Hostile programs for the code sandbox, and the checks that prove none of them escaped.

Standard library only: ``run_as_user.py`` imports this under the system interpreter as an
unprivileged user. Each case is a program template plus test cases ``(expression, value)`` whose
*pass* would mean an escape (a secret read, a forbidden call that succeeded); the side effects every
case may attempt (files created or removed outside scratch, connections to a listener on 127.0.0.1,
processes left alive, signals to the trainer) are checked by :class:`Arena` after the whole batch.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import tempfile
from typing import Any


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    source: str  # formatted with Arena.fields()
    leaks: tuple[tuple[str, Any], ...] = ()  # a passed test here = an escape


# fmt: off
CASES = (
    # --- the in-process audit hook of the old runner, switched off, then everything it guarded
    Case("audit_hook_state_cleared", """
import sys
m = sys.modules['__main__']
for name in ('_blocked_prefixes', '_blocked_modules', '_hook', '_inside'):
    if hasattr(m, name):
        setattr(m, name, () if name.startswith('_blocked') else (lambda *a: True))
import os, subprocess, socket
open('{canary}/hook_bypass', 'w').write('x')
subprocess.run(['/bin/sh', '-c', 'echo x > {canary}/hook_sh'])
socket.create_connection(('127.0.0.1', {port}), timeout=1)
"""),
    # --- files outside scratch
    Case("write_absolute", "open('{canary}/abs', 'w').write('x')"),
    Case("remove_victim", "import os\nos.remove('{canary}/victim')"),
    Case("rename_victim", "import os\nos.rename('{canary}/victim', '{canary}/renamed')"),
    Case("dir_fd_write_and_remove", """
import os
fd = os.open('{canary}', os.O_RDONLY | os.O_DIRECTORY)
try:
    os.close(os.open('dirfd_new', os.O_WRONLY | os.O_CREAT, dir_fd=fd))
finally:
    os.remove('victim', dir_fd=fd)
"""),
    Case("symlink_into_canary", """
import os
os.symlink('{canary}', 'link')
open('link/via_symlink', 'w').write('x')
"""),
    Case("hardlink_victim", """
import os
os.link('{canary}/victim', 'hard')
open('hard', 'w').write('overwritten')
"""),
    Case("proc_root_escape", """
import os
for p in os.listdir('/proc'):
    if p.isdigit():
        try:
            open('/proc/%s/root{canary}/via_proc_root' % p, 'w').write('x')
        except OSError:
            pass
open('/proc/1/cwd/../../..{canary}/via_proc_cwd', 'w').write('x')
"""),
    Case("write_host_tmp_and_shm", """
for d in ('/tmp', '/dev/shm', '/var/tmp'):
    try:
        open(d + '/jaxrl-hostile-{token}', 'w').write('x')
    except OSError:
        pass
"""),
    Case("write_usr", "open('/usr/jaxrl-hostile-{token}', 'w').write('x')"),
    Case("fill_scratch", "open('big', 'wb').write(b'x' * (64 * 1024 * 1024))"),
    # --- reading what it should not see
    Case("read_etc_passwd", "leak = open('/etc/passwd').read()", (("leak", "{etc_passwd}"),)),
    Case("read_project_source", "leak = open('{project_file}').read()", (("leak", "{project_text}"),)),
    Case("list_home", "import os\nleak = sorted(os.listdir('{home}'))", (("leak", "{home_listing}"),)),
    Case("proc_snooping", """
import os
pids = [p for p in os.listdir('/proc') if p.isdigit()]
seen = '{trainer_pid}' in pids
try:
    leak = open('/proc/{trainer_pid}/cmdline', 'rb').read().decode()
except OSError:
    leak = None
""", (("leak", "{trainer_cmdline}"), ("len(pids) > 10", True))),
    # --- network: a listener the test holds on 127.0.0.1 and on ::1, and an abstract unix socket
    Case("tcp_loopback", "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)"),
    Case("tcp_via_raw_socket", """
import _socket
s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
s.settimeout(1)
s.connect(('127.0.0.1', {port}))
"""),
    Case("unix_abstract", """
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect('\\0{unix_name}')
"""),
    Case("udp_send", """
import socket
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {port}))
"""),
    # --- processes
    Case("setsid_grandchild", """
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv('/bin/sleep', ['sleep', '{sleep_token}'])
    os._exit(0)
"""),
    Case("setsid_sleep_past_deadline", """
import os
os.setsid()
if os.fork() == 0:
    os.execv('/bin/sleep', ['sleep', '{sleep_token}'])
import time
time.sleep(60)
"""),
    Case("fork_bomb", """
import os
while True:
    try:
        if os.fork() == 0 and os.getpid() % 4 == 0:  # some children become marked sleepers
            os.execv('/bin/sleep', ['sleep', '{sleep_token}'])
    except OSError:
        pass
"""),
    Case("thread_bomb", """
import threading, time
while True:
    threading.Thread(target=time.sleep, args=(60,)).start()
"""),
    Case("signals_to_parent", """
import os, signal
for target in (os.getppid(), {trainer_pid}, -1, 1):
    try:
        os.kill(target, signal.SIGKILL)
    except OSError:
        pass
"""),
    Case("ptrace_attach", """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
rc = libc.ptrace(16, 1, 0, 0)  # PTRACE_ATTACH to the sandbox's init
""", (("rc", 0),)),
    Case("new_user_namespace", """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
rc = libc.unshare(0x10000000)  # CLONE_NEWUSER
""", (("rc", 0),)),
    Case("io_uring_setup", """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
rc = libc.syscall(425, 8, params)  # io_uring_setup
""", (("rc >= 0", True),)),
    Case("raise_rlimits", """
import resource
try:
    resource.setrlimit(resource.RLIMIT_CPU, (-1, -1))
    raised = True
except (ValueError, OSError):
    raised = False
""", (("raised", True),)),
    # --- resources
    Case("memory_bomb", "x = bytearray(8 * 1024 ** 3)"),
    Case("memory_doubling", "s = 'a'\nwhile True:\n    s += s"),
    Case("cpu_burn", "while True:\n    pass"),
    Case("infinite_stdout", "while True:\n    print('x' * 10000)"),
    Case("infinite_stderr", "import sys\nwhile True:\n    sys.stderr.write('y' * 10000)"),
    # --- lying to the parent
    Case("forged_result_wrong_type", """
import sys, os
nonce = sys.modules['__main__']._nonce
sys.stdout.write('\\n' + nonce + '{{"status":"ok","values":5}}\\n')
sys.stdout.flush()
os._exit(0)
"""),
    Case("forged_result_missing_keys", """
import sys, os
nonce = sys.modules['__main__']._nonce
sys.stdout.write('\\n' + nonce + '{{"status":"ok"}}\\n' + '\\n' + nonce + '[[[[[[[[\\n')
sys.stdout.flush()
os._exit(0)
"""),
    Case("forged_result_deep_value", """
import sys, os
nonce = sys.modules['__main__']._nonce
sys.stdout.write('\\n' + nonce + '{{"status":"ok","values":["' + '[' * 100000 + '"]}}\\n')
sys.stdout.flush()
os._exit(0)
"""),
    Case("closed_stdout", "import os\nos.close(1)\nos.close(2)"),
    Case("garbage_bytes", "import sys\nsys.stdout.buffer.write(bytes(range(256)) * 100)\nimport os\nos._exit(3)"),
)
# fmt: on


class Arena:
    """What the hostile programs attack: a canary directory with a victim file, listeners on 127.0.0.1,
    ::1 and an abstract unix socket, the trainer's pid; ``escapes()`` lists every breach seen after."""

    def __init__(self, project_file: str):
        self.token = secrets.token_hex(6)
        self.canary = tempfile.mkdtemp(prefix="jaxrl-canary-")
        os.chmod(self.canary, 0o777)  # writable by the trainer's user whoever that is
        with open(os.path.join(self.canary, "victim"), "w") as f:
            f.write("intact")
        os.chmod(os.path.join(self.canary, "victim"), 0o666)
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.tcp.setblocking(False)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.tcp.getsockname()[1]))
        self.udp.setblocking(False)
        self.unix_name = f"jaxrl-hostile-{self.token}"
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind("\0" + self.unix_name)
        self.unix.listen(8)
        self.unix.setblocking(False)
        self.sleep_token = f"{4000 + secrets.randbelow(1000)}.{secrets.randbelow(10**6):06d}"
        self.project_file = project_file
        self.trainer_pid = os.getpid()

    def fields(self) -> dict[str, Any]:
        home = os.path.expanduser("~")
        if not os.access(home, os.R_OK | os.X_OK):  # e.g. nobody's /nonexistent: the project instead
            home = os.path.dirname(self.project_file)
        with open(f"/proc/{self.trainer_pid}/cmdline", "rb") as f:
            cmdline = f.read().decode()
        with open(self.project_file) as f:
            project_text = f.read()
        with open("/etc/passwd") as f:
            passwd = f.read()
        return {
            "canary": self.canary,
            "port": self.tcp.getsockname()[1],
            "unix_name": self.unix_name,
            "token": self.token,
            "sleep_token": self.sleep_token,
            "trainer_pid": self.trainer_pid,
            "project_file": self.project_file,
            "home": home,
            "_values": {
                "{etc_passwd}": passwd,
                "{project_text}": project_text,
                "{home_listing}": sorted(os.listdir(home)),
                "{trainer_cmdline}": cmdline,
            },
        }

    def jobs(self) -> list[tuple[str, str, list[tuple[str, Any]]]]:
        """(case name, source, tests) for every case, formatted for this arena."""
        f = self.fields()
        values = f.pop("_values")
        out = []
        for case in CASES:
            tests = [(expr, values.get(v, v) if isinstance(v, str) else v) for expr, v in case.leaks]
            out.append((case.name, case.source.format(**f), tests or [("1", 1)]))
        return out

    def escapes(self) -> list[str]:
        found = []
        names = sorted(os.listdir(self.canary))
        if names != ["victim"]:
            found.append(f"canary directory now holds {names}")
        elif open(os.path.join(self.canary, "victim")).read() != "intact":
            found.append("victim file modified")
        for d in ("/tmp", "/dev/shm", "/var/tmp", "/usr"):
            if os.path.exists(f"{d}/jaxrl-hostile-{self.token}"):
                found.append(f"file created in {d}")
        for name, sock in (("tcp", self.tcp), ("unix", self.unix)):
            try:
                sock.accept()
                found.append(f"{name} listener accepted a connection")
            except BlockingIOError:
                pass
        try:
            self.udp.recv(16)
            found.append("udp datagram received")
        except BlockingIOError:
            pass
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if self.sleep_token.encode() in f.read():
                        found.append(f"process {pid} still alive after the call")
            except OSError:
                pass
        return found

    def close(self) -> None:
        import shutil

        for s in (self.tcp, self.udp, self.unix):
            s.close()
        shutil.rmtree(self.canary, ignore_errors=True)
        for d in ("/tmp", "/dev/shm", "/var/tmp", "/usr"):
            try:
                os.remove(f"{d}/jaxrl-hostile-{self.token}")
            except OSError:
                pass
