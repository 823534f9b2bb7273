"""The pool spec: which models the generator pool serves and how.

Every CPU-specific choice (dtype, thread binding, KV cache size, the KV connector)
lives here, so the same spec with GPU settings serves on a GPU cluster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from agents._yaml import load_model

__all__ = [
    "Autoscaling",
    "EngineArgs",
    "ExternalEndpoint",
    "KVTransfer",
    "ModelSpec",
    "PoolSpec",
    "Replicas",
    "Resources",
    "ScriptRule",
    "deployment_name",
    "pool_file_schema",
]

_Strict = ConfigDict(extra="forbid")
_BUILTIN_RESOURCES = frozenset({"CPU", "GPU", "memory", "object_store_memory"})


def _custom_resources(resources: dict[str, float]) -> dict[str, float]:
    for name, amount in resources.items():
        if name in _BUILTIN_RESOURCES:
            raise ValueError(f"{name!r} is set by the role itself; name custom resources only")
        if amount <= 0:
            raise ValueError(f"resource {name!r}: the amount must be above 0, got {amount}")
    return resources


Resources = Annotated[dict[str, float], AfterValidator(_custom_resources)]
"""Custom Ray resources each replica requests (placement): ``{"agent-node": 0.01}``
puts the replicas on nodes started with ``--resources '{"agent-node": N}'``."""


class Autoscaling(BaseModel):
    """Serve autoscaling for one role of a model."""

    model_config = _Strict

    min_replicas: int = Field(1, ge=0, description="Fewest replicas kept running.")
    max_replicas: int = Field(1, ge=1, description="Most replicas started under load.")
    target_ongoing_requests: float = Field(
        16, gt=0, description="Ongoing requests per replica the autoscaler aims for."
    )

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self


class Replicas(BaseModel):
    """Replica count (fixed) or autoscaling, plus per-replica CPU binding."""

    model_config = _Strict

    replicas: int | None = Field(1, ge=1, description="Fixed replica count.")
    autoscaling: Autoscaling | None = Field(
        None, description="Autoscaling bounds; when set, `replicas` must be left out."
    )
    resources: Resources = Field(
        default_factory=dict,
        description=(
            "Custom Ray resources each replica's engine bundle requests, e.g. "
            "{'engine-node': 1}: the replicas land on nodes that offer them."
        ),
    )
    cpu_bind: str | list[str] | None = Field(
        None,
        description=(
            "CPU cores for this role's engine threads (VLLM_CPU_OMP_THREADS_BIND), e.g. "
            "'0', '0-3' or 'auto'; a list gives replica i the entry i (modulo its "
            "length). CPU builds only; ignored by GPU engines."
        ),
    )

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if self.autoscaling is not None:
            if "replicas" in self.model_fields_set:
                raise ValueError("set either `replicas` or `autoscaling`, not both")
            self.replicas = None
        return self


class EngineArgs(BaseModel):
    """vLLM engine settings for one model (both roles share them)."""

    model_config = _Strict

    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weight and activation dtype; built-in models pick their own."
    )
    max_model_len: int = Field(4096, ge=16, description="Context length in tokens.")
    kv_cache_gib: float | None = Field(
        2.0,
        gt=0,
        description=(
            "KV cache per engine in GiB (VLLM_CPU_KVCACHE_SPACE on CPU). Without it a CPU "
            "engine reserves most of the machine's memory. Null on GPU."
        ),
    )
    enforce_eager: bool = Field(
        True, description="Skip torch.compile / CUDA graphs: ~35 s start instead of ~90 s on CPU."
    )
    max_num_seqs: int = Field(64, ge=1, description="Most sequences batched together.")
    enable_prefix_caching: bool = Field(True, description="Reuse KV of shared prefixes.")
    compact_json: bool = Field(
        True,
        description=(
            "Guided JSON without free whitespace (xgrammar). Small models otherwise pad "
            "JSON with newlines until max_tokens cuts it off."
        ),
    )
    extra: dict[str, Any] = Field(
        default_factory=dict, description="Further vLLM engine kwargs, passed through as is."
    )


class KVTransfer(BaseModel):
    """How prefill replicas hand the KV cache to decode replicas."""

    model_config = _Strict

    connector: Literal["nixl-cpu", "nixl"] = Field(
        "nixl-cpu",
        description=(
            "'nixl-cpu': vLLM's NixlConnector with the CPU fixes of "
            "agents.pool.nixl_cpu (no spinning progress thread, no re-pinning of the "
            "model thread). 'nixl': vLLM's NixlConnector as is (the choice for GPUs)."
        ),
    )
    buffer_device: Literal["cpu", "cuda"] = Field(
        "cpu", description="Where NIXL stages KV blocks: 'cpu' on CPU builds."
    )
    backends: list[str] = Field(default_factory=lambda: ["UCX"], description="NIXL backends.")
    extra_config: dict[str, Any] = Field(
        default_factory=dict, description="Extra kv_connector_extra_config entries."
    )


class ScriptRule(BaseModel):
    """One reply of the scripted test engine."""

    model_config = _Strict

    match: str = Field(".*", description="Regex searched in the last message's content.")
    system: str | None = Field(
        None,
        description=(
            "Regex searched in the system prompt too: scripts one agent's replies "
            "(its instructions) apart from another's."
        ),
    )
    reply: str | None = Field(None, description="Text to stream back.")
    json_reply: Any = Field(None, description="A value to stream back as JSON text.")
    tool_call: dict[str, Any] | None = Field(
        None, description="A native tool call: {'name': ..., 'arguments': {...}}."
    )
    echo: bool = Field(False, description="Reply with the last message's content.")
    error: Literal["engine", "crash"] | None = Field(
        None, description="'engine': fail this request; 'crash': mark the engine dead."
    )
    token_delay_s: float = Field(0.0, ge=0, description="Pause before each token.")

    def render(
        self, last: str, *, structured: bool = True, router: bool = False, decision: bool = False
    ) -> str:
        """The reply text for a request whose last message is ``last``.

        One script serves every mode, as the agent would write it: a ``json_reply`` that
        is an answer action (``{"action": "answer", "text": ...}``) is sent as its plain
        text to a request without a JSON schema (an agent that can only answer writes
        plain text), and a hand-off action without its ``action`` name to a ``router``'s
        request (a router writes only the peer: ``{"agent": ...}``), and a
        ``decide_then_act`` action (``{"next": ..., ...}``) as its choice alone to a
        ``decision`` request.
        """
        if self.echo:
            return last
        if self.json_reply is not None:
            reply = self.json_reply
            kind = reply.get("action") if isinstance(reply, dict) else None
            if not structured and kind == "answer":
                return str(reply.get("text", ""))
            if router and kind == "handoff":
                return json.dumps({k: v for k, v in reply.items() if k != "action"})
            if decision and isinstance(reply, dict) and "next" in reply:
                return json.dumps({"next": reply["next"]})
            return json.dumps(reply)
        return self.reply or ""


class ExternalEndpoint(BaseModel):
    """How the pool reaches an external engine (``source: openai+http://HOST:PORT/v1``)."""

    model_config = _Strict

    served_model: str | None = Field(
        None,
        description=(
            "The model's name at the server (vLLM's --served-model-name, TGI's 'tgi'); "
            "default: the first model the server lists at /v1/models."
        ),
    )
    api_key_env: str | None = Field(
        None, description="Environment variable with a bearer token for the server."
    )
    connect_timeout_s: float = Field(5.0, gt=0, description="Seconds to connect.")
    timeout_s: float = Field(
        120.0, gt=0, description="Most seconds between two pieces of a reply (or the reply)."
    )
    attempts: int = Field(
        4,
        ge=1,
        le=20,
        description=(
            "Tries of a request the server did not start answering (refused, reset, 502, "
            "503, 504), with backoff, before the step fails with engine_unavailable."
        ),
    )
    session_header: str | None = Field(
        "X-Session-ID",
        description=(
            "Header that carries the conversation's session id, for routers in front of "
            "a fleet that keep a session on one server (null: none)."
        ),
    )
    max_connections: int = Field(
        256, ge=1, description="Open connections to the server, per pool replica."
    )


class ModelSpec(BaseModel):
    """One model of the pool."""

    model_config = _Strict

    id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="The id agents use to pick this model.",
    )
    source: str = Field(
        description=(
            "`builtin:<name>`, a local Hugging Face checkpoint directory, or "
            "`openai+http://HOST:PORT/v1`: an OpenAI-compatible server that already runs "
            "(vLLM, TGI, SGLang), reached over HTTP; no engine starts for it."
        )
    )
    mode: Literal["aggregated", "disaggregated"] = Field(
        "aggregated",
        description="One engine role, or prefill replicas that hand KV to decode replicas.",
    )
    accelerator: Literal["cpu", "gpu"] = Field("cpu", description="Where engines run.")
    accelerator_type: str | None = Field(
        None, description="GPU type for placement (e.g. 'H100'); GPU only."
    )
    decode: Replicas = Field(
        default_factory=Replicas,
        description="Engines that generate (in aggregated mode, the only engines).",
    )
    prefill: Replicas | None = Field(
        None, description="Prefill engines; required in disaggregated mode."
    )
    engine: EngineArgs = Field(default_factory=EngineArgs, description="Engine settings.")
    kv_transfer: KVTransfer = Field(
        default_factory=KVTransfer, description="KV connector (disaggregated mode)."
    )
    min_remote_prefill_tokens: int = Field(
        512,
        ge=0,
        description=(
            "Conditional disaggregation: prompts with fewer new (not yet cached) tokens "
            "are prefilled on the decode engine itself; 0 sends every prompt to prefill."
        ),
    )
    scripted: list[ScriptRule] | None = Field(
        None,
        description=(
            "Serve this model with the scripted test engine (agents.pool.testing) "
            "instead of vLLM: the first rule matching the last message answers."
        ),
    )
    stream_batching_ms: int = Field(
        10,
        ge=0,
        description=(
            "Gather a stream's tokens for this long before sending them on: fewer, larger "
            "messages through Serve (0 sends every token at once)."
        ),
    )
    session_affinity: bool = Field(
        True,
        description=(
            "Send all requests of one session (conversation) to the same replicas while "
            "they are healthy, so the prefix cache serves the growing history; a new "
            "session goes to the replica with the fewest active ones."
        ),
    )

    endpoint: ExternalEndpoint | None = Field(
        None, description="Connection settings of an external engine (openai+http sources)."
    )

    @property
    def external(self) -> bool:
        """Whether an engine elsewhere serves this model (``openai+http(s)://``)."""
        from agents.pool.weights import is_external

        return is_external(self.source)

    @model_validator(mode="after")
    def _roles(self) -> Self:
        if self.mode == "disaggregated" and self.prefill is None:
            raise ValueError("disaggregated mode needs a `prefill` section")
        if self.mode == "aggregated" and self.prefill is not None:
            raise ValueError("`prefill` is only for mode: disaggregated")
        if self.accelerator_type is not None and self.accelerator != "gpu":
            raise ValueError("accelerator_type is only for accelerator: gpu")
        if self.scripted is not None and self.accelerator != "cpu":
            raise ValueError("the scripted engine runs on accelerator: cpu only")
        if self.external:
            if self.mode != "aggregated" or self.scripted is not None:
                raise ValueError(
                    "an external engine (openai+http source) is one server: mode aggregated, "
                    "no prefill, no script; disaggregate it on its own side"
                )
            if self.endpoint is None:
                self.endpoint = ExternalEndpoint()
        elif self.endpoint is not None:
            raise ValueError("`endpoint` is only for an external engine (openai+http source)")
        return self


