"""An eval dataset: cases of user turns and what each turn's result must show.

A dataset is a YAML file with ``eval:`` at the top (see ``configs/schema/eval.schema.json``
for editors). Every model forbids unknown keys and describes every field; loading goes
through ``agents._yaml.load_model``, so a mistake names its file, line and field.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from agents._yaml import load_model
from agents.errors import UserError

__all__ = [
    "AnswerExpect",
    "EvalCase",
    "EvalDataset",
    "Expect",
    "ToolExpect",
    "Turn",
    "eval_file_schema",
    "json_schema_validator",
]

_Strict = ConfigDict(extra="forbid")

DEFAULT_TOLERANCE = 1e-6
"""``number`` without ``tolerance``: equal within 1e-6, absolute or relative (the
larger), so ``84.0`` equals 84 and ``0.1 + 0.2`` equals 0.3."""


Strings = Annotated[
    list[str],
    BeforeValidator(lambda value: [value] if isinstance(value, str) else value),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]
"""A list of strings, where one string may stand alone."""


class AnswerExpect(BaseModel):
    """Checks on the answer's text: every one given must hold.

    The text is the turn's answer, or the JSON of its structured output when the agent
    has an output schema. Text comparisons ignore case.
    """

    model_config = _Strict

    equals: str | None = Field(
        None, description="The whole answer, after stripping surrounding whitespace."
    )
    contains: Strings = Field(
        default_factory=list, description="A string or a list: every one must appear."
    )
    not_contains: Strings = Field(
        default_factory=list, description="A string or a list: none may appear."
    )
    any_of: Strings = Field(default_factory=list, description="At least one of these must appear.")
    regex: str | None = Field(None, description="A regular expression `re.search` must find.")
    number: float | None = Field(
        None,
        description=(
            "Some number written in the answer equals this (any of them: '1,234', '-5', "
            "'3.5', '1e3' are read as numbers; '84.0' equals 84)."
        ),
    )
    tolerance: float | None = Field(
        None,
        ge=0,
        description=(
            "Absolute tolerance of `number` (default: 1e-6, absolute or relative, the larger)."
        ),
    )
    json_schema: dict[str, Any] | None = Field(
        None,
        description=(
            "A JSON Schema the structured output (or the answer read as JSON) must satisfy."
        ),
    )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from exc
        return value

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            json_schema_validator(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.tolerance is not None and self.number is None:
            raise ValueError("`tolerance` needs `number`")
        return self


class ToolExpect(BaseModel):
    """A tool call the turn must make."""

    model_config = _Strict

    name: str = Field(min_length=1, description="The tool's name.")
    arguments: dict[str, Any] | None = Field(
        None,
        description=(
            "Arguments the call must have (others may be there too; a nested mapping "
            "matches the same way); values compare as JSON values."
        ),
    )


class Expect(BaseModel):
    """What one user turn's result must show; every check given must hold."""

    model_config = _Strict

    status: Literal["ok", "error", "paused"] = Field(
        "ok", description="How the turn ends: ok, error or paused (waits for an approval)."
    )
    error_code: str | None = Field(
        None, description="For status error: the error's code (e.g. max_steps)."
    )
    answer: AnswerExpect | None = Field(None, description="Checks on the answer's text.")
    route: list[str] | None = Field(
        None,
        description=(
            "The agents that acted in the turn, in order, a run of one agent written once "
            "(an agent asked a question acts between the asker's steps): exactly these."
        ),
    )
    route_excludes: Strings = Field(
        default_factory=list, description="Agents that must not act in the turn."
    )
    tools: list[ToolExpect] | None = Field(
        None,
        description=(
            "Tool calls the turn makes, in this order (other calls may come between); "
            "`[]`: no tool is called."
        ),
    )
    tools_excludes: Strings = Field(
        default_factory=list, description="Tools that must not be called."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.error_code is not None and self.status != "error":
            raise ValueError("`error_code` needs `status: error`")
        return self


class Turn(BaseModel):
    """One user message of a case and its expectations."""

    model_config = _Strict

    input: str = Field(min_length=1, description="The user's message.")
    expect: Expect = Field(default_factory=Expect, description="What the turn must show.")


class EvalCase(BaseModel):
    """One conversation: a single turn (`input`, `expect`) or several (`turns`)."""

    model_config = _Strict

    id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="Unique in the dataset; `--case ID` runs it alone.",
    )
    group: str = Field(
        "default", min_length=1, description="The report's rows group cases by this."
    )
    description: str = Field("", description="What the case is about, for people.")
    agent: str | None = Field(
        None, description="The agent its conversation starts with (default: the dataset's)."
    )
    input: str | None = Field(None, min_length=1, description="The user's one message.")
    expect: Expect | None = Field(None, description="What that one turn must show.")
    turns: list[Turn] | None = Field(
        None, min_length=1, description="Several user messages instead of `input`, in order."
    )
    approve: bool = Field(
        False,
        description=(
            "Approve every tool call that waits for a person, until the turn ends; the "
            "checks see the whole turn (default: a paused turn is checked as paused)."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.input is None) == (self.turns is None):
            raise ValueError("give either `input` (with an optional `expect`) or `turns`")
        if self.turns is not None and self.expect is not None:
            raise ValueError("`expect` goes with `input`; each of `turns` has its own")
        return self

    @property
    def all_turns(self) -> list[Turn]:
        """The case's user turns, in order."""
        if self.turns is not None:
            return self.turns
        return [Turn(input=self.input or "", expect=self.expect or Expect())]


class EvalDataset(BaseModel):
    """A named set of cases run against one app."""

    model_config = _Strict

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="The dataset's name; reports and `{name}` in output paths use it.",
    )
    description: str = Field("", description="What the dataset measures, for people.")
    app: str | None = Field(
        None,
        description=(
            "The app file it is meant for, relative to this file: served when neither "
            "`--url` nor `--config` is given."
        ),
    )
    agent: str | None = Field(
        None, description="The agent new conversations start with (default: the app's)."
    )
    cases: list[EvalCase] = Field(min_length=1, description="The cases, run in any order.")

    _path: Path | None = PrivateAttr(None)

    @field_validator("cases")
    @classmethod
    def _unique(cls, cases: list[EvalCase]) -> list[EvalCase]:
        counts = Counter(c.id for c in cases)
        repeated = sorted(i for i, n in counts.items() if n > 1)
        if repeated:
            raise ValueError(f"case id(s) used more than once: {', '.join(repeated)}")
        return cases

    @classmethod
    def from_file(cls, path: str | Path) -> EvalDataset:
        """Load a dataset from YAML; errors name the file, line and field."""
        dataset = load_model(path, cls, section="eval")
        dataset._path = Path(path)
        return dataset

    @property
    def path(self) -> Path | None:
        """The file it was loaded from, if any."""
        return self._path

    def app_file(self) -> Path | None:
        """``app`` as a path (relative to the dataset's file), if given."""
        if self.app is None:
            return None
        app = Path(self.app).expanduser()
        if not app.is_absolute() and self._path is not None:
            app = self._path.parent / app
        return app

    def select(self, groups: Sequence[str] = (), ids: Sequence[str] = ()) -> Self | None:
        """The dataset with only the cases in ``groups`` and ``ids`` (empty: any);
        None when no case is."""
        cases = [
            c for c in self.cases if (not groups or c.group in groups) and (not ids or c.id in ids)
        ]
        if not cases:
            return None
        selected = self.model_copy(update={"cases": cases})
        selected._path = self._path
        return selected


def json_schema_validator(schema: dict[str, Any]) -> Any:
    """A ``jsonschema`` validator of ``schema``, checked first.

    Raises ValueError for a schema that is not one, UserError without ``jsonschema``.
    """
    try:
        import jsonschema
    except ImportError as exc:
        raise UserError(
            "`json_schema` checks need the jsonschema package: pip install -e '.[eval]'"
        ) from exc
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"not a JSON Schema: {exc.message}") from exc
    return cls(schema)


def eval_file_schema() -> dict[str, Any]:
    """JSON Schema of a dataset file (``eval:`` at the top), for editors to check YAML."""
    schema = EvalDataset.model_json_schema(ref_template="#/$defs/{model}")
    defs = schema.pop("$defs", {})
    defs["EvalDataset"] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ray-agents eval dataset",
        "type": "object",
        "properties": {"eval": {"$ref": "#/$defs/EvalDataset"}},
        "required": ["eval"],
        "additionalProperties": False,
        "$defs": defs,
    }
