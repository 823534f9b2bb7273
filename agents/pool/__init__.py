"""The generator pool: the data plane every agent shares.

Ray Serve LLM deployments backed by vLLM (aggregated, or prefill/decode disaggregated),
reached through one small interface: ``Generator.generate(GenerateRequest)`` streams
typed chunks. vLLM is imported only inside this package's server modules.

The spec and value types import without Ray; ``PoolClient``, ``build_pool_app`` and
``ScriptedEngine`` load Ray Serve LLM on first use.
"""

from __future__ import annotations

from agents._lazy import lazy_exports
from agents.pool.generator import Generator
from agents.pool.spec import (
    Autoscaling,
    EngineArgs,
    KVTransfer,
    ModelSpec,
    PoolSpec,
    Replicas,
    ScriptRule,
)
from agents.pool.types import (
    Chunk,
    Completion,
    FinishChunk,
    GenerateRequest,
    Message,
    RouteInfo,
    SamplingParams,
    TextChunk,
    ToolCall,
    ToolCallChunk,
    Usage,
)

_LAZY = {
    "PoolClient": "agents.pool.client",
    "ScriptedEngine": "agents.pool.testing",
    "build_pool_app": "agents.pool.builder",
}

__all__ = [
    "Autoscaling",
    "Chunk",
    "Completion",
    "EngineArgs",
    "FinishChunk",
    "GenerateRequest",
    "Generator",
    "KVTransfer",
    "Message",
    "ModelSpec",
    "PoolClient",
    "PoolSpec",
    "Replicas",
    "RouteInfo",
    "SamplingParams",
    "ScriptRule",
    "ScriptedEngine",
    "TextChunk",
    "ToolCall",
    "ToolCallChunk",
    "Usage",
    "build_pool_app",
]


__getattr__ = lazy_exports(__name__, _LAZY)
