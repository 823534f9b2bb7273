"""Stream helpers for values crossing DeploymentHandles."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

__all__ = ["batched", "closing", "with_heartbeats"]

T = TypeVar("T")
_END = object()


async def batched(stream: AsyncIterator[T]) -> AsyncIterator[list[T]]:
    """Group a stream's items into lists of whatever is ready, adding no delay.

    Each streamed item costs a Serve handle about a millisecond of its own, so a hop
    that sends lists pays once per burst: while the consumer is busy with one list,
    the items produced meanwhile gather into the next. An error of the stream is
    raised after the items before it were yielded.
    """
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for item in stream:
                queue.put_nowait(item)
        except Exception as exc:  # handed to the consumer, raised there
            queue.put_nowait(_Failure(exc))
        queue.put_nowait(_END)

    task = asyncio.create_task(pump())
    try:
        while True:
            items = [await queue.get()]
            while not queue.empty():
                items.append(queue.get_nowait())
            batch: list[T] = []
            for item in items:
                if item is _END:
                    if batch:
                        yield batch
                    return
                if isinstance(item, _Failure):
                    if batch:
                        yield batch
                    raise item.error
                batch.append(item)  # type: ignore[arg-type]
            yield batch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


class _Failure:
    def __init__(self, error: Exception) -> None:
        self.error = error


@contextlib.asynccontextmanager
async def closing(stream: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Close ``stream`` (an async generator) on leaving, even when the consumer is
    closed early: its ``finally`` blocks then run now, not at garbage collection."""
    try:
        yield stream
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


async def with_heartbeats(stream: AsyncIterator[T], interval_s: float) -> AsyncIterator[T | None]:
    """The stream's items, and ``None`` whenever ``interval_s`` passes without one.

    Closing this generator closes ``stream`` (cancelling the item it waits for).
    """
    pending: asyncio.Future[T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(stream))
            done, _ = await asyncio.wait({pending}, timeout=interval_s)
            if not done:
                yield None
                continue
            item, pending = pending, None
            try:
                value = item.result()
            except StopAsyncIteration:
                return
            yield value
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
