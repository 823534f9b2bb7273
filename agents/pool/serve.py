"""Run the pool as a Serve application until interrupted (``ray-agents pool up``)."""

from __future__ import annotations

from pathlib import Path

from agents._serving import prepare_models, serve_until_interrupted
from agents.pool.spec import PoolSpec

APP_NAME = "pool"


def run_pool(config: Path, *, address: str | None = None, port: int = 8000) -> None:
    """Start (or join) Ray, deploy the pool from ``config``, block until Ctrl-C."""
    spec = PoolSpec.from_file(config)
    prepare_models(spec)

    def build() -> object:
        from agents.pool.builder import build_pool_app

        return build_pool_app(spec)

    def ready(url: str) -> None:
        first = spec.models[0].id
        print(f"pool ready at {url}/v1 (models: {', '.join(m.id for m in spec.models)})")
        print(
            f"  curl {url}/v1/chat/completions -H 'Content-Type: application/json' "
            f'-d \'{{"model": "{first}", "messages": [{{"role": "user", '
            f'"content": "What is the capital of France?"}}]}}\''
        )
        print("Ctrl-C stops it.", flush=True)

    serve_until_interrupted(
        build,
        name=APP_NAME,
        address=address,
        host="127.0.0.1",
        port=port,
        route_prefix="/",
        ready=ready,
    )
