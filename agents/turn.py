"""The turn loop: one agent's part of a turn, in plain Python (no Ray).

Each step builds the prompt (instructions, history under the memory policy, the
actions the agent may take), generates through the pool, and acts:

- answer:  the text streams out as ``token`` events, then one ``answer`` event;
- tool:    the call goes to the tool executor and its result joins the history;
- ask:     a peer answers a question in a sub-conversation; the answer is a tool result;
- handoff: the peer continues the same turn; its events stream through.

Every event but tokens goes through ``record`` (which stores it) before it is
yielded. The loop ends with a ``done`` event that is not stored: it tells the caller
how this part of the turn went (usage, the active agent).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage

from agents._streams import closing
from agents._turn_telemetry import GenerationTelemetry, TurnTelemetry
from agents.actions import (
    CALIBRATION_TEXTS,
    Action,
    ActionSpace,
    AnswerStream,
    RepetitionGuard,
    act_schema,
    action_schema,
    answering,
    calibrated,
    choice_contexts,
    chosen,
    close_cut_action,
    decision_schema,
    example_messages,
    parse_decision,
    system_prompt,
    with_tool_choice,
    without_cycles,
)
from agents.actions import parse_action as parse_schema_action
from agents.budgets import Meter
from agents.errors import (
    AgentRunError,
    DeadlineExceededError,
    EngineError,
    EngineLostError,
    GenerationError,
    HandoffCycleError,
    HopLimitExceededError,
    InvalidActionError,
    MaxStepsExceededError,
    RayAgentsError,
    TurnLimitExceededError,
)
from agents.events import (
    AnswerEvent,
    ApprovalEvent,
    ApprovalRequiredEvent,
    AskEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    HandoffEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
    TurnUsage,
)
from agents.messages import (
    ASK,
    HANDOFF,
    apply_memory,
    call_message,
    dump_messages,
    result_message,
    to_pool_messages,
)
from agents.observability.tracing import carrier, end_span, start_span, tracer
from agents.peers import Peers
from agents.pool.generator import Generator
from agents.pool.types import (
    Completion,
    FinishChunk,
    GenerateRequest,
    Message,
    ScoreRequest,
    TextChunk,
    Usage,
    collect,
)
from agents.protocol import AskRequest, TurnContext, TurnRequest
from agents.spec import AgentSpec, fill_template, render_instructions
from tools.base import ToolCallRequest, ToolExecutor

__all__ = ["AgentLoop", "Recorder"]

Recorder = Callable[[Event], Awaitable[Event]]
CHARS_PER_TOKEN = 3
ENGINE_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)
"""Pauses before each new try of a step whose pool replica died: 7.5 s in all, the
time Serve takes to route around a dead replica or start its replacement."""
INTERRUPTED = (
    "interrupted: the replica running this call stopped before it returned; it may or "
    "may not have run. Check its effect before calling it again."
)
T = TypeVar("T")


class AgentLoop:
    """Runs turns for one agent definition.

    Dependencies come in through the constructor: the pool (``Generator``), the tool
    executor, the other agents (``Peers``), the peers' descriptions, and a clock.
    """

    def __init__(
        self,
        spec: AgentSpec,
        *,
        generator: Generator,
        tools: ToolExecutor,
        peers: Peers,
        peer_descriptions: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self._generator = generator
        self._tools = tools
        self._peers = peers
        self._peer_descriptions = peer_descriptions or {}
        self._clock = clock
        self._space: ActionSpace | None = None
        # decide_calibration: each set of choice contexts' biases, scored once.
        self._biases: dict[tuple[str, ...], list[float]] = {}
        self._biases_lock = asyncio.Lock()  # concurrent first turns score them once

    async def action_space(self) -> ActionSpace:
        """What the agent may do (the tool definitions are fetched once)."""
        if self._space is None:
            definitions = await self._tools.definitions(self.spec.tools) if self.spec.tools else []
            self._space = ActionSpace(
                tools=definitions,
                handoffs=self.spec.handoffs,
                asks=self.spec.asks,
                can_answer=self.spec.can_answer,
                # ~3 characters a token: an answer that fits its step's max_tokens.
                answer_max_chars=CHARS_PER_TOKEN * self.spec.sampling.max_tokens,
                output_schema=self.spec.output_schema,
            )
        return self._space

    async def run(
        self,
        ctx: TurnContext,
        history: list[BaseMessage],
        record: Recorder,
        resume: ApprovalEvent | None = None,
        *,
        recover: bool = False,
        meter: Meter | None = None,
    ) -> AsyncIterator[Event]:
        """This agent's part of the turn; ``history`` ends with what it must act on.

        With ``recover`` the part resumes one whose runner died: the calls it left
        without a result are answered first (an ask is asked again under its call id,
        which its peer answers once; a tool call gets an error result saying it was
        interrupted: a call that may have run is never run twice).

        ``meter`` counts each step's tokens and stops the turn (``budget_exceeded``)
        before a step once the turn's budget is spent.

        The part is traced (``agent.turn``) and measured (see ``_turn_telemetry``).
        """
        telemetry = TurnTelemetry(self.spec.name, ctx)
        try:
            part = self._run(ctx, history, record, resume, telemetry, recover, meter)
            events = telemetry.scope.stream(part)
            async with closing(events) as scoped:
                async for event in scoped:
                    telemetry.seen(event)
                    yield event
        except Exception as exc:
            telemetry.raised(exc)
            raise
        finally:
            telemetry.end()

    async def _run(
        self,
        ctx: TurnContext,
        history: list[BaseMessage],
        record: Recorder,
        resume: ApprovalEvent | None,
        telemetry: TurnTelemetry,
        recover: bool,
        meter: Meter | None,
    ) -> AsyncIterator[Event]:
        usage = TurnUsage(hops=ctx.hops)
        deadline = self._clock() + self.spec.limits.turn_timeout_s
        if ctx.deadline is not None:
            deadline = min(deadline, ctx.deadline)
        history = list(history)
        try:
            # Peers this agent already handed the turn to are off the menu for this turn.
            space = without_cycles(await self.action_space(), self.spec.name, ctx.path)
            if resume is not None:
                async for event in self._resume(ctx, resume, history, deadline, record):
                    yield event
            if recover:
                async for event in self._recover(ctx, history, usage, record):
                    yield event
            for step_number in range(1, self.spec.max_steps + 1):
                # An agent that may answer does so on its last step (or the turn would
                # end in max_steps): that step offers nothing else.
                last = step_number == self.spec.max_steps > 1
                tool_choice = self.spec.tool_choice
                if step_number == 1 and self.spec.first_tool_choice is not None:
                    tool_choice = self.spec.first_tool_choice
                step_space = answering(space) if last else with_tool_choice(space, tool_choice)
                step = _Step()
                async for event in self._decide_and_act(
                    ctx, history, space, step_space, usage, deadline, telemetry, meter, step
                ):
                    yield event
                for action in step.actions:
                    if action.kind == "answer":
                        yield await record(self._event(_answer(action), ctx))
                        yield self._done(usage, status="ok")
                        return
                    if action.kind == "tool":
                        result = _Step()
                        async for event in self._tool(
                            ctx, action, history, deadline, record, result
                        ):
                            yield event
                        if result.actions:  # the tool's result is the answer
                            yield await record(self._event(_answer(result.actions[0]), ctx))
                            yield self._done(usage, status="ok")
                            return
                    elif action.kind == "ask":
                        async for event in self._ask(ctx, action, history, usage, record):
                            yield event
                    else:
                        async for event in self._handoff(ctx, action, history, usage, record):
                            yield event
                        return
            raise MaxStepsExceededError(
                f"agent {self.spec.name!r} used its {self.spec.max_steps} steps without answering"
            )
        except _Paused:
            yield self._done(usage, status="paused")
        except (AgentRunError, GenerationError) as exc:
            if exc.retryable:
                raise  # a replica died: the turn's runner resumes the turn from the store
            error = ErrorEvent(code=exc.code, message=exc.message)
            yield await record(self._event(error, ctx))
            yield self._done(usage, status="error")

    # -- one step -------------------------------------------------------------------

    async def _decide_and_act(
        self,
        ctx: TurnContext,
        history: list[BaseMessage],
        space: ActionSpace,
        step_space: ActionSpace,
        usage: TurnUsage,
        deadline: float,
        telemetry: TurnTelemetry,
        meter: Meter | None,
        out: _Step,
    ) -> AsyncIterator[Event]:
        """One step of the agent: its actions land in ``out``.

        With ``decide_then_act`` the step is a decision (skipped when there is only one
        choice) and then the chosen action (skipped for a hand-off); both are guided
        and share one prompt, which describes the whole ``space``.
        """
        native = self.spec.tool_calling == "native"
        decide = (
            self.spec.decision == "decide_then_act" and not space.answer_only and not space.router
        )
        if not decide:
            schema = None
            if not native and not step_space.answer_only:
                schema = action_schema(step_space, self._max_tokens(usage))
            async for event in self._generate_step(
                ctx, history, step_space, step_space, schema, usage, deadline, telemetry, meter, out
            ):
                yield event
            return
        choice = next(iter(step_space.choices)) if len(step_space.choices) == 1 else None
        if choice is None and self.spec.decide_by == "likelihood":
            choice = await self._likelihood_choice(ctx, history, step_space, usage, deadline)
        if choice is None:
            decision = _Step()
            async for event in self._generate_step(
                ctx,
                history,
                space,
                step_space,
                decision_schema(step_space),
                usage,
                deadline,
                telemetry,
                meter,
                decision,
                decision=True,
            ):
                yield event
            choice = decision.choice
        kind, target = step_space.choices[choice]
        if kind == "handoff":
            out.actions = [Action("handoff", agent=target)]
            return
        act = act_schema(step_space, choice, self._max_tokens(usage))
        async for event in self._generate_step(
            ctx,
            history,
            space,
            chosen(step_space, choice),
            act,
            usage,
            deadline,
            telemetry,
            meter,
            out,
        ):
            yield event

    async def _likelihood_choice(
        self,
        ctx: TurnContext,
        history: list[BaseMessage],
        space: ActionSpace,
        usage: TurnUsage,
        deadline: float,
    ) -> str | None:
        """The choice under whose description the model finds the user's last message
        most likely (``decide_by: likelihood``): one scoring call, no generation. None
        when the engine cannot score: the caller decides by grammar then."""
        text = next((str(m.content) for m in reversed(history) if isinstance(m, HumanMessage)), "")
        names = list(space.choices)
        if not text.strip():
            return names[0]
        contexts = choice_contexts(space, self._peer_descriptions, self.spec.choice_descriptions)
        request = ScoreRequest(
            model=self.spec.model,
            contexts=contexts,
            text=text[:8000],
            session_id=ctx.conversation_id,
        )
        with tracer().start_as_current_span(
            "agent.decide", attributes={"ray_agents.choices": ",".join(names)}
        ) as span:
            try:
                result = await self._before(deadline, self._generator.likelihood(request))
            except GenerationError as exc:
                if exc.retryable:
                    raise
                # An engine that cannot score (an external server, say): the model
                # writes the choice under the enum grammar instead.
                span.set_attribute("ray_agents.fallback", exc.code)
                return None
            scores = result.scores
            if share := self.spec.decide_calibration:
                biases = await self._choice_biases(contexts, ctx, deadline)
                scores = calibrated(scores, biases, share)
            best = max(range(len(names)), key=lambda i: scores[i])
            span.set_attribute("ray_agents.choice", names[best])
        usage.steps += 1
        usage.prompt_tokens += result.prompt_tokens
        return names[best]

    async def _choice_biases(
        self, contexts: list[str], ctx: TurnContext, deadline: float
    ) -> list[float]:
        """Each context's mean score of the content-free CALIBRATION_TEXTS: scored once
        per set of contexts on this replica, then remembered."""
        key = tuple(contexts)
        async with self._biases_lock:
            if (known := self._biases.get(key)) is not None:
                return known
            results = []
            for text in CALIBRATION_TEXTS:  # one at a time, like any other step of a turn
                request = ScoreRequest(
                    model=self.spec.model,
                    contexts=contexts,
                    text=text,
                    session_id=ctx.conversation_id,
                )
                results.append(await self._before(deadline, self._generator.likelihood(request)))
            biases = [
                sum(r.scores[i] for r in results) / len(results) for i in range(len(contexts))
            ]
            self._biases[key] = biases
            return biases

    async def _generate_step(
        self,
        ctx: TurnContext,
        history: list[BaseMessage],
        prompt_space: ActionSpace,
        space: ActionSpace,
        schema: dict[str, Any] | None,
        usage: TurnUsage,
        deadline: float,
        telemetry: TurnTelemetry,
        meter: Meter | None,
        out: _Step,
        *,
        decision: bool = False,
    ) -> AsyncIterator[Event]:
        """Generate one model call (again, if its pool replica died) and read its
        actions (or, for a ``decision``, its choice) into ``out``; an answer's text
        streams out as token events."""
        request = self._request(ctx, history, prompt_space, space, schema, usage)
        if meter is not None:
            await meter.check(ctx.budget)
        for pause in (*ENGINE_RETRY_DELAYS_S, None):
            # A step whose pool replica died runs again (its tokens stream again).
            chunks: list[Any] = []
            answer_stream = AnswerStream()
            guard = RepetitionGuard()
            generation = telemetry.generation(request)
            try:
                async for token in self._generate(
                    generation.request, deadline, chunks, answer_stream, guard, generation
                ):
                    if ctx.tokens:
                        yield self._event(TokenEvent(text=token), ctx)
                break
            except EngineLostError as exc:
                if pause is None:
                    raise EngineError(
                        f"{exc.message}; gave up after {len(ENGINE_RETRY_DELAYS_S) + 1} tries"
                    ) from exc
                await self._before(deadline, asyncio.sleep(pause))
        completion = collect(chunks)
        if meter is not None:
            await meter.add(ctx.budget, self.spec.name, self.spec.model, completion.usage)
        usage.steps += 1
        usage.prompt_tokens += completion.usage.prompt_tokens
        usage.completion_tokens += completion.usage.completion_tokens
        usage.cached_tokens += completion.usage.cached_tokens
        if guard.tripped:
            # The answer went round in circles: it ends after the first round.
            out.actions = [Action("answer", text=guard.text[: guard.keep], truncated=True)]
        elif decision:
            out.choice = parse_decision(completion.text, space)
        else:
            out.actions = self._actions(completion, space, answer_stream, plain=schema is None)

    def _max_tokens(self, usage: TurnUsage) -> int:
        """The next step's ``max_tokens``: the agent's, within what the turn has left."""
        left = self.spec.limits.max_tokens_per_turn - usage.completion_tokens
        if left <= 0:
            raise TurnLimitExceededError(
                f"agent {self.spec.name!r} used its {self.spec.limits.max_tokens_per_turn} "
                "tokens for this turn"
            )
        return min(self.spec.sampling.max_tokens, left)

    def _request(
        self,
        ctx: TurnContext,
        history: list[BaseMessage],
        prompt_space: ActionSpace,
        space: ActionSpace,
        schema: dict[str, Any] | None,
        usage: TurnUsage,
    ) -> GenerateRequest:
        """The step's request: the prompt describes ``prompt_space``, ``schema`` (schema
        mode) or the native tools of ``space`` hold the model to what it may do now.

        An agent that can only answer gets no action format: it writes plain text.
        """
        max_tokens = self._max_tokens(usage)
        native = self.spec.tool_calling == "native"
        today = datetime.fromtimestamp(self._clock(), UTC).date().isoformat()
        system = render_instructions(self.spec, ctx.variables, today)
        decide = self.spec.decision == "decide_then_act" and schema is not None
        if schema is not None:
            system = system_prompt(system, prompt_space, self._peer_descriptions, decide=decide)
        shots = [] if native else example_messages(self.spec.examples, prompt_space, decide=decide)
        messages = [
            Message(role="system", content=system),
            *(
                Message(role=role, content=content)
                for user, reply in shots
                for role, content in (("user", user), ("assistant", reply))
            ),
            *to_pool_messages(
                apply_memory(history, self.spec.memory),
                native=native,
                plain=schema is None and space.answer_only,
                decide=decide,
            ),
        ]
        sampling = self.spec.sampling.model_copy(
            update={
                "max_tokens": max_tokens,
                "min_tokens": min(self.spec.sampling.min_tokens, max_tokens),
            }
        )
        return GenerateRequest(
            model=self.spec.model,
            messages=messages,
            sampling=sampling,
            json_schema=schema,
            tools=_native_tools(space) if native else None,
            tool_choice=("auto" if space.can_answer else "required") if native else None,
            session_id=ctx.conversation_id,
            # Nobody watches the tokens: the reply comes whole, with no per-token work on
            # the way (the repetition guard then trims it instead of stopping it).
            stream=ctx.tokens,
        )

    async def _generate(
        self,
        request: GenerateRequest,
        deadline: float,
        out: list[Any],
        answer: AnswerStream,
        guard: RepetitionGuard,
        telemetry: GenerationTelemetry,
    ) -> AsyncIterator[str]:
        """Stream the step's visible answer text; gather every chunk into ``out``.

        In schema mode the text comes out of the JSON action through ``answer``. When
        ``guard`` finds a streamed text repeating itself, the generation stops there:
        ``out`` then ends with a ``repetition`` finish whose completion tokens are
        estimated (a reply that was not streamed came whole: the caller trims it).
        """
        schema_mode = request.json_schema is not None
        stream = self._generator.generate(request)
        error: str | None = "cancelled"
        try:
            while True:
                chunk = await self._before(deadline, anext(stream, None))
                if chunk is None:
                    error = None
                    return
                telemetry.chunk()
                out.append(chunk)
                if isinstance(chunk, TextChunk):
                    text = answer.feed(chunk.text) if schema_mode else chunk.text
                    if text:
                        yield text
                    # A streamed reply stops where it started repeating; one that came
                    # whole is only trimmed (its finish, with its usage, follows).
                    if guard.feed(text) and request.stream:
                        generated = sum(len(c.text) for c in out if isinstance(c, TextChunk))
                        usage = Usage(completion_tokens=-(-generated // CHARS_PER_TOKEN))
                        out.append(FinishChunk(finish_reason="repetition", usage=usage))
                        error = None
                        return
        except RayAgentsError as exc:
            error = exc.code
            raise
        finally:
            telemetry.end(out, error)
            await stream.aclose()  # type: ignore[attr-defined]

    def _actions(
        self, completion: Completion, space: ActionSpace, answer: AnswerStream, *, plain: bool
    ) -> list[Action]:
        text, calls = completion.text, completion.tool_calls
        cut = completion.finish_reason == "length"
        if self.spec.tool_calling == "schema":
            if space.answer_only and plain:
                return [Action("answer", text=text, truncated=cut)]
            try:
                return [parse_schema_action(text, space)]
            except InvalidActionError:
                if cut and answer.started:
                    # Out of tokens mid-answer: what it wrote (and streamed) is the answer.
                    return [Action("answer", text=answer.text, truncated=True)]
                closed = close_cut_action(text) if cut else None
                if closed is None:
                    raise
                return [replace(parse_schema_action(closed, space), truncated=True)]
        if not calls:
            if not space.can_answer:
                raise InvalidActionError(f"agent {self.spec.name!r} must act, not answer")
            return [Action("answer", text=text, truncated=cut)]
        actions = []
        for call in calls:
            try:
                args = json.loads(call.arguments or "{}")
            except ValueError as exc:
                raise InvalidActionError(
                    f"tool call {call.name!r}: arguments are not JSON"
                ) from exc
            if call.name == HANDOFF:
                step = json.dumps({"action": "handoff", **args})
            elif call.name == ASK:
                step = json.dumps({"action": "ask", **args})
            else:
                step = json.dumps({"action": "tool", "tool": call.name, "arguments": args})
            actions.append(parse_schema_action(step, space))
        # A hand-off ends the agent's part: do it after everything else it asked for.
        return sorted(actions, key=lambda a: a.kind == "handoff")

    # -- actions --------------------------------------------------------------------

    async def _tool(
        self,
        ctx: TurnContext,
        action: Action,
        history: list[BaseMessage],
        deadline: float,
        record: Recorder,
        out: _Step,
    ) -> AsyncIterator[Event]:
        """Record the call, run it (or pause for approval) and record its result; a
        tool with an answer template (``tool_answers``) puts the answer in ``out``."""
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        call = ToolCallEvent(call_id=call_id, name=action.tool, arguments=action.arguments)
        yield await record(self._event(call, ctx))
        history.append(call_message(self.spec.name, call_id, action.tool, action.arguments))
        space = await self.action_space()
        if any(t.name == action.tool and t.requires_approval for t in space.tools):
            pending = ApprovalRequiredEvent(
                call_id=call_id, name=action.tool, arguments=action.arguments
            )
            yield await record(self._event(pending, ctx))
            raise _Paused
        async for event in self._run_tool(ctx, call, history, deadline, record, approved=False):
            if isinstance(event, ToolResultEvent) and not event.is_error:
                template = self.spec.tool_answers.get(action.tool)
                if template is not None:
                    values = {**action.arguments, "result": event.content}
                    out.actions = [Action("answer", text=fill_template(template, values))]
            yield event

    async def _run_tool(
        self,
        ctx: TurnContext,
        call: ToolCallEvent,
        history: list[BaseMessage],
        deadline: float,
        record: Recorder,
        *,
        approved: bool,
    ) -> AsyncIterator[Event]:
        """Execute a recorded call and record its result; ``history`` has the call."""
        attributes = {"ray_agents.tool": call.name, "ray_agents.call_id": call.call_id}
        with tracer().start_as_current_span("tool.call", attributes=attributes) as span:
            result = await self._before(
                deadline,
                self._tools.execute(
                    ToolCallRequest(
                        call_id=call.call_id,
                        name=call.name,
                        arguments=call.arguments,
                        conversation_id=ctx.conversation_id,
                        agent=self.spec.name,
                        trace_id=ctx.trace_id,
                        trace=carrier(),
                        deadline=deadline,
                        approved=approved,
                    )
                ),
            )
            span.set_attribute("ray_agents.status", "error" if result.is_error else "ok")
            if result.error_type is not None:
                span.set_attribute("error.type", result.error_type)
        event = ToolResultEvent(
            call_id=call.call_id, name=call.name, content=result.content, is_error=result.is_error
        )
        yield await record(self._event(event, ctx))
        history.append(result_message(event))

    async def _resume(
        self,
        ctx: TurnContext,
        decision: ApprovalEvent,
        history: list[BaseMessage],
        deadline: float,
        record: Recorder,
    ) -> AsyncIterator[Event]:
        """Run (or refuse) the call the turn paused for, then the turn goes on."""
        call = _pending_call(history, decision.call_id)
        if call is None:
            return  # already run: this turn's earlier runner died after running it
        if decision.approved:
            async for event in self._run_tool(ctx, call, history, deadline, record, approved=True):
                yield event
            return
        reason = f": {decision.reason}" if decision.reason else ""
        event = ToolResultEvent(
            call_id=call.call_id,
            name=call.name,
            content=f"rejected: a person did not approve this call{reason}",
            is_error=True,
        )
        yield await record(self._event(event, ctx))
        history.append(result_message(event))

    async def _ask(
        self,
        ctx: TurnContext,
        action: Action,
        history: list[BaseMessage],
        usage: TurnUsage,
        record: Recorder,
    ) -> AsyncIterator[Event]:
        inner = self._hop(ctx, action.agent)
        call_id = f"ask_{uuid.uuid4().hex[:12]}"
        ask = AskEvent(call_id=call_id, to_agent=action.agent, question=action.text)
        yield await record(self._event(ask, ctx))
        args = {"agent": action.agent, "question": action.text}
        history.append(call_message(self.spec.name, call_id, ASK, args))
        async for event in self._asked(ctx, inner, call_id, action.text, history, usage, record):
            yield event

    async def _asked(
        self,
        ctx: TurnContext,
        inner: TurnContext,
        call_id: str,
        question: str,
        history: list[BaseMessage],
        usage: TurnUsage,
        record: Recorder,
    ) -> AsyncIterator[Event]:
        """Ask the peer ``inner`` leads to (the call is in ``history``); record the answer."""
        peer = inner.path[-1].split("->")[-1]
        with tracer().start_as_current_span("agent.ask", attributes={"ray_agents.to_agent": peer}):
            inner = inner.model_copy(update={"trace": carrier()})
            result = await self._peers.ask(
                peer,
                AskRequest(context=inner, call_id=call_id, asker=self.spec.name, question=question),
            )
        _add(usage, result.usage)
        if result.error is not None:
            content, is_error = f"{result.error.code}: {result.error.message}", True
        else:
            content, is_error = result.text, False
        event = ToolResultEvent(call_id=call_id, name=ASK, content=content, is_error=is_error)
        yield await record(self._event(event, ctx))
        history.append(result_message(event))

    async def _recover(
        self, ctx: TurnContext, history: list[BaseMessage], usage: TurnUsage, record: Recorder
    ) -> AsyncIterator[Event]:
        """Answer the calls a dead runner left without a result (see ``run``)."""
        for call in _unanswered_calls(history):
            if call.name == ASK:
                peer, question = str(call.arguments["agent"]), str(call.arguments["question"])
                inner = self._hop(ctx, peer)
                asked = self._asked(ctx, inner, call.call_id, question, history, usage, record)
                async for event in asked:
                    yield event
                continue
            event = ToolResultEvent(
                call_id=call.call_id, name=call.name, content=INTERRUPTED, is_error=True
            )
            yield await record(self._event(event, ctx))
            history.append(result_message(event))

    async def _handoff(
        self,
        ctx: TurnContext,
        action: Action,
        history: list[BaseMessage],
        usage: TurnUsage,
        record: Recorder,
    ) -> AsyncIterator[Event]:
        inner = self._hop(ctx, action.agent)
        handoff = await record(
            self._event(HandoffEvent(to_agent=action.agent, message=action.text), ctx)
        )
        yield handoff
        call_id = f"handoff-{handoff.seq}"
        args = {"agent": action.agent, "message": action.text}
        history.append(call_message(self.spec.name, call_id, HANDOFF, args))
        history.append(
            ToolMessage(f"Handed off to {action.agent}.", tool_call_id=call_id, name=HANDOFF)
        )
        # The span covers the peer's whole part; it is never current across a yield.
        span = start_span("agent.handoff", attributes={"ray_agents.to_agent": action.agent})
        request = TurnRequest(
            context=inner.model_copy(update={"trace": carrier(span)}),
            after_seq=handoff.seq or 0,
            history=dump_messages(history),
        )
        try:
            async with closing(self._peers.run(action.agent, request)) as events:
                async for event in events:
                    if isinstance(event, DoneEvent):
                        _add(usage, event.usage)
                        yield event.model_copy(update={"usage": usage})
                    else:
                        yield event
        finally:
            end_span(span)

    # -- helpers --------------------------------------------------------------------

    def _hop(self, ctx: TurnContext, peer: str) -> TurnContext:
        edge = f"{self.spec.name}->{peer}"
        if ctx.hops + 1 > ctx.max_hops:
            raise HopLimitExceededError(
                f"the turn reached its limit of {ctx.max_hops} hops "
                f"({', '.join([*ctx.path, edge])})"
            )
        if edge in ctx.path:
            raise HandoffCycleError(
                f"agents are going round in circles: {edge} again after {', '.join(ctx.path)}"
            )
        return ctx.hop(edge)

    async def _before(self, deadline: float, work: Awaitable[T]) -> T:
        """Await ``work`` unless the deadline passes first."""
        left = deadline - self._clock()
        if left <= 0:
            _close(work)
            raise DeadlineExceededError(f"agent {self.spec.name!r}: the turn's deadline passed")
        try:
            async with asyncio.timeout(left):
                return await work
        except TimeoutError as exc:
            raise DeadlineExceededError(
                f"agent {self.spec.name!r}: the turn's deadline passed"
            ) from exc

    def _event(self, event: Event, ctx: TurnContext) -> Event:
        return event.model_copy(update={"agent": self.spec.name, "turn_id": ctx.turn_id})

    def _done(self, usage: TurnUsage, *, status: Literal["ok", "error", "paused"]) -> DoneEvent:
        return DoneEvent(
            agent=self.spec.name,
            status=status,
            usage=usage,
            active_agent=self.spec.name,
        )


def _native_tools(space: ActionSpace) -> list[dict[str, Any]]:
    tools = [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in space.tools
    ]
    for name, peers, key in ((HANDOFF, space.handoffs, "message"), (ASK, space.asks, "question")):
        if peers:
            # A router only picks the peer (as in schema mode).
            text = {} if name == HANDOFF and space.router else {key: {"type": "string"}}
            tools.append(
                {
                    "type": "function",
                    "function": {
                        "name": name,
                        "description": f"{name} to one of: {', '.join(peers)}",
                        "parameters": {
                            "type": "object",
                            "properties": {"agent": {"enum": list(peers)}, **text},
                            "required": ["agent", *text],
                        },
                    },
                }
            )
    return tools


@dataclass
class _Step:
    """What one step decided: a ``decide_then_act`` choice, or the actions to take."""

    choice: str = ""
    actions: list[Action] = field(default_factory=list)


def _answer(action: Action) -> AnswerEvent:
    return AnswerEvent(text=action.text, output=action.output, truncated=action.truncated)


class _Paused(Exception):  # a control-flow signal, not an error
    """The turn waits for a person's approval."""


