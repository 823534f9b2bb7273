"""A2A v1 server: the official a2a-sdk client against the API app over real HTTP.

The app is the scripted multi-agent app (triage hands refunds to billing) served by
uvicorn in the test's loop; every call goes through the SDK's card resolver, client
and JSON-RPC transport, as another framework's agent would call ours.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.types import a2a_pb2 as pb
from a2a.utils.errors import (
    ContentTypeNotSupportedError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from a2a.utils.proto_utils import validate_proto_required_fields

from agents.api.app import create_app
from agents.events import AnswerEvent, DoneEvent, MessageEvent
from agents.pool.generator import Generator
from agents.pool.types import Chunk, GenerateRequest
from agents.testing import LocalApp, ScriptedGenerator
from tests.fixtures import api_app
from tests.fixtures.api_app import headers
from tests.fixtures.local_server import serving


class Watched(Generator):
    """The scripted engine, recording whether a generation ran to its end."""

    def __init__(self) -> None:
        self.inner = ScriptedGenerator(api_app.SCRIPT)
        self.chunks = 0
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()
        self.completed = 0

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        self.started.set()
        try:
            async for chunk in self.inner.generate(request):
                self.chunks += 1
                yield chunk
            self.completed += 1
        finally:
            self.stopped.set()


class Served:
    def __init__(self, local: LocalApp, url: str, engine: Watched) -> None:
        self.local = local
        self.url = url
        self.engine = engine

    async def client(self, agent: str = "triage", tenant: str = "acme", **config: Any) -> Any:
        http = httpx.AsyncClient(headers=headers(tenant), timeout=30)
        CLIENTS.append(http)
        card = await A2ACardResolver(http, f"{self.url}/a2a/{agent}").get_agent_card()
        return await create_client(card, ClientConfig(httpx_client=http, **config))


CLIENTS: list[httpx.AsyncClient] = []


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    engine = Watched()
    specs = api_app.agent_specs()
    specs[2] = specs[2].model_copy(update={"a2a": False, "tools": []})  # tech: internal
    local = LocalApp(specs, generator=engine)
    app = create_app(local.conversations, specs, api_app.api_spec())
    async with serving(app) as url:
        yield Served(local, url, engine)
    while CLIENTS:
        await CLIENTS.pop().aclose()
    await app.state.api.close()


def message(text: str, **fields: Any) -> pb.SendMessageRequest:
    parts = [pb.Part(text=text)]
    return pb.SendMessageRequest(message=pb.Message(role=pb.ROLE_USER, parts=parts, **fields))


async def final(client: Any, request: pb.SendMessageRequest) -> list[pb.StreamResponse]:
    return [item async for item in client.send_message(request)]


async def test_agent_cards_validate_and_describe_each_published_agent(served: Served) -> None:
    async with httpx.AsyncClient() as http:
        card = await A2ACardResolver(http, f"{served.url}/a2a/triage").get_agent_card()
        validate_proto_required_fields(card)  # raises on a missing required field
        assert card.name == "triage" and card.description == "routes requests"
        [interface] = card.supported_interfaces
        assert interface.url == f"{served.url}/a2a/triage"
        assert (interface.protocol_binding, interface.protocol_version) == ("JSONRPC", "1.0")
        assert card.capabilities.streaming and not card.capabilities.push_notifications
        assert card.security_schemes["bearer"].http_auth_security_scheme.scheme == "bearer"
        assert [s.id for s in card.skills] == ["triage"]
        assert "handoff:billing" in card.skills[0].tags
        # The default agent's card is at the origin's well-known path too.
        default = await A2ACardResolver(http, served.url).get_agent_card()
        assert default == card
        # An agent marked `a2a: false` is not published; nor is an unknown one.
        for name in ("tech", "nobody"):
            response = await http.get(f"{served.url}/a2a/{name}/.well-known/agent-card.json")
            assert response.status_code == 404, response.text
            assert (await http.post(f"{served.url}/a2a/{name}", json={})).status_code in (401, 404)


async def test_send_runs_a_turn_and_the_task_is_the_stored_turn(served: Served) -> None:
    client = await served.client(streaming=False)
    [reply] = await final(client, message("I want a refund", message_id="m-1"))
    task = reply.task
    assert task.status.state == pb.TASK_STATE_COMPLETED
    assert [a.parts[0].text for a in task.artifacts] == ["Billing here: refund issued."]
    assert task.status.message.parts[0].text == "Billing here: refund issued."
    assert task.metadata["active_agent"] == "billing"
    # The context is the conversation, the task its turn: the HTTP API shows the same.
    events = await served.local.store.events(task.context_id)
    assert task.id == f"{task.context_id}~{events[0].turn_id}"
    assert isinstance(events[0], MessageEvent) and events[0].content == "I want a refund"
    answers = [e for e in events if isinstance(e, AnswerEvent)]
    assert [a.text for a in answers] == ["Billing here: refund issued."]
    got = await client.get_task(pb.GetTaskRequest(id=task.id, history_length=1))
    assert got.status.state == pb.TASK_STATE_COMPLETED and got.artifacts == task.artifacts
    assert [m.role for m in got.history] == [pb.ROLE_AGENT]  # the last one only
    # The same message (its id) again joins the turn: one user message is stored.
    [again] = await final(client, message("I want a refund", message_id="m-1"))
    assert again.task.id == task.id
    stored = await served.local.store.events(task.context_id)
    assert sum(isinstance(e, MessageEvent) for e in stored) == 1


async def test_stream_gives_the_task_its_answer_chunks_and_its_final_status(
    served: Served,
) -> None:
    client = await served.client()
    items = await final(client, message("I want a refund"))
    kinds = [item.WhichOneof("payload") for item in items]
    assert kinds[0] == "task" and items[0].task.status.state == pb.TASK_STATE_WORKING
    assert items[0].task.history[0].parts[0].text == "I want a refund"
    assert kinds[-1] == "status_update"
    assert items[-1].status_update.status.state == pb.TASK_STATE_COMPLETED
    # The hand-off came as a working update carrying the event itself.
    handoffs = [
        i.status_update.status.message
        for i in items
        if kinds[items.index(i)] == "status_update"
        and i.status_update.status.state == pb.TASK_STATE_WORKING
    ]
    assert handoffs and handoffs[0].parts[1].data.struct_value["type"] == "handoff"
    chunks = [i.artifact_update for i in items if i.WhichOneof("payload") == "artifact_update"]
    streamed = "".join(c.artifact.parts[0].text for c in chunks if not c.last_chunk)
    whole = [c for c in chunks if c.last_chunk]
    assert len(whole) == 1 and not whole[0].append
    assert whole[0].artifact.parts[0].text == "Billing here: refund issued." == streamed
    # The next message in the context goes on with the agent that has the conversation.
    context = items[0].task.context_id
    more = await final(client, message("and another refund", context_id=context))
    assert more[0].task.context_id == context
    assert more[-1].status_update.metadata["active_agent"] == "billing"
    stored = await served.local.store.events(context)
    assert [e.content for e in stored if isinstance(e, MessageEvent)] == [
        "I want a refund",
        "and another refund",
    ]


async def test_cancel_stops_the_generation_and_the_task_ends_canceled(served: Served) -> None:
    client = await served.client(streaming=False)
    request = message("slow answer please")
    request.configuration.return_immediately = True
    [reply] = await final(client, request)
    task = reply.task
    assert task.status.state == pb.TASK_STATE_WORKING
    async with asyncio.timeout(5):
        await served.engine.started.wait()
    served.engine.stopped.clear()
    canceled = await client.cancel_task(pb.CancelTaskRequest(id=task.id))
    assert canceled.status.state == pb.TASK_STATE_CANCELED
    # The engine's generation stopped (40 words at 0.25 s each: about 10 s left).
    async with asyncio.timeout(2):
        await served.engine.stopped.wait()
    assert served.engine.completed == 0
    got = await client.get_task(pb.GetTaskRequest(id=task.id))
    assert got.status.state == pb.TASK_STATE_CANCELED
    stored = await served.local.store.events(task.context_id)
    done = stored[-1]
    assert isinstance(done, DoneEvent) and done.status == "interrupted"
    with pytest.raises(TaskNotCancelableError):
        await client.cancel_task(pb.CancelTaskRequest(id=task.id))


async def test_subscribe_follows_a_running_task_to_its_end(served: Served) -> None:
    client = await served.client(streaming=False)
    request = message("slow answer please")
    request.configuration.return_immediately = True
    [reply] = await final(client, request)
    streaming = await served.client()
    items = [i async for i in streaming.subscribe(pb.SubscribeToTaskRequest(id=reply.task.id))]
    assert items[0].task.id == reply.task.id
    assert items[-1].status_update.status.state == pb.TASK_STATE_COMPLETED
    with pytest.raises(UnsupportedOperationError):  # it has ended
        _ = [i async for i in streaming.subscribe(pb.SubscribeToTaskRequest(id=reply.task.id))]


async def test_list_tasks_of_a_context(served: Served) -> None:
    client = await served.client(streaming=False)
    [first] = await final(client, message("I want a refund"))
    context = first.task.context_id
    await final(client, message("one more refund", context_id=context))
    listed = await client.list_tasks(pb.ListTasksRequest(context_id=context, page_size=1))
    assert listed.total_size == 2 and len(listed.tasks) == 1 and listed.next_page_token
    rest = await client.list_tasks(
        pb.ListTasksRequest(context_id=context, page_token=listed.next_page_token)
    )
    assert [t.id for t in rest.tasks] == [first.task.id]  # newest first
    with pytest.raises(InvalidParamsError, match="context_id is required"):
        await client.list_tasks(pb.ListTasksRequest())


async def test_tenants_see_their_own_tasks_and_contexts_only(served: Served) -> None:
    acme = await served.client(streaming=False)
    [reply] = await final(acme, message("I want a refund"))
    globex = await served.client(tenant="globex", streaming=False)
    with pytest.raises(TaskNotFoundError):
        await globex.get_task(pb.GetTaskRequest(id=reply.task.id))
    with pytest.raises(TaskNotFoundError):
        await globex.cancel_task(pb.CancelTaskRequest(id=reply.task.id))
    with pytest.raises(InvalidParamsError, match="no context"):
        await final(globex, message("let me in", context_id=reply.task.context_id))
    with pytest.raises(TaskNotFoundError):
        await globex.get_task(pb.GetTaskRequest(id="not-a-task"))
    with pytest.raises(InvalidParamsError, match="no conversation"):
        await globex.list_tasks(pb.ListTasksRequest(context_id=reply.task.context_id))
    stored = await served.local.store.events(reply.task.context_id)
    assert sum(isinstance(e, MessageEvent) for e in stored) == 1


async def test_bad_requests_get_a2a_errors_and_no_key_gets_401(served: Served) -> None:
    client = await served.client(streaming=False)
    files = pb.SendMessageRequest(
        message=pb.Message(role=pb.ROLE_USER, parts=[pb.Part(url="http://x/y.png")])
    )
    with pytest.raises(ContentTypeNotSupportedError):
        await final(client, files)
    [done] = await final(client, message("I want a refund"))
    with pytest.raises(UnsupportedOperationError, match="takes no more input"):
        await final(client, message("more", task_id=done.task.id))
    config = pb.TaskPushNotificationConfig(task_id=done.task.id, url="http://hook")
    with pytest.raises(PushNotificationNotSupportedError):
        await client.create_task_push_notification_config(config)
    async with httpx.AsyncClient() as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": done.task.id}}
        response = await http.post(f"{served.url}/a2a/triage", json=body)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
