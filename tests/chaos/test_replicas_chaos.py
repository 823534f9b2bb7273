"""Chaos: replicas of every kind killed under load, through the HTTP API.

One Serve app (scripted engine, disaggregated pool, SQLite store) with two replicas
of each kind. 24 conversations x 4 turns run through the SDK while one replica of the
API, each agent, the tool executor, the pool's decode and prefill servers is killed,
one after another. Then: no user message lost or stored twice, every turn in every
log closed by its ``done``, at least 99% of turns ``ok``, and every conversation
answers a message sent 10 s after the last kill.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agents.api.spec import ApiKey, ApiLimits, ApiSpec, hash_key
from agents.builder import build_agents_app
from agents.client import AsyncClient, Client
from agents.events import DoneEvent, ErrorEvent, TokenEvent
from agents.pool.spec import PoolSpec
from agents.spec import AgentSpec
from agents.store.spec import StoreSpec
from agents.testing import action
from tests.chaos._chaos import check_log, kill_replica, replicas
from tools.spec import ToolsConfig

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

APP = "agents-chaos"
KEY = "chaos-secret-key"
CONVERSATIONS = 24
TURNS = ["refund for order {n}", "sum 2 and 3", "slowly tell me more", "thanks"]
# The kinds of replica killed, in order, and the pause between two kills.
KILLS = ["agents-api", "agent-triage", "agent-billing", "tools", "pool-m", "pool-m-prefill"]
KILL_EVERY_S = 2.5


def answer(match: str, text: str, delay: float = 0.03) -> dict[str, Any]:
    return {"match": match, "json_reply": action("answer", text=text), "token_delay_s": delay}


SCRIPT = [
    {"match": "^refund", "json_reply": action("handoff", agent="billing", message="refund")},
    {"match": "^sum", "json_reply": action("tool", tool="add", arguments={"a": 2, "b": 3})},
    answer(r"\[add result\]", "It is 5, or it could not be checked."),
    answer("Handed off to billing", "Billing here: the refund is on its way."),
    answer("^slowly", " ".join(["more"] * 24), delay=0.05),
    answer("^very slowly", " ".join(["word"] * 30), delay=0.2),
    answer("", "You are welcome."),
]
POOL = {
    "models": [
        {
            "id": "m",
            "source": "builtin:smollm2-135m-instruct",
            "mode": "disaggregated",
            "decode": {"replicas": 2},
            "prefill": {"replicas": 2},
            "min_remote_prefill_tokens": 0,  # every prompt crosses the prefill replicas
            "scripted": SCRIPT,
        }
    ]
}
TWO = {"min_replicas": 2, "max_replicas": 2}
AGENTS = [
    {"name": "triage", "model": "m", "handoffs": ["billing"], "scaling": TWO},
    {"name": "billing", "model": "m", "tools": ["add"], "scaling": TWO},
]


@pytest.fixture(scope="module")
def url(ray_cluster: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ray import serve

    db = tmp_path_factory.mktemp("chaos") / "conversations.db"
    api = ApiSpec(
        keys=[ApiKey(tenant="chaos", sha256=hash_key(KEY))],
        keys_env=None,
        min_replicas=2,
        max_replicas=2,
        limits=ApiLimits(requests_per_minute=100_000, burst=10_000),
    )
    built = build_agents_app(
        [AgentSpec.model_validate(a) for a in AGENTS],
        PoolSpec.model_validate(POOL),
        store=StoreSpec(backend="sqlite", path=str(db)),
        tools=ToolsConfig.model_validate({"tools": [{"function": "tools.testing:add"}], **TWO}),
        api=api,
        turn_lease_s=3.0,
    )
    try:
        serve.run(built, name=APP, route_prefix="/")
        yield f"http://127.0.0.1:{ray_cluster['http']}"
    finally:
        serve.delete(APP)


async def converse(client: AsyncClient, n: int, results: list[dict[str, Any]]) -> None:
    """One conversation's four turns; streamed and plain turns alternate."""
    conv = await client.conversations.create()
    for i, template in enumerate(TURNS):
        text = template.format(n=n)
        started = time.monotonic()
        if i % 2 == 0:
            events = [e async for e in conv.stream(text)]
            done = events[-1]
            assert isinstance(done, DoneEvent)
            status = done.status
            error = next((e for e in reversed(events) if isinstance(e, ErrorEvent)), None)
            stored = [e.seq for e in events if not isinstance(e, TokenEvent)]
            if len(stored) != len(set(stored)) or stored != sorted(stored, key=lambda s: s or 0):
                status = "stream-out-of-order"
        else:
            result = await conv.send(text)
            status, error = result.status, result.error
        results.append(
            {
                "conversation": conv.id,
                "text": text,
                "status": status,
                "code": error.code if error is not None and status != "ok" else None,
                "seconds": time.monotonic() - started,
            }
        )


