"""The tool-execution deployment: a Serve shell over ``ToolRunner``, and the
``ToolExecutor`` agents use to reach it through its DeploymentHandle."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle

from agents.errors import RayAgentsError, ToolsLostError, ToolsUnavailableError, remote_cause
from agents.observability import configure_from_env
from tools.base import ToolCallRequest, ToolDefinition, ToolExecutor, ToolResult
from tools.executor import ToolRunner
from tools.mcp import MCPSource
from tools.registry import ToolRegistry
from tools.sandbox import Sandbox
from tools.spec import ToolsConfig
from tools.workers import WorkerPool

__all__ = ["DEPLOYMENT_NAME", "HandleTools", "ToolDeployment", "build_registry"]

DEPLOYMENT_NAME = "tools"


def build_registry(config: ToolsConfig) -> ToolRegistry:
    """The registry a tools config declares."""
    registry = ToolRegistry()
    sandbox = Sandbox(config.sandbox)
    for spec in config.tools:
        registry.add_spec(spec, sandbox=sandbox)
    return registry


class ToolDeployment:
    """Runs every agent's tool calls; scales on its own, apart from the agents."""

    async def __init__(  # type: ignore[misc]  # Serve awaits an async constructor
        self, config: ToolsConfig, grants: Mapping[str, list[str]]
    ) -> None:
        configure_from_env()
        registry = build_registry(config)
        self._sources: list[MCPSource] = []
        try:
            for spec in config.mcp_servers:
                source = MCPSource(spec)
                await source.connect()
                self._sources.append(source)
                await source.register(registry)
        except BaseException:
            for source in self._sources:
                await source.close()
            raise
        self.runner = ToolRunner(registry, grants=grants, workers=WorkerPool(config.workers))

    async def definitions(self, names: list[str]) -> list[ToolDefinition]:
        """The definitions of ``names``."""
        return await self.runner.definitions(names)

    async def execute(self, request: ToolCallRequest) -> ToolResult:
        """Run one call."""
        return await self.runner.execute(request)

    async def __del__(self) -> None:
        await self.runner.close()
        for source in self._sources:
            await source.close()


class HandleTools(ToolExecutor):
    """The tool deployment, as an agent's ``ToolExecutor``."""

    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self._handle = handle

    async def definitions(self, names: list[str]) -> list[ToolDefinition]:
        """Ask the deployment for the definitions. A replica that died under the call
        is ``ToolsLostError``, which the turn's runner resumes from (by then the handle
        routes to a live replica); any other failure to reach it is
        ``ToolsUnavailableError``."""
        try:
            result: list[ToolDefinition] = await self._handle.definitions.remote(names)
        except RayAgentsError:
            raise
        except Exception as exc:
            cause = remote_cause(exc)
            if isinstance(cause, RayAgentsError):
                raise type(cause)(cause.message) from exc
            if isinstance(cause, RayActorError):
                raise ToolsLostError(f"the tool deployment's replica died: {cause}") from exc
            raise ToolsUnavailableError(f"the tool deployment failed: {cause}") from exc
        return result

    async def execute(self, request: ToolCallRequest) -> ToolResult:
        """Run the call in the deployment; an unreachable executor is an error result."""
        try:
            result: ToolResult = await self._handle.execute.remote(request)
        except Exception as exc:
            cause = remote_cause(exc)
            return ToolResult(
                call_id=request.call_id,
                name=request.name,
                content=f"tool_unavailable: the tool executor failed: {cause}",
                is_error=True,
                error_type="tool_unavailable",
            )
        return result
