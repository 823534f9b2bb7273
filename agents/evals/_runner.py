"""Run a dataset against a running app through the SDK: a conversation per case run,
each user turn sent and waited for, checked, timed and recorded.

Only the SDK (httpx) is needed: the app may be anywhere an ``AsyncClient`` reaches.
A turn that pauses for approval is checked as paused, unless its case says
``approve: true``: then each waiting call is approved in turn until the turn ends, and
the checks see the whole of it (events, usage and time of every part added up).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import TextIO

from agents.api.types import TurnResult
from agents.client import APIError, AsyncClient, AsyncConversationHandle
from agents.evals._checks import check_turn, route_of, tools_of
from agents.evals._dataset import EvalCase, EvalDataset
from agents.evals._progress import Progress
from agents.evals._report import ALL, EvalReport, group_summaries, summarize
from agents.evals._results import CaseResult, TurnRecord
from agents.events import Event, TurnUsage

__all__ = ["MAX_APPROVALS", "run_eval"]

MAX_APPROVALS = 16
"""Approvals one user turn may take; past them the turn is checked as it stands."""


async def run_eval(
    dataset: EvalDataset,
    client: AsyncClient,
    *,
    concurrency: int = 4,
    repeat: int = 1,
    timeout_s: float | None = None,
    progress: TextIO | None = None,
    show_progress: bool = True,
) -> EvalReport:
    """Run every case of ``dataset`` ``repeat`` times, ``concurrency`` at once.

    ``timeout_s`` is each turn's deadline on the server (default: the app's).
    The progress bar goes to ``progress`` (default: stderr) unless ``show_progress`` is
    false. A failed API call fails its case (status ``request_failed``), not the run.
    """
    if concurrency < 1 or repeat < 1:
        raise ValueError("concurrency and repeat must be 1 or more")
    runs = [(case, run) for run in range(repeat) for case in dataset.cases]
    bar = Progress(dataset.name, len(runs), progress) if show_progress else None
    gate = asyncio.Semaphore(concurrency)
    started_at, started = datetime.now(UTC), time.perf_counter()

    async def one(case: EvalCase, run: int) -> CaseResult:
        async with gate:
            result = await _run_case(client, dataset, case, run, timeout_s)
        if bar is not None:
            bar.advance(result.passed)
        return result

    try:
        async with asyncio.TaskGroup() as tasks:
            pending = [tasks.create_task(one(case, run)) for case, run in runs]
    finally:
        if bar is not None:
            bar.close()
    order = {case.id: index for index, case in enumerate(dataset.cases)}
    results = sorted((t.result() for t in pending), key=lambda r: (order[r.id], r.run))
    return EvalReport(
        name=dataset.name,
        description=dataset.description,
        target=client.base_url,
        started_at=started_at,
        duration_s=time.perf_counter() - started,
        concurrency=concurrency,
        repeat=repeat,
        overall=summarize(ALL, results),
        groups=group_summaries(results),
        cases=results,
    )


async def _run_case(
    client: AsyncClient, dataset: EvalDataset, case: EvalCase, run: int, timeout_s: float | None
) -> CaseResult:
    result = CaseResult(id=case.id, group=case.group, run=run)
    try:
        conversation = await client.conversations.create(agent=case.agent or dataset.agent)
    except APIError as exc:
        result.failures.append(f"the conversation could not be created: {_error(exc)}")
        return result
    result.conversation_id = conversation.id
    turns = case.all_turns
    for index, turn in enumerate(turns):
        record = await _run_turn(conversation, turn.input, case.approve, timeout_s)
        record.failures = check_turn(turn.expect, record)
        result.turns.append(record)
        prefix = f"turn {index + 1}: " if len(turns) > 1 else ""
        result.failures += [prefix + failure for failure in record.failures]
        if record.status == "request_failed":
            break  # the conversation is in an unknown state: its later turns mean nothing
    return result


async def _run_turn(
    conversation: AsyncConversationHandle, text: str, approve: bool, timeout_s: float | None
) -> TurnRecord:
    started = time.perf_counter()
    events: list[Event] = []
    usage = TurnUsage()
    approvals = 0
    try:
        result = await conversation.send(text, timeout_s=timeout_s)
        while True:
            events += result.events
            usage = _add(usage, result.usage)
            if not (approve and result.pending_approvals) or approvals >= MAX_APPROVALS:
                break
            # A turn pauses for one call; approving it resumes the turn (as a new one).
            result = await conversation.approve(
                result.pending_approvals[0].call_id, "approved by the eval case"
            )
            approvals += 1
    except APIError as exc:
        return TurnRecord(
            input=text,
            status="request_failed",
            error_code=getattr(exc, "code", "") or exc.type,
            error_message=_error(exc),
            route=route_of(events),
            tools=tools_of(events),
            approvals=approvals,
            latency_s=time.perf_counter() - started,
            usage=usage,
        )
    return _record(text, result, events, usage, approvals, time.perf_counter() - started)


def _record(
    text: str,
    result: TurnResult,
    events: list[Event],
    usage: TurnUsage,
    approvals: int,
    latency_s: float,
) -> TurnRecord:
    return TurnRecord(
        input=text,
        status=result.status,
        error_code=result.error.code if result.error else None,
        error_message=result.error.message if result.error else None,
        answer=result.answer,
        output=result.output,
        route=route_of(events),
        tools=tools_of(events),
        approvals=approvals,
        latency_s=latency_s,
        usage=usage,
    )


def _add(total: TurnUsage, more: TurnUsage) -> TurnUsage:
    return TurnUsage(
        **{name: getattr(total, name) + getattr(more, name) for name in TurnUsage.model_fields}
    )


def _error(exc: APIError) -> str:
    return f"{type(exc).__name__}: {exc}"
