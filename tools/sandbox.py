"""A sandbox for code tools: one fresh, locked-down process per call (Linux).

What a sandboxed call gets:

- its own network namespace with no interfaces up: no network at all, loopback
  included (``unshare --net``);
- its own PID namespace and ``/proc``: it sees only its own processes, so no other
  process's environment or memory;
- its own mount namespace in which ``/`` and ``/dev/shm`` are read-only and only a
  fresh temporary working directory is writable;
- an unprivileged user (``nobody``) with no supplementary groups and
  ``no_new_privs``, so setuid binaries cannot raise it back;
- a clean environment (``PATH``, ``HOME`` = the working directory, ``LANG``): no
  secret of the server leaks in;
- rlimits on CPU seconds, address space, process count, file size and open files,
  plus a wall-clock timeout after which the whole process group is killed.

What it does not give: it is not a VM or seccomp filter (the kernel's whole syscall
surface is reachable), files readable by ``nobody`` outside the working directory can
be read (secrets must not be world-readable), and CPU and memory are limited per
process, not as a cgroup for the call. When namespaces cannot be created (no
privileges, or not Linux) ``Sandbox.check`` fails and sandboxed tools refuse to run:
it fails closed.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from agents.errors import RayAgentsError

__all__ = ["Sandbox", "SandboxLimits", "SandboxResult", "SandboxUnavailable"]

NOBODY = 65534
# Mount setup inside the new namespaces, then run the program as nobody. The shell
# stays as the namespace's init, so a program killed by a signal exits 128 + signal.
_SETUP = (
    'mount --bind "$1" "$1" && mount --bind / / && mount -o remount,bind,ro / && '
    "mount -t tmpfs -o ro,size=0 tmpfs /dev/shm && "
    'cd "$1" && shift || exit 125; '
    f"setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups --no-new-privs "
    '-- "$@"'
)
_SETUP_FAILED = 125


class SandboxUnavailable(RayAgentsError):
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
    output_bytes: int = Field(64_000, ge=1024, description="Stdout/stderr kept, each.")


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

    def describe(self) -> str:
        """Why it failed, in words an agent can act on."""
        if self.timed_out:
            return "timed out (wall-clock limit) and was killed"
        code = self.exit_code
        if code == _SETUP_FAILED:
            return f"the sandbox could not be set up: {self.stderr.strip()[-300:]}"
        if code is not None and code > 128:
            name = signal.Signals(code - 128).name
            hint = {"SIGXCPU": " (CPU time limit)", "SIGXFSZ": " (file size limit)"}
            return f"killed by {name}{hint.get(name, '')}"
        return f"exited with code {code}"


class Sandbox:
    """Runs programs in fresh sandboxed processes."""

    def __init__(self, limits: SandboxLimits | None = None, python: str | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self.python = python or sys.executable

    @staticmethod
    def check() -> None:
        """Raise ``SandboxUnavailable`` unless namespaces and the tools for them exist."""
        if sys.platform != "linux":
            raise SandboxUnavailable("the sandbox needs Linux namespaces")
        missing = [tool for tool in ("unshare", "setpriv", "mount") if shutil.which(tool) is None]
        if missing:
            raise SandboxUnavailable(f"the sandbox needs {', '.join(missing)} (util-linux)")
        if os.geteuid() != 0:
            raise SandboxUnavailable("the sandbox needs root to create namespaces")

    async def run_python(self, code: str) -> SandboxResult:
        """Run ``code`` with the sandbox's Python (``-I``: no site dirs, no env vars)."""
        return await self.run([self.python, "-I", "-c", code])

    async def run(self, argv: list[str]) -> SandboxResult:
        """Run ``argv`` in the sandbox; its working directory is removed afterwards."""
        self.check()
        workdir = Path(tempfile.mkdtemp(prefix="ray-agents-sandbox-"))
        try:
            os.chown(workdir, NOBODY, NOBODY)
            command = [
                "unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc",
                "--kill-child", "--", "sh", "-c", _SETUP, "sandbox", str(workdir), *argv,
            ]  # fmt: skip
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={"PATH": "/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8"},
                preexec_fn=self._limit,
                start_new_session=True,
            )
            timed_out = False
            try:
                async with asyncio.timeout(self.limits.wall_s):
                    stdout, stderr = await process.communicate()
            except TimeoutError:
                timed_out = True
                _kill_group(process.pid)
                stdout, stderr = await process.communicate()
            return SandboxResult(
                stdout=self._text(stdout),
                stderr=self._text(stderr),
                exit_code=process.returncode,
                timed_out=timed_out,
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _limit(self) -> None:
        # Runs in the child before exec; the limits pass on to everything it starts.
        limits = self.limits
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        memory = limits.memory_mib * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
        size = limits.file_mib * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    def _text(self, data: bytes) -> str:
        cap = self.limits.output_bytes
        text = data[:cap].decode(errors="replace")
        return text + (f"\n[... {len(data) - cap} more bytes cut]" if len(data) > cap else "")


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
