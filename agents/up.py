"""``ray-agents up``: serve an app config until Ctrl-C (what ``make run`` runs)."""

from __future__ import annotations

from pathlib import Path

from agents._serving import prepare_models, serve_until_interrupted
from agents.api.spec import hash_key
from agents.config import AppConfig, load_app_config

__all__ = ["DEV_KEY", "run_app"]

DEV_KEY = "dev-local-key"
"""The published local-development key whose hash configs/app.yaml lists."""


def run_app(
    config_path: Path,
    *,
    address: str | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
) -> None:
    """Check ``config_path``, start (or join) Ray, serve the app, block until Ctrl-C."""
    config = load_app_config(config_path)
    prepare_models(config.pool)

    def build() -> object:
        from agents.builder import build_app

        return build_app(config)

    serve_until_interrupted(
        build,
        name=config.app.name,
        address=address,
        host=host,
        port=port or config.api.port,
        route_prefix=config.api.route_prefix,
        ready=lambda url: _banner(config, url),
    )


def _banner(config: AppConfig, url: str) -> None:
    agents = ", ".join(
        f"{a.name}{' (default)' if a.name == config.default_agent else ''}"
        for a in config.agent_specs
    )
    print(f"agents: {agents}")
    print(f"API: {url}/v1 (OpenAPI: {url}/openapi.json)")
    key = "$RAY_AGENTS_API_KEY"
    if config.api.open:
        key = "any"
    elif hash_key(DEV_KEY) in config.api.all_keys():
        key = DEV_KEY  # the published local key: the line works as printed
    print(
        f"  curl {url}/v1/chat/completions -H 'Authorization: Bearer {key}' "
        f"-H 'Content-Type: application/json' "
        f'-d \'{{"model": "{config.default_agent}", "messages": [{{"role": "user", '
        f'"content": "What is 12 times 7?"}}]}}\''
    )
    print(f"  ray-agents chat {config.default_agent} --url {url}")
    print(f"app {config.app.name!r} ready at {url}. Ctrl-C stops it.", flush=True)
