"""Run the pool as a Serve application until interrupted (``ray-agents pool up``)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from agents.pool import weights
from agents.pool.spec import PoolSpec

APP_NAME = "pool"


def run_pool(config: Path, *, address: str | None = None, port: int = 8000) -> None:
    """Start (or join) Ray, deploy the pool from ``config``, block until Ctrl-C."""
    spec = PoolSpec.from_file(config)
    for model in spec.models:
        if model.scripted is None:
            weights.prepare(model.source, spec.model_cache_dir)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    from agents.pool.builder import build_pool_app

    # "local" starts a fresh Ray here even when another local cluster is running.
    ray.init(address=address or "local", include_dashboard=False)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_pool_app(spec), name=APP_NAME, route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        first = spec.models[0].id
        print(f"pool ready at {url}/v1 (models: {', '.join(m.id for m in spec.models)})")
        print(
            f"  curl {url}/v1/chat/completions -H 'Content-Type: application/json' "
            f'-d \'{{"model": "{first}", "messages": [{{"role": "user", '
            f'"content": "What is the capital of France?"}}]}}\''
        )
        print("Ctrl-C stops it.", flush=True)
        stop.wait()
        print("shutting down", flush=True)
    finally:
        if address is None:
            serve.shutdown()  # type: ignore[no-untyped-call]
            ray.shutdown()
        else:
            serve.delete(APP_NAME)
