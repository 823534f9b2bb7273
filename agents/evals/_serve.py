"""Serve an app file for an eval run: a local Ray, the app on a free port, a fresh
SQLite store and a key of its own.

Ray, Serve and the builders are imported when a function here runs, never when the
module loads, so ``ray-agents eval --url`` needs only the SDK.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServedApp", "local_serve", "served_app"]


@dataclass(frozen=True)
class ServedApp:
    """Where a served app answers, and the key it accepts."""

    url: str
    api_key: str


@contextlib.contextmanager
def local_serve() -> Iterator[int]:
    """A fresh local Ray with Serve's proxy on a free port (yielded); both stop after."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    port = _free_port()
    # "local" starts a fresh Ray even when another local cluster runs; the replicas'
    # logs stay in Ray's session folder instead of mixing into the report.
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield port
    finally:
        try:
            serve.shutdown()  # type: ignore[no-untyped-call]
        finally:
            ray.shutdown()


@contextlib.contextmanager
def served_app(app_file: Path, port: int) -> Iterator[ServedApp]:
    """Serve ``app_file`` on the local Serve of ``local_serve`` until the block ends.

    The app runs as its file says, except: its store is a new SQLite file (removed
    after), and its API accepts one new key, with both scopes, at rates no eval reaches.
    """
    from ray import serve

    from agents._serving import prepare_models
    from agents.api.spec import ApiKey, hash_key
    from agents.builder import build_app
    from agents.config import load_app_config
    from agents.protocol import TokenBudgets
    from agents.store.spec import StoreSpec

    config = load_app_config(app_file)
    prepare_models(config.pool)
    key = "rak_eval_" + secrets.token_urlsafe(24)
    entry = ApiKey.model_validate(
        {"tenant": "eval", "sha256": hash_key(key), "scopes": ["conversations", "approvals"]}
    )
    limits = config.api.limits.model_copy(
        update={"requests_per_minute": 1_000_000, "burst": 100_000}
    )
    api = config.api.model_copy(
        update={
            "keys": [entry],
            "keys_env": None,
            "open": False,
            "limits": limits,
            "budgets": TokenBudgets(),
        }
    )
    with tempfile.TemporaryDirectory(prefix="ray-agents-eval-") as work:
        store = StoreSpec(backend="sqlite", path=str(Path(work) / "conversations.db"))
        config = config.model_copy(update={"store": store, "api": api})
        name = config.app.name
        print(
            f"serving {app_file} as {name!r} (Ray's logs: /tmp/ray/session_latest/logs)",
            file=sys.stderr,
            flush=True,
        )
        serve.run(build_app(config), name=name, route_prefix=config.api.route_prefix)
        try:
            prefix = config.api.route_prefix.rstrip("/")
            yield ServedApp(f"http://127.0.0.1:{port}{prefix}", key)
        finally:
            serve.delete(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
