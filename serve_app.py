"""The Serve application of an app config, for Ray's own tools.

    serve run serve_app:app                          # configs/app.yaml
    serve run serve_app:app config=examples/customer_support/app.yaml
    serve deploy configs/serve.yaml                  # onto a running Ray cluster

``app`` is a Serve application builder: Serve calls it with the ``args`` of a Serve
config file (or ``key=value`` pairs of ``serve run``). ``config`` names the app file,
relative to the working directory; ``$RAY_AGENTS_CONFIG`` is the fallback.
"""

from __future__ import annotations

import os
from typing import Any

from agents._serving import prepare_models
from agents.builder import build_app
from agents.config import load_app_config

DEFAULT_CONFIG = "configs/app.yaml"


def app(args: dict[str, Any]) -> Any:
    """Build the application of ``args["config"]`` (checked first; errors name lines)."""
    path = args.get("config") or os.environ.get("RAY_AGENTS_CONFIG") or DEFAULT_CONFIG
    config = load_app_config(path)
    prepare_models(config.pool)
    return build_app(config)
