"""Observability across real deployments: one scripted app with the HTTP API, a tool
call and a hand-off, every deployment exporting spans to a collector in the test.

- metrics: scraped from Ray's Prometheus endpoint, exact counts per agent, tool,
  model and route;
- traces: one trace from the API replica (request, then turn) through both agents'
  replicas, the pool's decode replica and the tool executor, parents intact across
  DeploymentHandles;
- logs: JSON lines of the turn, written by several deployments' processes, carry
  the same conversation id and trace id;
- ``ray-agents status``: one table of the app's deployments and the pool.

tests/unit/test_observability.py checks the same span tree in one process with an
in-memory exporter.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.builder import build_agents_app
from agents.observability import LogsSpec, ObservabilitySpec, TracingSpec
from agents.observability.status import run_status
from agents.observability.testing import CollectedSpan, SpanCollector
from agents.pool.spec import PoolSpec
from agents.store.spec import StoreSpec
from tests.fixtures import api_app, observed_app
from tests.fixtures.api_app import headers
from tools.spec import ToolsConfig

pytestmark = [pytest.mark.serve, pytest.mark.timeout(600)]

APP = "agents-observed"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
MESSAGES = "/v1/conversations/{conversation_id}/messages"
POOL = {
    "models": [
        {
            "id": "m",
            "source": "builtin:smollm2-135m-instruct",
            # Every prompt goes to the prefill replica: the KV transfer is measured.
            "mode": "disaggregated",
            "prefill": {"replicas": 1},
            "min_remote_prefill_tokens": 0,
            "scripted": observed_app.SCRIPT,
        }
    ]
}
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, timeout_s: float = 120) -> T:
    """Poll ``probe`` until it returns a value (Ray exports metrics and spans in batches)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def collector() -> Iterator[SpanCollector]:
    with SpanCollector() as collector:
        yield collector


@pytest.fixture(scope="module")
def turn(
    ray_cluster: dict[str, int],
    collector: SpanCollector,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """Serve the app and run one turn through HTTP (traceparent set by the client)."""
    from ray import serve

    db = tmp_path_factory.mktemp("observed") / "conversations.db"
    observability = ObservabilitySpec(
        tracing=TracingSpec(exporter="otlp", endpoint=collector.endpoint),
        logs=LogsSpec(format="json", level="INFO"),
    )
    built = build_agents_app(
        observed_app.agent_specs(),
        PoolSpec.model_validate(POOL),
        store=StoreSpec(backend="sqlite", path=str(db)),
        tools=ToolsConfig.model_validate(observed_app.TOOLS),
        api=api_app.api_spec(),
        observability=observability,
    )
    try:
        serve.run(built, name=APP, route_prefix="/")
        url = f"http://127.0.0.1:{ray_cluster['http']}"
        with httpx.Client(base_url=url, headers=headers(), timeout=60) as client:
            cid = client.post("/v1/conversations", json={}).json()["id"]
            reply = client.post(
                f"/v1/conversations/{cid}/messages",
                json={"content": observed_app.MESSAGE},
                headers={"traceparent": f"00-{TRACE}-{CLIENT_SPAN}-01"},
            )
        assert reply.status_code == 200, reply.text
        assert reply.json()["answer"] == "Refunded 5.", reply.text
        yield {"conversation_id": cid, "metrics_port": ray_cluster["metrics"]}
    finally:
        serve.delete(APP)


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by name, of this test's application only."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("application") == APP:
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **tags: str) -> float:
    def match(labels: dict[str, str], key: str, value: str) -> bool:
        if key == "le":  # a bucket's bound: "2", "2.0" and "2.000" are one bound
            return key in labels and float(labels[key]) == float(value)
        return labels.get(key) == value

    return sum(
        value
        for labels, value in samples.get(name, [])
        if all(match(labels, k, v) for k, v in tags.items())
    )


EXPECTED = [
    # (exported name, tags, value)
    ("ray_agents_agent_turns_total", {"agent": "triage", "status": "handoff"}, 1),
    ("ray_agents_agent_turns_total", {"agent": "billing", "status": "ok"}, 1),
    ("ray_agents_agent_handoffs_total", {"agent": "triage", "to_agent": "billing"}, 1),
    # Ray exports a histogram's sum from its buckets' midpoints: read the buckets.
    ("ray_agents_agent_turn_steps_bucket", {"agent": "triage", "le": "1.0"}, 0),
    ("ray_agents_agent_turn_steps_bucket", {"agent": "triage", "le": "2.0"}, 1),
    ("ray_agents_agent_turn_steps_bucket", {"agent": "billing", "le": "1.0"}, 1),
    ("ray_agents_agent_turn_latency_ms_count", {"agent": "triage"}, 1),
    ("ray_agents_tool_calls_total", {"tool": "add", "status": "ok"}, 1),
    ("ray_agents_tool_latency_ms_count", {"tool": "add"}, 1),
    ("ray_agents_model_requests_total", {"model": "m", "status": "ok"}, 3),
    ("ray_agents_model_ttft_ms_count", {"model": "m", "disaggregated": "true"}, 3),
    ("ray_agents_model_kv_transfer_ms_count", {"model": "m"}, 3),
    ("ray_agents_api_requests_total", {"route": MESSAGES, "method": "POST", "status": "200"}, 1),
    ("ray_agents_api_requests_total", {"route": "/v1/conversations", "status": "201"}, 1),
    ("ray_agents_api_request_latency_ms_count", {"route": MESSAGES}, 1),
]


