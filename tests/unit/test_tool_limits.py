"""Limits of the built-in tools against hostile input: calculator bombs and endless
web pages are refused or cut quickly, and never stall the executor."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from tools.base import ToolCallRequest, ToolResult
from tools.executor import ToolRunner
from tools.registry import ToolRegistry
from tools.spec import ToolSettings, ToolSpec

MAX_BYTES = 100_000


async def call(runner: ToolRunner, name: str, **arguments: object) -> ToolResult:
    return await runner.execute(ToolCallRequest(call_id="c", name=name, arguments=arguments))


# -- calculator ------------------------------------------------------------------------


@pytest.fixture
async def calculator() -> AsyncIterator[ToolRunner]:
    registry = ToolRegistry()
    registry.add_spec(ToolSpec(builtin="calculator"))
    registry.add_spec(ToolSpec(builtin="current_time"))
    runner = ToolRunner(registry)
    yield runner
    await runner.close()


@pytest.mark.parametrize(
    ("bomb", "why"),
    [
        ("((9**999)**999)**999", "3000 digits at most, and a result would have about 952335"),
        ("9**9**9**9", "3000 digits at most, and a result would have about 369693100"),
        ("2 ** 10**30", "3000 digits at most, and a result would have far more"),
        ("10**2000 * 10**2000", "3000 digits at most, and a result would have about 4000"),
        ("2**9965 + 2**9965", "3000 digits at most, and a result would have about 3001"),
        ("1e308 * 10", "too large for a floating-point number"),
        ("10**3000 / 3", "integer division result too large for a float"),
        ("-" * 999 + "1", "nested too deeply"),
    ],
)
async def test_calculator_bomb_is_refused_quickly(
    calculator: ToolRunner, bomb: str, why: str
) -> None:
    started = time.monotonic()
    result = await call(calculator, "calculator", expression=bomb)
    assert result.is_error and why in result.content, result.content
    assert time.monotonic() - started < 0.5


async def test_calculator_bomb_does_not_stall_the_executor(calculator: ToolRunner) -> None:
    started = time.monotonic()

    async def timed(name: str, **arguments: object) -> tuple[ToolResult, float]:
        return await call(calculator, name, **arguments), time.monotonic() - started

    # The bomb starts first. Its exponents pass the old check (at most 1000), and it
    # held the event loop for seconds, the second call with it.
    (bomb, _), (clock, answered_s) = await asyncio.gather(
        timed("calculator", expression="((9**999)**999)**8"), timed("current_time")
    )
    assert not clock.is_error and answered_s < 1.0
    assert bomb.error_type == "OverflowError" and "3000 digits at most" in bomb.content


async def test_the_largest_allowed_calculation_stays_fast(calculator: ToolRunner) -> None:
    expression = " + ".join(["9**3140"] * 99)  # 99 numbers of 2997 digits, 989 characters
    started = time.monotonic()
    result = await call(calculator, "calculator", expression=expression)
    assert result.content == str(99 * 9**3140)
    assert time.monotonic() - started < 0.5


# -- http_get --------------------------------------------------------------------------


@dataclass
class EndlessServer:
    """An HTTP server on 127.0.0.1 whose body never ends (generated as it is sent, up to
    1 GiB), counting what it managed to send before the client hung up."""

    port: int = 0
    sent: int = 0
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)
    chunk: bytes = b"x" * 2**16
    headers: bytes = b""
    request: bytes = b""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunk = self.chunk
        try:
            self.request = await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n"
                + self.headers
                + b"\r\n"
            )
            while self.sent < 2**30:
                writer.write(chunk)
                self.sent += len(chunk)
                await writer.drain()
        except ConnectionError:
            pass  # the client stopped reading
        finally:
            writer.close()
            self.hung_up.set()


@pytest.fixture
async def endless() -> AsyncIterator[EndlessServer]:
    server = EndlessServer()
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    server.port = listening.sockets[0].getsockname()[1]
    yield server
    listening.close()
    await listening.wait_closed()


async def test_http_get_endless_body_is_capped(endless: EndlessServer) -> None:
    registry = ToolRegistry()
    options = {"allowed_hosts": ["127.0.0.1"], "max_bytes": MAX_BYTES}
    settings = ToolSettings(timeout_s=10, max_output_chars=2 * MAX_BYTES)
    registry.add_spec(ToolSpec(builtin="http_get", options=options, settings=settings))
    runner = ToolRunner(registry)
    started = time.monotonic()
    result = await call(runner, "http_get", url=f"http://127.0.0.1:{endless.port}/")
    assert time.monotonic() - started < 5
    assert not result.is_error, result.content[:300]
    marker = f"\n[... more bytes cut: reading stopped at {MAX_BYTES} bytes]"
    assert result.content == "HTTP 200\n" + "x" * MAX_BYTES + marker
    async with asyncio.timeout(5):
        await endless.hung_up.wait()
    # What the kernel's socket buffers took in, not the 1 GiB it would have sent.
    assert endless.sent < 32 * 2**20


async def test_http_get_compressed_bomb_is_not_decompressed(endless: EndlessServer) -> None:
    # 64 KiB of gzip that would expand to 64 MiB, again and again, sent although the
    # tool asks for an uncompressed body.
    endless.chunk = gzip.compress(b"\0" * 2**26)[: 2**16]
    endless.headers = b"content-encoding: gzip\r\n"
    registry = ToolRegistry()
    options = {"allowed_hosts": ["127.0.0.1"], "max_bytes": MAX_BYTES}
    registry.add_spec(ToolSpec(builtin="http_get", options=options))
    result = await call(ToolRunner(registry), "http_get", url=f"http://127.0.0.1:{endless.port}/")
    assert b"accept-encoding: identity" in endless.request.lower()
    assert result.is_error and "'gzip'-compressed body" in result.content
