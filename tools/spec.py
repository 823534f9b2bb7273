"""Tool declarations: what a tool is, where its code lives, and how it may run."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.pool.spec import Resources
from tools.sandbox import SandboxLimits

__all__ = ["BUILTINS", "HttpGetOptions", "MCPServerSpec", "ToolSettings", "ToolSpec", "ToolsConfig"]

_Strict = ConfigDict(extra="forbid")
BUILTINS = ("python", "http_get", "calculator", "current_time")


class ToolSettings(BaseModel):
    """How the executor runs one tool."""

    model_config = _Strict

    timeout_s: float = Field(30.0, gt=0, description="Seconds before a call is cut off.")
    idempotent: bool = Field(
        False, description="Safe to run twice: failed calls are retried with backoff."
    )
    retries: int = Field(2, ge=0, le=10, description="Retries of an idempotent tool.")
    max_concurrency: int = Field(16, ge=1, description="Calls of this tool at once, per replica.")
    max_output_chars: int = Field(
        16_000, ge=100, description="Longer output is cut, with a visible marker."
    )
    requires_approval: bool = Field(
        False, description="A person approves each call before it runs."
    )
    isolated: bool = Field(
        True,
        description=(
            "Run Python tools in worker processes, so a crash (segfault, os._exit) "
            "ends only the call. False runs them in the executor (async tools, speed)."
        ),
    )


class HttpGetOptions(BaseModel):
    """The ``options`` of the ``http_get`` built-in."""

    model_config = _Strict

    allowed_hosts: list[str] = Field(
        min_length=1, description="Hosts it may fetch from; their subdomains too."
    )
    max_bytes: int = Field(
        1_000_000,
        ge=1,
        description=(
            "Body bytes read at most: reading stops there, and a marker says the body was cut."
        ),
    )


class ToolSpec(BaseModel):
    """One tool of the registry: a Python callable or langchain tool, or a built-in."""

    model_config = _Strict

    name: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$", description="Defaults to the code's."
    )
    function: str | None = Field(
        None,
        description=(
            "Import path 'package.module:attribute' of a function or a langchain-core "
            "tool (@tool, BaseTool, StructuredTool)."
        ),
    )
    builtin: Literal["python", "http_get", "calculator", "current_time"] | None = Field(
        None, description="A built-in tool instead of `function`."
    )
    description: str | None = Field(None, description="Overrides the code's docstring.")
    settings: ToolSettings = Field(default_factory=ToolSettings, description="How it runs.")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Built-in options, e.g. http_get's `allowed_hosts: [example.com]` and "
            "`max_bytes` (see HttpGetOptions)."
        ),
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.function is None) == (self.builtin is None):
            raise ValueError("give exactly one of `function` or `builtin`")
        if self.function is not None and ":" not in self.function:
            raise ValueError("`function` must look like 'package.module:attribute'")
        return self


class MCPServerSpec(BaseModel):
    """One MCP server and how to reach it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,31}$",
        description="The prefix of its tools: tool `forecast` becomes `<name>.forecast`.",
    )
    transport: Literal["stdio", "http"] = Field("stdio", description="How to reach it.")
    command: list[str] | None = Field(
        None,
        description="stdio: the server's command line; 'python' means this interpreter.",
    )
    env: dict[str, str] = Field(default_factory=dict, description="stdio: extra environment.")
    url: str | None = Field(None, description="http: the streamable-HTTP endpoint.")
    connect_timeout_s: float = Field(30.0, gt=0, description="Seconds to connect and list.")
    max_result_bytes: int = Field(
        1_000_000,
        ge=1024,
        description=(
            "Bytes (UTF-8) of a tool result's text kept; the rest is cut, with a marker "
            "saying how much."
        ),
    )
    settings: ToolSettings = Field(
        default_factory=lambda: ToolSettings(isolated=False),
        description="Settings of every tool of this server (timeout_s, retries, ...).",
    )

    @model_validator(mode="after")
    def _target(self) -> Self:
        if self.transport == "stdio" and not self.command:
            raise ValueError("a stdio MCP server needs `command`")
        if self.transport == "http" and not self.url:
            raise ValueError("an http MCP server needs `url`")
        return self


class ToolsConfig(BaseModel):
    """The tool plane of an app: its tools, the sandbox and the executor's size."""

    model_config = _Strict

    tools: list[ToolSpec] = Field(default_factory=list, description="The registry.")
    sandbox: SandboxLimits = Field(
        default_factory=SandboxLimits, description="Limits of each sandboxed call."
    )
    mcp_servers: list[MCPServerSpec] = Field(
        default_factory=list, description="MCP servers whose tools join the registry."
    )
    workers: int = Field(2, ge=1, description="Worker processes per executor replica.")
    min_replicas: int = Field(1, ge=1, description="Fewest executor replicas.")
    max_replicas: int = Field(2, ge=1, description="Most executor replicas under load.")
    resources: Resources = Field(
        default_factory=dict,
        description="Custom Ray resources each executor replica requests (placement).",
    )