def test_metrics_count_the_turn(turn: dict[str, Any]) -> None:
    seen: list[Any] = []

    def ready() -> dict[str, list[tuple[dict[str, str], float]]] | None:
        samples = scrape(turn["metrics_port"])
        seen[:] = [(n, tags, total(samples, n, **tags)) for n, tags, _ in EXPECTED]
        seen.append(sorted(n for n in samples if n.startswith("ray_agents")))
        done = all(total(samples, n, **tags) >= value for n, tags, value in EXPECTED)
        return samples if done else None

    try:
        samples = eventually(ready, "the turn's metrics on Ray's Prometheus endpoint")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {seen}") from None
    for name, tags, value in EXPECTED:
        assert total(samples, name, **tags) == value, (name, tags)
    assert total(samples, "ray_agents_model_prompt_tokens_total", model="m") > 0
    assert total(samples, "ray_agents_model_completion_tokens_total", model="m") > 0
    assert total(samples, "ray_agents_agent_errors_total") == 0
    [(labels, _)] = samples["ray_agents_tool_calls_total"]
    assert labels["deployment"] == "tools" and labels["replica"]


def test_one_trace_across_deployments(turn: dict[str, Any], collector: SpanCollector) -> None:
    expected = {"api.request", "conversation.turn", "agent.turn", "generate", "pool.generate"}
    expected |= {"tool.call"}
    expected |= {"tool.execute", "agent.handoff"}

    def complete() -> list[CollectedSpan] | None:
        spans = collector.spans(TRACE)
        names = [s.name for s in spans]
        enough = names.count("pool.generate") == 3 and names.count("agent.turn") == 2
        return spans if enough and expected <= set(names) else None

    spans = eventually(complete, "the turn's spans at the collector")
    by_id = {s.span_id: s for s in spans}

    def one(name: str, **attributes: Any) -> CollectedSpan:
        [span] = named(name, **attributes)
        return span

    def named(name: str, **attributes: Any) -> list[CollectedSpan]:
        return [
            s
            for s in spans
            if s.name == name
            and all(s.attributes.get(f"ray_agents.{k}") == v for k, v in attributes.items())
        ]

    def parent(span: CollectedSpan) -> CollectedSpan:
        assert span.parent_id is not None, span.name
        return by_id[span.parent_id]

    def where(span: CollectedSpan) -> str:
        deployment: str = span.resource["ray_agents.deployment"]
        return deployment

    api = one("api.request")
    assert api.parent_id == CLIENT_SPAN and where(api) == "agents-api"
    entry = one("conversation.turn", conversation_id=turn["conversation_id"])
    assert parent(entry) == api and where(entry) == "agents-api"
    triage, billing = one("agent.turn", agent="triage"), one("agent.turn", agent="billing")
    assert parent(triage) == entry and where(triage) == "agent-triage"
    assert triage.attributes["ray_agents.conversation_id"] == turn["conversation_id"]
    for step in named("generate"):
        pool = [s for s in named("pool.generate") if s.parent_id == step.span_id]
        assert len(pool) == 1 and where(pool[0]) == "pool-m"
        assert pool[0].attributes["ray_agents.disaggregated"] is True
        assert pool[0].attributes["gen_ai.request.model"] == "m"
    assert sorted(parent(s).attributes["ray_agents.agent"] for s in named("generate")) == [
        "billing",
        "triage",
        "triage",
    ]
    call, execute = one("tool.call", tool="add"), one("tool.execute", tool="add")
    assert parent(call) == triage and parent(execute) == call and where(execute) == "tools"
    handoff = one("agent.handoff", to_agent="billing")
    assert parent(handoff) == triage and parent(billing) == handoff
    assert where(billing) == "agent-billing"
    assert all(s.resource["service.name"] == "ray-agents" for s in spans)


def test_log_lines_of_the_turn_share_conversation_and_trace(turn: dict[str, Any]) -> None:
    import ray

    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    cid = turn["conversation_id"]

    def lines() -> list[dict[str, Any]] | None:
        found = []
        for path in logs.glob("worker-*"):
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("{") and cid in line:
                    record = json.loads(line)
                    if record.get("conversation_id") == cid:
                        found.append(record)
        deployments = {line.get("deployment") for line in found}
        wanted = {"agents-api", "agent-triage", "agent-billing", "tools"}
        return found if wanted <= deployments else None

    found = eventually(lines, "the turn's log lines in the replicas' logs", timeout_s=30)
    assert {line["trace_id"] for line in found} == {TRACE}
    assert all(line["level"] == "INFO" for line in found)
    assert observed_app.MESSAGE not in json.dumps(found)  # contents are not logged


def test_status_table(turn: dict[str, Any]) -> None:
    out = io.StringIO()
    assert run_status(app=APP, once=True, out=out) == 0
    text = out.getvalue()
    rows = {line.split()[1]: line.split() for line in text.splitlines() if line.startswith(APP)}
    assert set(rows) == {
        "agents-api",
        "agent-triage",
        "agent-billing",
        "tools",
        "pool-m",
        "pool-m-prefill",
    }
    assert all(row[2] == "HEALTHY" and row[3] == "1/1" for row in rows.values())
    [model] = [line.split() for line in text.splitlines() if line.startswith("m ")]
    assert model[1] == "3" and model[-1].endswith("%")  # requests, cache hit rate
    assert "\x1b[" not in text  # --once never redraws
