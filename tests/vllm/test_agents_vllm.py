"""Agents with the real default model: a triage agent hands off to a specialist."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agents.builder import build_agents_app
from agents.events import AnswerEvent, DoneEvent, ErrorEvent, Event, HandoffEvent, TokenEvent
from agents.pool.spec import PoolSpec
from agents.protocol import SendRequest
from agents.spec import AgentSpec
from agents.store import SQLiteStore, StoreSpec

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


@pytest.fixture(scope="module")
def app(ray_cluster: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from ray import serve

    db = tmp_path_factory.mktemp("agents-vllm") / "conversations.db"
    built = build_agents_app(
        [AgentSpec.model_validate(a) for a in AGENTS],
        PoolSpec.model_validate(POOL),
        store=StoreSpec(backend="sqlite", path=str(db)),
    )
    serve.run(built, name=APP, route_prefix=None)
    yield serve.get_app_handle(APP), db
    serve.delete(APP)


async def test_triage_hands_off_to_a_specialist_who_answers(app: Any) -> None:
    handle, db = app
    conversation = uuid.uuid4().hex
    request = SendRequest(
        message="I was charged twice for my order. Can I get a refund?",
        conversation_id=conversation,
    )
    events: list[Event] = [
        e async for batch in handle.options(stream=True).send.remote(request) for e in batch
    ]
    assert not [e for e in events if isinstance(e, ErrorEvent)], events
    [handoff] = [e for e in events if isinstance(e, HandoffEvent)]
    assert (handoff.agent, handoff.to_agent) == ("triage", "billing")
    [answer] = [e for e in events if isinstance(e, AnswerEvent)]
    assert answer.agent == "billing" and answer.text.strip()
    # The answer streamed token by token out of the JSON action as it was generated.
    tokens = [e.text for e in events if isinstance(e, TokenEvent)]
    assert len(tokens) > 3 and "".join(tokens) == answer.text
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.status == "ok"
    assert done.active_agent == "billing" and done.usage.steps == 2
    assert done.usage.completion_tokens > 0

    # A follow-up goes straight to the specialist, who sees the whole history.
    follow = SendRequest(message="Thanks! How long will it take?", conversation_id=conversation)
    events = [e async for batch in handle.options(stream=True).send.remote(follow) for e in batch]
    answers = [e for e in events if isinstance(e, AnswerEvent)]
    assert [a.agent for a in answers] == ["billing"] and answers[0].text.strip()

    store = SQLiteStore(db)
    await store.open()
    stored = [e.type for e in await store.events(conversation)]
    await store.close()
    assert stored == ["message", "handoff", "answer", "done", "message", "answer", "done"]
