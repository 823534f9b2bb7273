"""Serve shells over the plain classes: one deployment per agent, plus the entry.

``AgentDeployment`` wraps an ``AgentService``; ``ConversationsDeployment`` wraps
``Conversations``. Neither holds logic of its own: they build their dependencies
(store, pool client, peers) from plain config values and forward calls. Agents reach
each other through ``HandlePeers``, routed by conversation id so a conversation keeps
to one replica of each agent while that replica lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from ray import serve
from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle

from agents._streams import batched
from agents.conversations import Conversations
from agents.errors import (
    PeerLostError,
    PeerUnavailableError,
    RayAgentsError,
    UnknownAgentError,
    remote_cause,
)
from agents.events import Event
from agents.messages import dump_messages
from agents.observability import configure_from_env
from agents.peers import Peers
from agents.pool.client import PoolClient
from agents.protocol import (
    AskRequest,
    AskResult,
    DecisionRequest,
    Multitask,
    SendRequest,
    TokenBudgets,
    TurnRequest,
)
from agents.remote import RemoteAgentService, RemoteAgentSpec
from agents.service import DEFAULT_CACHE_BYTES, DEFAULT_CACHE_SIZE, AgentService
from agents.spec import AgentSpec
from agents.store.base import ConversationStore
from agents.store.spec import StoreSpec, create_store
from agents.turn import AgentLoop
from tools.deployment import HandleTools
from tools.testing import FunctionTools

__all__ = [
    "AgentDeployment",
    "ConversationsDeployment",
    "HandlePeers",
    "Recovery",
    "RemoteAgentDeployment",
    "agent_deployment_name",
    "open_conversations",
]

# A replica that died before anything reached us is retried, after a pause that lets
# the router learn of the death; the retry goes on from what the dead one stored.
_RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0)
log = logging.getLogger("ray_agents.deployments")


def agent_deployment_name(agent: str) -> str:
    """The Serve deployment name of an agent."""
    return f"agent-{agent}"


class HandlePeers(Peers):
    """The application's agents through DeploymentHandles.

    Handles are looked up by deployment name in this replica's own application
    (agents may call each other in cycles, which Serve's ``bind`` cannot express).
    """

    def __init__(self, handles: Mapping[str, DeploymentHandle[Any]] | None = None) -> None:
        self._handles: dict[str, DeploymentHandle[Any]] = dict(handles or {})

    def _handle(self, agent: str) -> DeploymentHandle[Any]:
        handle = self._handles.get(agent)
        if handle is None:
            app = serve.get_replica_context().app_name
            try:
                handle = serve.get_deployment_handle(agent_deployment_name(agent), app)
            except Exception as exc:
                raise UnknownAgentError(f"no agent named {agent!r} in app {app!r}") from exc
            self._handles[agent] = handle
        return handle

    async def run(self, agent: str, request: TurnRequest) -> AsyncIterator[Event]:
        """Stream the turn from the agent's replica for this conversation.

        A replica that died before sending anything is retried here; one that died
        mid-part raises ``PeerLostError``, which the turn's runner resumes from the store.
        Leaving early cancels the replica's part (and the generation under it).
        """
        handle = self._handle(agent).options(
            stream=True, session_id=request.context.conversation_id
        )
        for attempt, delay in enumerate((*_RETRY_DELAYS_S, None)):
            started = False
            retry = request.model_copy(update={"retry": True}) if attempt else request
            stream: Any = handle.run.remote(retry)
            try:
                async for batch in stream:
                    started = True
                    for event in batch:
                        yield event
                return
            except RayActorError as exc:
                if started:
                    raise PeerLostError(f"agent {agent!r} died during the turn") from exc
                if delay is None:  # still no live replica: the turn's runner tries later
                    raise PeerLostError(f"agent {agent!r} has no live replica: {exc}") from exc
                await asyncio.sleep(delay)
            except RayAgentsError:
                raise
            except Exception as exc:
                raise PeerUnavailableError(f"agent {agent!r} failed: {_cause(exc)}") from exc
            finally:
                stream.cancel()

    async def ask(self, agent: str, request: AskRequest) -> AskResult:
        """Ask the agent; the sub-conversation is routed like any conversation."""
        sub_id = f"{request.context.conversation_id}:ask:{request.call_id}"
        handle = self._handle(agent).options(session_id=sub_id)
        try:
            result: AskResult = await handle.ask.remote(request)
        except RayAgentsError:
            raise
        except Exception as exc:
            raise PeerUnavailableError(f"agent {agent!r} failed: {_cause(exc)}") from exc
        return result


def _cause(exc: Exception) -> str:
    cause = remote_cause(exc)
    return f"{type(cause).__name__}: {cause}"


class AgentDeployment:
    """One agent's replica: an ``AgentService`` with its store, pool and peers."""

    async def __init__(  # type: ignore[misc]  # Serve awaits an async constructor
        self,
        spec: AgentSpec,
        store: StoreSpec,
        pool: Mapping[str, DeploymentHandle[Any]],
        *,
        tools: DeploymentHandle[Any] | None = None,
        peer_descriptions: dict[str, str] | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        configure_from_env()
        self._store = create_store(store)
        await self._store.open()
        loop = AgentLoop(
            spec,
            generator=PoolClient(pool),
            tools=HandleTools(tools) if tools is not None else FunctionTools(),
            peers=HandlePeers(),
            peer_descriptions=peer_descriptions,
        )
        replica = serve.get_replica_context().replica_id.unique_id
        self.service = AgentService(
            loop, self._store, cache_size=cache_size, cache_bytes=cache_bytes, replica_id=replica
        )

    async def run(self, request: TurnRequest) -> AsyncIterator[list[Event]]:
        """Stream this agent's part of a turn, in lists of the events that are ready."""
        async for batch in batched(self.service.run(request)):
            yield batch

    async def ask(self, request: AskRequest) -> AskResult:
        """Answer a peer's question."""
        return await self.service.ask(request)

    async def peek(self, conversation_id: str) -> dict[str, Any]:
        """This replica and its cached history of a conversation (for tests and debugging)."""
        return {
            "replica": self.service.replica_id,
            "messages": dump_messages(self.service.cached_history(conversation_id)),
        }

    async def __del__(self) -> None:
        await self._store.close()


class RemoteAgentDeployment:
    """A remote (A2A) agent's replica here: a ``RemoteAgentService`` with its store."""

    async def __init__(  # type: ignore[misc]  # Serve awaits an async constructor
        self, spec: RemoteAgentSpec, store: StoreSpec
    ) -> None:
        configure_from_env()
        self._store = create_store(store)
        await self._store.open()
        replica = serve.get_replica_context().replica_id.unique_id
        self.service = RemoteAgentService(spec, self._store, replica_id=replica)

    async def run(self, request: TurnRequest) -> AsyncIterator[list[Event]]:
        """Stream the remote agent's part of a turn, in lists of the events that are ready."""
        async for batch in batched(self.service.run(request)):
            yield batch

    async def ask(self, request: AskRequest) -> AskResult:
        """Ask the remote agent a peer's question."""
        return await self.service.ask(request)

    async def __del__(self) -> None:
        await self.service.close()
        await self._store.close()


async def open_conversations(
    agents: Mapping[str, DeploymentHandle[Any]],
    store: StoreSpec,
    *,
    default_agent: str,
    max_hops: int,
    turn_timeout_s: float,
    turn_lease_s: float,
    multitask: Multitask = "enqueue",
    budgets: TokenBudgets | None = None,
) -> tuple[ConversationStore, Conversations]:
    """An entry replica's opened store and the ``Conversations`` over the agents' handles
    (what ``ConversationsDeployment`` and the API deployment both run)."""
    opened = create_store(store)
    await opened.open()
    conversations = Conversations(
        store=opened,
        peers=HandlePeers(agents),
        agents=agents,
        default_agent=default_agent,
        max_hops=max_hops,
        turn_timeout_s=turn_timeout_s,
        lease_s=turn_lease_s,
        multitask=multitask,
        budgets=budgets,
    )
    return opened, conversations


class Recovery:
    """An entry replica's background task: every ``every_s``, resume the turns whose
    runner died (``Conversations.recover``), then run ``also`` (the API sends the
    webhooks nobody sent). Owned by the replica; ``stop`` ends it."""

    def __init__(
        self,
        conversations: Conversations,
        every_s: float,
        also: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._conversations = conversations
        self._every_s = every_s
        self._also = also
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                await self._conversations.recover()
                if self._also is not None:
                    await self._also()
            except RayAgentsError as exc:  # the store is down: try again next round
                log.warning("could not resume stale turns: %s", exc)
            except Exception:  # a bug: say so, and keep the loop (it is the safety net)
                log.exception("resuming stale turns failed")

    async def stop(self) -> None:
        """Cancel the task and wait for it (turns it resumes close as cancelled)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class ConversationsDeployment:
    """The entry deployment: user messages in, turn events out."""

    async def __init__(  # type: ignore[misc]  # Serve awaits an async constructor
        self,
        agents: Mapping[str, DeploymentHandle[Any]],
        store: StoreSpec,
        *,
        default_agent: str,
        max_hops: int,
        turn_timeout_s: float,
        turn_lease_s: float,
        multitask: Multitask = "enqueue",
    ) -> None:
        configure_from_env()
        self._store, self.conversations = await open_conversations(
            agents,
            store,
            default_agent=default_agent,
            max_hops=max_hops,
            turn_timeout_s=turn_timeout_s,
            turn_lease_s=turn_lease_s,
            multitask=multitask,
        )
        self._recovery = Recovery(self.conversations, every_s=turn_lease_s)

    async def send(self, request: SendRequest) -> AsyncIterator[list[Event]]:
        """Run one turn and stream its events, in lists of the events that are ready."""
        async for batch in batched(self.conversations.send(request)):
            yield batch

    async def decide(self, request: DecisionRequest) -> AsyncIterator[list[Event]]:
        """Approve or reject a paused tool call; stream the turn that resumes it."""
        async for batch in batched(self.conversations.decide(request)):
            yield batch

    async def history(self, conversation_id: str, after_seq: int = 0) -> list[Event]:
        """The conversation's stored events."""
        return await self.conversations.history(conversation_id, after_seq=after_seq)

    async def __del__(self) -> None:
        await self._recovery.stop()
        await self._store.close()
