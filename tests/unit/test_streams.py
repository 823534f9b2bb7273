"""``batched``: lists of what is ready, nothing lost, errors after the items before them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agents._streams import batched


async def burst(n: int, fail: bool = False) -> AsyncIterator[int]:
    for i in range(n):
        yield i
        if i % 3 == 2:
            await asyncio.sleep(0.01)  # a pause ends a burst
    if fail:
        raise ValueError("boom")


async def test_batches_keep_order_and_group_bursts() -> None:
    batches = [b async for b in batched(burst(9))]
    assert [i for b in batches for i in b] == list(range(9))
    assert len(batches) < 9


async def test_an_error_comes_after_the_items_before_it() -> None:
    seen: list[int] = []
    with pytest.raises(ValueError, match="boom"):
        async for batch in batched(burst(4, fail=True)):
            seen += batch
    assert seen == [0, 1, 2, 3]


async def test_closing_early_stops_the_source() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            while True:
                yield 1
                await asyncio.sleep(0)
        finally:
            closed.set()

    stream = batched(endless())
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert closed.is_set()
