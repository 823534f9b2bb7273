"""API keys: who is calling, checked against configured SHA-256 hashes."""

from __future__ import annotations

import logging

from fastapi import Request

from agents.api._errors import ApiError
from agents.api.spec import SCOPES, ApiKey, ApiSpec, Scope, hash_key
from agents.protocol import TokenBudgets

__all__ = ["DEV_TENANT", "Authenticator", "Caller"]

log = logging.getLogger("ray_agents.api")

DEV_TENANT = "dev"
"""The tenant of keyless requests in open mode."""


class Caller:
    """An authenticated caller: its tenant, the key (hash) limits are counted on, and
    what the key may do."""

    __slots__ = ("budgets", "burst", "key_hash", "requests_per_minute", "scopes", "tenant")

    def __init__(
        self,
        tenant: str,
        key_hash: str,
        scopes: frozenset[str] = frozenset(),
        budgets: TokenBudgets | None = None,
        requests_per_minute: int | None = None,
        burst: int | None = None,
    ) -> None:
        self.tenant = tenant
        self.key_hash = key_hash
        self.scopes = scopes
        self.budgets = budgets
        """The key's own token budgets (over the app's), if it has any."""
        self.requests_per_minute = requests_per_minute
        """The key's own rate (over the app's), if it has one; so ``burst``."""
        self.burst = burst

    def require(self, scope: Scope) -> None:
        """Raise 403 ``permission_denied`` unless the key has ``scope``."""
        if scope not in self.scopes:
            raise ApiError(
                "permission_denied",
                f"this API key lacks the {scope!r} scope (its scopes: "
                f"{', '.join(sorted(self.scopes)) or 'none'})",
            )


class Authenticator:
    """Turns ``Authorization: Bearer <key>`` into a ``Caller``, or a 401."""

    def __init__(self, spec: ApiSpec) -> None:
        self._keys: dict[str, ApiKey] = spec.all_keys()
        self.open = spec.open
        if self.open:
            log.warning(
                "API OPEN MODE: requests without an API key are accepted as tenant %r. "
                "For local development only; never expose this app.",
                DEV_TENANT,
            )
        elif not self._keys:
            log.warning("no API keys are configured: every request will get 401")

    def __call__(self, request: Request) -> Caller:
        """The caller of ``request``."""
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if not header:
            if self.open:
                host = request.client.host if request.client else ""
                return Caller(DEV_TENANT, f"open:{host}", frozenset(SCOPES))
            raise ApiError(
                "authentication_error", "missing API key: send 'Authorization: Bearer <key>'"
            )
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(
                "authentication_error", "malformed Authorization header: use 'Bearer <key>'"
            )
        digest = hash_key(key.strip())
        found = self._keys.get(digest)
        if found is None:
            raise ApiError("authentication_error", "invalid API key")
        return Caller(
            found.tenant,
            digest,
            frozenset(found.scopes),
            found.budgets,
            found.requests_per_minute,
            found.burst,
        )
