"""The generator interface: the one way the rest of ray-agents asks for tokens."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator

from agents.pool.types import Chunk, Completion, GenerateRequest, collect

__all__ = ["Generator"]


class Generator(abc.ABC):
    """A chat request in, a stream of typed chunks out.

    Implementations raise the errors of ``agents.errors`` (``GenerationError`` and its
    children), never a vendor's exception.
    """

    @abc.abstractmethod
    def generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        """Stream the reply; the last chunk is a ``FinishChunk``."""

    async def complete(self, request: GenerateRequest) -> Completion:
        """Generate and gather the whole reply."""
        return collect([chunk async for chunk in self.generate(request)])
