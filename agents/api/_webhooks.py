"""Webhooks: a turn's end, posted to the URL its send named, at least once.

A send with ``webhook`` stores the URL with its turn, whose delivery is then
'pending' in the store. When the turn ends, the replica that ran it sends the
delivery; when that replica died first, the turn is resumed elsewhere and sent from
there, and a delivery nobody finished (its sender died mid-retries) is picked up by
any API replica's ``deliver_pending`` (run beside turn recovery). One sender at a time
holds a delivery (``claim_delivery``), so a receiver sees repeats only when a sender
died after the receiver answered.

Each delivery is a POST of JSON::

    {"id": <delivery id>, "type": "turn.ended", "conversation_id": ..., "turn_id": ...,
     "status": ..., "result": <the turn's TurnResult>}

with headers ``X-Ray-Agents-Delivery`` (the id: the same on every try and every
sender, so a receiver drops repeats), ``X-Ray-Agents-Event: turn.ended`` and, when
the app has a secret, ``X-Ray-Agents-Signature: t=<unix time>,v1=<hex HMAC-SHA256
of "<t>.<body>">``. A 2xx reply ends it; anything else (or no reply) is tried again
with exponential backoff, ``attempts`` times in all, then the delivery is 'failed'.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable

import httpx
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from agents.api._results import turn_result
from agents.api.spec import WebhookSpec
from agents.errors import RayAgentsError
from agents.observability import metrics as m
from agents.store.base import ConversationStore

__all__ = ["Webhooks", "delivery_id"]

log = logging.getLogger("ray_agents.webhooks")
MAX_SENDING = 64
"""Deliveries one replica sends at once from ``deliver_pending``."""
EVENT = "turn.ended"


class _NotDelivered(Exception):
    """A try that got no 2xx reply (tenacity retries on it)."""


def delivery_id(conversation_id: str, turn_id: str) -> str:
    """The id every try of a turn's delivery carries (from its conversation and turn)."""
    digest = hashlib.sha256(f"{conversation_id}\0{turn_id}".encode()).hexdigest()
    return f"dlv_{digest[:32]}"


class Webhooks:
    """Sends the webhook deliveries of one entry replica."""

    def __init__(
        self,
        store: ConversationStore,
        spec: WebhookSpec,
        *,
        client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._spec = spec
        self._client = client or httpx.AsyncClient(follow_redirects=False)
        self._sleep = sleep
        secret = os.environ.get(spec.secret_env, "") if spec.secret_env else ""
        self._secret = secret.encode() or None
        self._sending: set[asyncio.Task[bool]] = set()

    def allows(self, url: str) -> bool:
        """Whether a send may name ``url`` as its webhook."""
        return self._spec.allows(url)

    async def deliver(self, conversation_id: str, turn_id: str) -> bool:
        """Send a turn's pending delivery, if nobody else holds it; whether it was
        delivered. Failures are logged and recorded, not raised."""
        try:
            if not await self._claim(conversation_id, turn_id):
                return False  # ended elsewhere, sent already, or another sender holds it
        except RayAgentsError as exc:
            log.warning("could not deliver a webhook: %s", exc)
            return False
        return await self._send(conversation_id, turn_id)

    async def deliver_pending(self, *, limit: int = 100) -> int:
        """Start sending the deliveries that wait for a sender (theirs died), each in a
        task of its own (a slow receiver's retries hold up nothing else); how many
        started. At most ``MAX_SENDING`` are in flight per replica."""
        started = 0
        for turn in await self._store.undelivered(time.time(), limit=limit):
            if len(self._sending) >= MAX_SENDING:
                break
            if not await self._claim(turn.conversation_id, turn.turn_id):
                continue
            task = asyncio.get_running_loop().create_task(
                self._send(turn.conversation_id, turn.turn_id)
            )
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
            started += 1
        return started

    async def _claim(self, conversation_id: str, turn_id: str) -> bool:
        spec = self._spec
        # Held for as long as every try could take, so no other sender starts meanwhile.
        hold = spec.attempts * (spec.timeout_s + spec.max_backoff_s) + 5.0
        return await self._store.claim_delivery(conversation_id, turn_id, until=time.time() + hold)

    async def _send(self, conversation_id: str, turn_id: str) -> bool:
        """Send a delivery this sender holds, and record how it ended."""
        try:
            turn = await self._store.turn_by_id(conversation_id, turn_id)
            if turn is None or turn.webhook is None:
                return False
            events = await self._store.events(conversation_id, turn_id=turn_id)
            result = turn_result(conversation_id, events, status=turn.status)
            delivered = await self._post(
                turn.webhook, conversation_id, turn_id, result.model_dump(mode="json")
            )
            await self._store.end_delivery(
                conversation_id, turn_id, "delivered" if delivered else "failed"
            )
            return delivered
        except RayAgentsError as exc:  # the store: the delivery stays pending for later
            log.warning("could not deliver a webhook: %s", exc)
            return False

    async def flush(self) -> None:
        """Wait for the sends in flight to end."""
        await asyncio.gather(*self._sending, return_exceptions=True)

    async def close(self) -> None:
        """Stop the sends in flight (their deliveries stay pending: another replica
        sends them once their hold lapses) and close the HTTP client."""
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)
        await self._client.aclose()

    async def _post(
        self, url: str, conversation_id: str, turn_id: str, result: dict[str, object]
    ) -> bool:
        spec = self._spec
        ident = delivery_id(conversation_id, turn_id)
        payload = {
            "id": ident,
            "type": EVENT,
            "conversation_id": conversation_id,
            "turn_id": turn_id,
            "status": result["status"],
            "result": result,
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        options: dict[str, object] = {}
        if self._sleep is not None:
            options["sleep"] = self._sleep
        retrying = AsyncRetrying(
            stop=stop_after_attempt(spec.attempts),
            wait=wait_exponential(multiplier=spec.backoff_s, max=spec.max_backoff_s),
            retry=retry_if_exception_type((_NotDelivered, httpx.TransportError)),
            **options,  # type: ignore[arg-type]
        )
        try:
            async for attempt in retrying:
                with attempt:
                    tried = attempt.retry_state.attempt_number
                    await self._try(url, body, ident, tried)
        except RetryError as exc:
            log.warning(
                "webhook delivery %s failed after %d tries: %s",
                ident,
                spec.attempts,
                exc.last_attempt.exception(),
                extra={"conversation_id": conversation_id, "turn_id": turn_id},
            )
            m.WEBHOOK_DELIVERIES.inc(outcome="failed")
            return False
        m.WEBHOOK_DELIVERIES.inc(outcome="delivered")
        return True

    async def _try(self, url: str, body: bytes, ident: str, attempt: int) -> None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "ray-agents-webhooks",
            "X-Ray-Agents-Delivery": ident,
            "X-Ray-Agents-Event": EVENT,
            "X-Ray-Agents-Attempt": str(attempt),
        }
        if self._secret is not None:
            stamp = str(int(time.time()))
            mac = hmac.new(self._secret, stamp.encode() + b"." + body, hashlib.sha256)
            headers["X-Ray-Agents-Signature"] = f"t={stamp},v1={mac.hexdigest()}"
        response = await self._client.post(
            url, content=body, headers=headers, timeout=self._spec.timeout_s
        )
        if not response.is_success:
            m.WEBHOOK_DELIVERIES.inc(outcome="retried")
            raise _NotDelivered(f"{url} answered {response.status_code}")