async def killer(rng: random.Random, kills: list[tuple[float, str]]) -> None:
    await asyncio.sleep(1.5)
    for deployment in KILLS:
        name = await asyncio.to_thread(kill_replica, APP, deployment, rng)
        kills.append((time.monotonic(), name))
        await asyncio.sleep(KILL_EVERY_S)


async def test_killing_a_replica_of_each_kind_under_load_loses_nothing(url: str) -> None:
    rng = random.Random(13)
    results: list[dict[str, Any]] = []
    kills: list[tuple[float, str]] = []
    for deployment in KILLS:
        assert len(replicas(APP, deployment)) == 2, deployment
    async with AsyncClient(url, KEY, max_retries=12, timeout=120) as client:
        started = time.monotonic()
        load = asyncio.gather(*(converse(client, n, results) for n in range(CONVERSATIONS)))
        await asyncio.gather(load, killer(rng, kills))
        load_s = time.monotonic() - started

        # Every conversation answers a message sent 10 s after the last kill.
        await asyncio.sleep(max(0.0, kills[-1][0] + 10 - time.monotonic()))
        conversations = sorted({r["conversation"] for r in results})
        after = await asyncio.gather(*(client.conversations.get(cid) for cid in conversations))
        answers = await asyncio.gather(*(conv.send("one more, thanks") for conv in after))
        logs = [await conv.messages() for conv in after]

    statuses = Counter(r["status"] for r in results)
    codes = Counter(r["code"] for r in results if r["code"])
    ok = statuses["ok"] / len(results)
    checks = [check_log(log) for log in logs]
    sent = {cid: [r["text"] for r in results if r["conversation"] == cid] for cid in conversations}
    print(
        f"\nchaos: {len(results)} turns in {load_s:.1f} s under {len(kills)} kills "
        f"({', '.join(name.split('#')[1] for _, name in kills)}); "
        f"ok {statuses['ok']} ({ok:.1%}), statuses {dict(statuses)}, error codes {dict(codes)}; "
        f"slowest turn {max(r['seconds'] for r in results):.1f} s; "
        f"after the kills: {sum(a.status == 'ok' for a in answers)}/{len(answers)} answered"
    )
    assert len(results) == CONVERSATIONS * len(TURNS)
    assert [k.split("#")[1] for _, k in kills] == KILLS
    for cid, check in zip(conversations, checks, strict=True):
        # No user message lost or stored twice, in the order sent.
        assert check.messages == [*sent[cid], "one more, thanks"], cid
        # Every turn in every log ends with done.
        assert check.unclosed == [], (cid, check.unclosed)
        assert check.turns == len(TURNS) + 1
    assert ok >= 0.99, (dict(statuses), dict(codes))
    assert all(a.status == "ok" for a in answers)


def test_a_stream_whose_api_replicas_died_resumes_with_last_event_id(url: str) -> None:
    rng = random.Random(7)
    sent: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [sent.append]})
    with Client(url, KEY, max_retries=12, timeout=120, http_client=http) as client:
        conv = client.conversations.create(agent="billing")
        events = []
        with conv.stream("very slowly, please") as stream:
            for event in stream:
                events.append(event)
                if sum(isinstance(e, TokenEvent) for e in events) == 3:
                    for _ in replicas(APP, "agents-api"):  # every API replica: no way around
                        kill_replica(APP, "agents-api", rng)
        log = conv.messages()
    http.close()
    stored = [e for e in events if not isinstance(e, TokenEvent)]
    assert [e.type for e in stored] == ["message", "answer", "done"]
    # Every stored event of the turn exactly once, in order: what the log holds.
    assert [e.seq for e in stored] == [e.seq for e in log]
    done = stored[-1]
    assert isinstance(done, DoneEvent) and done.status == "ok"
    resumed = [r for r in sent if "last-event-id" in r.headers]
    assert resumed and resumed[0].headers["last-event-id"] == str(stored[0].seq)
