"""A sandbox for code tools: one fresh, locked-down process per call (Linux).

What a sandboxed call gets:

- its own network namespace with no interfaces up: no network at all, loopback
  included (``unshare --net``);
- its own PID namespace and ``/proc``: it sees only its own processes, so no other
  process's environment or memory;
- its own mount namespace in which ``/`` is read-only, ``/run``, ``/var/tmp``,
  ``/dev/shm`` and ``/dev/mqueue`` are empty and read-only (no host sockets or shared
  files), and only a fresh in-memory ``/tmp`` (``file_mib`` large) is writable;
- an unprivileged uid of its own (a fresh one per call, from 200000 up), no
  supplementary groups and ``no_new_privs``, so setuid binaries cannot raise it back
  and concurrent calls cannot touch each other;
- a clean environment (``PATH``, ``HOME`` = the working directory, ``LANG``): no
  secret of the server leaks in;
- rlimits on CPU seconds, address space, process count, file size and open files,
  plus a wall-clock timeout after which the whole process group is killed.
- its stdout and stderr read while it runs, the first ``output_bytes`` of each kept
  and the rest counted and dropped, so a flood of output costs the server nothing.

What it does not give: it is not a VM or seccomp filter (the kernel's whole syscall
surface is reachable), world-readable files outside those mounts can be read (secrets
must not be world-readable), and CPU and memory are limited per process, not as a
cgroup for the call. When namespaces cannot be created (no
privileges, or not Linux) ``Sandbox.check`` fails and sandboxed tools refuse to run:
it fails closed.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import sys
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from agents.errors import RayAgentsError
from tools._limits import CappedBytes

__all__ = ["Sandbox", "SandboxLimits", "SandboxResult", "SandboxUnavailableError"]

# Each call runs as a uid of its own (no passwd entry needed), so calls cannot see
# each other's files and the per-uid process limit is per call.
_UID_BASE = 200_000
_UID_SPAN = 100_000
_uids = itertools.count()
# Mount setup inside the new namespaces: the root read-only, fresh empty tmpfs over
# every place that is writable on a usual host, the working directory on its own
# tmpfs; then run the program as the call's uid. The shell stays as the namespace's
# init, so a program killed by a signal exits 128 + signal.
_SETUP = (
    "set -e; mount --bind / /; mount -o remount,bind,ro /; "
    'for d in /run /var/tmp /dev/shm /dev/mqueue; do [ -d "$d" ] && '
    'mount -t tmpfs -o ro,size=0 tmpfs "$d"; done; '
    'mount -t tmpfs -o "size=$2m,mode=1777" tmpfs /tmp; '
    'mkdir /tmp/work; chown "$1:$1" /tmp/work; cd /tmp/work; '
    "uid=$1; shift 2; set +e; "
    'setpriv --reuid="$uid" --regid="$uid" --clear-groups --no-new-privs -- "$@"'
)


_SIGNALS = {int(s) for s in signal.Signals}
# Replaced by empty (or fresh) file systems inside the sandbox.
_MASKED = ("/tmp/", "/run/", "/var/tmp/", "/dev/shm/", "/dev/mqueue/")


class SandboxUnavailableError(RayAgentsError):
    """The machine cannot provide the sandbox; sandboxed tools refuse to run."""

    code = "sandbox_unavailable"


class SandboxLimits(BaseModel):
    """Limits of one sandboxed call."""

    model_config = ConfigDict(extra="forbid")

    wall_s: float = Field(10.0, gt=0, description="Wall-clock seconds before the call is killed.")
    cpu_s: int = Field(5, ge=1, description="CPU seconds (RLIMIT_CPU).")
    memory_mib: int = Field(512, ge=64, description="Address space in MiB (RLIMIT_AS).")
    processes: int = Field(16, ge=1, description="Processes of the sandbox user (RLIMIT_NPROC).")
    file_mib: int = Field(16, ge=1, description="Largest file it may write, in MiB.")
    output_bytes: int = Field(
        64_000,
        ge=1024,
        description=(
            "Bytes of stdout and of stderr kept, each, read while the program runs; the "
            "rest is counted and dropped, and a marker says how much was cut."
        ),
    )


@dataclass(frozen=True)
class SandboxResult:
    """How a sandboxed call ended."""

    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool

    @property
    def ok(self) -> bool:
        """Exited 0 within its time."""
        return self.exit_code == 0 and not self.timed_out

    @property
    def killed(self) -> bool:
        """Killed: past its wall-clock time, or by a signal (a limit, or the kernel)."""
        code = self.exit_code
        return self.timed_out or (code is not None and code > 128 and code - 128 in _SIGNALS)

    def describe(self) -> str:
        """Why it failed, in words an agent can act on."""
        if self.timed_out:
            return "timed out (wall-clock limit) and was killed"
        code = self.exit_code
        if code is not None and code > 128 and code - 128 in _SIGNALS:
            name = signal.Signals(code - 128).name
            hint = {"SIGXCPU": " (CPU time limit)", "SIGXFSZ": " (file size limit)"}
            return f"killed by {name}{hint.get(name, '')}"
        return f"exited with code {code}"


class Sandbox:
    """Runs programs in fresh sandboxed processes."""

    def __init__(self, limits: SandboxLimits | None = None, python: str | None = None) -> None:
        self.limits = limits or SandboxLimits()
        # The base interpreter, not a virtualenv's link to it: with -I it needs no
        # site-packages, and a venv under /tmp would be hidden by the sandbox's /tmp.
        self.python = python or os.path.realpath(sys.executable)

    @staticmethod
    def check() -> None:
        """Raise ``SandboxUnavailableError`` unless namespaces and the tools for them exist."""
        if sys.platform != "linux":
            raise SandboxUnavailableError("the sandbox needs Linux namespaces")
        needed = ("prlimit", "unshare", "setpriv", "mount")
        missing = [tool for tool in needed if shutil.which(tool) is None]
        if missing:
            raise SandboxUnavailableError(f"the sandbox needs {', '.join(missing)} (util-linux)")
        if os.geteuid() != 0:
            raise SandboxUnavailableError("the sandbox needs root to create namespaces")

    async def run_python(self, code: str) -> SandboxResult:
        """Run ``code`` with the sandbox's Python (``-I``: no site dirs, no env vars)."""
        return await self.run([self.python, "-I", "-c", code])

    async def run(self, argv: list[str]) -> SandboxResult:
        """Run ``argv`` in the sandbox; everything it wrote is gone afterwards."""
        self.check()
        if argv and argv[0].startswith(_MASKED):
            raise SandboxUnavailableError(
                f"{argv[0]} lives under a directory the sandbox replaces "
                f"({', '.join(_MASKED)}); install the interpreter elsewhere"
            )
        limits = self.limits
        uid = _UID_BASE + next(_uids) % _UID_SPAN
        memory = limits.memory_mib * 2**20
        size = limits.file_mib * 2**20
        # prlimit sets the limits for everything it starts (no preexec_fn, which is
        # unsafe in a threaded server).
        command = [
            "prlimit", f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}", f"--as={memory}",
            f"--nproc={limits.processes}", f"--fsize={size}", "--nofile=64", "--",
            "unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc", "--kill-child",
            "--", "sh", "-c", _SETUP, "sandbox", str(uid), str(limits.file_mib), *argv,
        ]  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "HOME": "/tmp/work", "LANG": "C.UTF-8"},
            start_new_session=True,
        )
        # Both pipes are read while the program runs, keeping the first
        # ``output_bytes`` of each and dropping the rest: a program that prints for its
        # whole wall time costs the executor a few pipe buffers, not gigabytes, and
        # never blocks on a full pipe.
        stdout, stderr = CappedBytes(limits.output_bytes), CappedBytes(limits.output_bytes)
        assert process.stdout is not None and process.stderr is not None
        finished = asyncio.gather(
            _drain(process.stdout, stdout), _drain(process.stderr, stderr), process.wait()
        )
        timed_out = False
        try:
            async with asyncio.timeout(limits.wall_s):
                await asyncio.shield(finished)
        except TimeoutError:
            timed_out = True
            _kill_group(process.pid)
            await finished
        except BaseException:
            # Cancelled from outside (the tool's timeout, the turn's deadline): the
            # program must not outlive the call.
            _kill_group(process.pid)
            await finished
            raise
        return SandboxResult(
            stdout=stdout.text(),
            stderr=stderr.text(),
            exit_code=process.returncode,
            timed_out=timed_out,
        )


async def _drain(stream: asyncio.StreamReader, into: CappedBytes) -> None:
    while chunk := await stream.read(2**16):
        into.feed(chunk)


# The name from before every exception name ended in "Error" (not exported).
SandboxUnavailable = SandboxUnavailableError


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
