"""The tool plane: what agents call to act on the world.

``ToolExecutor`` is the one interface agents use. ``ToolRegistry`` holds the tools
(Python callables, langchain-core tools, built-ins, MCP servers' tools);
``ToolRunner`` executes calls with grants, validation, limits, retries and worker
processes; ``Sandbox`` runs code locked down; ``ToolDeployment`` (Ray) serves a
runner to every agent. ``FunctionTools`` runs plain callables in-process (a test
double and a quick start).
"""

from __future__ import annotations

from agents._lazy import lazy_exports
from tools.base import ToolCallRequest, ToolDefinition, ToolExecutor, ToolResult
from tools.executor import ToolRunner
from tools.registry import Tool, ToolRegistry
from tools.sandbox import Sandbox, SandboxLimits, SandboxUnavailableError
from tools.spec import MCPServerSpec, ToolsConfig, ToolSettings, ToolSpec
from tools.testing import FunctionTools

_LAZY = {
    "HandleTools": "tools.deployment",
    "MCPSource": "tools.mcp",
    "ToolDeployment": "tools.deployment",
}

__all__ = [
    "FunctionTools",
    "HandleTools",
    "MCPServerSpec",
    "MCPSource",
    "Sandbox",
    "SandboxLimits",
    "SandboxUnavailableError",
    "Tool",
    "ToolCallRequest",
    "ToolDefinition",
    "ToolDeployment",
    "ToolExecutor",
    "ToolRegistry",
    "ToolResult",
    "ToolRunner",
    "ToolSettings",
    "ToolSpec",
    "ToolsConfig",
]

__getattr__ = lazy_exports(__name__, _LAZY)
