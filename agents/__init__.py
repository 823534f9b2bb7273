"""ray-agents: multi-agent LLM applications served as Ray Serve deployments.

The top-level package is light (no Ray, vLLM or torch): the SDK imports it on client
machines. The server side lives in subpackages: ``agents.pool`` (the generator pool).
"""

from agents.errors import (
    ConfigError,
    EngineError,
    GenerationError,
    InvalidRequestError,
    ModelSourceError,
    PromptTooLongError,
    RayAgentsError,
    UnknownModelError,
    UserError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "EngineError",
    "GenerationError",
    "InvalidRequestError",
    "ModelSourceError",
    "PromptTooLongError",
    "RayAgentsError",
    "UnknownModelError",
    "UserError",
    "__version__",
]