class PoolSpec(BaseModel):
    """The generator pool: the models every agent shares."""

    model_config = _Strict

    models: Annotated[list[ModelSpec], Field(min_length=1)] = Field(
        description="Models served by the pool."
    )
    model_cache_dir: Path | None = Field(
        None, description="Where built-in models are converted (default ~/.cache/ray-agents)."
    )

    @field_validator("models")
    @classmethod
    def _unique_ids(cls, models: list[ModelSpec]) -> list[ModelSpec]:
        seen: set[str] = set()
        for index, model in enumerate(models):
            if model.id in seen:
                raise ValueError(f"duplicate model id {model.id!r} (entry {index})")
            seen.add(model.id)
        return models

    def model(self, model_id: str) -> ModelSpec:
        """The spec of ``model_id``; KeyError if the pool has no such model."""
        for model in self.models:
            if model.id == model_id:
                return model
        raise KeyError(model_id)

    @classmethod
    def from_file(cls, path: str | Path) -> PoolSpec:
        """Load a pool spec from YAML: the whole file, or its ``pool:`` section."""
        spec = load_model(path, cls, section="pool")
        if spec.model_cache_dir is not None and not spec.model_cache_dir.is_absolute():
            spec.model_cache_dir = (Path(path).parent / spec.model_cache_dir).resolve()
        return spec


def pool_file_schema() -> dict[str, Any]:
    """JSON Schema of a pool file (``pool:`` at the top), for editors to check YAML."""
    schema = PoolSpec.model_json_schema(ref_template="#/$defs/{model}")
    defs = schema.pop("$defs", {})
    defs["PoolSpec"] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ray-agents pool file",
        "type": "object",
        "properties": {"pool": {"$ref": "#/$defs/PoolSpec"}},
        "required": ["pool"],
        "additionalProperties": False,
        "$defs": defs,
    }


def deployment_name(model_id: str, role: str = "decode") -> str:
    """The Serve deployment name of a model's role ('decode' or 'prefill')."""
    return f"pool-{model_id}" if role == "decode" else f"pool-{model_id}-prefill"
