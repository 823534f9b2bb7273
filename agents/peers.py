"""How an agent reaches other agents: one interface, over handles or in-process."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import Any

from agents.errors import UnknownAgentError
from agents.events import Event
from agents.protocol import AskRequest, AskResult, TurnRequest

__all__ = ["LocalPeers", "Peers"]


class Peers(abc.ABC):
    """The agents of one application, by name.

    ``run`` streams a turn (or its continuation after a hand-off) on an agent; ``ask``
    runs a question to completion and returns the answer. Implementations raise
    ``UnknownAgentError`` for a name they do not know and ``PeerUnavailableError`` when
    the agent cannot be reached.
    """

    @abc.abstractmethod
    def run(self, agent: str, request: TurnRequest) -> AsyncIterator[Event]:
        """Stream the events of ``agent``'s part of the turn; the last one is ``done``."""

    @abc.abstractmethod
    async def ask(self, agent: str, request: AskRequest) -> AskResult:
        """Ask ``agent`` a question and wait for its answer."""


class LocalPeers(Peers):
    """Agents in this process (tests, notebooks): ``AgentService``s by name."""

    def __init__(self) -> None:
        self.services: dict[str, Any] = {}

    def add(self, service: Any) -> None:
        """Make ``service`` (an ``AgentService``) reachable by its agent's name."""
        self.services[service.name] = service

    async def run(self, agent: str, request: TurnRequest) -> AsyncIterator[Event]:
        """Run the turn on the named local agent."""
        async for event in self._get(agent).run(request):
            yield event

    async def ask(self, agent: str, request: AskRequest) -> AskResult:
        """Ask the named local agent."""
        result: AskResult = await self._get(agent).ask(request)
        return result

    def _get(self, agent: str) -> Any:
        service = self.services.get(agent)
        if service is None:
            raise UnknownAgentError(f"no agent named {agent!r}")
        return service
