"""Test doubles for the control plane, shipped in the package (no Ray, no model).

``LocalApp`` wires agents in one process over any ``Generator`` and store.

``ScriptedGenerator`` answers generation requests from ``ScriptRule``s, as the pool's
``ScriptedEngine`` does inside Serve: the first rule whose regex finds the last
message's text wins; no rule matching, or a reply that breaks the requested JSON
schema, is an ``EngineError``, so a test cannot pass on an unplanned reply.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx

from agents.conversations import DEFAULT_LEASE_S, RECOVERY_DELAYS_S, Conversations
from agents.errors import EngineError
from agents.events import Event
from agents.peers import LocalPeers
from agents.pool._script import (
    decision_step,
    match_rule,
    overlap_score,
    reply_pieces,
    router_schema,
    schema_mismatch,
)
from agents.pool.generator import Generator
from agents.pool.spec import ScriptRule
from agents.pool.types import (
    Chunk,
    FinishChunk,
    GenerateRequest,
    ScoreRequest,
    ScoreResult,
    TextChunk,
    ToolCallChunk,
    Usage,
)
from agents.protocol import DEFAULT_MAX_HOPS, DecisionRequest, Multitask, SendRequest
from agents.remote import RemoteAgentService, RemoteAgentSpec
from agents.service import DEFAULT_CACHE_BYTES, DEFAULT_CACHE_SIZE, AgentService
from agents.spec import AgentSpec
from agents.store.base import ConversationStore
from agents.store.memory import MemoryStore
from agents.turn import AgentLoop
from tools.base import ToolExecutor
from tools.testing import FunctionTools

__all__ = ["LocalApp", "ScriptedGenerator", "action", "openai_server"]


class ScriptedGenerator(Generator):
    """A ``Generator`` that replies from rules and remembers every request."""

    def __init__(self, rules: Sequence[ScriptRule | dict[str, object]]) -> None:
        self.rules = [ScriptRule.model_validate(r) for r in rules]
        self.requests: list[GenerateRequest] = []
        self.scored: list[ScoreRequest] = []

    async def likelihood(self, request: ScoreRequest) -> ScoreResult:
        """Score by word overlap, as the pool's scripted engine does (``overlap_score``)."""
        self.scored.append(request)
        return ScoreResult(scores=[overlap_score(c, request.text) for c in request.contexts])

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        """Stream the first matching rule's reply, word by word (all at once when the
        request is not streamed)."""
        self.requests.append(request)
        last = request.messages[-1].content
        system = next((m.content for m in request.messages if m.role == "system"), "")
        rule = match_rule(self.rules, last, system)
        if rule is None:
            raise EngineError(f"scripted generator: no rule matches {last[:80]!r}")
        if rule.error is not None:
            raise EngineError(f"scripted generator failure ({rule.error})")
        structured = request.json_schema is not None
        router = router_schema(request.json_schema)
        decision = decision_step(request.json_schema)
        shape = {"structured": structured, "router": router, "decision": decision}
        pieces, reason = reply_pieces(rule, last, request.sampling.max_tokens, **shape)
        schema = None if rule.tool_call else request.json_schema
        text = rule.render(last, **shape)
        mismatch = schema_mismatch(schema, text)
        if mismatch is not None:
            raise EngineError(f"scripted reply breaks the requested JSON schema: {mismatch}")
        tokens = len(pieces)
        if not request.stream:  # the whole reply at once, after as long as streaming
            await asyncio.sleep(rule.token_delay_s * len(pieces))
            text = "".join(p for p in pieces if isinstance(p, str))
            pieces = ([text] if text else []) + [p for p in pieces if not isinstance(p, str)]
        for piece in pieces:
            if rule.token_delay_s and request.stream:
                await asyncio.sleep(rule.token_delay_s)
            if isinstance(piece, str):
                yield TextChunk(text=piece)
            else:
                function = piece["function"]
                yield ToolCallChunk(
                    index=piece["index"],
                    id=piece["id"],
                    name=function["name"],
                    arguments=function["arguments"],
                )
        prompt = sum(len(m.content.split()) + 1 for m in request.messages)
        yield FinishChunk(
            finish_reason=reason,
            usage=Usage(prompt_tokens=prompt, completion_tokens=tokens),
        )


def action(kind: str, **fields: object) -> dict[str, object]:
    """A schema-mode action as a rule's ``json_reply``: ``action("answer", text="hi")``."""
    return {"action": kind, **fields}


