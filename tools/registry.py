"""The tool registry: every tool's definition (name, description, JSON schema of its
arguments), its settings, and how to run it.

Tools come from plain Python callables (the schema from the signature), langchain-core
tools (the schema from their pydantic model), YAML ``ToolSpec``s by import path, and
the built-ins of ``tools.builtins``.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jsonschema
from pydantic import BaseModel, ConfigDict, create_model

from agents.errors import ConfigError, UnknownToolError
from tools.base import ToolDefinition
from tools.spec import ToolSettings, ToolSpec

__all__ = ["Tool", "ToolRegistry", "arguments_model"]

Runner = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    """A registered tool.

    ``function`` is what worker processes run (isolated tools); ``run`` is the
    in-process way (built-ins, ``isolated: false``). ``arguments`` validates a call's
    arguments and coerces them to the declared types.
    """

    definition: ToolDefinition
    settings: ToolSettings
    arguments: type[BaseModel] | None
    function: Callable[..., Any] | None = None
    run: Runner | None = None
    sandboxed: bool = False

    @property
    def name(self) -> str:
        """The tool's name."""
        return self.definition.name

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The arguments checked against the schema (the pydantic model when there is
        one, else the JSON schema); raises ``ValidationError`` or
        ``jsonschema.ValidationError``."""
        if self.arguments is None:
            jsonschema.validate(arguments, self.definition.parameters)
            return arguments
        model = self.arguments.model_validate(arguments)
        return {name: getattr(model, name) for name in type(model).model_fields}


def arguments_model(fn: Callable[..., Any], name: str) -> type[BaseModel]:
    """A pydantic model of ``fn``'s parameters (unknown arguments are errors)."""
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = Any if param.annotation is inspect.Parameter.empty else param.annotation
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    return create_model(f"{name}_arguments", __config__=config, **fields)


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema


class ToolRegistry:
    """Tools by name."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> Tool:
        """Register ``tool``; a name may be registered once."""
        if tool.name in self._tools:
            raise ConfigError(f"tool {tool.name!r} is registered twice")
        self._tools[tool.name] = tool
        return tool

    def add_function(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        settings: ToolSettings | None = None,
    ) -> Tool:
        """Register a Python callable; its docstring and signature describe it."""
        name = name or fn.__name__
        model = arguments_model(fn, name)
        settings = settings or ToolSettings()
        definition = ToolDefinition(
            name=name,
            description=description or inspect.getdoc(fn) or "",
            parameters=_schema(model),
            requires_approval=settings.requires_approval,
        )
        run = None if settings.isolated else _in_process(fn)
        return self.add(Tool(definition, settings, model, function=fn, run=run))

    def add_langchain(
        self,
        tool: Any,
        *,
        name: str | None = None,
        description: str | None = None,
        settings: ToolSettings | None = None,
    ) -> Tool:
        """Register a langchain-core tool (``@tool``, ``BaseTool``, ``StructuredTool``)."""
        schema = tool.tool_call_schema
        if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
            raise ConfigError(f"langchain tool {tool.name!r} has no pydantic argument schema")
        model: type[BaseModel] = schema
        settings = settings or ToolSettings()
        definition = ToolDefinition(
            name=name or tool.name,
            description=description or tool.description or "",
            parameters=_schema(model),
            requires_approval=settings.requires_approval,
        )

        def invoke(**arguments: Any) -> Any:
            return tool.invoke(arguments)

        async def ainvoke(arguments: dict[str, Any]) -> Any:
            return await tool.ainvoke(arguments)

        run = None if settings.isolated else ainvoke
        return self.add(Tool(definition, settings, model, function=invoke, run=run))

    def add_spec(self, spec: ToolSpec, **builtin_context: Any) -> Tool:
        """Register a YAML-declared tool."""
        if spec.builtin is not None:
            from tools.builtins import builtin_tool

            return self.add(builtin_tool(spec, **builtin_context))
        assert spec.function is not None  # ToolSpec checks one of the two is set
        target = _import(spec.function)
        add = self.add_langchain if _is_langchain_tool(target) else self.add_function
        if add == self.add_function and not callable(target):
            raise ConfigError(f"tool {spec.function!r} is neither callable nor a langchain tool")
        return add(target, name=spec.name, description=spec.description, settings=spec.settings)

    def get(self, name: str) -> Tool:
        """The named tool; raises ``UnknownToolError``."""
        tool = self._tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self._tools)) or "none"
            raise UnknownToolError(f"unknown tool {name!r}; registered: {known}")
        return tool

    def definitions(self, names: Iterable[str]) -> list[ToolDefinition]:
        """The definitions of ``names``, in order."""
        return [self.get(n).definition for n in names]

    @property
    def names(self) -> list[str]:
        """Every registered name."""
        return sorted(self._tools)


def _in_process(fn: Callable[..., Any]) -> Runner:
    async def run(arguments: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(fn):
            return await fn(**arguments)
        return await asyncio.to_thread(fn, **arguments)

    return run


def _import(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"tool {path!r}: cannot import {module_name!r}: {exc}") from exc
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ConfigError(f"tool {path!r}: {module_name!r} has no {attribute!r}") from exc
    return target


def _is_langchain_tool(target: Any) -> bool:
    try:
        from langchain_core.tools import BaseTool
    except ImportError:  # pragma: no cover - langchain-core is a dependency of the server
        return False
    return isinstance(target, BaseTool)
