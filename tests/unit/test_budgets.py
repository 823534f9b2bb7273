"""Token budgets and usage in-process (no Ray): a looping agent stops within one step
of its budget, the usage the store sums equals the done events' usage, the API refuses
new turns with 429 ``budget_exceeded`` (a key's own budget over the app's), and
``GET /v1/usage`` reports by day, agent and model."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agents.api.app import create_app
from agents.api.spec import ApiKey, hash_key
from agents.budgets import day_of
from agents.events import DoneEvent, ErrorEvent, Event, TurnUsage
from agents.pool.generator import Generator
from agents.pool.types import Chunk, FinishChunk, GenerateRequest
from agents.protocol import TokenBudgets
from agents.spec import AgentSpec
from agents.store.base import ConversationStore
from agents.store.memory import MemoryStore
from agents.store.sqlite import SQLiteStore
from agents.testing import LocalApp, ScriptedGenerator, action
from tests.fixtures import api_app
from tests.fixtures.api_app import headers
from tools.testing import FunctionTools

LOOP = [{"match": ".", "json_reply": action("tool", tool="add", arguments={"a": 1, "b": 2})}]
"""An agent that calls its tool forever (until max_steps, or its budget)."""


def looping_app(store: ConversationStore) -> LocalApp:
    tools = FunctionTools()
    tools.add("add", lambda a, b: a + b, {"type": "object", "properties": {"a": {}, "b": {}}})
    spec = AgentSpec(
        name="looper",
        model="m",
        instructions="You are looper.",
        tools=["add"],
        max_steps=200,
        limits={"max_tokens_per_turn": 10**9},
    )
    generator = Counted(ScriptedGenerator(LOOP))
    return LocalApp([spec], generator=generator, tools=tools, store=store)


def done_usage(events: list[Event]) -> TurnUsage:
    done = events[-1]
    assert isinstance(done, DoneEvent)
    return done.usage


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
@pytest.mark.parametrize("budget", [500, 2000])
async def test_a_looping_agent_stops_within_one_step_of_its_budget(
    budget: int, backend: str, tmp_path: Path
) -> None:
    store = MemoryStore() if backend == "memory" else SQLiteStore(tmp_path / "c.db")
    await store.open()
    app = looping_app(store)
    limits = TokenBudgets(conversation_tokens=budget)
    events = await app.send("go", conversation_id="c1", budgets=limits)
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert [e.code for e in errors] == ["budget_exceeded"] and "c1" in errors[0].message
    usage = done_usage(events)
    spent = usage.prompt_tokens + usage.completion_tokens
    # Stopped at the first step that found the budget spent: over it by less than a step.
    generator = app.service("looper").loop._generator
    assert isinstance(generator, Counted) and sum(generator.calls) == spent
    assert budget <= spent < budget + max(generator.calls), (spent, generator.calls)
    assert usage.steps == len(generator.calls) < 200
    # What the store summed is what the done event says.
    totals = await store.usage_totals("", "c1", day_of(time.time()))
    assert totals.conversation == spent
    # A second turn does not even start a step.
    again = await app.send("more", conversation_id="c1", budgets=limits)
    assert [e.code for e in again if isinstance(e, ErrorEvent)] == ["budget_exceeded"]
    assert done_usage(again).steps == 0
    await store.close()


class Counted(Generator):
    """A generator that keeps each call's reported tokens (prompt + completion)."""

    def __init__(self, inner: Generator) -> None:
        self.inner = inner
        self.calls: list[int] = []

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        async for chunk in self.inner.generate(request):
            if isinstance(chunk, FinishChunk) and chunk.usage is not None:
                self.calls.append(chunk.usage.prompt_tokens + chunk.usage.completion_tokens)
            yield chunk


BUDGET_KEY = "sk-budget-key"
"""Tenant 'frugal', whose own budget allows 1 token a day (the app's: more)."""
GENEROUS_KEY = "sk-generous-key"
"""Tenant 'acme', whose own daily budget replaces the app's smaller one."""


