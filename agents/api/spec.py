"""The HTTP API's configuration: API keys, limits, and the ingress's scaling.

Keys are configured as SHA-256 hashes, never in the clear: ``ray-agents keys new``
prints a fresh key and its hash. ``keys_env`` names an environment variable holding
more ``tenant:hash[:scope+scope]`` items (comma separated), so a deployment adds keys
without editing the file.

Each key has scopes: ``conversations`` (create, read, send to and delete its tenant's
conversations) and ``approvals`` (approve or reject its tenant's paused tool calls).
A key has ``conversations`` only unless ``approvals`` is given: the key whose message
made an agent call a tool cannot also approve the call unless it was meant to.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.errors import ConfigError
from agents.pool.spec import Resources
from agents.protocol import TokenBudgets

__all__ = [
    "SCOPES",
    "A2ASpec",
    "ApiKey",
    "ApiLimits",
    "ApiSpec",
    "McpSpec",
    "Scope",
    "WebhookSpec",
    "hash_key",
]

Scope = Literal["conversations", "approvals"]
SCOPES: tuple[Scope, ...] = ("conversations", "approvals")

_Strict = ConfigDict(extra="forbid", frozen=True)
_HASH = re.compile(r"^[0-9a-f]{64}$")


def hash_key(key: str) -> str:
    """The SHA-256 hex digest a key is configured (and compared) as."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKey(BaseModel):
    """One API key: who holds it, as the hash of the key."""

    model_config = _Strict

    tenant: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="The key's owner; conversations belong to it and are hidden from others.",
    )
    sha256: str = Field(
        pattern=_HASH.pattern, description="SHA-256 hex digest of the key (`ray-agents keys new`)."
    )
    name: str = Field("", max_length=128, description="A label for logs (never the key).")
    scopes: list[Scope] = Field(
        default_factory=lambda: list[Scope](["conversations"]),
        min_length=1,
        description=(
            "What the key may do: 'conversations' (create, read, send, delete) and "
            "'approvals' (decide on paused tool calls), always within its tenant."
        ),
    )
    budgets: TokenBudgets | None = Field(
        None,
        description=(
            "Token budgets for turns this key starts, each set one replacing the app's "
            "(`api.budgets`); the tenant's sums count every key of the tenant."
        ),
    )
    requests_per_minute: int | None = Field(
        None,
        ge=1,
        description=(
            "This key's sustained rate, replacing `api.limits.requests_per_minute` "
            "(a batch client's higher one, a demo key's lower one)."
        ),
    )
    burst: int | None = Field(
        None, ge=1, description="This key's burst, replacing `api.limits.burst`."
    )


class ApiLimits(BaseModel):
    """Bounds on what one request, one key and the whole ingress may take."""

    model_config = _Strict

    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body; bigger gets 413."
    )
    max_message_chars: int = Field(
        32_000, ge=1, description="Longest user message (or chat completion message)."
    )
    max_history_messages: int = Field(
        256, ge=1, description="Most messages one /v1/chat/completions request may carry."
    )
    requests_per_minute: int = Field(
        600, ge=1, description="Per key, sustained; bursts up to `burst`. Over it: 429."
    )
    burst: int = Field(60, ge=1, description="Requests a key may make at once before limiting.")
    max_streams_per_key: int = Field(
        32, ge=1, description="Concurrent SSE streams (and turns) per key. Over it: 429."
    )
    max_concurrent_turns: int = Field(
        256,
        ge=1,
        description="Turns one ingress replica runs at once; over it: 503 with Retry-After.",
    )
    heartbeat_s: float = Field(
        15.0, gt=0, le=300, description="Idle SSE streams get a comment line this often."
    )


class WebhookSpec(BaseModel):
    """Where turns may report their end (``webhook`` on a send), and how hard to try.

    ``allow`` lists URL prefixes, each ``scheme://host[:port][/path]``: a webhook's
    scheme, host and port must be one entry's (``:*`` for any port) and its path must
    start with the entry's. Nothing is allowed by default: a caller cannot make the
    server post to an address the operator did not list.
    """

    model_config = _Strict

    allow: list[str] = Field(
        default_factory=list,
        description="URL prefixes a webhook may have, e.g. https://hooks.example.com/ray/.",
    )
    secret_env: str | None = Field(
        "RAY_AGENTS_WEBHOOK_SECRET",
        description=(
            "Environment variable holding the secret each delivery is signed with "
            "(HMAC-SHA256 in X-Ray-Agents-Signature); unset: deliveries are not signed."
        ),
    )
    attempts: int = Field(
        8, ge=1, le=30, description="Tries per delivery before it is marked failed."
    )
    timeout_s: float = Field(10.0, gt=0, le=120, description="Each try's HTTP timeout.")
    backoff_s: float = Field(
        0.5, gt=0, le=60, description="Wait before the second try; it doubles up to max_backoff_s."
    )
    max_backoff_s: float = Field(30.0, gt=0, le=600, description="The longest wait between tries.")

    @model_validator(mode="after")
    def _check(self) -> WebhookSpec:
        for entry in self.allow:
            _webhook_prefix(entry)
        return self

    def allows(self, url: str) -> bool:
        """Whether ``url`` matches an ``allow`` entry (and is a plain http(s) URL)."""
        try:
            scheme, host, port, path = _split_url(url)
        except ValueError:
            return False
        for entry in self.allow:
            e_scheme, e_host, e_port, e_path = _webhook_prefix(entry)
            same_origin = (scheme, host) == (e_scheme, e_host) and e_port in ("*", port)
            if same_origin and _under(path, e_path):
                return True
        return False


