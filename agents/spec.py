"""Agent definitions: who an agent is, what it may do, and how it scales.

``AgentSpec`` is plain pydantic (unknown keys are errors) and loads from YAML with
``AgentSpec.from_file``; the builder turns each spec into its own Serve deployment.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents._yaml import load_model
from agents.pool.spec import Autoscaling, Resources
from agents.pool.types import SamplingParams

__all__ = [
    "AgentLimits",
    "AgentSpec",
    "Example",
    "MemoryPolicy",
    "decision_choices",
    "fill_template",
    "render_instructions",
]

_Strict = ConfigDict(extra="forbid")
_NAME = r"^[a-z][a-z0-9_-]{0,62}$"
AgentName = Annotated[str, Field(pattern=_NAME)]
BUILTIN_VARIABLES = frozenset({"agent_name", "date"})
# Hand-offs and asks reach the model as these two tools (native) or actions (schema).
RESERVED_TOOL_NAMES = frozenset({"handoff", "ask"})
# The decision of ``decide_then_act`` names "answer" for answering itself.
ANSWER_CHOICE = "answer"
TOOL_CHOICES = ("auto", "required", "none")


class Example(BaseModel):
    """One few-shot example: a user message and the action the agent should take."""

    model_config = _Strict

    input: str = Field(min_length=1, description="What the user says.")
    then: str = Field(
        description=(
            "What the agent does: 'answer', one of its tools, or one of its peers "
            "(hand-off; an ask peer that is not a hand-off peer is asked)."
        )
    )
    arguments: dict[str, Any] | None = Field(
        None, description="The tool's arguments, when `then` is a tool."
    )
    text: str | None = Field(
        None, description="The answer, hand-off message or question, when one is written."
    )


class MemoryPolicy(BaseModel):
    """How much of the conversation goes into each prompt (the system prompt always does)."""

    model_config = _Strict

    mode: Literal["all", "last_messages", "token_budget"] = Field(
        "all",
        description=(
            "'all': the whole history; 'last_messages': the newest `last_messages`; "
            "'token_budget': the newest messages that fit `token_budget` (approximate "
            "count). Trimming never starts the history on a tool result."
        ),
    )
    last_messages: int = Field(20, ge=1, description="Messages kept in 'last_messages' mode.")
    token_budget: int = Field(2048, ge=16, description="Tokens kept in 'token_budget' mode.")


class AgentLimits(BaseModel):
    """What one turn of this agent may spend."""

    model_config = _Strict

    max_tokens_per_turn: int = Field(
        4096, ge=1, description="Most tokens the agent generates in one turn, all steps."
    )
    turn_timeout_s: float = Field(
        120.0, gt=0, description="Most seconds the agent spends on one turn."
    )


class AgentSpec(BaseModel):
    """One agent: a stateful Serve deployment that answers, calls tools and talks to peers."""

    model_config = _Strict

    name: AgentName = Field(description="Unique name; the deployment is `agent-<name>`.")
    description: str = Field(
        "", description="What the agent is for; peers read it when choosing whom to call."
    )
    instructions: str = Field(
        "You are a helpful assistant.",
        description=(
            "The system prompt. `${var}` placeholders take values from `variables` (or, "
            "for those in `caller_variables`, from the caller's message); `${agent_name}` "
            "and `${date}` are built in."
        ),
    )
    variables: dict[str, str] = Field(
        default_factory=dict, description="Default values of the instructions' placeholders."
    )
    caller_variables: list[str] = Field(
        default_factory=list,
        description=(
            "Variables a caller may set with a message (each needs a default in "
            "`variables`); a message setting any other is refused (400). The rest of the "
            "system prompt is the operator's."
        ),
    )
    model: str = Field(description="The pool model id this agent generates with.")
    sampling: SamplingParams = Field(
        default_factory=lambda: SamplingParams(temperature=0.0),
        description="Sampling for every step (max_tokens bounds each step).",
    )
    tools: list[str] = Field(default_factory=list, description="Tool names from the registry.")
    handoffs: list[AgentName] = Field(
        default_factory=list, description="Agents this one may hand the conversation to."
    )
    asks: list[AgentName] = Field(
        default_factory=list, description="Agents this one may ask a question and await."
    )
    can_answer: bool = Field(
        True,
        description=(
            "False makes a pure router: its only actions are tools, hand-offs and asks, "
            "so even a small model cannot answer in place of a specialist."
        ),
    )
    tool_calling: Literal["schema", "native"] = Field(
        "schema",
        description=(
            "'schema': every step is a JSON action under guided decoding (any model). "
            "'native': OpenAI-style `tools` for models with native tool calling."
        ),
    )
    decision: Literal["one_step", "decide_then_act"] = Field(
        "one_step",
        description=(
            "'one_step': each step writes one whole action. 'decide_then_act': a first "
            "guided step only picks what comes next from an enum ('answer', a tool, a "
            "peer), a second writes that action's arguments, question or answer (a "
            "hand-off needs no second step). Small models choose far better from an enum "
            "of names than inside a free action (schema mode only)."
        ),
    )
    decide_by: Literal["generate", "likelihood"] = Field(
        "generate",
        description=(
            "How a decide_then_act decision is made. 'generate': the model writes the "
            "choice under an enum grammar. 'likelihood': no generation; the choice is "
            "the one under whose description ('Here is <description>:') the model finds "
            "the user's last message most likely (one prefill per choice). Tiny models "
            "choose far better so: a greedy enum follows their biases (needs vLLM)."
        ),
    )
    decide_calibration: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description=(
            "For decide_by: likelihood, the share of each choice's bias taken off its "
            "score: the bias is how likely the model finds a few content-free messages "
            "('Hello.', 'Tell me something.') under the choice's description, so a "
            "description that makes any message likely stops winning by default "
            "(contextual calibration). Scored once per replica; 0: off."
        ),
    )
    choice_descriptions: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Choice -> what the user's message is like when that choice is right, e.g. "
            "'an arithmetic problem or a calculation', for decide_by: likelihood "
            "(default: the tool's or the peer's description; for 'answer', "
            "'a greeting, small talk or a general question')."
        ),
    )
    tool_choice: str = Field(
        "auto",
        description=(
            "What every step may do: 'auto' (answer, tools, peers), 'required' (call a "
            "tool), 'none' (no tools), or a tool's name (call that tool). The last step "
            "of a turn may always answer."
        ),
    )
    first_tool_choice: str | None = Field(
        None,
        description="`tool_choice` for the turn's first step only (unset: `tool_choice`).",
    )
    tool_answers: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Tool name -> answer template: a successful call of that tool ends the turn "
            "with the template filled, `{result}` with the tool's result and `{name}` "
            "with its argument `name`, e.g. '{expression} = {result}'. The model never "
            "re-types a number."
        ),
    )
    examples: list[Example] = Field(
        default_factory=list,
        description=(
            "Few-shot examples (user message -> action), shown to the model as earlier "
            "exchanges right after the system prompt, so the prompt's prefix stays the "
            "same for every step and conversation (prefix cache)."
        ),
    )
    max_steps: int = Field(8, ge=1, description="Most model calls in one turn.")
    output_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema of a structured final answer (schema mode only)."
    )
    memory: MemoryPolicy = Field(default_factory=MemoryPolicy, description="History policy.")
    scaling: Autoscaling = Field(
        default_factory=lambda: Autoscaling(target_ongoing_requests=32),
        description="Replicas of this agent's deployment (min/max, target ongoing requests).",
    )
    resources: Resources = Field(
        default_factory=dict,
        description=(
            "Custom Ray resources each replica requests, e.g. {'agent-node': 0.01}: the "
            "replicas land on nodes that offer them."
        ),
    )
    limits: AgentLimits = Field(default_factory=AgentLimits, description="Per-turn limits.")
    a2a: bool = Field(
        True,
        description=(
            "Publish the agent over A2A (an Agent Card and JSON-RPC at /a2a/<name>) when "
            "the API serves A2A; false keeps it internal (peers still reach it)."
        ),
    )

    @classmethod
    def from_file(cls, path: str | Path) -> AgentSpec:
        """Load one agent from YAML; errors name the file, line and field."""
        return load_model(path, cls, section="agent")

    @model_validator(mode="after")
    def _check(self) -> Self:
        reserved = RESERVED_TOOL_NAMES.intersection(self.tools)
        if reserved:
            raise ValueError(f"tool name(s) {', '.join(sorted(reserved))} are reserved")
        if self.name in self.handoffs or self.name in self.asks:
            raise ValueError(f"agent {self.name!r} cannot hand off to or ask itself")
        if not self.can_answer and not (self.tools or self.handoffs or self.asks):
            raise ValueError("an agent with can_answer: false needs tools, handoffs or asks")
        if self.output_schema is not None and self.tool_calling == "native":
            raise ValueError("output_schema needs tool_calling: schema")
        self._check_decisions()
        unknown = placeholders(self.instructions) - set(self.variables) - BUILTIN_VARIABLES
        if unknown:
            raise ValueError(
                f"instructions use undefined variable(s) {', '.join(sorted(unknown))}: "
                "give them defaults in `variables`"
            )
        if builtin := BUILTIN_VARIABLES.intersection(self.caller_variables):
            raise ValueError(
                f"caller_variables: {', '.join(sorted(builtin))} are built in; a caller "
                "cannot set them"
            )
        if undefined := set(self.caller_variables) - set(self.variables):
            raise ValueError(
                f"caller_variables: {', '.join(sorted(undefined))} need defaults in `variables`"
            )
        return self

    def _check_decisions(self) -> None:
        if self.decision == "decide_then_act" and self.tool_calling == "native":
            raise ValueError("decision: decide_then_act needs tool_calling: schema")
        named = (("tool_choice", self.tool_choice), ("first_tool_choice", self.first_tool_choice))
        for field, choice in named:
            if choice is None or choice in ("auto", "none"):
                continue
            if choice != "required" and choice not in self.tools:
                raise ValueError(
                    f"{field}: {choice!r} is none of {', '.join(TOOL_CHOICES)} nor one of "
                    f"the agent's tools ({', '.join(self.tools) or 'it has none'})"
                )
            if not self.tools:
                raise ValueError(f"{field}: {choice!r} needs tools")
        pairs = decision_choices(self.can_answer, self.tools, self.handoffs, self.asks)
        if self.decision == "one_step" and (
            self.decide_by != "generate" or self.choice_descriptions
        ):
            raise ValueError("decide_by and choice_descriptions need decision: decide_then_act")
        if self.decide_calibration and self.decide_by != "likelihood":
            raise ValueError("decide_calibration needs decide_by: likelihood")
        if unknown := set(self.choice_descriptions) - {name for name, _ in pairs}:
            raise ValueError(
                f"choice_descriptions: {', '.join(sorted(unknown))} are not choices of this "
                f"agent ({', '.join(name for name, _ in pairs)})"
            )
        if self.decision == "decide_then_act":
            names = [name for name, _ in pairs]
            if clash := sorted({name for name in names if names.count(name) > 1}):
                raise ValueError(
                    f"decide_then_act: {', '.join(clash)} names two choices (a tool and a "
                    "peer, or 'answer'): rename the tool"
                )
        for tool, template in self.tool_answers.items():
            if tool not in self.tools:
                raise ValueError(f"tool_answers: {tool!r} is not one of the agent's tools")
            try:
                template.format_map(_Probe())
            except (ValueError, IndexError, AttributeError) as exc:
                raise ValueError(f"tool_answers.{tool}: not a template ({exc})") from exc
        choices = {ANSWER_CHOICE, *self.tools, *self.peers}
        for index, example in enumerate(self.examples):
            if example.then not in choices:
                raise ValueError(
                    f"examples[{index}].then: {example.then!r} is none of "
                    f"{', '.join(sorted(choices))}"
                )
            if example.arguments is not None and example.then not in self.tools:
                raise ValueError(f"examples[{index}]: arguments are for a tool")

    def refused_variables(self, variables: Mapping[str, str]) -> list[str]:
        """The names in ``variables`` a caller may not set for this agent."""
        return sorted(set(variables) - set(self.caller_variables))

    @property
    def peers(self) -> list[str]:
        """Every agent this one may reach, hand-off or ask."""
        return sorted(set(self.handoffs) | set(self.asks))


def decision_choices(
    can_answer: bool, tools: list[str], handoffs: list[str], asks: list[str]
) -> list[tuple[str, tuple[str, str]]]:
    """The choices of a ``decide_then_act`` decision, as (name, (kind, target)): answering
    is 'answer', a tool its name, a hand-off the peer's name, an ask ``ask_<peer>``."""
    return [
        *([(ANSWER_CHOICE, ("answer", ""))] if can_answer else []),
        *((tool, ("tool", tool)) for tool in tools),
        *((peer, ("handoff", peer)) for peer in handoffs),
        *((f"ask_{peer}", ("ask", peer)) for peer in asks),
    ]


class _Probe(dict[str, str]):
    """Fills any ``{field}`` of a template (to check its syntax)."""

    def __missing__(self, key: str) -> str:
        return ""


def fill_template(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with ``{name}`` replaced by ``values[name]`` (unknown names by "")."""
    return template.format_map(_Probe({k: _plain(v) for k, v in values.items()}))


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def placeholders(template: str) -> set[str]:
    """The ``${var}`` / ``$var`` names used in a template."""
    return {
        m.group("named") or m.group("braced")
        for m in string.Template.pattern.finditer(template)
        if m.group("named") or m.group("braced")
    }


def render_instructions(spec: AgentSpec, variables: Mapping[str, str], today: str) -> str:
    """The system prompt with its placeholders filled: the caller's ``variables`` win
    over the defaults for the agent's ``caller_variables`` only, and never over the
    built-ins (a turn's variables reach every agent it hands off to or asks: each
    takes the ones it allows)."""
    allowed = {name: variables[name] for name in spec.caller_variables if name in variables}
    values = {**spec.variables, **allowed, "agent_name": spec.name, "date": today}
    return string.Template(spec.instructions).safe_substitute(values)
