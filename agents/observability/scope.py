"""``Scope``: a span made current and log fields bound, for a block or a stream.

A turn is an async generator: a span made current across its ``yield``s would leak
into the consumer's context and be detached in the wrong one. ``Scope.stream``
instead makes the span current (and binds the fields) around each step only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from typing import TypeVar

from opentelemetry import trace
from opentelemetry.trace import Span

from agents.observability.logging import bind

__all__ = ["Scope"]

T = TypeVar("T")


class Scope:
    """``span`` (optional) and log ``fields`` (None ones left out)."""

    def __init__(self, span: Span | None = None, **fields: str | None) -> None:
        self.span = span
        self.fields = fields

    @contextmanager
    def active(self) -> Iterator[None]:
        """The span is current and the fields bound in the block."""
        with ExitStack() as stack:
            if self.span is not None:
                stack.enter_context(
                    trace.use_span(
                        self.span,
                        end_on_exit=False,
                        record_exception=False,
                        set_status_on_exception=False,
                    )
                )
            stack.enter_context(bind(**self.fields))
            yield

    async def stream(self, items: AsyncIterator[T]) -> AsyncIterator[T]:
        """``items``, each produced inside ``active()``; closing this closes ``items``."""
        try:
            while True:
                with self.active():
                    try:
                        item = await anext(items)
                    except StopAsyncIteration:
                        return
                yield item
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                with self.active():
                    await aclose()
