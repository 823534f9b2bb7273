"""Serve one application until Ctrl-C: what ``ray-agents up`` and ``pool up`` share."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from agents.pool import weights
from agents.pool.spec import PoolSpec

__all__ = ["prepare_models", "serve_until_interrupted"]


def prepare_models(pool: PoolSpec) -> None:
    """Convert the pool's built-in models once (a no-op when they are ready)."""
    for model in pool.models:
        if model.scripted is None and not model.external:
            weights.prepare(model.source, pool.model_cache_dir)


def serve_until_interrupted(
    build: Callable[[], Any],
    *,
    name: str,
    address: str | None,
    host: str,
    port: int,
    route_prefix: str,
    ready: Callable[[str], None],
) -> None:
    """Start (or join, with ``address``) Ray, run the app ``build`` returns, call
    ``ready`` with its URL, and block until SIGINT or SIGTERM.

    A Ray started here is shut down on the way out; on a joined cluster only the
    application is deleted.
    """
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    # "local" starts a fresh Ray here even when another local cluster is running.
    ray.init(address=address or "local", include_dashboard=False)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(build(), name=name, route_prefix=route_prefix)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        ready(f"http://{shown}:{port}{route_prefix.rstrip('/')}")
        stop.wait()
        print("shutting down", flush=True)
    finally:
        if address is None:
            serve.shutdown()  # type: ignore[no-untyped-call]
            ray.shutdown()
        else:
            serve.delete(name)
