"""The schema-mode action format: schema, parsing, streaming the answer out of JSON."""

from __future__ import annotations

import json
from dataclasses import replace

import jsonschema
import pytest

from agents.actions import (
    ActionSpace,
    AnswerStream,
    RepetitionGuard,
    action_schema,
    bound_strings,
    close_cut_action,
    parse_action,
    string_budget,
    system_prompt,
)
from agents.errors import InvalidActionError
from agents.events import AnswerEvent, DoneEvent, TokenEvent
from agents.spec import AgentSpec, SamplingParams
from agents.testing import LocalApp, ScriptedGenerator, action
from tools.base import ToolDefinition

SPACE = ActionSpace(
    tools=[ToolDefinition(name="lookup", parameters={"type": "object", "properties": {}})],
    handoffs=["billing"],
    asks=["research"],
)


@pytest.mark.parametrize(
    "step",
    [
        {"action": "answer", "text": "hi"},
        {"action": "tool", "tool": "lookup", "arguments": {}},
        {"action": "handoff", "agent": "billing", "message": "over to you"},
        {"action": "ask", "agent": "research", "question": "why?"},
    ],
)
def test_every_action_satisfies_the_schema_and_parses(step: dict[str, object]) -> None:
    jsonschema.validate(step, action_schema(SPACE, 256))
    parsed = parse_action(json.dumps(step), SPACE)
    assert parsed.kind == step["action"]


@pytest.mark.parametrize(
    ("step", "why"),
    [
        ({"action": "handoff", "agent": "nobody", "message": ""}, "may not handoff"),
        ({"action": "tool", "tool": "rm", "arguments": {}}, "does not have"),
        ({"action": "dance"}, "unknown or forbidden"),
        ("not json", "not JSON"),
    ],
)
def test_bad_actions_name_the_problem(step: object, why: str) -> None:
    text = step if isinstance(step, str) else json.dumps(step)
    with pytest.raises(InvalidActionError, match=why):
        parse_action(text, SPACE)


def test_a_router_cannot_answer() -> None:
    router = ActionSpace(tools=[], handoffs=["billing"], asks=[], can_answer=False)
    assert "answer" not in json.dumps(action_schema(router, 64))
    with pytest.raises(InvalidActionError):
        parse_action('{"action": "answer", "text": "I will answer anyway"}', router)


def test_answer_stream_decodes_escapes_split_anywhere() -> None:
    text = 'Line "one"\nTab\t and unicode \u00e9 \U0001f600 back\\slash'
    raw = json.dumps({"action": "answer", "text": text}, ensure_ascii=True)
    for size in (1, 2, 3, 7):
        stream = AnswerStream()
        out = "".join(stream.feed(raw[i : i + size]) for i in range(0, len(raw), size))
        assert out == text == stream.text


def test_answer_stream_ignores_other_actions() -> None:
    stream = AnswerStream()
    raw = json.dumps({"action": "tool", "tool": "lookup", "arguments": {"text": "x"}})
    assert "".join(stream.feed(c) for c in raw) == ""
    assert not stream.started


async def test_an_answer_cut_off_by_max_tokens_is_kept_and_marked() -> None:
    words = " ".join(["a"] * 12)
    gen = ScriptedGenerator(
        [{"match": ".", "json_reply": action("answer", text=words)}, {"match": ".", "reply": "x"}]
    )
    # An agent with a peer writes JSON actions: the answer is cut inside its JSON.
    spec = AgentSpec(
        name="terse", model="m", sampling=SamplingParams(max_tokens=10), asks=["other"]
    )
    other = AgentSpec(name="other", model="m")
    events = await LocalApp([spec, other], generator=gen).send("talk")
    [answer] = [e for e in events if isinstance(e, AnswerEvent)]
    assert answer.truncated and words.startswith(answer.text) and answer.text
    assert "".join(e.text for e in events if isinstance(e, TokenEvent)) == answer.text


async def test_an_agent_that_only_answers_writes_plain_text() -> None:
    gen = ScriptedGenerator([{"match": ".", "reply": "Plain words, no JSON."}])
    spec = AgentSpec(name="plain", model="m")
    events = await LocalApp([spec], generator=gen).send("talk")
    [answer] = [e for e in events if isinstance(e, AnswerEvent)]
    assert answer.text == "Plain words, no JSON." and not answer.truncated
    [request] = gen.requests
    assert request.json_schema is None and "JSON action" not in request.messages[0].content
    cut = AgentSpec(name="plain", model="m", sampling=SamplingParams(max_tokens=2))
    events = await LocalApp([cut], generator=gen).send("talk")
    [answer] = [e for e in events if isinstance(e, AnswerEvent)]
    assert answer.text == "Plain words," and answer.truncated


