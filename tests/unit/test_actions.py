"""The schema-mode action format: schema, parsing, streaming the answer out of JSON."""

from __future__ import annotations

import json

import jsonschema
import pytest

from agents.actions import ActionSpace, AnswerStream, action_schema, parse_action
from agents.errors import InvalidActionError
from agents.events import AnswerEvent, TokenEvent
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
    jsonschema.validate(step, action_schema(SPACE))
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
    assert "answer" not in json.dumps(action_schema(router))
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
    gen = ScriptedGenerator([{"match": ".", "json_reply": action("answer", text=words)}])
    spec = AgentSpec(name="terse", model="m", sampling=SamplingParams(max_tokens=10))
    events = await LocalApp([spec], generator=gen).send("talk")
    [answer] = [e for e in events if isinstance(e, AnswerEvent)]
    assert answer.truncated and words.startswith(answer.text) and answer.text
    assert "".join(e.text for e in events if isinstance(e, TokenEvent)) == answer.text
    # The schema bounds the text by the step's tokens, so guided decoding closes it.
    schema = gen.requests[0].json_schema
    assert schema is not None and schema["properties"]["text"]["maxLength"] == 30
