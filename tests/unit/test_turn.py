"""The turn loop, driven through LocalApp with the scripted generator (no Ray)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agents.events import (
    AnswerEvent,
    AskEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    HandoffEvent,
    MessageEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from agents.spec import AgentSpec, MemoryPolicy
from agents.testing import LocalApp, ScriptedGenerator, action
from tools.testing import FunctionTools

ADD_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
}


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def divide(a: int, b: int) -> float:
    """Divide a by b."""
    return a / b


def agent(name: str, **fields: Any) -> AgentSpec:
    return AgentSpec(name=name, model="m", **{"instructions": f"You are {name}.", **fields})


def rule(match: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"match": match, "json_reply": action(kind, **fields)}


def rule_of(name: str, match: str, kind: str, **fields: Any) -> dict[str, Any]:
    """A rule for agent ``name`` only (found by its instructions): an agent that only
    answers sees the user's message last, not a hand-off."""
    return {**rule(match, kind, **fields), "system": f"^You are {name}\\."}


def kinds(events: list[Event]) -> list[str]:
    return [e.type for e in events if not isinstance(e, TokenEvent)]


def of(events: list[Event], cls: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


async def test_answer_streams_tokens_then_stores_the_answer() -> None:
    gen = ScriptedGenerator([rule("hello", "answer", text='Hi "there", friend \\o/')])
    # With a peer to ask, the agent writes JSON actions: the answer streams out of one.
    app = LocalApp([agent("solo", asks=["other"]), agent("other")], generator=gen)
    events = await app.send("hello", conversation_id="c1")
    assert kinds(events) == ["message", "answer", "done"]
    tokens = of(events, TokenEvent)
    assert len(tokens) > 1
    assert "".join(t.text for t in tokens) == 'Hi "there", friend \\o/'
    assert of(events, AnswerEvent)[0].text == 'Hi "there", friend \\o/'
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.status == "ok" and done.active_agent == "solo"
    stored = await app.store.events("c1")
    assert [e.type for e in stored] == ["message", "answer", "done"]
    assert [e.seq for e in stored] == [1, 2, 3] and done.last_seq == 3
    # The pool saw the instructions, the action menu and the action schema.
    request = gen.requests[0]
    assert request.messages[0].role == "system"
    assert '"action": "answer"' in request.messages[0].content
    assert request.json_schema is not None and request.session_id == "c1"


async def test_tool_call_then_answer() -> None:
    gen = ScriptedGenerator(
        [
            rule(r"2 \+ 3", "tool", tool="add", arguments={"a": 2, "b": 3}),
            rule(r"\[add result\] 5", "answer", text="It is 5."),
        ]
    )
    tools = FunctionTools({"add": (add, ADD_SCHEMA)})
    app = LocalApp([agent("calc", tools=["add"])], generator=gen, tools=tools)
    events = await app.send("what is 2 + 3?")
    assert kinds(events) == ["message", "tool_call", "tool_result", "answer", "done"]
    call, result = of(events, ToolCallEvent)[0], of(events, ToolResultEvent)[0]
    assert call.name == "add" and call.arguments == {"a": 2, "b": 3}
    assert result.call_id == call.call_id and result.content == "5" and not result.is_error
    assert of(events, AnswerEvent)[0].text == "It is 5."
    assert events[-1].usage.steps == 2  # type: ignore[union-attr]
    # The tool's definition reached the prompt and the schema.
    assert "Add two integers" in gen.requests[0].messages[0].content


async def test_a_failing_tool_returns_an_error_the_agent_reads() -> None:
    gen = ScriptedGenerator(
        [
            rule(r"1 / 0", "tool", tool="divide", arguments={"a": 1, "b": 0}),
            rule(r"\[divide result\] ZeroDivisionError", "answer", text="Cannot divide by zero."),
        ]
    )
    tools = FunctionTools({"divide": (divide, ADD_SCHEMA)})
    app = LocalApp([agent("calc", tools=["divide"])], generator=gen, tools=tools)
    events = await app.send("1 / 0")
    result = of(events, ToolResultEvent)[0]
    assert result.is_error and "division by zero" in result.content
    assert of(events, AnswerEvent)[0].text == "Cannot divide by zero."


def triage_app(gen: ScriptedGenerator, **kw: Any) -> LocalApp:
    return LocalApp(
        [
            agent("triage", handoffs=["billing"], can_answer=False, description="routes"),
            agent("billing", description="refunds and invoices"),
        ],
        generator=gen,
        **kw,
    )


async def test_handoff_a_to_b_continues_the_turn_and_b_keeps_the_conversation() -> None:
    gen = ScriptedGenerator(
        [
            rule_of("billing", "refund", "answer", text="Refund issued."),
            rule("refund", "handoff", agent="billing"),
            rule("thanks", "answer", text="You are welcome."),
        ]
    )
    app = triage_app(gen)
    events = await app.send("I want a refund", conversation_id="c2")
    assert kinds(events) == ["message", "handoff", "answer", "done"]
    handoff = of(events, HandoffEvent)[0]
    assert handoff.agent == "triage" and handoff.to_agent == "billing"
    answer = of(events, AnswerEvent)[0]
    assert answer.agent == "billing" and answer.text == "Refund issued."
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.active_agent == "billing"
    assert done.usage.hops == 1 and done.usage.steps == 2
    info = await app.store.conversation("c2")
    assert info is not None and info.active_agent == "billing"
    # The triage agent could only route: its schema has no answer action.
    assert "answer" not in str(gen.requests[0].json_schema)
    # The next turn goes straight to billing, with the whole history.
    events = await app.send("thanks", conversation_id="c2")
    assert of(events, AnswerEvent)[0].agent == "billing"
    contents = [m.content for m in gen.requests[-1].messages]
    assert "I want a refund" in contents and "thanks" == contents[-1]


async def test_a_caller_that_reads_only_the_result_gets_no_tokens() -> None:
    gen = ScriptedGenerator(
        [
            rule_of("billing", "refund", "answer", text="Refund issued."),
            rule("refund", "handoff", agent="billing"),
        ]
    )
    app = triage_app(gen)
    events = await app.send("I want a refund", conversation_id="c2", tokens=False)
    assert kinds(events) == ["message", "handoff", "answer", "done"]
    assert not of(events, TokenEvent)
    assert of(events, AnswerEvent)[0].text == "Refund issued."
    # No step of the turn, past the hand-off too, asks the pool to stream.
    assert [r.stream for r in gen.requests] == [False, False]
    # A caller that streams gets the tokens, which the pool streams as they come.
    events = await app.send("another refund", conversation_id="c2")
    assert "".join(t.text for t in of(events, TokenEvent)) == "Refund issued."
    assert gen.requests[-1].stream


async def test_ask_a_to_b_returns_the_answer_as_a_tool_result() -> None:
    gen = ScriptedGenerator(
        [
            rule("trip", "ask", agent="research", question="Weather in Paris?"),
            rule("Weather in Paris", "answer", text="Sunny."),
            rule(r"\[ask result\] Sunny", "answer", text="Pack sunglasses."),
        ]
    )
    app = LocalApp([agent("planner", asks=["research"]), agent("research")], generator=gen)
    events = await app.send("Plan a trip to Paris", conversation_id="c3")
    assert kinds(events) == ["message", "ask", "tool_result", "answer", "done"]
    ask = of(events, AskEvent)[0]
    result = of(events, ToolResultEvent)[0]
    assert ask.to_agent == "research" and result.call_id == ask.call_id
    assert result.content == "Sunny." and not result.is_error
    assert of(events, AnswerEvent)[0].agent == "planner"
    info = await app.store.conversation("c3")
    assert info is not None and info.active_agent == "planner"
    # The question and its answer are stored as their own sub-conversation.
    sub = await app.store.events(f"c3:ask:{ask.call_id}")
    assert [e.type for e in sub] == ["message", "answer", "done"]


async def test_an_agent_that_keeps_calling_tools_answers_on_its_last_step() -> None:
    tool = rule(".", "tool", tool="add", arguments={"a": 1, "b": 1})
    gen = ScriptedGenerator(
        [{**tool, "system": '"action": "tool"'}, {"match": ".", "reply": "It is 2."}]
    )
    tools = FunctionTools({"add": (add, ADD_SCHEMA)})
    app = LocalApp([agent("loopy", tools=["add"], max_steps=3)], generator=gen, tools=tools)
    events = await app.send("go")
    # Two steps call the tool; the last offers only the answer (plain text, no menu).
    assert len(of(events, ToolCallEvent)) == 2
    assert of(events, AnswerEvent)[0].text == "It is 2."
    assert isinstance(events[-1], DoneEvent) and events[-1].status == "ok"
    assert gen.requests[-1].json_schema is None


async def test_max_steps_ends_the_turn_of_an_agent_that_cannot_answer() -> None:
    gen = ScriptedGenerator([rule(".", "tool", tool="add", arguments={"a": 1, "b": 1})])
    tools = FunctionTools({"add": (add, ADD_SCHEMA)})
    loopy = agent("loopy", tools=["add"], max_steps=3, can_answer=False)
    events = await LocalApp([loopy], generator=gen, tools=tools).send("go")
    assert len(of(events, ToolCallEvent)) == 3
    error = of(events, ErrorEvent)[0]
    assert error.code == "max_steps" and "3 steps" in error.message
    assert isinstance(events[-1], DoneEvent) and events[-1].status == "error"


async def test_hop_limit() -> None:
    gen = ScriptedGenerator(
        [
            rule("start", "handoff", agent="b", message=""),
            rule("Handed off to b", "handoff", agent="c", message=""),
            rule("Handed off to c", "handoff", agent="d", message=""),
            rule("Handed off to d", "answer", text="never"),
        ]
    )
    specs = [
        agent("a", handoffs=["b"]),
        agent("b", handoffs=["c"]),
        agent("c", handoffs=["d"]),
        agent("d"),
    ]
    app = LocalApp(specs, generator=gen, max_hops=2)
    events = await app.send("start", conversation_id="c4")
    error = of(events, ErrorEvent)[0]
    assert error.code == "hop_limit" and error.agent == "c"
    assert "a->b, b->c, c->d" in error.message
    assert not of(events, AnswerEvent)
    assert isinstance(events[-1], DoneEvent) and events[-1].status == "error"
    stored = await app.store.events("c4")
    assert [e.type for e in stored] == ["message", "handoff", "handoff", "error", "done"]


async def test_a_hand_off_that_would_go_round_in_circles_is_off_the_menu() -> None:
    def handoff(peer: str) -> dict[str, object]:
        return action("handoff", agent=peer, message="")

    a_may_hand_off = r'(?s)^You are a\..*"agent": "b"'
    gen = ScriptedGenerator(
        [
            {"match": ".", "system": a_may_hand_off, "json_reply": handoff("b")},
            {"match": ".", "system": r"^You are b\.", "json_reply": handoff("a")},
            {"match": ".", "system": r"^You are a\.", "json_reply": action("answer", text="Done.")},
        ]
    )
    app = LocalApp([agent("a", handoffs=["b"]), agent("b", handoffs=["a"])], generator=gen)
    events = await app.send("start")
    # a->b, b->a; a may not hand off to b again this turn, so it answers.
    assert kinds(events) == ["message", "handoff", "handoff", "answer", "done"]
    assert of(events, AnswerEvent)[0].agent == "a" and events[-1].status == "ok"
    assert '"b"' not in str(gen.requests[-1].json_schema)
    # The next turn starts afresh: a may hand off to b again.
    events = await app.send("again")
    assert of(events, HandoffEvent)[0].to_agent == "b"


async def test_routers_that_can_only_go_round_in_circles_stop() -> None:
    gen = ScriptedGenerator(
        [
            {"match": ".", "system": "- b:", "json_reply": action("handoff", agent="b")},
            {"match": ".", "system": "- a:", "json_reply": action("handoff", agent="a")},
        ]
    )
    routers = [
        agent("a", handoffs=["b"], can_answer=False),
        agent("b", handoffs=["a"], can_answer=False),
    ]
    events = await LocalApp(routers, generator=gen).send("start")
    error = of(events, ErrorEvent)[0]
    assert error.code == "handoff_cycle"
    assert "a->b again after a->b, b->a" in error.message
    assert len(of(events, HandoffEvent)) == 2


async def test_deadline_expiry() -> None:
    gen = ScriptedGenerator(
        [{"match": "slow", "json_reply": action("answer", text="a " * 50), "token_delay_s": 0.05}]
    )
    app = LocalApp([agent("slowpoke")], generator=gen)
    events = await app.send("slow please", conversation_id="c5", timeout_s=0.3)
    error = of(events, ErrorEvent)[0]
    assert error.code == "deadline_exceeded"
    assert isinstance(events[-1], DoneEvent) and events[-1].status == "error"
    # The message and the error are stored; the next turn runs normally.
    stored = await app.store.events("c5")
    assert [e.type for e in stored] == ["message", "error", "done"]


async def test_deadline_propagates_to_peers() -> None:
    gen = ScriptedGenerator(
        [
            {**rule_of("b", "go", "answer", text="x " * 50), "token_delay_s": 0.05},
            rule("go", "handoff", agent="b", message=""),
        ]
    )
    app = LocalApp([agent("a", handoffs=["b"]), agent("b")], generator=gen)
    events = await app.send("go", timeout_s=0.3)
    error = of(events, ErrorEvent)[0]
    assert error.code == "deadline_exceeded" and error.agent == "b"


async def test_retried_send_is_stored_once_and_returns_the_same_result() -> None:
    gen = ScriptedGenerator([rule("hi", "answer", text="hello")])
    app = LocalApp([agent("solo")], generator=gen)
    first = await app.send("hi", conversation_id="c6", idempotency_key="k1")
    again = await app.send("hi", conversation_id="c6", idempotency_key="k1")
    strip = [e for e in first if not isinstance(e, TokenEvent)]
    assert [e.model_dump() for e in again] == [e.model_dump() for e in strip]
    assert len(gen.requests) == 1
    stored = await app.store.events("c6")
    assert sum(isinstance(e, MessageEvent) for e in stored) == 1


async def test_concurrent_sends_to_one_conversation_are_serialized() -> None:
    gen = ScriptedGenerator(
        [{"match": f"msg {i}$", "json_reply": action("answer", text=f"ack {i}")} for i in range(50)]
    )
    app = LocalApp([agent("solo")], generator=gen)
    await asyncio.gather(*(app.send(f"msg {i}", conversation_id="c7") for i in range(50)))
    stored = await app.store.events("c7")
    assert [e.seq for e in stored] == list(range(1, 151))
    # Each turn's message, answer and done sit together: turns never interleave.
    for i in range(0, 150, 3):
        message, answer, done = stored[i : i + 3]
        assert isinstance(message, MessageEvent) and isinstance(answer, AnswerEvent)
        assert isinstance(done, DoneEvent)
        assert answer.text == "ack " + message.content.split()[1]
        assert message.turn_id == answer.turn_id == done.turn_id
    assert sorted(e.content for e in of(stored, MessageEvent)) == sorted(
        f"msg {i}" for i in range(50)
    )


async def test_memory_policy_bounds_the_prompt() -> None:
    gen = ScriptedGenerator([rule(".", "answer", text="ok")])
    app = LocalApp(
        [agent("short", memory=MemoryPolicy(mode="last_messages", last_messages=3))],
        generator=gen,
    )
    for i in range(4):
        await app.send(f"turn {i}", conversation_id="c8")
    messages = gen.requests[-1].messages
    assert messages[0].role == "system"
    # Three newest, trimmed to start on a user message: user, assistant, user.
    assert [m.role for m in messages[1:]] == ["user", "assistant", "user"]
    assert messages[-1].content == "turn 3" and messages[1].content == "turn 2"


async def test_output_schema_gives_a_structured_answer() -> None:
    schema = {
        "type": "object",
        "properties": {"sentiment": {"enum": ["positive", "negative"]}},
        "required": ["sentiment"],
    }
    gen = ScriptedGenerator([rule(".", "answer", output={"sentiment": "positive"})])
    app = LocalApp([agent("judge", output_schema=schema)], generator=gen)
    events = await app.send("I love it")
    answer = of(events, AnswerEvent)[0]
    assert answer.output == {"sentiment": "positive"}
    assert gen.requests[0].json_schema is not None
    assert gen.requests[0].json_schema["properties"]["output"] == schema


async def test_native_tool_calling() -> None:
    gen = ScriptedGenerator(
        [
            {"match": "add", "tool_call": {"name": "add", "arguments": {"a": 1, "b": 2}}},
            {"match": "^3$", "reply": "The sum is 3."},
        ]
    )
    tools = FunctionTools({"add": (add, ADD_SCHEMA)})
    app = LocalApp(
        [agent("native", tools=["add"], tool_calling="native")], generator=gen, tools=tools
    )
    events = await app.send("add 1 and 2")
    assert kinds(events) == ["message", "tool_call", "tool_result", "answer", "done"]
    assert "".join(t.text for t in of(events, TokenEvent)) == "The sum is 3."
    first, second = gen.requests
    assert first.json_schema is None and first.tools is not None
    assert [m.role for m in second.messages[-2:]] == ["assistant", "tool"]


async def test_a_stale_cache_reloads_what_other_agents_stored() -> None:
    gen = ScriptedGenerator(
        [
            rule("first", "handoff", agent="b", message=""),
            rule("Handed off to b", "answer", text="b here"),
            rule("second", "handoff", agent="a", message=""),
            rule("Handed off to a", "answer", text="a again"),
        ]
    )
    app = LocalApp([agent("a", handoffs=["b"]), agent("b", handoffs=["a"])], generator=gen)
    await app.send("first", conversation_id="c9")
    await app.send("second", conversation_id="c9")
    # a's cached history stopped at its hand-off; its prompt now has b's answer too.
    contents = [m.content for m in gen.requests[-1].messages]
    assert any("b here" in c for c in contents) and "second" in contents
    assert app.service("a").cached_conversations == 1


async def test_history_survives_a_fresh_replica() -> None:
    gen = ScriptedGenerator([rule(".", "answer", text="ok")])
    first = LocalApp([agent("solo")], generator=gen)
    await first.send("remember me", conversation_id="c10")
    # A new process with the same store: an empty cache reloads the history.
    second = LocalApp([agent("solo")], generator=gen, store=first.store)
    await second.send("and now?", conversation_id="c10")
    contents = [m.content for m in gen.requests[-1].messages]
    assert "remember me" in contents


@pytest.mark.parametrize("mode", ["schema", "native"])
async def test_unknown_agent_is_refused(mode: str) -> None:
    from agents.errors import UnknownAgentError

    app = LocalApp([agent("solo", tool_calling=mode)], generator=ScriptedGenerator([]))
    with pytest.raises(UnknownAgentError, match="nobody"):
        await app.send("hi", agent="nobody")


async def test_a_second_entry_is_refused_while_a_turn_runs() -> None:
    from agents.errors import ConversationBusyError
    from agents.protocol import SendRequest

    gen = ScriptedGenerator([rule(".", "answer", text="ok")])
    one = LocalApp([agent("solo")], generator=gen)
    two = LocalApp([agent("solo")], generator=gen, store=one.store)  # another entry replica
    running = one.conversations.send(
        SendRequest(message="first", conversation_id="c11", idempotency_key="k1")
    )
    first = await anext(running)
    assert isinstance(first, MessageEvent)  # stored; the turn holds its lease
    with pytest.raises(ConversationBusyError, match="busy"):
        await two.send("meanwhile", conversation_id="c11", multitask="reject")
    # A retry of the running turn, elsewhere, joins it: its stored events, no 409.
    joined = asyncio.create_task(two.send("first", conversation_id="c11", idempotency_key="k1"))
    rest = [event async for event in running]
    assert isinstance(rest[-1], DoneEvent) and rest[-1].status == "ok"
    stored = [e for e in [first, *rest] if not isinstance(e, TokenEvent)]
    assert await joined == stored and len(gen.requests) == 1
    events = await two.send("after", conversation_id="c11")
    assert of(events, AnswerEvent)[0].text == "ok"
    messages = [e.content for e in await one.store.events("c11") if isinstance(e, MessageEvent)]
    assert messages == ["first", "after"]


async def test_a_retried_first_send_lands_in_the_same_conversation() -> None:
    gen = ScriptedGenerator([rule(".", "answer", text="ok")])
    app = LocalApp([agent("solo")], generator=gen)
    first = await app.send("hi", idempotency_key="k-new")
    again = await app.send("hi", idempotency_key="k-new")
    done, replayed = first[-1], again[-1]
    assert isinstance(done, DoneEvent) and isinstance(replayed, DoneEvent)
    assert done.conversation_id and replayed.conversation_id == done.conversation_id
    assert len(gen.requests) == 1
    assert [e.type for e in again] == ["message", "answer", "done"]


async def test_a_turn_whose_caller_went_away_still_ends_with_done() -> None:
    from agents.protocol import SendRequest

    gen = ScriptedGenerator([rule(".", "answer", text="ok")])
    app = LocalApp([agent("solo")], generator=gen)
    stream = app.conversations.send(
        SendRequest(message="hi", conversation_id="c12", idempotency_key="k")
    )
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    replay = await app.send("hi", conversation_id="c12", idempotency_key="k")
    assert [e.type for e in replay] == ["message", "error", "done"]
    assert replay[1].code == "cancelled"  # type: ignore[union-attr]


async def test_a_retried_part_goes_on_from_what_was_stored() -> None:
    from agents.protocol import TurnContext, TurnRequest

    gen = ScriptedGenerator([rule(".", "answer", text="ok")])
    app = LocalApp([agent("solo")], generator=gen)
    events = await app.send("hi", conversation_id="c13")
    message = events[0]
    context = TurnContext(conversation_id="c13", turn_id=message.turn_id or "")
    retry = TurnRequest(context=context, after_seq=message.seq or 0, retry=True)
    again = [e async for e in app.service("solo").run(retry)]
    assert [e.type for e in again] == ["answer", "done"] and len(gen.requests) == 1


async def test_memory_keeps_the_question_when_the_exchange_is_over_budget() -> None:
    from langchain_core.messages import HumanMessage

    from agents.messages import apply_memory, call_message
    from agents.spec import MemoryPolicy

    history: list[Any] = [HumanMessage("the question")]
    for i in range(3):
        history += [
            call_message("a", f"c{i}", "add", {}),
            result_message_for(f"c{i}"),
        ]
    kept = apply_memory(history, MemoryPolicy(mode="last_messages", last_messages=4))
    assert kept[0].content == "the question" and len(kept) == 7


def result_message_for(call_id: str) -> Any:
    from langchain_core.messages import ToolMessage

    return ToolMessage("1", tool_call_id=call_id, name="add")


async def test_unanswered_calls_get_an_error_result_before_the_next_message() -> None:
    from agents.messages import messages_from_events

    events: list[Event] = [
        MessageEvent(content="go"),
        ToolCallEvent(call_id="c1", name="slow", agent="a"),
        ErrorEvent(code="deadline_exceeded", message="late"),
        MessageEvent(content="again"),
    ]
    history = messages_from_events(events)
    assert [m.type for m in history] == ["human", "ai", "tool", "human"]
    assert history[2].status == "error"  # type: ignore[attr-defined]
