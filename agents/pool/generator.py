"""The generator interface: the one way the rest of ray-agents asks for tokens."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator

from agents.errors import InvalidRequestError
from agents.pool.types import Chunk, Completion, GenerateRequest, ScoreRequest, ScoreResult, collect

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

    async def likelihood(self, request: ScoreRequest) -> ScoreResult:
        """How likely the model finds ``request.text`` after each context (optional:
        a generator that cannot says so)."""
        raise InvalidRequestError(
            f"{type(self).__name__} cannot score text (an agent with decide_by: likelihood "
            "needs a pool model served by vLLM)"
        )
