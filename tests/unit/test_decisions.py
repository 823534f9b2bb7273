"""Decision controls for small models, on the scripted generator (no Ray, no model):
decide_then_act (by grammar and by likelihood), tool_choice, answers from tool results,
few-shot examples, and pattern-bounded tool arguments."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from agents.actions import (
    CALIBRATION_TEXTS,
    ActionSpace,
    act_schema,
    bound_strings,
    decision_schema,
)
from agents.events import AnswerEvent, HandoffEvent, ToolCallEvent, ToolResultEvent
from agents.spec import AgentSpec
from agents.testing import LocalApp, ScriptedGenerator
from tools.base import ToolDefinition
from tools.testing import FunctionTools

CALC = ToolDefinition(
    name="calc",
    description="Evaluate arithmetic.",
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string", "pattern": "^[0-9+*/ -]+$"}},
        "required": ["expression"],
    },
)


def calc(expression: str) -> str:
    """Evaluate arithmetic."""
    return str(eval(expression, {"__builtins__": {}}))  # digits and operators only (test)


def tools() -> FunctionTools:
    return FunctionTools({"calc": (calc, CALC.parameters)})


def agent(name: str, **fields: Any) -> AgentSpec:
    return AgentSpec(name=name, model="m", **{"instructions": f"You are {name}.", **fields})


def reply(match: str, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"match": match, "json_reply": body, **extra}


def test_the_decision_is_an_enum_and_the_act_holds_the_choice() -> None:
    space = ActionSpace(tools=[CALC], handoffs=["math"], asks=["writer"], answer_max_chars=60)
    assert list(space.choices) == ["answer", "calc", "math", "ask_writer"]
    assert decision_schema(space)["properties"] == {
        "next": {"enum": ["answer", "calc", "math", "ask_writer"]}
    }
    act = act_schema(space, "calc", 64)
    assert act["properties"]["next"] == {"enum": ["calc"]}
    # The tool's pattern is kept and bounded by rewriting its repetition.
    pattern = act["properties"]["arguments"]["properties"]["expression"]["pattern"]
    assert pattern.startswith("^[0-9+*/ -]{1,") and pattern.endswith("}$")
    assert act_schema(space, "ask_writer", 64)["required"] == ["next", "question"]


def test_pattern_strings_of_other_shapes_are_left_alone() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^(x|y)+$"}}}
    assert bound_strings(schema, 10) == schema


async def test_decide_then_act_by_grammar_decides_then_writes_the_arguments() -> None:
    # One rule serves both steps: the decision gets its choice alone.
    gen = ScriptedGenerator([reply("six", {"next": "calc", "arguments": {"expression": "6*7"}})])
    spec = agent(
        "solo",
        tools=["calc"],
        decision="decide_then_act",
        tool_answers={"calc": "{expression} = {result}"},
    )
    app = LocalApp([spec], generator=gen, tools=tools())
    events = await app.send("six times seven", conversation_id="c1")
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.name, c.arguments) for c in calls] == [("calc", {"expression": "6*7"})]
    answers = [e for e in events if isinstance(e, AnswerEvent)]
    assert [a.text for a in answers] == ["6*7 = 42"]
    # Both steps shared one prompt (the prefix cache serves the second).
    first, second = gen.requests
    assert first.messages == second.messages
    assert first.json_schema is not None and list(first.json_schema["properties"]) == ["next"]
    assert events[-1].usage.steps == 2  # type: ignore[attr-defined]


async def test_decide_by_likelihood_scores_the_message_under_each_choice() -> None:
    gen = ScriptedGenerator([reply("greet", {"next": "answer", "text": "Hello!"})])
    spec = agent(
        "front",
        tools=["calc"],
        handoffs=["math"],
        decision="decide_then_act",
        decide_by="likelihood",
        choice_descriptions={"answer": "a greeting to answer", "math": "sums and products"},
    )
    math = agent("math", tools=["calc"], can_answer=False, tool_choice="calc")
    gen_rules = ScriptedGenerator(
        [
            reply(
                "Handed off", {"action": "tool", "tool": "calc", "arguments": {"expression": "2*3"}}
            )
        ]
    )
    app = LocalApp([spec, math], generator=gen, tools=tools())
    events = await app.send("a greeting please", conversation_id="c1")
    assert [a.text for a in events if isinstance(a, AnswerEvent)] == ["Hello!"]
    scored = gen.scored[0]
    assert scored.text == "a greeting please"
    assert scored.contexts[0] == "Here is a greeting to answer:\n"
    assert scored.contexts[1] == "Here is Evaluate arithmetic:\n"  # the tool's description
    # A hand-off chosen by likelihood needs no generation at all.
    app = LocalApp(
        [spec, math.model_copy(update={"tool_answers": {"calc": "{result}"}})],
        generator=gen_rules,
        tools=tools(),
    )
    events = await app.send("the product of sums and products", conversation_id="c2")
    handoffs = [e for e in events if isinstance(e, HandoffEvent)]
    assert [(h.agent, h.to_agent, h.message) for h in handoffs] == [("front", "math", "")]
    assert [a.text for a in events if isinstance(a, AnswerEvent)] == ["6"]
    assert all(r.messages[0].content.startswith("You are math") for r in gen_rules.requests)


async def test_tool_choice_forces_the_first_step_and_then_frees_the_agent() -> None:
    gen = ScriptedGenerator(
        [
            reply("calc result", {"action": "answer", "text": "cannot divide by zero"}),
            reply("x", {"action": "tool", "tool": "calc", "arguments": {"expression": "1/0"}}),
        ]
    )
    spec = agent("solo", tools=["calc"], handoffs=["other"], first_tool_choice="calc")
    app = LocalApp([spec, agent("other")], generator=gen, tools=tools())
    events = await app.send("x", conversation_id="c1")
    first, second = gen.requests
    # First step: the tool only (no answer, no hand-off); then everything again.
    assert first.json_schema is not None and "anyOf" not in first.json_schema
    assert first.json_schema["properties"]["tool"] == {"enum": ["calc"]}
    assert second.json_schema is not None and len(second.json_schema["anyOf"]) == 3
    results = [e for e in events if isinstance(e, ToolResultEvent)]
    assert results[0].is_error  # a failed tool gives no templated answer
    assert [a.text for a in events if isinstance(a, AnswerEvent)] == ["cannot divide by zero"]


async def test_examples_are_exchanges_right_after_the_system_prompt() -> None:
    gen = ScriptedGenerator([reply("hi", {"next": "answer", "text": "Hi."})])
    spec = agent(
        "solo",
        tools=["calc"],
        decision="decide_then_act",
        examples=[
            {"input": "2+2?", "then": "calc", "arguments": {"expression": "2+2"}},
            {"input": "hello", "then": "answer", "text": "Hello!"},
        ],
    )
    app = LocalApp([spec], generator=gen, tools=tools())
    await app.send("hi", conversation_id="c1")
    messages = gen.requests[0].messages
    assert [(m.role, m.content) for m in messages[1:5]] == [
        ("user", "2+2?"),
        ("assistant", json.dumps({"next": "calc", "arguments": {"expression": "2+2"}})),
        ("user", "hello"),
        ("assistant", json.dumps({"next": "answer", "text": "Hello!"})),
    ]
    assert messages[5].content == "hi"


async def test_calibration_takes_each_descriptions_bias_off_once_per_replica() -> None:
    """A description full of everyday words makes any message likely under it; with
    decide_calibration its bias (its score on content-free messages) comes off, and the
    choice goes to the description that fits. The bias is scored once, then reused."""
    generic = "hello what is it tell me something okay thanks i have a question sums"
    descriptions = {"answer": generic, "math": "sums and products"}
    math = agent(
        "math",
        tools=["calc"],
        can_answer=False,
        tool_choice="calc",
        tool_answers={"calc": "{result}"},
    )
    rules = [
        reply("Handed off", {"action": "tool", "tool": "calc", "arguments": {"expression": "2*3"}}),
        reply(".", {"next": "answer", "text": "Chatting."}),
    ]

    async def choose(share: float) -> tuple[list[str], ScriptedGenerator]:
        gen = ScriptedGenerator(rules)
        front = agent(
            "front",
            handoffs=["math"],
            decision="decide_then_act",
            decide_by="likelihood",
            decide_calibration=share,
            choice_descriptions=descriptions,
        )
        app = LocalApp([front, math], generator=gen, tools=tools())
        answers = []
        for n in (1, 2):
            events = await app.send("what is it sums", conversation_id=f"c{n}")
            answers += [a.text for a in events if isinstance(a, AnswerEvent)]
        return answers, gen

    answers, gen = await choose(0.0)
    assert answers == ["Chatting.", "Chatting."]  # the generic description wins
    assert len(gen.scored) == 2  # the message, once per turn
    answers, gen = await choose(1.0)
    assert answers == ["6", "6"]
    # The first turn scores the message and the five content-free ones; the second only
    # the message: the biases are the replica's.
    assert len(gen.scored) == 7
    assert {s.text for s in gen.scored[1:6]} == set(CALIBRATION_TEXTS)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"tool_choice": "nope", "tools": ["calc"]}, "none of auto, required, none"),
        ({"tool_choice": "required"}, "needs tools"),
        ({"tool_answers": {"other": "{result}"}, "tools": ["calc"]}, "not one of the agent's"),
        ({"tool_answers": {"calc": "{result"}, "tools": ["calc"]}, "not a template"),
        ({"decide_by": "likelihood"}, "need decision: decide_then_act"),
        ({"decision": "decide_then_act", "decide_calibration": 0.5}, "needs decide_by: likelihood"),
        (
            {"decision": "decide_then_act", "tools": ["calc"], "choice_descriptions": {"x": "y"}},
            "not choices of this agent",
        ),
        ({"decision": "decide_then_act", "tools": ["answer"]}, "names two choices"),
        ({"examples": [{"input": "a", "then": "elsewhere"}]}, "is none of answer"),
    ],
)
def test_bad_decision_settings_are_refused(fields: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        agent("solo", **fields)
