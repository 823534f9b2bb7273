"""The HTTP API: FastAPI routes, their Serve deployment, and the wire types.

``agents.api.types`` (the values on the wire) imports only pydantic, so the SDK shares
it; the config (``agents.api.spec``), the app and the deployment load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents._lazy import lazy_exports

if TYPE_CHECKING:  # what type checkers see of the lazy names (py.typed)
    from agents.api.app import create_app
    from agents.api.deployment import ApiDeployment
    from agents.api.spec import ApiKey, ApiLimits, ApiSpec, hash_key

__all__ = ["ApiDeployment", "ApiKey", "ApiLimits", "ApiSpec", "create_app", "hash_key"]

__getattr__ = lazy_exports(
    __name__,
    {
        "ApiDeployment": "agents.api.deployment",
        "ApiKey": "agents.api.spec",
        "ApiLimits": "agents.api.spec",
        "ApiSpec": "agents.api.spec",
        "create_app": "agents.api.app",
        "hash_key": "agents.api.spec",
    },
)
