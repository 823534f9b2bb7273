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
from collections.abc import Iterator

import httpx
import pytest

from agents.api._webhooks import delivery_id
from agents.api.types import Multitask
from agents.client import Client, ConversationBusyError
from agents.events import DoneEvent, TokenEvent
from tests.chaos._chaos import KEY, assert_recovered, chaos_app, kill_replica, replicas, run_load
from tests.fixtures.webhook_receiver import receiver

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

APP = "agents-chaos"
# The kinds of replica killed, in order, and the pause between two kills.
KILLS = ["agents-api", "agent-triage", "agent-billing", "tools", "pool-m", "pool-m-prefill"]
KILL_EVERY_S = 2.5


@pytest.fixture(scope="module")
def url(ray_cluster: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ray import serve

    db = tmp_path_factory.mktemp("chaos") / "conversations.db"
    try:
        serve.run(chaos_app(db), name=APP, route_prefix="/")
        yield f"http://127.0.0.1:{ray_cluster['http']}"
    finally:
        serve.delete(APP)


async def test_killing_a_replica_of_each_kind_under_load_loses_nothing(url: str) -> None:
    rng = random.Random(13)
    killed: list[str] = []
    for deployment in KILLS:
        assert len(replicas(APP, deployment)) == 2, deployment

    async def kill_each_kind() -> float:
        await asyncio.sleep(1.5)
        for deployment in KILLS:
            killed.append(await asyncio.to_thread(kill_replica, APP, deployment, rng))
            last = time.monotonic()
            await asyncio.sleep(KILL_EVERY_S)
        return last

    figures = await run_load(url, kill_each_kind)
    print(f"\nchaos (a replica of each kind killed): {figures}")
    assert [name.split("#")[1] for name in killed] == KILLS
    assert_recovered(figures)


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


def busiest_engine() -> int:
    """Requests the busier pool replica's engine is working on now.

    Which replica an agent's router chose is its own (SessionRouter's table is per
    process): ask without a session, so the ring spreads the asks over both replicas
    (missing one in 16 tries: 2**-16), and take the largest answer.
    """
    from ray import serve

    engine = serve.get_deployment_handle("pool-m", APP)
    return max(engine.running_requests.remote().result() for _ in range(16))


def test_a_client_that_leaves_mid_answer_stops_the_engines_request(url: str) -> None:
    with Client(url, KEY, max_retries=3, timeout=60) as client:
        conv = client.conversations.create(agent="billing")
        with conv.stream("very slowly, please") as stream:
            tokens = 0
            for event in stream:
                tokens += isinstance(event, TokenEvent)
                if tokens == 3:
                    break
            assert busiest_engine() == 1  # the reply streams
        left = time.monotonic()
        while (running := busiest_engine()) and (time.monotonic() - left < 2.0):
            time.sleep(0.1)
        stopped_after = time.monotonic() - left
        log = conv.messages()
    print(f"\nengine request stopped {stopped_after:.2f} s after the client left")
    assert running == 0
    assert [e.type for e in log] == ["message", "error", "done"]


def test_a_deadline_that_passes_stops_the_engines_request(url: str) -> None:
    with Client(url, KEY, max_retries=3, timeout=60) as client:
        conv = client.conversations.create(agent="billing")
        result = conv.send("very slowly, please", timeout_s=1.0)  # the reply takes 6 s
        ended = time.monotonic()
        while (running := busiest_engine()) and time.monotonic() - ended < 2.0:
            time.sleep(0.1)
    assert result.status == "error" and result.error is not None
    assert result.error.code == "deadline_exceeded"
    assert running == 0


def test_a_background_run_survives_the_api_replica_that_accepted_it(url: str) -> None:
    rng = random.Random(5)
    with receiver(fail_first=True) as hooks, Client(url, KEY, max_retries=12, timeout=60) as client:
        conv = client.conversations.create(agent="billing")
        run = conv.send("very slowly, please", background=True, webhook=hooks.url)  # ~6 s
        assert run.accepted.status == "running"
        for _ in replicas(APP, "agents-api"):  # the one that accepted it among them
            kill_replica(APP, "agents-api", rng)
        result = run.wait(timeout=120)
        got = hooks.wait_for(1, timeout_s=60)
        log = conv.messages()
    assert result.status == "ok" and result.answer is not None
    assert result.answer.startswith("word0")
    # One delivery id for the run; its first try was answered 500 and retried.
    assert set(hooks.ids()) == {delivery_id(conv.id, run.id)} and len(hooks.ids()) >= 2
    assert got[delivery_id(conv.id, run.id)].body["result"]["status"] == "ok"
    # Nothing lost, nothing twice: one message, the turn closed once.
    assert [e.type for e in log] == ["message", "answer", "done"]


@pytest.mark.parametrize("policy", ["interrupt", "rollback"])
def test_a_second_message_stops_the_engines_generation(url: str, policy: Multitask) -> None:
    with Client(url, KEY, max_retries=3, timeout=60) as client:
        conv = client.conversations.create(agent="billing")
        run = conv.send("very slowly, please", background=True)  # 30 tokens, 0.2 s each
        deadline = time.monotonic() + 10
        while busiest_engine() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.05)  # 50 ms into the first turn's generation
        reply = conv.send("thanks", multitask=policy)
        settled = time.monotonic()
        while (running := busiest_engine()) and time.monotonic() - settled < 2.0:
            time.sleep(0.1)
        first = run.wait(timeout=30)
        log = conv.messages()
    assert reply.status == "ok" and reply.answer == "You are welcome."
    assert running == 0  # the first turn's request left the engine (it had ~5 s to go)
    assert first.status == "interrupted"
    assert [(e.type, getattr(e, "status", None)) for e in log] == [
        ("message", None),
        ("done", "interrupted"),
        ("message", None),
        ("answer", None),
        ("done", "ok"),
    ]
    assert isinstance(log[1], DoneEvent) and log[1].rolled_back is (policy == "rollback")


def test_reject_and_enqueue_under_serve(url: str) -> None:
    with Client(url, KEY, max_retries=0, timeout=60) as client:
        conv = client.conversations.create(agent="billing")
        run = conv.send("slowly, please", background=True)  # 24 tokens, 0.05 s each
        time.sleep(0.05)
        with pytest.raises(ConversationBusyError) as refused:
            conv.send("thanks", multitask="reject")
        assert refused.value.retry_after is not None
        queued = conv.send("thanks", multitask="enqueue")  # waits for the first turn
        first = run.wait(timeout=30)
        log = conv.messages()
    assert first.status == "ok" and queued.status == "ok"
    assert [e.type for e in log] == ["message", "answer", "done", "message", "answer", "done"]
    assert [e.content for e in log if e.type == "message"] == [  # type: ignore[union-attr]
        "slowly, please",
        "thanks",
    ]
