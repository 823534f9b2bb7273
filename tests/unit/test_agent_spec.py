"""Agent definitions: defaults, cross-field checks, YAML errors with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.errors import ConfigError
from agents.spec import AgentSpec, render_instructions


def test_yaml_agent_loads_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "billing.yaml"
    path.write_text(
        "agent:\n"
        "  name: billing\n"
        "  model: smollm2\n"
        "  instructions: You handle billing for ${company}. Today is ${date}.\n"
        "  variables: {company: Acme}\n"
        "  caller_variables: [company]\n"
        "  handoffs: [triage]\n"
        "  memory: {mode: last_messages, last_messages: 10}\n"
        "  scaling: {min_replicas: 1, max_replicas: 4, target_ongoing_requests: 8}\n"
    )
    spec = AgentSpec.from_file(path)
    assert spec.peers == ["triage"] and spec.max_steps == 8
    assert spec.scaling.max_replicas == 4 and spec.memory.last_messages == 10
    text = render_instructions(spec, {"company": "Globex"}, "2026-11-28")
    assert text == "You handle billing for Globex. Today is 2026-11-28."


def test_variables_override_the_system_prompt_only_where_the_agent_allows() -> None:
    spec = AgentSpec(
        name="support",
        model="m",
        instructions="${agent_name} of ${company} helps ${user} on ${date}.",
        variables={"company": "Acme", "user": "a customer"},
        caller_variables=["user"],
    )
    caller = {"user": "Ann", "company": "Evil Corp", "agent_name": "root", "date": "never"}
    text = render_instructions(spec, caller, "2026-12-03")
    assert text == "support of Acme helps Ann on 2026-12-03."
    assert spec.refused_variables(caller) == ["agent_name", "company", "date"]
    assert spec.refused_variables({"user": "Ann"}) == []


def test_yaml_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("agent:\n  name: billing\n  model: m\n  max_step: 3\n")
    with pytest.raises(ConfigError) as info:
        AgentSpec.from_file(path)
    assert f"{path}:4: agent.max_step: Extra inputs are not permitted" in str(info.value)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"handoffs": ["me"]}, "cannot hand off to or ask itself"),
        ({"can_answer": False}, "needs tools, handoffs or asks"),
        ({"instructions": "Hi ${who}"}, "undefined variable"),
        ({"tools": ["handoff"]}, "reserved"),
        ({"tool_calling": "native", "output_schema": {"type": "object"}}, "needs tool_calling"),
        ({"name": "Bad Name"}, "should match pattern"),
        ({"scaling": {"min_replicas": 3, "max_replicas": 2}}, "must not exceed"),
        ({"caller_variables": ["date"]}, "built in; a caller cannot set them"),
        ({"caller_variables": ["user"]}, "user need defaults in `variables`"),
    ],
)
def test_invalid_agents_say_why(fields: dict[str, object], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        AgentSpec.model_validate({"name": "me", "model": "m", **fields})
