"""Token budgets and usage: what a turn spends is counted in the store after every
generate call, and a turn whose budget is spent stops before its next one.

A turn's ``Budget`` (in its ``TurnContext``) names whose tokens it spends (its
conversation's owner, the tenant) and the limits: the tenant's per UTC day and per UTC
month, the conversation's over its life. Tokens are prompt + completion tokens as the
pool reports them. The check reads the store's sums, so it holds across every replica
of every agent; a turn may overshoot by at most its last step (the check comes before a
step, the count after it). The API checks the same sums before it starts a turn and
refuses it with 429 ``budget_exceeded``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from agents.errors import BudgetExceededError, RayAgentsError
from agents.observability import metrics as m
from agents.pool.types import Usage as StepUsage
from agents.protocol import Budget
from agents.store.base import ConversationStore, Usage

__all__ = ["Meter", "spent"]

log = logging.getLogger("ray_agents.budgets")


def day_of(now: float) -> str:
    """The UTC date of an epoch time, YYYY-MM-DD."""
    return datetime.fromtimestamp(now, UTC).date().isoformat()


async def spent(store: ConversationStore, budget: Budget, now: float) -> str | None:
    """Why ``budget`` allows no more tokens (a sentence for the caller), or None."""
    if not budget.limited:
        return None
    day = day_of(now)
    totals = await store.usage_totals(budget.tenant, budget.conversation_id, day)
    tenant = f"tenant {budget.tenant!r}'s"
    checks = (
        (budget.daily_tokens, totals.tenant_day, f"{tenant} daily budget ({day})"),
        (budget.monthly_tokens, totals.tenant_month, f"{tenant} monthly budget ({day[:7]})"),
        (
            budget.conversation_tokens,
            totals.conversation,
            f"conversation {budget.conversation_id!r}'s budget",
        ),
    )
    for limit, used, what in checks:
        if limit is not None and used >= limit:
            return f"{what} of {limit} tokens is spent ({used} used)"
    return None


class Meter:
    """Counts each generate call's tokens into the store and stops a turn whose
    budget is spent. One per agent replica; ``clock`` gives epoch seconds."""

    def __init__(self, store: ConversationStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def check(self, budget: Budget | None) -> None:
        """Raise ``BudgetExceededError`` if the turn may not generate again."""
        if budget is None:
            return
        reason = await spent(self._store, budget, self._clock())
        if reason is not None:
            raise BudgetExceededError(f"{reason}; the turn stopped before its next step")

    async def add(self, budget: Budget | None, agent: str, model: str, usage: StepUsage) -> None:
        """Count one generate call's tokens (for the turn's tenant and conversation)."""
        tenant = budget.tenant if budget is not None else ""
        m.AGENT_TOKENS.inc(usage.prompt_tokens, agent=agent, tenant=tenant, kind="prompt")
        m.AGENT_TOKENS.inc(usage.completion_tokens, agent=agent, tenant=tenant, kind="completion")
        if budget is None:
            return
        try:
            await self._add(budget, agent, model, usage)
        except RayAgentsError as exc:  # the step's work is done: do not fail the turn
            log.warning("could not count a step's tokens: %s", exc)

    async def _add(self, budget: Budget, agent: str, model: str, usage: StepUsage) -> None:
        tenant, conversation_id = budget.tenant, budget.conversation_id
        await self._store.add_usage(
            Usage(
                tenant=tenant,
                day=day_of(self._clock()),
                conversation_id=conversation_id,
                agent=agent,
                model=model,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                calls=1,
            )
        )
