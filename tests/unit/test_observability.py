"""Observability in one process: spans through an in-memory exporter, JSON log lines,
metrics in memory, and the spec that carries it all to the deployments.

The Serve tier (tests/serve/test_observability_serve.py) checks the same trace across
real deployments (an OTLP collector in the test), metrics scraped from Ray's
Prometheus endpoint, and ``ray-agents status``.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import ValidationError

import agents.observability
from agents.api.app import create_app
from agents.observability import LogsSpec, ObservabilitySpec, TracingSpec
from agents.observability import metrics as m
from agents.observability.logging import configure_logging, reset_logging
from agents.observability.metrics import MemoryMetrics, NoMetrics, current_metrics, use_metrics
from agents.observability.status import DeploymentRow, Snapshot, render, scrape
from agents.observability.tracing import tracer, use_provider
from agents.spec import AgentSpec
from agents.testing import LocalApp, ScriptedGenerator, action
from tests.fixtures import api_app, observed_app
from tests.fixtures.api_app import headers
from tools.base import ToolCallRequest
from tools.deployment import build_registry
from tools.executor import ToolRunner
from tools.spec import ToolsConfig

MESSAGES = "/v1/conversations/{conversation_id}/messages"
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


@pytest.fixture
async def runner() -> AsyncIterator[ToolRunner]:
    specs = observed_app.agent_specs()
    tools = ToolsConfig.model_validate(observed_app.TOOLS)
    runner = ToolRunner(build_registry(tools), grants={s.name: s.tools for s in specs})
    yield runner
    await runner.close()


def api_client(runner: ToolRunner, **limits: Any) -> httpx.AsyncClient:
    specs = observed_app.agent_specs()
    local = LocalApp(specs, generator=ScriptedGenerator(observed_app.SCRIPT), tools=runner)
    app = create_app(local.conversations, specs, api_app.api_spec(**limits))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://api")


@pytest.fixture
async def client(runner: ToolRunner) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runner) as client:
        yield client


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with use_provider(provider):
        yield exporter
    provider.shutdown()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(LogsSpec(), stream)
    yield stream
    reset_logging()


async def one_turn(client: httpx.AsyncClient, **extra_headers: str) -> str:
    created = await client.post("/v1/conversations", json={}, headers=headers())
    cid: str = created.json()["id"]
    reply = await client.post(
        f"/v1/conversations/{cid}/messages",
        json={"content": observed_app.MESSAGE},
        headers={**headers(), **extra_headers},
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["answer"], body["agent"]) == ("Refunded 5.", "billing")
    return cid


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def hex_id(value: int, digits: int) -> str:
    return format(value, f"0{digits}x")


async def test_one_trace_covers_api_agent_pool_tool_and_second_agent(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    cid = await one_turn(client, traceparent=traceparent)
    turn = [s for s in spans.get_finished_spans() if hex_id(s.context.trace_id, 32) == CLIENT_TRACE]
    by_id = {s.context.span_id: s for s in turn}

    def parent(span: ReadableSpan) -> ReadableSpan:
        assert span.parent is not None, span.name
        return by_id[span.parent.span_id]

    def named(name: str, **attributes: Any) -> list[ReadableSpan]:
        return [
            s
            for s in turn
            if s.name == name
            and all((s.attributes or {}).get(f"ray_agents.{k}") == v for k, v in attributes.items())
        ]

    [api] = named("api.request")
    assert api.parent is not None and hex_id(api.parent.span_id, 16) == CLIENT_SPAN
    assert (api.attributes or {})["http.route"] == MESSAGES
    [entry] = named("conversation.turn", conversation_id=cid, status="ok")
    [triage] = named("agent.turn", agent="triage")
    [billing] = named("agent.turn", agent="billing")
    assert parent(entry) is api and parent(triage) is entry
    assert (triage.attributes or {})["ray_agents.conversation_id"] == cid
    assert [parent(s) for s in named("generate", agent="triage")] == [triage, triage]
    [call] = named("tool.call", tool="add")
    [execute] = named("tool.execute", tool="add")
    assert parent(call) is triage and parent(execute) is call
    [handoff] = named("agent.handoff", to_agent="billing")
    assert parent(handoff) is triage and parent(billing) is handoff
    [answer] = named("generate", agent="billing")
    assert parent(answer) is billing
    assert (answer.attributes or {})["gen_ai.request.model"] == "m"
    assert (answer.attributes or {})["gen_ai.usage.output_tokens"] > 0
    assert (triage.attributes or {})["ray_agents.status"] == "handoff"
    assert (billing.attributes or {})["ray_agents.steps"] == 1
    # Each span ended, and a parent never before its child.
    for span in turn:
        if span.parent is not None and span is not api:
            assert parent(span).end_time >= span.end_time  # type: ignore[operator]


async def test_an_ask_is_a_hop_in_the_trace_and_the_metrics(
    spans: InMemorySpanExporter,
) -> None:
    script = [
        {"match": "^trip", "json_reply": action("ask", agent="research", question="Weather?")},
        {"match": "^Weather", "json_reply": action("answer", text="Sunny.")},
        {"match": r"\[ask result\] Sunny", "json_reply": action("answer", text="Go.")},
    ]
    planner = AgentSpec(name="planner", model="m", asks=["research"])
    app = LocalApp(
        [planner, AgentSpec(name="research", model="m")], generator=ScriptedGenerator(script)
    )
    with use_metrics(MemoryMetrics()) as metrics:
        await app.send("trip to Paris", conversation_id="c1")
    assert metrics.get(m.AGENT_ASKS, agent="planner", to_agent="research") == 1
    assert metrics.get(m.AGENT_TURNS, agent="research", status="ok") == 1
    assert metrics.get(m.AGENT_TURNS, agent="planner", status="ok") == 1
    finished = spans.get_finished_spans()
    turns = {
        (s.attributes or {})["ray_agents.agent"]: s for s in finished if s.name == "agent.turn"
    }
    [ask] = [s for s in finished if s.name == "agent.ask"]
    assert ask.parent is not None and ask.parent.span_id == turns["planner"].context.span_id
    research = turns["research"]
    assert research.parent is not None and research.parent.span_id == ask.context.span_id
    assert (research.attributes or {})["ray_agents.conversation_id"].startswith("c1:ask:")


async def test_log_lines_of_one_turn_share_conversation_and_trace(
    client: httpx.AsyncClient, spans: InMemorySpanExporter, log_lines: io.StringIO
) -> None:
    cid = await one_turn(client)
    lines = [line for line in parsed(log_lines) if line.get("conversation_id") == cid]
    said = {(line["message"], line.get("agent")) for line in lines}
    assert {
        ("request", None),
        ("turn started", "triage"),
        ("agent turn started", "triage"),
        ("tool call", "triage"),
        ("agent turn ended", "triage"),
        ("agent turn started", "billing"),
        ("agent turn ended", "billing"),
        ("turn ended", None),
    } <= said
    [trace_id] = {line["trace_id"] for line in lines}
    turn_spans = [s for s in spans.get_finished_spans() if s.name == "agent.turn"]
    assert {hex_id(s.context.trace_id, 32) for s in turn_spans} == {trace_id}
    assert all(line["request_id"] for line in lines if line["message"] == "request")
    assert all(line["level"] == "INFO" for line in lines)
    assert all(line["logger"].startswith("ray_agents.") for line in lines)
    # Contents stay out of INFO lines unless asked for.
    text = log_lines.getvalue()
    assert observed_app.MESSAGE not in text and "Refunded 5." not in text


async def test_untraced_turns_still_log_one_trace_id(
    client: httpx.AsyncClient, log_lines: io.StringIO
) -> None:
    assert not tracer().start_span("probe").is_recording()  # tracing is off
    cid = await one_turn(client)
    lines = [line for line in parsed(log_lines) if line.get("conversation_id") == cid]
    turn_lines = [line for line in lines if line["message"] != "request"]
    assert len(turn_lines) >= 6
    assert len({line["trace_id"] for line in turn_lines}) == 1
    assert all("span_id" not in line for line in lines)


async def test_contents_are_logged_when_configured(client: httpx.AsyncClient) -> None:
    stream = io.StringIO()
    configure_logging(LogsSpec(log_content=True, format="text"), stream)
    try:
        await one_turn(client)
    finally:
        reset_logging()
    text = stream.getvalue()
    assert f"user_message={observed_app.MESSAGE}" in text and "answer=Refunded 5." in text
    assert "arguments={'a': 2, 'b': 3}" in text


async def test_metrics_of_one_turn(client: httpx.AsyncClient) -> None:
    with use_metrics(MemoryMetrics()) as metrics:
        await one_turn(client)
    get = metrics.get
    assert get(m.AGENT_TURNS, agent="triage", status="handoff") == 1
    assert get(m.AGENT_TURNS, agent="billing", status="ok") == 1
    assert get(m.AGENT_HANDOFFS, agent="triage", to_agent="billing") == 1
    assert metrics.observations(m.AGENT_TURN_STEPS, agent="triage") == [2]
    assert metrics.observations(m.AGENT_TURN_STEPS, agent="billing") == [1]
    assert get(m.AGENT_TURN_LATENCY, agent="triage") == 1
    assert get(m.TOOL_CALLS, tool="add", status="ok") == 1
    assert get(m.TOOL_LATENCY, tool="add") == 1
    assert get(m.API_REQUESTS, route=MESSAGES, method="POST", status="200") == 1
    assert get(m.API_REQUESTS, route="/v1/conversations", method="POST", status="201") == 1
    assert isinstance(current_metrics(), NoMetrics)  # restored


async def test_rate_limits_timeouts_and_kills_are_counted(runner: ToolRunner) -> None:
    tools = ToolsConfig.model_validate(
        {"tools": [{"function": "tools.testing:sleep_for", "settings": {"timeout_s": 0.3}}]}
    )
    sleepy = ToolRunner(build_registry(tools))
    call = ToolCallRequest(call_id="c", name="sleep_for", arguments={"seconds": 5})
    with use_metrics(MemoryMetrics()) as metrics:
        async with api_client(runner, burst=1) as client:
            assert (await client.get("/v1/agents", headers=headers())).status_code == 200
            assert (await client.get("/v1/agents", headers=headers())).status_code == 429
        try:
            result = await sleepy.execute(call)
        finally:
            await sleepy.close()
    assert result.error_type == "tool_timeout"
    assert metrics.get(m.API_RATE_LIMITED, reason="rate") == 1
    assert metrics.get(m.API_REQUESTS, route="/v1/agents", method="GET", status="429") == 1
    assert metrics.get(m.TOOL_TIMEOUTS, tool="sleep_for") == 1
    assert metrics.get(m.TOOL_SANDBOX_KILLS, tool="sleep_for") == 1
    assert metrics.get(m.TOOL_ERRORS, tool="sleep_for", error_type="tool_timeout") == 1


def test_metric_definitions() -> None:
    names = [metric.name for metric in m.ALL]
    assert len(names) == len(set(names)) == 25
    for metric in m.ALL:
        assert metric.name.startswith("agents_") and metric.description
        assert not {"deployment", "replica", "application"} & set(metric.tags)
        if metric.kind == "histogram":
            assert list(metric.boundaries) == sorted(metric.boundaries)
    with pytest.raises(ValueError, match="tags"):
        MemoryMetrics().record(m.AGENT_TURNS, 1, {"agent": "a"})


def test_spec_round_trips_through_the_environment() -> None:
    spec = ObservabilitySpec(
        tracing=TracingSpec(exporter="otlp", endpoint="http://c:4318/v1/traces", sample_ratio=0.5),
        logs=LogsSpec(level="DEBUG", log_content=True),
    )
    env = spec.env_vars()
    assert list(env) == ["RAY_AGENTS_OBSERVABILITY"]
    assert ObservabilitySpec.from_env(env) == spec
    assert ObservabilitySpec.from_env({}) == ObservabilitySpec()
    assert ObservabilitySpec().tracing.exporter == "none"
    with pytest.raises(ValidationError, match="Extra inputs"):
        ObservabilitySpec.model_validate({"tracing": {"exporter": "otlp", "colour": "red"}})
    with pytest.raises(ValidationError, match="only used by the otlp exporter"):
        ObservabilitySpec.model_validate({"tracing": {"endpoint": "http://c:4318"}})
    schema = ObservabilitySpec.model_json_schema()
    for definition in schema["$defs"].values():
        assert all("description" in f for f in definition["properties"].values())


PROMETHEUS = """\
# TYPE ray_serve_replica_processing_queries gauge
ray_serve_replica_processing_queries{application="a",deployment="agent-x",replica="r1"} 2.0
ray_serve_replica_processing_queries{application="a",deployment="agent-x",replica="r2"} 1.0
ray_serve_replica_processing_queries{application="b",deployment="agent-x",replica="r3"} 5.0
# TYPE ray_agents_model_prompt_tokens counter
ray_agents_model_prompt_tokens_total{application="a",model="m",replica="p1"} 300.0
ray_agents_model_prompt_tokens_total{application="a",model="m",replica="p2"} 100.0
# TYPE ray_agents_model_cached_tokens counter
ray_agents_model_cached_tokens_total{application="a",model="m",replica="p1"} 100.0
# TYPE ray_agents_model_requests counter
ray_agents_model_requests_total{application="a",model="m",status="ok"} 4.0
ray_agents_model_requests_total{application="a",model="m",status="error"} 1.0
"""


def test_status_table_from_serve_status_and_metrics() -> None:
    ongoing, models = scrape(PROMETHEUS, app="a")
    assert ongoing == {("a", "agent-x"): 3.0}
    assert models["m"].requests == 5 and models["m"].hit_rate == 0.25
    shot = Snapshot(
        deployments=[DeploymentRow("a", "agent-x", "HEALTHY", 2, 2, ongoing[("a", "agent-x")])],
        models=list(models.values()),
    )
    lines = render(shot, app="a").splitlines()
    assert lines[2].split() == ["APPLICATION", "DEPLOYMENT", "STATUS", "REPLICAS", "ONGOING"]
    assert lines[3].split() == ["a", "agent-x", "HEALTHY", "2/2", "3"]
    assert lines[-1].split() == ["m", "5", "400", "100", "25.0%"]
    assert "no Serve application" in render(Snapshot(), app="zzz")


def test_setup_outside_ray_drops_metrics_and_traces_when_off() -> None:
    from agents.observability import setup

    stream = io.StringIO()
    with use_metrics(MemoryMetrics()):
        setup(ObservabilitySpec(logs=LogsSpec(format="text")))
        try:
            assert isinstance(current_metrics(), NoMetrics)  # no Serve replica here
            assert not tracer().start_span("probe").is_recording()
            configure_logging(LogsSpec(format="text"), stream)
            import logging

            with agents.observability.bind(conversation_id="c9"):
                logging.getLogger("ray_agents.test").info("hello")
        finally:
            reset_logging()
    assert "hello [conversation_id=c9]" in stream.getvalue()


def test_exports() -> None:
    names = agents.observability.__all__
    assert names == sorted(names)
    for name in names:
        assert getattr(agents.observability, name) is not None
