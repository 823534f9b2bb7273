"""Deploying onto a running Ray cluster with Ray's own tools: ``serve deploy``, KubeRay.

    ray start --head                                      # and workers: ray start --address
    ray-agents serve-config configs/app.yaml -o serve.yaml
    serve deploy serve.yaml                               # again after a change: a roll-out

``serve_config`` writes the Serve config (what ``serve deploy`` and KubeRay's
``serveConfigV2`` take) of an app file or a pool file. Ray accepts only remote URIs as
a ``working_dir`` in such a file, so nothing is shipped: the cluster's nodes import the
installed ``agents`` package and read the app file at the path the config names (the
same machine, a shared volume, or the container image). The app's ``args`` carry a
digest of everything the file loads, so ``serve deploy`` after an edit rolls the app
out, and an unchanged app is left alone.

``app`` and ``pool_app`` are the Serve application builders the config names.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

from agents.errors import ConfigError

__all__ = ["APP_IMPORT_PATH", "POOL_IMPORT_PATH", "ServeTarget", "app", "pool_app", "serve_config"]

APP_IMPORT_PATH = "agents.deploy:app"
POOL_IMPORT_PATH = "agents.deploy:pool_app"
DEFAULT_CONFIG = "configs/app.yaml"
POOL_APP_NAME = "pool"


def app(args: dict[str, Any]) -> Any:
    """Serve builder of an app file: ``args["config"]`` (or ``$RAY_AGENTS_CONFIG``).

    The file is loaded and checked where Serve builds the app, with that process's
    environment filling ``${VAR}``; errors name the file, line and field."""
    from agents._serving import prepare_models
    from agents.builder import build_app
    from agents.config import load_app_config

    path = args.get("config") or os.environ.get("RAY_AGENTS_CONFIG") or DEFAULT_CONFIG
    config = load_app_config(path)
    prepare_models(config.pool)
    return build_app(config)


def pool_app(args: dict[str, Any]) -> Any:
    """Serve builder of a pool file (``args["config"]``): the pool and its OpenAI route."""
    from agents._serving import prepare_models
    from agents.pool.builder import build_pool_app
    from agents.pool.spec import PoolSpec

    spec = PoolSpec.from_file(args["config"])
    prepare_models(spec)
    return build_pool_app(spec)


class ServeTarget:
    """An app or pool file as the cluster will see it, loaded once for rendering.

    ``path`` is read here; ``cluster_path`` is where the cluster's nodes find the same
    file (default: the same absolute path). Variables without a value here are left
    for the cluster's environment and listed in ``unset``."""

    def __init__(self, path: str | Path, *, cluster_path: str | None = None) -> None:
        from agents._yaml import read_document

        self.path = Path(path).resolve()
        self.cluster_path = cluster_path or str(self.path)
        data = read_document(self.path).data
        self.kind: Literal["app", "pool"] = (
            "pool" if isinstance(data, dict) and set(data) == {"pool"} else "app"
        )
        self.unset: set[str] = set()
        if self.kind == "app":
            from agents.config import AppConfig, load_app_config

            self.app: AppConfig | None = load_app_config(self.path, unset=self.unset)
            self.pool = self.app.pool
            dumped = self.app.model_dump_json()
        else:
            from agents.pool.spec import PoolSpec

            self.app = None
            self.pool = PoolSpec.from_file(self.path)
            dumped = self.pool.model_dump_json()
        self.digest = hashlib.sha256(dumped.encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        """The Serve application's name: the app's, or "pool"."""
        return self.app.app.name if self.app is not None else POOL_APP_NAME

    @property
    def route_prefix(self) -> str:
        """Where the application is served."""
        return self.app.api.route_prefix if self.app is not None else "/"

    @property
    def port(self) -> int:
        """The HTTP port of Serve's proxies (the app's ``api.port``)."""
        return self.app.api.port if self.app is not None else 8000


def serve_config(
    target: ServeTarget,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    env_vars: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Serve config (``serve deploy``'s file, KubeRay's ``serveConfigV2``) of
    ``target``; checked with Ray's own ``ServeDeploySchema`` before it is returned.

    ``env_vars`` join the application's runtime environment (values for ``${VAR}``
    that the cluster's processes do not have)."""
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    application: dict[str, Any] = {
        "name": target.name,
        "route_prefix": target.route_prefix,
        "import_path": APP_IMPORT_PATH if target.kind == "app" else POOL_IMPORT_PATH,
        "args": {"config": target.cluster_path, "digest": target.digest},
    }
    if env_vars:
        application["runtime_env"] = {"env_vars": dict(env_vars)}
    config = {
        "proxy_location": "EveryNode",
        "http_options": {"host": host, "port": port or target.port},
        "applications": [application],
    }
    try:
        ServeDeploySchema.model_validate(config)
    except ValidationError as exc:  # a bug here, not the user's: say what Ray refused
        raise ConfigError(f"Ray refuses the Serve config of {target.path}: {exc}") from exc
    return config