def client_for(app: LocalApp, **budgets: int) -> httpx.AsyncClient:
    spec = api_app.api_spec()
    keys = [
        *spec.keys,
        ApiKey(tenant="frugal", sha256=hash_key(BUDGET_KEY), budgets=TokenBudgets(daily_tokens=1)),
        ApiKey(
            tenant="acme", sha256=hash_key(GENEROUS_KEY), budgets=TokenBudgets(daily_tokens=10**9)
        ),
    ]
    spec = spec.model_copy(update={"keys": keys, "budgets": TokenBudgets(**budgets)})
    asgi = create_app(app.conversations, api_app.agent_specs(), spec)
    transport = httpx.ASGITransport(app=asgi, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://api")


async def test_the_api_refuses_new_turns_once_a_budget_is_spent_and_reports_usage() -> None:
    local = LocalApp(api_app.agent_specs(), generator=ScriptedGenerator(api_app.SCRIPT))
    async with client_for(local, daily_tokens=400) as client:
        cid = (await client.post("/v1/conversations", json={}, headers=headers())).json()["id"]
        turns = []
        for n in range(30):
            reply = await client.post(
                f"/v1/conversations/{cid}/messages",
                json={"content": f"hello {n}", "idempotency_key": f"k-{n}"},
                headers=headers(),
            )
            if reply.status_code == 429:
                break
            assert reply.status_code == 200, reply.text
            turns.append(reply.json())
        assert reply.status_code == 429 and 1 < len(turns) < 30
        error = reply.json()["error"]
        assert (error["type"], error["code"]) == ("rate_limit_exceeded", "budget_exceeded")
        assert "daily budget" in error["message"] and "acme" in error["message"]
        # Another tenant's budget is its own.
        other = await client.post("/v1/conversations", json={}, headers=headers("globex"))
        fine = await client.post(
            f"/v1/conversations/{other.json()['id']}/messages",
            json={"content": "hello"},
            headers=headers("globex"),
        )
        assert fine.status_code == 200
        # A key's own budget replaces the app's: acme's generous key goes on ...
        generous = {"Authorization": f"Bearer {GENEROUS_KEY}"}
        more = await client.post(
            f"/v1/conversations/{cid}/messages", json={"content": "hi"}, headers=generous
        )
        assert more.status_code == 200, more.text
        turns.append(more.json())
        # ... and frugal's allows one turn a day (1 token: the first turn spends more).
        tight = {"Authorization": f"Bearer {BUDGET_KEY}"}
        mine = (await client.post("/v1/conversations", json={}, headers=tight)).json()["id"]
        path = f"/v1/conversations/{mine}/messages"
        first = await client.post(path, json={"content": "hi"}, headers=tight)
        assert first.status_code == 200
        refused = await client.post(path, json={"content": "hi again"}, headers=tight)
        assert refused.json()["error"]["code"] == "budget_exceeded"
        assert "'frugal'" in refused.json()["error"]["message"]
        # A retry of a turn already begun is not refused: it joins its turn.
        retry = await client.post(
            f"/v1/conversations/{cid}/messages",
            json={"content": "hello 0", "idempotency_key": "k-0"},
            headers=headers(),
        )
        assert retry.status_code == 200 and retry.json()["turn_id"] == turns[0]["turn_id"]

        # The usage report: the tenant's tokens from the store, equal to its turns' usage.
        report = (await client.get("/v1/usage", headers=headers())).json()
        assert report["tenant"] == "acme" and [r["agent"] for r in report["data"]] == ["triage"]
        prompt = sum(t["usage"]["prompt_tokens"] for t in turns)
        completion = sum(t["usage"]["completion_tokens"] for t in turns)
        assert (report["prompt_tokens"], report["completion_tokens"]) == (prompt, completion)
        assert report["data"][0]["calls"] == sum(t["usage"]["steps"] for t in turns)
        assert report["prompt_tokens"] + report["completion_tokens"] >= 400
        empty = await client.get("/v1/usage?start=2020-01-01&end=2020-01-31", headers=headers())
        assert empty.json()["data"] == [] and empty.json()["prompt_tokens"] == 0
        bad = await client.get("/v1/usage?start=2026-12-05&end=2026-12-01", headers=headers())
        assert bad.status_code == 400
