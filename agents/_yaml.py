"""Load YAML into pydantic models with errors that name the file, line and field.

A ``Document`` is a parsed file plus the line of every key and list item, so any
later check (pydantic's, a cross-reference, an unset environment variable) can say
where its problem is: ``file:line: dotted.field: message``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from agents.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

# A path into the document (keys and list indexes).
Loc = tuple[str | int, ...]
# A path into the document -> 1-based line number.
Lines = dict[Loc, int]

# `${NAME}`, `${NAME:-default}`; `$${` is a literal `${`.
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VARIABLE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?$", re.DOTALL)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config file, and where."""

    path: Path
    line: int
    field: str
    message: str

    @property
    def where(self) -> str:
        """``file:line``."""
        return f"{self.path}:{self.line}"

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.message}"


@dataclass
class Document:
    """A parsed YAML file: its data, the line of every node, and problems found so far."""

    path: Path
    data: Any
    lines: Lines
    problems: list[Problem] = field(default_factory=list)

    def line(self, loc: Loc) -> int:
        """The line of ``loc``; a key that is missing or unknown gets its closest parent's."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return 1

    def problem(self, loc: Loc, message: str) -> Problem:
        """A problem at ``loc`` of this file."""
        name = ".".join(str(p) for p in loc) or "(top level)"
        return Problem(self.path, self.line(loc), name, message)

    def resolve(self, value: str | Path) -> Path:
        """``value`` as a path: ``~`` expanded, a relative one against this file's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.path.parent / path).resolve()


def read_document(path: str | Path) -> Document:
    """Read and parse ``path``.

    Raises ConfigError when the file cannot be read or is not YAML; a key repeated in
    one mapping is recorded in ``problems`` (YAML would silently keep the last one).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start is not None and start.line + 1 != line:
            problem += f" ({context} at line {start.line + 1})"
        raise ConfigError(f"{path}:{line}: YAML syntax error: {problem}") from exc
    doc = Document(path, data, {})
    if node is not None:
        _walk(node, (), doc)
    return doc


def load_model(path: str | Path, model: type[M], *, section: str | None = None) -> M:
    """Parse ``path`` and validate it as ``model``.

    With ``section``, a document whose top level has that key is validated from that
    key's value, so a section of a larger config file loads on its own too.

    Raises ConfigError whose message lists every problem as ``file:line: field: why``.
    """
    doc = read_document(path)
    data, prefix = section_of(doc, section)
    try:
        value = model.model_validate(data)
    except ValidationError as exc:
        problems = [*doc.problems, *validation_problems(exc, doc, prefix)]
        raise ConfigError(problems_text(problems)) from exc
    raise_problems(doc.problems)
    return value


def section_of(doc: Document, section: str | None) -> tuple[Any, Loc]:
    """The data under ``section`` (when the top level has it) and its path."""
    if section is not None and isinstance(doc.data, dict) and section in doc.data:
        return doc.data[section], (section,)
    return doc.data, ()


def validation_problems(
    exc: ValidationError,
    doc: Document,
    prefix: Loc = (),
    *,
    drop: Callable[[Loc], Loc] = lambda loc: loc,
) -> list[Problem]:
    """Each pydantic error as a ``Problem``; ``drop`` may remove parts of a location
    that are not in the document (union tags)."""
    problems = []
    for err in exc.errors():
        loc = drop(prefix + tuple(p for p in err["loc"] if isinstance(p, str | int)))
        # A validator's ValueError reads "Value error, <why>": the why is enough.
        problems.append(doc.problem(loc, err["msg"].removeprefix("Value error, ")))
    return problems


def problems_text(problems: Iterable[Problem | str]) -> str:
    """Every problem on a line of its own, each once, in order."""
    return "\n".join(dict.fromkeys(str(p) for p in problems))


def raise_problems(problems: Iterable[Problem | str]) -> None:
    """Raise one ConfigError listing every problem (nothing if there is none)."""
    text = problems_text(problems)
    if text:
        raise ConfigError(text)


def interpolate(
    doc: Document,
    environ: Mapping[str, str],
    *,
    skip: Callable[[Loc], bool],
    unset: set[str] | None = None,
) -> None:
    """Replace ``${NAME}`` and ``${NAME:-default}`` in every string value, in place.

    An unset variable without a default, or a malformed reference, is recorded in
    ``doc.problems`` at the value's line, unless ``unset`` is given: then the reference
    stays as written and its name joins ``unset`` (a value the deployment will supply).
    ``skip`` names values left as they are.
    """
    doc.data = _interpolate(doc.data, (), doc, environ, skip, unset)


def _interpolate(
    value: Any,
    loc: Loc,
    doc: Document,
    environ: Mapping[str, str],
    skip: Callable[[Loc], bool],
    unset: set[str] | None,
) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, k), doc, environ, skip, unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), doc, environ, skip, unset) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value or skip(loc):
        return value

    def substitute(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "$${":
            return "${"
        inner = match.group(1)
        found = _VARIABLE.match(inner) if inner is not None else None
        if found is None:
            doc.problems.append(
                doc.problem(loc, f"malformed {text!r}: use ${{NAME}} or ${{NAME:-default}}")
            )
            return text
        name, default = found.group("name"), found.group("default")
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        if unset is not None:
            unset.add(name)
            return text
        doc.problems.append(
            doc.problem(
                loc,
                f"environment variable {name} is not set "
                f"(set it, or give a default: ${{{name}:-value}})",
            )
        )
        return text

    return _REFERENCE.sub(substitute, value)


def _walk(node: yaml.Node, loc: Loc, doc: Document) -> None:
    doc.lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = (*loc, key_node.value)
            _walk(value_node, key, doc)
            doc.lines[key] = key_node.start_mark.line + 1
            if key_node.value in seen:
                doc.problems.append(doc.problem(key, "key repeated in this mapping"))
            seen.add(key_node.value)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*loc, index), doc)
