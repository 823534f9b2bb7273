"""Cross-reference checks of an app: every name one section uses, another defines.

Each check returns issues as ``(location, message)``, the location a path into the
app config (``("agents", 2, "handoffs", 0)``); the loader turns it into the file and
line it came from. Tool modules are imported here, so the app's ``python_path``
must already be on ``sys.path``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

from agents._yaml import Loc
from agents.config._model import AppConfig
from agents.errors import ConfigError
from agents.pool.weights import BUILTIN_MODELS, BUILTIN_PREFIX, is_builtin
from agents.remote import RemoteAgentSpec
from agents.spec import AgentSpec
from tools.registry import ToolRegistry
from tools.sandbox import Sandbox
from tools.spec import ToolsConfig

__all__ = ["Issue", "check_app", "reference_issues"]

Issue = tuple[Loc, str]
# Describes another location in a message ("configs/agents/math.yaml:2").
Where = Callable[[Loc], str]


def check_app(config: AppConfig) -> None:
    """Raise ConfigError naming every broken reference by its field (an app built in
    Python; ``load_app_config`` runs the same checks and names file and line)."""
    issues = reference_issues(config, _dotted)
    if issues:
        raise ConfigError("\n".join(f"{_dotted(loc)}: {why}" for loc, why in issues))


def _dotted(loc: Loc) -> str:
    return ".".join(str(p) for p in loc)


def reference_issues(config: AppConfig, where: Where) -> list[Issue]:
    """Every broken reference of ``config`` (whose includes are resolved)."""
    tools, tool_names = _tool_issues(config.tools, where)
    return [
        *_app_issues(config),
        *_store_issues(config),
        *_pool_issues(config),
        *tools,
        *_agent_issues(config, tool_names, where),
    ]


def _app_issues(config: AppConfig) -> list[Issue]:
    issues: list[Issue] = []
    names = [a.name for a in config.agent_specs]
    default = config.app.default_agent
    if default is not None and default not in names:
        issues.append((("app", "default_agent"), f"no agent named {default!r}{_known(names)}"))
    for index, folder in enumerate(config.app.python_path):
        if not Path(folder).is_dir():
            issues.append((("app", "python_path", index), f"no such folder: {folder}"))
    return issues


def _store_issues(config: AppConfig) -> list[Issue]:
    # An app config is served (every deployment opens the store in its own process).
    unshared = config.store.unshared()
    return [] if unshared is None else [(("store", unshared[0]), unshared[1])]


def _pool_issues(config: AppConfig) -> list[Issue]:
    issues: list[Issue] = []
    for index, model in enumerate(config.pool.models):
        loc: Loc = ("pool", "models", index)
        if model.scripted is None and is_builtin(model.source):
            if model.source.removeprefix(BUILTIN_PREFIX) not in BUILTIN_MODELS:
                known = ", ".join(BUILTIN_PREFIX + n for n in sorted(BUILTIN_MODELS))
                issues.append(((*loc, "source"), f"unknown built-in model; known: {known}"))
        for number, rule in enumerate(model.scripted or []):
            try:
                re.compile(rule.match)
            except re.error as exc:
                issues.append(((*loc, "scripted", number, "match"), f"bad regex: {exc}"))
    return issues


def _tool_issues(tools: ToolsConfig | None, where: Where) -> tuple[list[Issue], set[str]]:
    """Import and register every declared tool; also MCP servers' reachability."""
    if tools is None:
        return [], set()
    issues: list[Issue] = []
    sandbox = Sandbox(tools.sandbox)
    first: dict[str, int] = {}
    for index, spec in enumerate(tools.tools):
        loc: Loc = ("tools", "tools", index)
        try:
            tool = ToolRegistry().add_spec(spec, sandbox=sandbox)
        except ConfigError as exc:
            issues.append(((*loc, "function" if spec.function else "options"), exc.message))
            continue
        if tool.name in first:
            field = "name" if spec.name else "function" if spec.function else "builtin"
            other = where(("tools", "tools", first[tool.name]))
            why = f"tool name {tool.name!r} is already used at {other}: give one another `name`"
            issues.append(((*loc, field), why))
        first.setdefault(tool.name, index)
    names = set(first)
    servers: set[str] = set()
    for index, server in enumerate(tools.mcp_servers):
        loc = ("tools", "mcp_servers", index)
        if server.name in servers:
            issues.append(((*loc, "name"), f"MCP server name {server.name!r} is used twice"))
        servers.add(server.name)
        if server.transport == "stdio" and server.url is not None:
            issues.append(((*loc, "url"), "a stdio server takes `command`, not `url`"))
        if server.transport == "http" and server.command is not None:
            issues.append(((*loc, "command"), "an http server takes `url`, not `command`"))
        if server.transport == "stdio" and server.command:
            program = server.command[0]
            if program != "python" and shutil.which(program) is None:
                issues.append(
                    ((*loc, "command", 0), f"command {program!r} not found (not on PATH)")
                )
    return issues, names | {f"{name}." for name in servers}


def _agent_issues(config: AppConfig, tool_names: set[str], where: Where) -> list[Issue]:
    issues: list[Issue] = []
    names = [a.name for a in config.agents if isinstance(a, AgentSpec | RemoteAgentSpec)]
    models = sorted(m.id for m in config.pool.models)
    first: dict[str, int] = {}
    for index, spec in enumerate(config.agents):
        loc: Loc = ("agents", index)
        if not isinstance(spec, AgentSpec | RemoteAgentSpec):
            continue
        if spec.name in first:
            other = where(("agents", first[spec.name], "name"))
            issues.append(((*loc, "name"), f"agent {spec.name!r} is already defined at {other}"))
        first.setdefault(spec.name, index)
        if isinstance(spec, RemoteAgentSpec):
            continue
        if spec.model not in models:
            issues.append(
                ((*loc, "model"), f"the pool serves no model {spec.model!r}{_known(models)}")
            )
        for kind in ("handoffs", "asks"):
            for number, peer in enumerate(getattr(spec, kind)):
                if peer not in names:
                    issues.append(((*loc, kind, number), f"no agent named {peer!r}{_known(names)}"))
        if spec.tools and config.tools is None:
            issues.append(((*loc, "tools"), "the app declares no tools (add a `tools` section)"))
            continue
        registered = sorted(n for n in tool_names if not n.endswith("."))
        prefixes = tuple(n for n in tool_names if n.endswith("."))
        for number, tool in enumerate(spec.tools):
            if tool not in tool_names and not tool.startswith(prefixes):
                issues.append(
                    ((*loc, "tools", number), f"no tool named {tool!r}{_known(registered)}")
                )
    return issues


def _known(names: list[str]) -> str:
    return f"; known: {', '.join(sorted(set(names)))}" if names else ""
