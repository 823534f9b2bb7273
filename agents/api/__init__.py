"""The HTTP API: FastAPI routes, their Serve deployment, and the wire types.

``agents.api.types`` (the values on the wire) and ``agents.api.spec`` (its config)
import only pydantic, so the SDK shares them; the app and the deployment load on
first use.
"""

from __future__ import annotations

from agents._lazy import lazy_exports
from agents.api.spec import ApiKey, ApiLimits, ApiSpec, hash_key

__all__ = ["ApiDeployment", "ApiKey", "ApiLimits", "ApiSpec", "create_app", "hash_key"]

__getattr__ = lazy_exports(
    __name__, {"ApiDeployment": "agents.api.deployment", "create_app": "agents.api.app"}
)
