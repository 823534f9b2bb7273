"""Agents with the real default model through the HTTP API and the SDK: a triage agent
hands off to a specialist."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agents.api.spec import ApiKey, ApiSpec, hash_key
from agents.builder import build_agents_app
from agents.client import Client
from agents.events import AnswerEvent, DoneEvent, ErrorEvent, Event, HandoffEvent, TokenEvent
from agents.pool.spec import PoolSpec
from agents.spec import AgentSpec
from agents.store import StoreSpec

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1200)]

APP = "agents-vllm"
POOL = {
    "models": [
        {
            "id": "smollm2",
            "source": "builtin:smollm2-135m-instruct",
            "engine": {"max_model_len": 4096, "kv_cache_gib": 1},
        }
    ]
}
AGENTS = [
    {
        "name": "triage",
        "model": "smollm2",
        "instructions": "You route customer messages to the right specialist.",
        "handoffs": ["billing"],
        "can_answer": False,
        "sampling": {"temperature": 0, "max_tokens": 128},
    },
    {
        "name": "billing",
        "model": "smollm2",
        "description": "answers questions about invoices, payments and refunds",
        "instructions": "You are a billing specialist. Answer briefly and politely.",
        "sampling": {"temperature": 0, "max_tokens": 192},
    },
]


KEY = "vllm-test-key"


@pytest.fixture(scope="module")
def url(ray_cluster: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ray import serve

    db = tmp_path_factory.mktemp("agents-vllm") / "conversations.db"
    built = build_agents_app(
        [AgentSpec.model_validate(a) for a in AGENTS],
        PoolSpec.model_validate(POOL),
        store=StoreSpec(backend="sqlite", path=str(db)),
        api=ApiSpec(keys=[ApiKey(tenant="t", sha256=hash_key(KEY))], keys_env=None),
    )
    try:
        serve.run(built, name=APP, route_prefix="/")
        yield f"http://127.0.0.1:{ray_cluster['http']}"
    finally:
        serve.delete(APP)


def test_sdk_talks_to_agents_on_the_real_model(url: str) -> None:
    """Triage hands off to billing, who answers; streamed, then sent, through the SDK."""
    with Client(url, KEY, timeout=300) as client:
        conversation = client.conversations.create(agent="triage")
        with conversation.stream("I was charged twice for my order. Can I get a refund?") as stream:
            events: list[Event] = list(stream)
        assert not [e for e in events if isinstance(e, ErrorEvent)], events
        [handoff] = [e for e in events if isinstance(e, HandoffEvent)]
        assert (handoff.agent, handoff.to_agent) == ("triage", "billing")
        [answer] = [e for e in events if isinstance(e, AnswerEvent)]
        assert answer.agent == "billing" and answer.text.strip()
        # The answer streamed token by token as it was generated (billing only answers:
        # plain text; an answer cut for repeating itself keeps the streamed start).
        tokens = [e.text for e in events if isinstance(e, TokenEvent)]
        assert len(tokens) > 3 and "".join(tokens).startswith(answer.text)
        done = events[-1]
        assert isinstance(done, DoneEvent) and done.status == "ok"
        assert done.active_agent == "billing" and done.usage.steps == 2
        assert done.usage.completion_tokens > 0
        assert conversation.agent == "billing"

        # A follow-up goes straight to the specialist, who sees the whole history.
        result = conversation.send("Thanks! How long will it take?")
        assert result.status == "ok" and result.agent == "billing"
        assert result.answer is not None and result.answer.strip()
        assert [e.agent for e in result.events if isinstance(e, AnswerEvent)] == ["billing"]

        stored = [e.type for e in conversation.messages()]
        assert stored == ["message", "handoff", "answer", "done", "message", "answer", "done"]


def test_a_client_that_leaves_mid_answer_stops_vllms_request(url: str) -> None:
    """Cancellation reaches the engine: vLLM's unfinished requests drop within 2 s."""
    import time

    from ray import serve

    with Client(url, KEY, timeout=300) as client:
        conversation = client.conversations.create(agent="billing")
        engine = serve.get_deployment_handle("pool-smollm2", APP).options(
            session_id=conversation.id
        )
        question = "Explain in detail, step by step, how refunds for double charges work."
        with conversation.stream(question) as stream:
            tokens = 0
            for event in stream:
                tokens += isinstance(event, TokenEvent)
                if tokens == 3:
                    break
            assert engine.running_requests.remote().result() == 1  # vLLM is generating
        left = time.monotonic()
        while (running := engine.running_requests.remote().result()) and (
            time.monotonic() - left < 2.0
        ):
            time.sleep(0.05)
        stopped_after = time.monotonic() - left
        # The runner stores the turn's end once the cancelled generation has returned:
        # just after vLLM's request ends (CI once read the store in between).
        while (stored := [e.type for e in conversation.messages()])[-1] != "done" and (
            time.monotonic() - left < 10.0
        ):
            time.sleep(0.1)
    print(f"\nvLLM's request ended {stopped_after:.2f} s after the client left")
    assert running == 0
    assert stored == ["message", "error", "done"]
