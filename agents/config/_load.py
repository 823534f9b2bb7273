"""``load_app_config``: read an app file, check everything, say where each problem is.

The steps, each collecting every problem it finds before the next one runs:

1. parse the YAML (a syntax error stops here) and replace ``${VAR}`` /
   ``${VAR:-default}`` in every value except agents' ``instructions`` (their
   ``${name}`` placeholders are filled per conversation from ``variables``);
2. validate the file against ``AppConfig`` and each ``include`` d agent file against
   ``AgentSpec``;
3. resolve relative paths against the file that names them, put ``app.python_path``
   on ``sys.path``, and check every cross-reference (models, tools, peers, import
   paths, MCP servers). Tool modules are imported here: validating runs their
   top-level code.

The app's own tool modules (those under ``app.python_path``) are then registered
with cloudpickle by value, so the tool worker processes this process starts can run
them without that path.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from agents._yaml import (
    Document,
    Loc,
    Problem,
    interpolate,
    problems_text,
    raise_problems,
    read_document,
    section_of,
    validation_problems,
)
from agents.config._checks import reference_issues
from agents.config._model import ENTRY_TAGS, AgentInclude, AppConfig
from agents.errors import ConfigError
from agents.pool.weights import is_builtin
from agents.remote import RemoteAgentSpec
from agents.spec import AgentSpec

__all__ = ["load_app_config"]

# Where each agent of the loaded app was defined: the document and its path there.
_Origins = list[tuple[Document, Loc]]


def load_app_config(
    path: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    unset: set[str] | None = None,
) -> AppConfig:
    """Load and check an app file.

    ``environ`` (default ``os.environ``) supplies ``${VAR}`` values. With ``unset``, a
    variable that is not set and has no default is no problem: its reference stays
    in the value and its name joins ``unset`` (for a deployment that sets it later).
    Returns the config with includes replaced by their agents and every path
    absolute. Raises ConfigError listing every problem as ``file:line: field:
    message``, one a line.
    """
    env = os.environ if environ is None else environ
    doc = read_document(path)
    interpolate(doc, env, skip=_inline_instructions, unset=unset)
    problems: list[Problem | str] = list(doc.problems)
    config: AppConfig | None = None
    try:
        config = AppConfig.model_validate(doc.data)
    except ValidationError as exc:
        problems += validation_problems(exc, doc, drop=_drop_tag)
    included = _load_includes(doc, env, problems, unset)
    if config is None or problems:  # a failed validation always has problems
        raise ConfigError(problems_text(problems))
    origins = _expand(config, doc, included)
    _resolve_paths(config, doc)
    for folder in config.app.python_path:
        if folder not in sys.path:
            sys.path.append(folder)

    issues = reference_issues(config, lambda loc: _locate(loc, "", doc, origins).where)
    raise_problems(_locate(loc, why, doc, origins) for loc, why in issues)
    _ship_tool_modules(config)
    return config


def _inline_instructions(loc: Loc) -> bool:
    return len(loc) == 3 and loc[0] == "agents" and loc[2] == "instructions"


def _file_instructions(loc: Loc) -> bool:
    return loc in (("agent", "instructions"), ("instructions",))


def _drop_tag(loc: Loc) -> Loc:
    # `agents.3.AgentSpec.max_steps` -> `agents.3.max_steps`: the tag is not in the file.
    if loc[:1] == ("agents",) and len(loc) > 2 and loc[2] in ENTRY_TAGS:
        return loc[:2] + loc[3:]
    return loc


def _load_includes(
    doc: Document, env: Mapping[str, str], problems: list[Problem | str], unset: set[str] | None
) -> dict[int, list[tuple[AgentSpec, Document, Loc]]]:
    """The agents of every ``include`` entry, by entry index (problems collected)."""
    entries = doc.data.get("agents") if isinstance(doc.data, dict) else None
    found: dict[int, list[tuple[AgentSpec, Document, Loc]]] = {}
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        pattern = entry.get("include") if isinstance(entry, dict) else None
        if not isinstance(pattern, str) or not pattern:
            continue
        full = os.path.join(doc.path.parent, os.path.expanduser(pattern))
        files = sorted(p for p in glob.glob(full, recursive=True) if os.path.isfile(p))
        if not files:
            why = f"no file matches {pattern!r} (looked for {full})"
            problems.append(doc.problem(("agents", index, "include"), why))
        found[index] = []
        for file in files:
            try:
                sub = read_document(file)
            except ConfigError as exc:
                problems.append(exc.message)
                continue
            interpolate(sub, env, skip=_file_instructions, unset=unset)
            data, prefix = section_of(sub, "agent")
            problems += sub.problems
            try:
                found[index].append((AgentSpec.model_validate(data), sub, prefix))
            except ValidationError as exc:
                problems += validation_problems(exc, sub, prefix)
    return found


def _expand(
    config: AppConfig, doc: Document, included: dict[int, list[tuple[AgentSpec, Document, Loc]]]
) -> _Origins:
    """Replace include entries by their agents; where each agent came from."""
    agents: list[AgentSpec | AgentInclude | RemoteAgentSpec] = []
    origins: _Origins = []
    for index, entry in enumerate(config.agents):
        if isinstance(entry, AgentSpec | RemoteAgentSpec):
            agents.append(entry)
            origins.append((doc, ("agents", index)))
            continue
        for spec, sub, prefix in included.get(index, []):
            agents.append(spec)
            origins.append((sub, prefix))
    config.agents = agents
    return origins


def _locate(loc: Loc, message: str, doc: Document, origins: _Origins) -> Problem:
    """A problem at ``loc`` of the expanded config, in the file the value came from."""
    if loc[:1] == ("agents",) and len(loc) > 1 and isinstance(loc[1], int):
        source, prefix = origins[loc[1]]
        return source.problem(prefix + loc[2:], message)
    return doc.problem(loc, message)


def _resolve_paths(config: AppConfig, doc: Document) -> None:
    """Make every path the file names absolute, relative to the file's folder."""
    config.app.python_path = [str(doc.resolve(p)) for p in config.app.python_path]
    if config.store.backend == "sqlite" and config.store.path != ":memory:":
        config.store.path = str(doc.resolve(config.store.path))
    pool = config.pool
    if pool.model_cache_dir is not None:
        pool.model_cache_dir = doc.resolve(pool.model_cache_dir)
    for model in pool.models:
        if model.scripted is None and not is_builtin(model.source) and not model.external:
            model.source = str(doc.resolve(model.source))
    for server in config.tools.mcp_servers if config.tools else []:
        if server.command:
            server.command = [
                str(doc.resolve(arg)) if arg.startswith(("./", "../")) else arg
                for arg in server.command
            ]


def _ship_tool_modules(config: AppConfig) -> None:
    """Let tool worker processes receive the app's own tool modules by value.

    Workers are fresh interpreters that do not share this process's ``sys.path``;
    modules from ``app.python_path`` travel with the function instead of by name.
    """
    if config.tools is None or not config.app.python_path:
        return
    import cloudpickle

    roots = [Path(p) for p in config.app.python_path]
    for spec in config.tools.tools:
        module = sys.modules.get((spec.function or "").partition(":")[0])
        file = getattr(module, "__file__", None)
        if module is not None and file and any(Path(file).is_relative_to(r) for r in roots):
            cloudpickle.register_pickle_by_value(module)
