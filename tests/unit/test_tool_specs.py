"""Tool declarations: YAML specs by import path, built-ins, and the app's checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agents.builder import build_agents_app, tools_deployment
from agents.errors import ConfigError
from agents.pool.spec import PoolSpec
from agents.spec import AgentSpec
from agents.store.spec import StoreSpec
from tools.base import ToolCallRequest
from tools.deployment import build_registry
from tools.executor import ToolRunner
from tools.spec import ToolsConfig, ToolSpec

CONFIG = ToolsConfig.model_validate(
    {
        "tools": [
            {"function": "tools.testing:add", "name": "plus", "settings": {"timeout_s": 5}},
            {"builtin": "current_time"},
            {"builtin": "http_get", "options": {"allowed_hosts": ["example.com"]}},
        ],
        "mcp_servers": [{"name": "wx", "command": ["python", "server.py"]}],
    }
)


def test_specs_register_by_import_path_and_builtin() -> None:
    registry = build_registry(CONFIG)
    assert registry.names == ["current_time", "http_get", "plus"]
    [plus] = registry.definitions(["plus"])
    assert plus.description == "Add two integers." and plus.parameters["required"] == ["a", "b"]


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({}, "exactly one of"),
        ({"function": "tools.testing:add", "builtin": "python"}, "exactly one of"),
        ({"function": "tools.testing.add"}, "package.module:attribute"),
        ({"builtin": "shell"}, "Input should be"),
        ({"function": "tools.testing:add", "settings": {"timeout": 3}}, "Extra inputs"),
    ],
)
def test_bad_specs_say_why(spec: dict[str, object], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        ToolSpec.model_validate(spec)


def test_bad_import_paths_are_config_errors() -> None:
    for path, why in [("tools.nope:add", "cannot import"), ("tools.testing:nope", "has no")]:
        with pytest.raises(ConfigError, match=why):
            build_registry(ToolsConfig(tools=[ToolSpec(function=path)]))


def test_the_app_checks_every_granted_tool() -> None:
    agent = AgentSpec(name="a", model="m", tools=["plus", "wx.forecast"])
    assert tools_deployment([agent], CONFIG) is not None  # MCP names are checked at connect
    unknown = AgentSpec(name="a", model="m", tools=["minus"])
    pool = PoolSpec.model_validate(
        {"models": [{"id": "m", "source": "builtin:smollm2-135m-instruct"}]}
    )
    with pytest.raises(ConfigError, match=r"agents\.0\.tools\.0: no tool named 'minus'; known: "):
        build_agents_app([unknown], pool, store=StoreSpec(), tools=CONFIG)
    with pytest.raises(ConfigError, match="no tools are declared"):
        tools_deployment([agent], None)
    assert tools_deployment([AgentSpec(name="a", model="m")], None) is None


async def test_http_get_refuses_hosts_off_the_allow_list() -> None:
    runner = ToolRunner(build_registry(CONFIG))
    for url in ("http://127.0.0.1:5432/", "https://example.com.evil.org/", "file:///etc/passwd"):
        result = await runner.execute(
            ToolCallRequest(call_id="c", name="http_get", arguments={"url": url})
        )
        assert result.is_error and result.error_type == "Forbidden", url


def test_http_get_options_are_checked() -> None:
    for options, why in [
        ({}, "allowed_hosts: Field required"),
        ({"allowed_hosts": ["a.org"], "max_bytes": 0}, "max_bytes: Input should be greater"),
        ({"allowed_hosts": ["a.org"], "max_size": 10}, "max_size: Extra inputs"),
    ]:
        spec = ToolSpec(builtin="http_get", options=options)
        with pytest.raises(ConfigError, match=why):
            build_registry(ToolsConfig(tools=[spec]))
