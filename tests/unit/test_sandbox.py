"""Escape attempts against the sandbox of the `python` tool, each blocked with a clear error.

These need Linux namespaces (root), as on CI; elsewhere the tool must refuse to run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tools.base import ToolCallRequest, ToolResult
from tools.executor import ToolRunner
from tools.registry import ToolRegistry
from tools.sandbox import Sandbox, SandboxLimits
from tools.spec import ToolSettings, ToolSpec

pytestmark = pytest.mark.root

# The wall-clock limit well above the CPU limit: on a loaded machine (`make test` runs
# this tier beside the Ray tiers) an infinite loop may get a fraction of a core, and it
# must still be the CPU limit that stops it.
LIMITS = SandboxLimits(wall_s=15, cpu_s=1, memory_mib=256, processes=8)


@pytest.fixture
async def runner() -> AsyncIterator[ToolRunner]:
    registry = ToolRegistry()
    spec = ToolSpec(builtin="python", settings=ToolSettings(timeout_s=10))
    registry.add_spec(spec, sandbox=Sandbox(LIMITS))
    runner = ToolRunner(registry)
    yield runner
    await runner.close()


async def run(runner: ToolRunner, code: str) -> ToolResult:
    return await runner.execute(
        ToolCallRequest(call_id="c", name="python", arguments={"code": code})
    )


async def test_code_runs_and_may_write_its_own_folder(runner: ToolRunner) -> None:
    result = await run(runner, "open('a.txt', 'w').write('hi'); print(open('a.txt').read(), 6 * 7)")
    assert not result.is_error and result.content.strip() == "hi 42"


@pytest.mark.parametrize(
    ("name", "code", "expected"),
    [
        (
            "socket to 127.0.0.1",
            "import socket; socket.create_connection(('127.0.0.1', 5432), timeout=2)",
            "Network is unreachable",
        ),
        (
            "write outside its folder",
            "open('/var/tmp/escaped.txt', 'w').write('x')",
            "Read-only file system",
        ),
        ("write to the host's files", "open('/etc/escaped.txt', 'w').write('x')", "Read-only"),
        ("fork bomb", "import os\nwhile True: os.fork()", "Resource temporarily unavailable"),
        ("allocate 2 GB", "b = bytearray(2 * 1024 ** 3)", "MemoryError"),
        ("infinite loop", "while True: pass", "CPU time limit"),
    ],
)
async def test_escape_attempts_are_blocked(
    runner: ToolRunner, name: str, code: str, expected: str
) -> None:
    result = await run(runner, code)
    assert result.is_error and result.error_type == "SandboxError", name
    assert expected in result.content, (name, result.content)
    for path in ("/var/tmp/escaped.txt", "/etc/escaped.txt"):
        assert not await asyncio.to_thread(Path(path).exists)


async def test_its_tmp_is_private_and_gone_afterwards(runner: ToolRunner) -> None:
    result = await run(runner, "open('/tmp/mine.txt', 'w').write('x'); print('ok')")
    assert result.content.strip() == "ok"
    assert not await asyncio.to_thread(Path("/tmp/mine.txt").exists)


async def test_a_cancelled_call_leaves_nothing_running(runner: ToolRunner) -> None:
    import subprocess

    from tools.sandbox import Sandbox

    sandbox = Sandbox(LIMITS)
    task = asyncio.create_task(sandbox.run_python("import time; time.sleep(1000)"))
    await asyncio.sleep(1)  # let it start
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    ps = await asyncio.to_thread(
        subprocess.run, ["pgrep", "-f", "time.sleep\\(1000\\)"], capture_output=True
    )
    assert ps.stdout == b""


def peak_rss_reset() -> None:
    """Start measuring the peak resident memory (VmHWM) of this process afresh."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        [line] = [line for line in f if line.startswith("VmHWM:")]
    return int(line.split()[1]) / 1024


FLOOD_BOUND_MIB = 32  # measured growth: under 1 MiB; 700 MiB before pipes were read capped


@pytest.mark.parametrize(
    ("name", "code", "cut", "timed_out"),
    [
        (
            "400 MiB on both pipes",
            "import sys\nchunk = b'x' * 2**20\n"
            "for _ in range(300): sys.stdout.buffer.write(chunk)\n"
            "for _ in range(100): sys.stderr.buffer.write(chunk)",
            (300 * 2**20 - 64_000, 100 * 2**20 - 64_000),
            False,
        ),
        (
            "printing until killed",
            "import sys\nwhile True: sys.stdout.write('x' * 10000)",
            None,
            True,
        ),
    ],
)
async def test_output_flood_is_capped_while_it_is_read(
    name: str, code: str, cut: tuple[int, int] | None, timed_out: bool
) -> None:
    sandbox = Sandbox(SandboxLimits(wall_s=2 if timed_out else 30, cpu_s=10, memory_mib=256))
    await asyncio.to_thread(peak_rss_reset)
    before = await asyncio.to_thread(peak_rss_mib)
    result = await sandbox.run_python(code)
    grown = await asyncio.to_thread(peak_rss_mib) - before
    assert result.timed_out is timed_out, (name, result)
    assert result.stdout.startswith("x" * 64_000), name
    assert len(result.stdout) < 64_100 and "more bytes cut]" in result.stdout, name
    if cut is not None:
        assert result.stdout.endswith(f"\n[... {cut[0]} more bytes cut]"), name
        assert result.stderr.endswith(f"\n[... {cut[1]} more bytes cut]"), name
    assert grown < FLOOD_BOUND_MIB, (name, f"peak RSS grew {grown:.0f} MiB")


async def test_the_server_environment_does_not_leak(
    runner: ToolRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_AGENTS_TEST_SECRET", "hunter2")
    code = (
        "import os\n"
        "print(os.environ.get('RAY_AGENTS_TEST_SECRET'))\n"
        "for pid in (p for p in os.listdir('/proc') if p.isdigit()):\n"
        "    try: print(open(f'/proc/{pid}/environ').read())\n"
        "    except OSError as e: print('denied', pid)\n"
    )
    result = await run(runner, code)
    assert "hunter2" not in result.content
    assert result.content.startswith("None")