def _under(path: str, prefix: str) -> bool:
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


def _split_url(url: str) -> tuple[str, str, str, str]:
    """scheme, host, port (as text; the scheme's default when left out) and path."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in the URL")
    decoded = unquote(parts.path)
    if "%" in decoded or any(segment in (".", "..") for segment in decoded.split("/")):
        raise ValueError("'.', '..' or a double-encoded character in the path")
    if "%2f" in parts.path.lower() or "\\" in decoded:
        raise ValueError("an encoded '/' or a backslash in the path")
    default = "443" if parts.scheme == "https" else "80"
    return parts.scheme, parts.hostname.lower(), str(parts.port or default), decoded or "/"


def _webhook_prefix(entry: str) -> tuple[str, str, str, str]:
    any_port = ":*" in entry
    try:
        scheme, host, port, path = _split_url(entry.replace(":*", "", 1) if any_port else entry)
    except ValueError as exc:
        raise ValueError(
            f"webhooks.allow: {entry!r} is not scheme://host[:port][/path] ({exc})"
        ) from None
    return scheme, host, "*" if any_port else port, path


class A2ASpec(BaseModel):
    """A2A v1 (Agent2Agent): every agent that does not opt out (`a2a: false`) publishes
    an Agent Card at `/a2a/<agent>/.well-known/agent-card.json` (the default agent's
    also at `/.well-known/agent-card.json`) and answers JSON-RPC at `/a2a/<agent>`."""

    model_config = _Strict

    enabled: bool = Field(True, description="Serve A2A at all.")
    public_url: str | None = Field(
        None,
        pattern=r"^https?://[^/?#]+(/[^?#]*)?$",
        description=(
            "The URL callers reach the API at, as the cards name it (e.g. behind a load "
            "balancer); default: the URL the card was fetched at."
        ),
    )


class McpSpec(BaseModel):
    """MCP: the app's agents as tools of an MCP server (streamable HTTP) at `/mcp`."""

    model_config = _Strict

    enabled: bool = Field(True, description="Serve MCP at `/mcp`.")


class ApiSpec(BaseModel):
    """The API section of an app config."""

    model_config = _Strict

    keys: list[ApiKey] = Field(default_factory=list, description="Accepted API keys, hashed.")
    keys_env: str | None = Field(
        "RAY_AGENTS_API_KEYS",
        description="Environment variable with more keys as `tenant:sha256,...` (if set).",
    )
    open: bool = Field(
        False,
        description="Local development only: accept requests without a key (tenant 'dev'). "
        "Logs a warning on start.",
    )
    limits: ApiLimits = Field(default_factory=ApiLimits)
    budgets: TokenBudgets = Field(
        default_factory=TokenBudgets,
        description=(
            "Token budgets (prompt + completion) per tenant per UTC day and month, and per "
            "conversation; none by default. A key's own `budgets` override them."
        ),
    )
    webhooks: WebhookSpec = Field(default_factory=WebhookSpec)
    a2a: A2ASpec = Field(default_factory=A2ASpec, description="A2A v1 server for the agents.")
    mcp: McpSpec = Field(default_factory=McpSpec, description="MCP server for the agents.")
    min_replicas: int = Field(1, ge=1, description="Ingress replicas kept running.")
    max_replicas: int = Field(1, ge=1, description="Ingress replicas under load.")
    resources: Resources = Field(
        default_factory=dict,
        description="Custom Ray resources each API replica requests (placement).",
    )
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of Ray Serve's proxy.")
    route_prefix: str = Field("/", pattern=r"^/", description="Where the API is mounted.")

    @model_validator(mode="after")
    def _check(self) -> ApiSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        hashes = [k.sha256 for k in self.keys]
        if len(set(hashes)) != len(hashes):
            raise ValueError("the same key hash is listed twice")
        return self

    def all_keys(self) -> dict[str, ApiKey]:
        """Every accepted key by hash: the configured ones plus those in ``keys_env``."""
        keys = {k.sha256: k for k in self.keys}
        raw = os.environ.get(self.keys_env, "") if self.keys_env else ""
        for index, item in enumerate(filter(None, (p.strip() for p in raw.split(",")))):
            tenant, _, rest = item.partition(":")
            digest, _, scopes = rest.partition(":")
            listed = scopes.split("+") if scopes else ["conversations"]
            if not tenant or not _HASH.match(digest) or not set(listed) <= set(SCOPES):
                raise ConfigError(
                    f"${self.keys_env}: item {index + 1} must be 'tenant:<sha256 hex>' or "
                    f"'tenant:<sha256 hex>:<scope>+<scope>' (scopes: {', '.join(SCOPES)}), "
                    f"got {item[:20]!r}..."
                )
            keys[digest] = ApiKey.model_validate(
                {"tenant": tenant, "sha256": digest, "name": f"${self.keys_env}", "scopes": listed}
            )
        return keys
