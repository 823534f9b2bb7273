"""Each example app runs end to end in one process: its YAML loaded by
``load_app_config``, its real tools (SQLite queries, BM25 search, the sandbox, file
writes) run by ``ToolRunner`` in worker processes, scripted model turns."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from agents.config import AppConfig, load_app_config
from agents.events import (
    AnswerEvent,
    ApprovalRequiredEvent,
    AskEvent,
    DoneEvent,
    Event,
    HandoffEvent,
    TokenEvent,
    ToolResultEvent,
)
from agents.store.spec import StoreSpec, create_store
from agents.testing import LocalApp, ScriptedGenerator, action
from tools.deployment import build_registry
from tools.executor import ToolRunner
from tools.workers import WorkerPool

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
Build = Callable[[AppConfig, list[dict[str, Any]]], Awaitable[LocalApp]]


def rule(match: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"match": match, "json_reply": action(kind, **fields)}


def kinds(events: list[Event]) -> list[str]:
    return [e.type for e in events if not isinstance(e, TokenEvent)]


def of(events: list[Event], cls: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


@pytest.fixture
async def run(tmp_path: Path) -> AsyncIterator[Build]:
    """Builds an example's app: its agents, a runner over its tools, a fresh store."""
    runners: list[ToolRunner] = []
    stores = []

    async def build(config: AppConfig, rules: list[dict[str, Any]]) -> LocalApp:
        assert config.tools is not None
        grants = {a.name: a.tools for a in config.agent_specs if a.tools}
        runner = ToolRunner(build_registry(config.tools), grants=grants, workers=WorkerPool(2))
        runners.append(runner)
        store = create_store(StoreSpec(backend="sqlite", path=str(tmp_path / "c.db")))
        await store.open()
        stores.append(store)
        return LocalApp(
            config.agent_specs,
            generator=ScriptedGenerator(rules),
            tools=runner,
            store=store,
            default_agent=config.default_agent,
            max_hops=config.app.max_hops,
        )

    yield build
    for runner in runners:
        await runner.close()
    for store in stores:
        await store.close()


def load(name: str) -> AppConfig:
    return load_app_config(EXAMPLES / name / "app.yaml")


# -- customer support ----------------------------------------------------------------


@pytest.fixture
def orders_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "orders.db"
    monkeypatch.setenv("SUPPORT_ORDERS_DB", str(path))  # the tool workers inherit it
    return path


SUPPORT_RULES = [
    rule("charged twice", "handoff", agent="billing"),
    rule("Handed off to billing", "tool", tool="lookup_order", arguments={"order_id": "A1002"}),
    rule(
        r'\[lookup_order result\] .*"status": "shipped"',
        "tool",
        tool="billing_history",
        arguments={"order_id": "A1002"},
    ),
    rule(
        r'\[billing_history result\] .*"charged_cents": 9998, "refunded_cents": 0',
        "tool",
        tool="request_refund",
        arguments={"order_id": "A1002", "amount_cents": 4999, "reason": "duplicate charge"},
    ),
    rule(
        r'\[request_refund result\] .*"status": "requested"',
        "answer",
        text="Order A1002 has shipped (DHL). You were charged twice; I requested a refund "
        "of $49.99.",
    ),
    rule("will not power on", "handoff", agent="tech_support"),
    rule(
        "Handed off to tech_support",
        "tool",
        tool="open_ticket",
        arguments={"order_id": "A1003", "summary": "Wi-Fi 6 router does not power on"},
    ),
    rule(r'\[open_ticket result\] \{"ticket_id": 1,', "answer", text="Ticket 1 is open."),
]


async def test_customer_support_billing_refunds_a_double_charge(
    run: Build, orders_db: Path
) -> None:
    app = await run(load("customer_support"), SUPPORT_RULES)
    events = await app.send("I was charged twice for order A1002!", conversation_id="c1")
    assert kinds(events) == [
        "message",
        "handoff",
        *["tool_call", "tool_result"] * 3,
        "answer",
        "done",
    ]
    assert of(events, HandoffEvent)[0].to_agent == "billing"
    results = [json.loads(e.content) for e in of(events, ToolResultEvent)]
    assert not any(e.is_error for e in of(events, ToolResultEvent))
    assert results[0]["status"] == "shipped" and results[0]["tracking"] == "JD014600006281203551"
    assert [p["amount_cents"] for p in results[1]["payments"]] == [4999, 4999]
    answer = of(events, AnswerEvent)[0]
    assert answer.agent == "billing" and answer.text.startswith("Order A1002 has shipped")
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.active_agent == "billing"
    with closing(sqlite3.connect(orders_db)) as db:
        refunds = db.execute(
            "SELECT amount_cents, status, note FROM payments WHERE kind = 'refund' "
            "AND order_id = 'A1002'"
        ).fetchall()
    assert refunds == [(4999, "requested", "duplicate charge")]