def openai_server(generator: Generator, *, served_model: str = "scripted") -> Any:
    """An OpenAI-compatible chat server (an ASGI app) over ``generator``: an external
    engine's stand-in in tests (``source: openai+http://...``), with the HTTP of one:
    ``GET /v1/models``, ``POST /v1/chat/completions`` streamed as SSE or whole,
    ``response_format`` JSON Schemas, OpenAI errors (404 for another model)."""
    import json

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    from agents.errors import GenerationError
    from agents.pool.types import Message, SamplingParams, ToolCall, collect

    async def models(http: Any) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": served_model, "object": "model"}]})

    async def chat(http: Any) -> Any:
        body = await http.json()
        if body.get("model") != served_model:
            message = f"The model `{body.get('model')}` does not exist."
            return JSONResponse({"error": {"message": message, "code": 404}}, status_code=404)
        fmt = body.get("response_format") or {}
        messages = [
            Message(
                role=m["role"],
                content=m.get("content") or "",
                tool_call_id=m.get("tool_call_id"),
                tool_calls=[
                    ToolCall(
                        id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"]
                    )
                    for c in m.get("tool_calls") or []
                ]
                or None,
            )
            for m in body["messages"]
        ]
        request = GenerateRequest(
            model=served_model,
            messages=messages,
            sampling=SamplingParams(max_tokens=body.get("max_tokens") or 256),
            json_schema=(fmt.get("json_schema") or {}).get("schema"),
            tools=body.get("tools"),
            stream=bool(body.get("stream")),
        )

        def event(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return f"data: {json.dumps({'choices': [choice]})}\n\n"

        async def stream() -> AsyncIterator[str]:
            try:
                async for chunk in generator.generate(request):
                    if isinstance(chunk, TextChunk):
                        yield event({"content": chunk.text})
                    elif isinstance(chunk, ToolCallChunk):
                        call = {
                            "index": chunk.index,
                            "id": chunk.id,
                            "type": "function",
                            "function": {"name": chunk.name, "arguments": chunk.arguments},
                        }
                        yield event({"tool_calls": [call]})
                    elif isinstance(chunk, FinishChunk):
                        yield event({}, chunk.finish_reason)
                        usage = chunk.usage.model_dump()
                        yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
            except GenerationError as exc:
                yield f"data: {json.dumps({'error': {'message': exc.message, 'code': 500}})}\n\n"
            yield "data: [DONE]\n\n"

        if request.stream:
            return StreamingResponse(stream(), media_type="text/event-stream")
        whole = collect([c async for c in generator.generate(request)])
        reply = {"role": "assistant", "content": whole.text}
        return JSONResponse(
            {
                "choices": [{"index": 0, "message": reply, "finish_reason": whole.finish_reason}],
                "usage": whole.usage.model_dump(),
            }
        )

    return Starlette(
        routes=[
            Route("/v1/models", models),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ]
    )


class LocalApp:
    """Agents wired in one process, no Ray: for tests and notebooks.

    The same classes a Serve deployment runs (``AgentService``, ``Conversations``),
    reaching each other through ``LocalPeers`` instead of DeploymentHandles.
    """

    def __init__(
        self,
        specs: Sequence[AgentSpec],
        *,
        generator: Generator,
        tools: ToolExecutor | None = None,
        store: ConversationStore | None = None,
        default_agent: str | None = None,
        max_hops: int = DEFAULT_MAX_HOPS,
        cache_size: int = DEFAULT_CACHE_SIZE,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        lease_s: float = DEFAULT_LEASE_S,
        recovery_delays_s: Sequence[float] = RECOVERY_DELAYS_S,
        multitask: Multitask = "enqueue",
        clock: Callable[[], float] = time.time,
        remotes: Sequence[RemoteAgentSpec] = (),
        remote_http: httpx.AsyncClient | None = None,
    ) -> None:
        """``remotes``: remote A2A agents the agents may reach, through ``remote_http``
        (default: a client of their own)."""
        self.store = store or MemoryStore()
        self.peers = LocalPeers()
        descriptions = {s.name: s.description for s in specs}
        descriptions.update({r.name: r.summary for r in remotes})
        for remote in remotes:
            self.peers.add(RemoteAgentService(remote, self.store, http=remote_http, clock=clock))
        for spec in specs:
            loop = AgentLoop(
                spec,
                generator=generator,
                tools=tools or FunctionTools(),
                peers=self.peers,
                peer_descriptions=descriptions,
                clock=clock,
            )
            service = AgentService(loop, self.store, cache_size=cache_size, cache_bytes=cache_bytes)
            self.peers.add(service)
        self.conversations = Conversations(
            store=self.store,
            peers=self.peers,
            agents=descriptions,
            default_agent=default_agent or specs[0].name,
            max_hops=max_hops,
            lease_s=lease_s,
            recovery_delays_s=recovery_delays_s,
            multitask=multitask,
            clock=clock,
        )

    def service(self, name: str) -> AgentService:
        """The named agent's service."""
        service: AgentService = self.peers.services[name]
        return service

    async def send(self, message: str, **fields: Any) -> list[Event]:
        """Send one message and gather the turn's events."""
        request = SendRequest(message=message, **fields)
        return [event async for event in self.conversations.send(request)]

    async def decide(self, conversation_id: str, call_id: str, **fields: Any) -> list[Event]:
        """Approve (``approved=True``) or reject a paused call; gather the resumed turn."""
        request = DecisionRequest(conversation_id=conversation_id, call_id=call_id, **fields)
        return [event async for event in self.conversations.decide(request)]
