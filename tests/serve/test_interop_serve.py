"""Interop under Ray Serve: A2A and MCP through Serve's HTTP proxy with the official
clients, and a hand-off to a remote A2A agent that a second app serves on its own port.

The served app is the scripted multi-agent app, plus ``partner``: the second app's
billing agent, reached over A2A (that app runs in a process of its own, in open mode,
tests/fixtures/partner_app.py). Both send spans to one collector, so the test sees
whether one trace crosses both.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.types import a2a_pb2 as pb
from a2a.utils.proto_utils import validate_proto_required_fields
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from agents.builder import build_agents_app
from agents.observability.spec import ObservabilitySpec, TracingSpec
from agents.observability.testing import SpanCollector
from agents.pool.spec import PoolSpec
from agents.remote import RemoteAgentSpec
from agents.store.spec import StoreSpec
from agents.testing import action
from tests.conftest import free_port
from tests.fixtures import api_app
from tests.fixtures.api_app import headers
from tools.spec import ToolsConfig

pytestmark = pytest.mark.serve

APP = "agents-interop"
TRACE = "6e0c63257de34c926f9efcd03899aa11"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def collector() -> Iterator[SpanCollector]:
    with SpanCollector() as collector:
        yield collector


@pytest.fixture(scope="module")
def partner(collector: SpanCollector) -> Iterator[str]:
    """The second app, on a port of its own; its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.partner_app", str(port), collector.endpoint],
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "partner did not start"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def url(
    ray_cluster: dict[str, int],
    partner: str,
    collector: SpanCollector,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    from ray import serve

    specs = api_app.agent_specs()
    specs[0] = specs[0].model_copy(update={"handoffs": ["billing", "tech", "partner"]})
    script = [
        {"match": "^partner", "json_reply": action("handoff", agent="partner", message="over")},
        *api_app.SCRIPT,
    ]
    pool = {"models": [{**api_app.POOL["models"][0], "scripted": script}]}
    remote = RemoteAgentSpec.model_validate(
        {"name": "partner", "description": "refunds", "remote": {"url": f"{partner}/a2a/billing"}}
    )
    db = tmp_path_factory.mktemp("interop") / "conversations.db"
    built = build_agents_app(
        specs,
        PoolSpec.model_validate(pool),
        store=StoreSpec(backend="sqlite", path=str(db)),
        tools=ToolsConfig.model_validate(api_app.TOOLS),
        api=api_app.api_spec(),
        observability=ObservabilitySpec(
            tracing=TracingSpec(exporter="otlp", endpoint=collector.endpoint)
        ),
        remotes=[remote],
    )
    try:
        serve.run(built, name=APP, route_prefix="/")
        yield f"http://127.0.0.1:{ray_cluster['http']}"
    finally:
        serve.delete(APP)


async def busiest_engine() -> int:
    """Requests the busier pool replica's engine works on now (asked 16 times, without a
    session, so both replicas answer)."""
    from ray import serve

    engine = serve.get_deployment_handle("pool-m", APP)
    return max([await engine.running_requests.remote() for _ in range(16)])


@asynccontextmanager
async def a2a(url: str, agent: str = "triage", **config: Any) -> AsyncIterator[Any]:
    async with httpx.AsyncClient(headers=headers(), timeout=60) as http:
        card = await A2ACardResolver(http, f"{url}/a2a/{agent}").get_agent_card()
        validate_proto_required_fields(card)
        assert card.supported_interfaces[0].url == f"{url}/a2a/{agent}"
        yield await create_client(card, ClientConfig(httpx_client=http, **config))


def message(text: str) -> pb.SendMessageRequest:
    return pb.SendMessageRequest(message=pb.Message(role=pb.ROLE_USER, parts=[pb.Part(text=text)]))


async def test_a2a_round_trip_through_serve(url: str) -> None:
    async with a2a(url, streaming=False) as client:
        [sent] = [i async for i in client.send_message(message("I want a refund"))]
        assert sent.task.status.state == pb.TASK_STATE_COMPLETED
        assert sent.task.artifacts[0].parts[0].text == "Billing here: refund issued."
        got = await client.get_task(pb.GetTaskRequest(id=sent.task.id))
        assert got.status.state == pb.TASK_STATE_COMPLETED and got.artifacts == sent.task.artifacts
    async with a2a(url) as client:
        items = [i async for i in client.send_message(message("I want a refund"))]
        assert items[0].task.status.state == pb.TASK_STATE_WORKING
        chunks = [i.artifact_update for i in items if i.HasField("artifact_update")]
        assert "".join(c.artifact.parts[0].text for c in chunks if not c.last_chunk) == (
            "Billing here: refund issued."
        )
        assert items[-1].status_update.status.state == pb.TASK_STATE_COMPLETED
    # Cancel a running task: the engine's generation stops, not only the stream.
    async with a2a(url, "billing", streaming=False) as client:
        slow = message("slow answer please")
        slow.configuration.return_immediately = True
        [accepted] = [i async for i in client.send_message(slow)]
        assert accepted.task.status.state == pb.TASK_STATE_WORKING
        started = time.monotonic()
        while not await busiest_engine():
            assert time.monotonic() - started < 30, "the slow answer never reached the engine"
            await asyncio.sleep(0.05)
        canceled = await client.cancel_task(pb.CancelTaskRequest(id=accepted.task.id))
        assert canceled.status.state == pb.TASK_STATE_CANCELED
        settled = time.monotonic()
        for _ in range(1000):
            running = await busiest_engine()
            if not running or time.monotonic() - settled > 2.0:
                break
            await asyncio.sleep(0.05)
        assert running == 0  # its answer had ~10 s to go
        got = await client.get_task(pb.GetTaskRequest(id=accepted.task.id))
        assert got.status.state == pb.TASK_STATE_CANCELED


async def test_mcp_session_through_serve(url: str) -> None:
    async with (
        httpx2.AsyncClient(headers=headers(), timeout=60) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        listed = await session.list_tools()
        assert sorted(t.name for t in listed.tools) == ["billing", "tech", "triage"]
        result = await session.call_tool("triage", {"message": "I want a refund"})
        assert not result.is_error, result
        out = result.structured_content or {}
        assert out["answer"] == "Billing here: refund issued." and out["agent"] == "billing"


def test_hand_off_to_a_remote_agent_on_another_port_in_one_trace(
    url: str, collector: SpanCollector
) -> None:
    with httpx.Client(base_url=url, headers=headers(), timeout=60) as client:
        cid = client.post("/v1/conversations", json={}).json()["id"]
        reply = client.post(
            f"/v1/conversations/{cid}/messages",
            json={"content": "partner, I want a refund"},
            headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"},
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["answer"] == "Billing here: refund issued.", body
        assert body["agent"] == "partner"
        page = client.get(f"/v1/conversations/{cid}/messages").json()["data"]
        assert [(e["type"], e["agent"]) for e in page] == [
            ("message", "triage"),
            ("handoff", "triage"),
            ("answer", "partner"),
            ("done", "partner"),
        ]
    # One trace: this app's spans and the partner app's (another process, another port).
    # Each process exports in batches, and a parent ends (and is exported) after its
    # children: wait until the partner's turn, the hop and the hop's parent have all arrived.
    deadline = time.monotonic() + 60
    while True:
        spans = collector.spans(TRACE)
        by_id = {s.span_id: s for s in spans}
        services = {s.resource.get("service.name") for s in spans}
        remote_turns = [
            s
            for s in spans
            if s.resource.get("service.name") == "partner" and s.name == "conversation.turn"
        ]
        hops = [s for s in spans if s.name == "agent.remote"]
        if remote_turns and hops and by_id.get(hops[0].parent_id or "") is not None:
            break
        assert time.monotonic() < deadline, f"spans of {services}: {[s.name for s in spans]}"
        time.sleep(0.5)
    [hop] = hops
    # The partner's request span is a child of this app's remote hop.
    requests = [
        s
        for s in spans
        if s.resource.get("service.name") == "partner" and s.parent_id == hop.span_id
    ]
    assert requests, [
        (s.name, s.parent_id) for s in spans if s.resource.get("service.name") == "partner"
    ]
    # The hop hangs off this app's own span, not the partner's.
    assert by_id[hop.parent_id or ""].resource.get("service.name") == "ray-agents"