async def test_customer_support_tech_support_opens_a_ticket(run: Build, orders_db: Path) -> None:
    app = await run(load("customer_support"), SUPPORT_RULES)
    events = await app.send("My router from order A1003 will not power on", conversation_id="c2")
    assert kinds(events) == ["message", "handoff", "tool_call", "tool_result", "answer", "done"]
    assert of(events, AnswerEvent)[0].agent == "tech_support"
    with closing(sqlite3.connect(orders_db)) as db:
        tickets = db.execute("SELECT id, order_id, summary, status FROM tickets").fetchall()
    assert tickets == [(1, "A1003", "Wi-Fi 6 router does not power on", "open")]


def test_support_tools_refuse_what_the_data_does_not_allow(orders_db: Path) -> None:
    load("customer_support")  # puts the example's folder (app.python_path) on sys.path
    import support_tools

    with pytest.raises(LookupError, match="no order 'A9999'"):
        support_tools.lookup_order("A9999")
    # A1004 was cancelled and refunded in full: nothing is left to refund.
    with pytest.raises(ValueError, match="0 cents left to refund"):
        support_tools.request_refund("A1004", 100, "again")
    assert [o["order_id"] for o in support_tools.customer_orders("ada@example.com")] == [
        "A1002",
        "A1001",
    ]


# -- research team -------------------------------------------------------------------

RESEARCH_RULES = [
    rule(
        "report on prefill/decode disaggregation",
        "ask",
        agent="researcher",
        question="What do our notes say about prefill/decode disaggregation?",
    ),
    rule(
        "What do our notes say",
        "tool",
        tool="search_docs",
        arguments={"query": "prefill decode disaggregation", "limit": 3},
    ),
    rule(
        r'\[search_docs result\] \[\{"name": "disaggregation.md"',
        "tool",
        tool="read_doc",
        arguments={"name": "disaggregation.md"},
    ),
    rule(
        r"\[read_doc result\] # Prefill/decode disaggregation",
        "answer",
        text="From disaggregation.md: prefill is compute-bound, decode is bandwidth-bound; "
        "separate replicas keep decode smooth; the KV cache moves between them.",
    ),
    rule(
        r"\[ask result\] From disaggregation.md",
        "ask",
        agent="writer",
        question="Write a report from: prefill is compute-bound, decode is bandwidth-bound; "
        "separate replicas keep decode smooth.",
    ),
    rule(
        "Write a report from",
        "answer",
        text="Disaggregation gives prefill and decode replicas of their own.",
    ),
    rule(
        r"\[ask result\] Disaggregation gives",
        "answer",
        text="Report: Disaggregation gives prefill and decode replicas of their own. "
        "(Source: disaggregation.md)",
    ),
]


async def test_research_team_planner_asks_researcher_and_writer(run: Build) -> None:
    app = await run(load("research_team"), RESEARCH_RULES)
    events = await app.send(
        "Write a short report on prefill/decode disaggregation", conversation_id="r1"
    )
    assert kinds(events) == [
        *["message", "ask", "tool_result", "ask", "tool_result", "answer", "done"]
    ]
    asks = of(events, AskEvent)
    assert [a.to_agent for a in asks] == ["researcher", "writer"]
    answer = of(events, AnswerEvent)[0]
    assert answer.agent == "planner"
    assert answer.text == (
        "Report: Disaggregation gives prefill and decode replicas of their own. "
        "(Source: disaggregation.md)"
    )
    # The researcher's own turn: the real search ranked the right note first.
    research = await app.store.events(f"r1:ask:{asks[0].call_id}")
    assert [e.type for e in research] == [
        "message",
        *["tool_call", "tool_result"] * 2,
        "answer",
        "done",
    ]
    found = json.loads(next(e for e in research if e.type == "tool_result").content)
    assert [hit["name"] for hit in found][:2] == ["disaggregation.md", "continuous_batching.md"]
    assert found[0]["title"] == "Prefill/decode disaggregation"


