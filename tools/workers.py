"""Worker processes for Python tools, so a tool can never take the executor down."""

from __future__ import annotations

import asyncio
import signal
import struct
import sys
from collections.abc import Callable
from typing import Any

import cloudpickle

from agents.errors import RayAgentsError
from tools._worker import frame

__all__ = ["ToolCrashedError", "ToolFailedError", "ToolTimeoutError", "WorkerPool"]


class ToolFailedError(RayAgentsError):
    """The tool raised; ``error_type`` is its exception's class name. ``killed``: its
    process was killed for a limit (a sandbox's time or CPU)."""

    code = "tool_error"

    def __init__(self, message: str, error_type: str = "Exception", killed: bool = False) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.killed = killed

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return (type(self), (self.message, self.error_type, self.killed))


class ToolCrashedError(RayAgentsError):
    """The tool's process died (a segfault, ``os._exit``, out of memory)."""

    code = "tool_crashed"


class ToolTimeoutError(RayAgentsError):
    """The tool ran past its timeout and was killed."""

    code = "tool_timeout"


class _Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.stdin = process.stdin
        self.stdout = process.stdout

    async def call(self, blob: bytes, arguments: dict[str, Any]) -> Any:
        self.stdin.write(frame((blob, arguments)))
        await self.stdin.drain()
        header = await self.stdout.readexactly(4)
        (size,) = struct.unpack(">I", header)
        return cloudpickle.loads(await self.stdout.readexactly(size))

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)


class WorkerPool:
    """``size`` long-lived worker processes; a dead or timed-out one is replaced.

    The pool is a queue of slots: an idle worker, or an empty slot (None) that the
    next caller fills by starting a worker.
    """

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._slots: asyncio.Queue[_Worker | None] | None = None

    async def call(
        self, fn: Callable[..., Any], arguments: dict[str, Any], *, timeout_s: float
    ) -> Any:
        """Run ``fn(**arguments)`` in a worker; raises ToolFailedError, ToolCrashedError
        or ToolTimeoutError.

        The timeout covers waiting for a free worker too.
        """
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        try:
            async with asyncio.timeout_at(until):
                worker = await self._acquire()
        except TimeoutError as exc:
            raise ToolTimeoutError(f"no tool worker was free within {timeout_s:g} s") from exc
        healthy = False
        try:
            async with asyncio.timeout_at(until):
                answer = await worker.call(cloudpickle.dumps(fn), arguments)
            healthy = True
        except TimeoutError as exc:
            raise ToolTimeoutError(f"the tool ran past its {timeout_s:g} s timeout") from exc
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            code = await worker.process.wait()
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            raise ToolCrashedError(f"the tool's process died ({how})") from exc
        finally:
            self._release(worker, healthy)
        if answer[0] == "ok":
            return answer[1]
        raise ToolFailedError(f"{answer[1]}: {answer[2]}", error_type=answer[1])

    async def close(self) -> None:
        """Stop every idle worker (busy ones stop when their call ends)."""
        slots, self._slots = self._slots, None
        while slots is not None and not slots.empty():
            worker = slots.get_nowait()
            if worker is not None:
                worker.kill()
                await worker.process.wait()

    async def _acquire(self) -> _Worker:
        if self._slots is None:
            self._slots = asyncio.Queue()
            for _ in range(self.size):
                self._slots.put_nowait(None)
        worker = await self._slots.get()
        if worker is not None and worker.process.returncode is None:
            return worker
        try:
            return await self._spawn()
        except BaseException:
            self._slots.put_nowait(None)
            raise

    def _release(self, worker: _Worker, healthy: bool) -> None:
        if self._slots is None:  # closed meanwhile
            worker.kill()
            return
        if healthy:
            self._slots.put_nowait(worker)
        else:
            worker.kill()  # it may be stuck in the tool: never reuse it
            self._slots.put_nowait(None)

    @staticmethod
    async def _spawn() -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tools._worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return _Worker(process)


# The names from before every exception name ended in "Error" (not exported).
ToolFailed = ToolFailedError
ToolCrashed = ToolCrashedError
ToolTimeout = ToolTimeoutError
