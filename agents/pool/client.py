"""``PoolClient``: the generator interface over the pool's DeploymentHandles."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from ray import serve
from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle

from agents.errors import (
    EngineError,
    EngineLostError,
    RayAgentsError,
    UnknownModelError,
    remote_cause,
)
from agents.pool.generator import Generator
from agents.pool.spec import deployment_name
from agents.pool.types import Chunk, GenerateRequest, ScoreRequest, ScoreResult

__all__ = ["PoolClient"]


class PoolClient(Generator):
    """Sends requests to the pool's model servers, keeping sessions on their replicas.

    A request with a ``session_id`` is routed by it (consistent hashing), so one
    conversation keeps hitting the replica whose prefix cache holds its history.
    """

    def __init__(self, handles: Mapping[str, DeploymentHandle[Any]]) -> None:
        self._handles = {
            model_id: handle.options(stream=True) for model_id, handle in handles.items()
        }

    @classmethod
    def connect(cls, model_ids: Iterable[str], app_name: str = "pool") -> PoolClient:
        """Handles to the running pool application ``app_name``."""
        return cls(
            {m: serve.get_deployment_handle(deployment_name(m), app_name) for m in model_ids}
        )

    @property
    def models(self) -> list[str]:
        """The model ids this client can reach."""
        return sorted(self._handles)

    def _handle(self, model: str) -> DeploymentHandle[Any]:
        handle = self._handles.get(model)
        if handle is None:
            raise UnknownModelError(
                f"unknown model {model!r}; the pool serves: {', '.join(self.models)}"
            )
        return handle

    async def likelihood(self, request: ScoreRequest) -> ScoreResult:
        """Score on the pool's ``request.model`` replica (the session's, if any)."""
        handle = self._handle(request.model).options(stream=False)
        if request.session_id:
            handle = handle.options(session_id=request.session_id)
        try:
            result: ScoreResult = await handle.likelihood.remote(request)
        except Exception as exc:
            raise _translate(exc) from exc
        return result

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        """Stream the reply of the pool's ``request.model`` replica."""
        handle = self._handle(request.model)
        if request.session_id:
            handle = handle.options(session_id=request.session_id)
        stream: Any = handle.generate.remote(request)
        try:
            async for batch in stream:
                for chunk in batch:
                    yield chunk
        except Exception as exc:
            raise _translate(exc) from exc
        finally:
            # A caller that stops reading (a client left, a deadline passed) stops the
            # replica's generation too, and with it the engine's request.
            stream.cancel()


def _translate(exc: Exception) -> RayAgentsError:
    # A replica's exception arrives wrapped (RayTaskError); unwrap ours, name others.
    cause = remote_cause(exc)
    if isinstance(cause, RayAgentsError):
        return type(cause)(cause.message)
    if isinstance(cause, RayActorError):  # the replica (and its engine) died
        return EngineLostError(f"the pool's replica died: {type(cause).__name__}")
    return EngineError(f"the pool failed: {type(cause).__name__}: {cause}")