def test_research_search_ranks_by_relevance() -> None:
    load("research_team")  # puts the example's folder (app.python_path) on sys.path
    import research_tools

    assert research_tools.search_docs("prefix cache hit rate affinity")[0]["name"] == (
        "prefix_caching.md"
    )
    assert research_tools.search_docs("draft tokens acceptance", 1)[0]["name"] == (
        "speculative_decoding.md"
    )
    with pytest.raises(LookupError, match=r"no note 'secrets\.md'"):
        research_tools.read_doc("secrets.md")


# -- code assistant ------------------------------------------------------------------

BIG = str(2**100)
CODE_RULES = [
    rule(r"^Compute 2\*\*100", "tool", tool="python", arguments={"code": "print(2**100)"}),
    rule(
        rf"\[python result\] {BIG}",
        "ask",
        agent="reviewer",
        question=f"Check that 2**100 == {BIG}",
    ),
    rule(
        "Check that",
        "tool",
        tool="python",
        arguments={"code": f"print(2**100 == {BIG})"},
    ),
    rule(r"\[python result\] True", "answer", text="Verified: 2**100 equals it."),
    rule(
        r"\[ask result\] Verified",
        "tool",
        tool="write_file",
        arguments={"path": "results/power.txt", "content": BIG + "\n"},
    ),
    rule(r"\[write_file result\] wrote 32 characters", "answer", text="Saved results/power.txt."),
    rule(r"\[write_file result\] .*did not approve", "answer", text="Not saved."),
]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "workspace"
    monkeypatch.setenv("CODE_ASSISTANT_WORKSPACE", str(path))
    return path


async def code_turn(app: LocalApp) -> ApprovalRequiredEvent:
    events = await app.send("Compute 2**100 and save it to a file", conversation_id="k1")
    assert kinds(events) == [
        *["message", "tool_call", "tool_result", "ask", "tool_result", "tool_call"],
        *["approval_required", "done"],
    ]
    python = of(events, ToolResultEvent)[0]
    assert python.name == "python" and python.content.strip() == BIG and not python.is_error
    assert of(events, ToolResultEvent)[1].content == "Verified: 2**100 equals it."
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.status == "paused"
    pending: ApprovalRequiredEvent = of(events, ApprovalRequiredEvent)[0]
    assert pending.name == "write_file"
    return pending


@pytest.mark.root  # the `python` tool runs in the sandbox
async def test_code_assistant_writes_only_after_approval(run: Build, workspace: Path) -> None:
    app = await run(load("code_assistant"), CODE_RULES)
    pending = await code_turn(app)
    assert not (workspace / "results" / "power.txt").exists()
    events = await app.decide("k1", pending.call_id, approved=True)
    assert kinds(events) == ["approval", "tool_result", "answer", "done"]
    assert of(events, AnswerEvent)[0].text == "Saved results/power.txt."
    assert (workspace / "results" / "power.txt").read_text() == BIG + "\n"


@pytest.mark.root  # the `python` tool runs in the sandbox
async def test_code_assistant_rejected_write_leaves_no_file(run: Build, workspace: Path) -> None:
    app = await run(load("code_assistant"), CODE_RULES)
    pending = await code_turn(app)
    events = await app.decide("k1", pending.call_id, approved=False, reason="not now")
    assert of(events, AnswerEvent)[0].text == "Not saved."
    assert not (workspace / "results").exists()


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../escape.txt", "outside the workspace"),
        ("a/../../escape.txt", "outside the workspace"),
        ("/etc/passwd", "is absolute"),
        ("link/escape.txt", "outside the workspace"),
        (".", "outside the workspace"),
    ],
)
def test_code_tools_refuse_paths_outside_the_workspace(
    workspace: Path, path: str, why: str
) -> None:
    load("code_assistant")  # puts the example's folder (app.python_path) on sys.path
    import code_tools

    workspace.mkdir()
    (workspace / "link").symlink_to(workspace.parent)
    with pytest.raises(PermissionError, match=why):
        code_tools.write_file(path, "x")
    assert not (workspace.parent / "escape.txt").exists()