async def test_a_repeating_answer_ends_after_its_first_round() -> None:
    junk = "2022-04-28 12:12:52" + ".12" * 60
    gen = ScriptedGenerator([{"match": ".", "reply": junk}])
    events = await LocalApp([AgentSpec(name="plain", model="m")], generator=gen).send("when?")
    [answer] = [e for e in events if isinstance(e, AnswerEvent)]
    # The loop is "2.1" from the "2" of ":52" on: the answer keeps one round of it.
    assert answer.truncated and answer.text == "2022-04-28 12:12:52.1"
    # A reply that was not streamed (nobody watched its tokens) came whole: trimmed
    # the same, and its usage is the engine's, not an estimate.
    app = LocalApp([AgentSpec(name="plain", model="m")], generator=gen)
    events = await app.send("when?", tokens=False)
    [answer] = [e for e in events if isinstance(e, AnswerEvent)]
    assert answer.truncated and answer.text == "2022-04-28 12:12:52.1"
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.usage.completion_tokens == len(junk.split())


def test_repetition_guard_spares_ordinary_text() -> None:
    guard = RepetitionGuard()
    prose = "The invoice shows two charges. " + "=" * 80 + " The second one is refunded. "
    assert not any(guard.feed(prose[i : i + 3]) for i in range(0, len(prose), 3))
    assert RepetitionGuard().feed("ab" * 60)
    looping = RepetitionGuard()
    assert looping.feed("Intro. " + "I can help you with that. " * 9)
    kept = looping.text[: looping.keep]
    assert kept.startswith("Intro. I can help you with that") and kept.count("help") == 1


@pytest.mark.parametrize("max_tokens", [16, 32, 64, 192])
def test_every_peer_string_fits_the_steps_budget(max_tokens: int) -> None:
    schema = action_schema(SPACE, max_tokens)
    for variant in schema["anyOf"]:
        props = variant["properties"]
        kind = props["action"]["enum"][0]
        for key in ("message", "question"):
            if key in props:
                bound = props[key]["maxLength"]
                skeleton = json.dumps({"action": kind, "agent": props["agent"]["enum"][0], key: ""})
                # The skeleton at 2 characters a token, the text at one: within budget
                # (a step too small for the skeleton gets no text at all).
                assert bound == 0 or len(skeleton) / 2 + bound <= max_tokens


def test_a_router_only_picks_its_peer_from_an_enum() -> None:
    router = ActionSpace(tools=[], handoffs=["billing", "tech"], asks=[], can_answer=False)
    assert router.router and not router.answer_only
    schema = action_schema(router, 32)
    # The peer alone: no note, and no action name (its one action needs none).
    assert schema["required"] == ["agent"] == list(schema["properties"])
    assert schema["properties"]["agent"] == {"enum": ["billing", "tech"]}
    jsonschema.validate({"agent": "tech"}, schema)
    step = parse_action('{"agent": "tech"}', router)
    assert (step.kind, step.agent, step.text) == ("handoff", "tech", "")
    # A step written before routers dropped the name still reads.
    assert parse_action('{"action": "handoff", "agent": "tech"}', router).agent == "tech"
    for extra in ({"agent": "tech", "message": "hi"}, {"action": "handoff", "agent": "tech"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(extra, schema)
    with pytest.raises(InvalidActionError):
        parse_action('{"agent": "sales"}', router)
    # An agent that may also answer still names its actions.
    with pytest.raises(InvalidActionError, match="unknown or forbidden action None"):
        parse_action('{"agent": "tech"}', replace(router, can_answer=True))


def test_tool_arguments_share_the_budget_and_keep_tighter_bounds() -> None:
    params = {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "note": {"type": "string", "maxLength": 5},
            "mode": {"type": "string", "enum": ["fast", "slow"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    bounded = bound_strings(params, 90)
    props = bounded["properties"]
    assert props["query"]["maxLength"] == 30 and props["note"]["maxLength"] == 5
    assert "maxLength" not in props["mode"] and props["tags"]["items"]["maxLength"] == 30
    assert "maxLength" not in params["properties"]["query"]  # the tool's own is untouched
    assert string_budget(8, "x" * 40) == 0


def test_a_cut_hand_off_or_ask_is_closed_where_it_was_cut() -> None:
    cut = '{"action": "handoff", "agent": "billing", "message": "over to yo'
    assert json.loads(close_cut_action(cut) or "")["message"] == "over to yo"
    escape = '{"action": "ask", "agent": "research", "question": "why \\u00'
    assert json.loads(close_cut_action(escape) or "")["question"] == "why "
    assert close_cut_action('{"action": "tool", "tool": "rm", "arguments": {"path": "/') is None
    assert close_cut_action('{"action": "handoff", "agent": "bil') is not None
    assert close_cut_action('{"action": "handoff", "agent"') is None


def test_a_router_reads_its_peers_first_and_no_json_menu() -> None:
    router = ActionSpace(tools=[], handoffs=["billing", "tech"], asks=[], can_answer=False)
    peers = {"billing": "invoices and refunds", "tech": "outages and logins"}
    prompt = system_prompt("Route the customer.", router, peers)
    assert prompt.endswith("Route the customer.") and '"action"' not in prompt
    assert "- billing: invoices and refunds\n- tech: outages and logins" in prompt
    worker = ActionSpace(tools=[], handoffs=["billing"], asks=[])
    assert system_prompt("Help.", worker, peers).startswith("Help.\n\nReply with exactly one JSON")
