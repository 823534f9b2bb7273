"""Load YAML into pydantic models with errors that name the file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from agents.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

# A path into the document (keys and list indexes) -> 1-based line number.
_Lines = dict[tuple[str | int, ...], int]


def load_model(path: str | Path, model: type[M], *, section: str | None = None) -> M:
    """Parse ``path`` and validate it as ``model``.

    With ``section``, a document whose top level has that key is validated from that
    key's value, so a section of a larger config file loads on its own too.

    Raises ConfigError whose message lists every problem as ``file:line: field: why``.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    data, lines = _parse(text, path)
    prefix: tuple[str | int, ...] = ()
    if section is not None and isinstance(data, dict) and section in data:
        data, prefix = data[section], (section,)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path, lines, prefix)) from exc


def format_validation_error(
    exc: ValidationError, path: Path, lines: _Lines, prefix: tuple[str | int, ...] = ()
) -> str:
    """Render each pydantic error as ``file:line: dotted.field: message``."""
    out = []
    for err in exc.errors():
        loc = prefix + tuple(p for p in err["loc"] if isinstance(p, str | int))
        field = ".".join(str(p) for p in loc) or "(top level)"
        out.append(f"{path}:{_line_for(loc, lines)}: {field}: {err['msg']}")
    return "\n".join(out)


def _line_for(loc: tuple[str | int, ...], lines: _Lines) -> int:
    # An unknown or missing key has no node of its own: use the closest parent.
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _parse(text: str, path: Path) -> tuple[Any, _Lines]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{line}: YAML syntax error: {problem}") from exc
    lines: _Lines = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def _walk(node: yaml.Node, loc: tuple[str | int, ...], lines: _Lines) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*loc, key_node.value)
            _walk(value_node, key, lines)
            lines[key] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*loc, index), lines)
