"""The exceptions of ray-agents, in one tree.

    RayAgentsError                 every error this package raises
    ├── UserError                  a developer mistake: fix the code or the config
    │   ├── ConfigError            a bad config file (names file, line and field)
    │   └── ModelSourceError       a model source that cannot be resolved or prepared
    └── GenerationError            a generation request failed at run time
        ├── InvalidRequestError    the request itself is wrong (HTTP 400)
        │   ├── UnknownModelError  no model with that id in the pool (HTTP 404)
        │   └── PromptTooLongError the prompt does not fit max_model_len (HTTP 400)
        └── EngineError            the engine failed or is unavailable (HTTP 503)

Errors cross DeploymentHandles, so every class pickles with its message alone.
Lower-layer errors (vLLM, Ray) are translated at the pool's boundary and raised
``from`` the original.
"""

from __future__ import annotations

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
]


class RayAgentsError(Exception):
    """Base class of every error raised by ray-agents."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (self.message,))


class UserError(RayAgentsError):
    """A mistake in how ray-agents is used or configured."""


class ConfigError(UserError):
    """A config file failed to load or validate; the message names file, line, field."""


class ModelSourceError(UserError):
    """A model source is unknown, missing, or its package is not installed."""


class GenerationError(RayAgentsError):
    """A generation request failed."""


class InvalidRequestError(GenerationError):
    """The generation request is invalid (bad parameters or schema)."""


class UnknownModelError(InvalidRequestError):
    """The request names a model id that the pool does not serve."""


class PromptTooLongError(InvalidRequestError):
    """The prompt plus max_tokens does not fit the model's context length."""


class EngineError(GenerationError):
    """The engine failed while generating, or no healthy engine is available."""