def _pending_call(history: list[BaseMessage], call_id: str) -> ToolCallEvent | None:
    """The call ``call_id`` of the history, if no result answers it yet."""
    answered = {m.tool_call_id for m in history if isinstance(m, ToolMessage)}
    if call_id in answered:
        return None
    for message in reversed(history):
        for call in getattr(message, "tool_calls", None) or []:
            if call["id"] == call_id:
                return ToolCallEvent(call_id=call_id, name=call["name"], arguments=call["args"])
    return None


def _unanswered_calls(history: list[BaseMessage]) -> list[ToolCallEvent]:
    """This turn's calls (after the last user message) that no result answers yet."""
    start = max((i for i, m in enumerate(history) if isinstance(m, HumanMessage)), default=-1)
    turn = history[start + 1 :]
    answered = {m.tool_call_id for m in turn if isinstance(m, ToolMessage)}
    return [
        ToolCallEvent(call_id=call["id"], name=call["name"], arguments=call["args"])
        for message in turn
        for call in getattr(message, "tool_calls", None) or []
        if call["id"] not in answered and call["name"] != HANDOFF
    ]


def _add(total: TurnUsage, part: TurnUsage) -> None:
    total.prompt_tokens += part.prompt_tokens
    total.completion_tokens += part.completion_tokens
    total.cached_tokens += part.cached_tokens
    total.steps += part.steps
    total.hops = max(total.hops, part.hops)


def _close(work: Awaitable[Any]) -> None:
    close = getattr(work, "close", None)
    if close is not None:
        close()
