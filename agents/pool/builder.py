"""Build the generator pool's Serve application from a PoolSpec.

This is the only place pool deployments are wired. Per model:

- aggregated:    ``pool-<id>`` (PoolServer, one vLLM engine per replica)
- disaggregated: ``pool-<id>`` (PoolDecodeServer) -> ``pool-<id>-prefill``
  (Ray's PDPrefillServer), the KV cache moving through the configured connector.

One OpenAI ingress (Ray Serve LLM's) serves every model over HTTP; agents call
``generate`` on ``pool-<id>`` through DeploymentHandles (see ``PoolClient``).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray import serve
from ray.llm._internal.serve.core.configs.llm_config import LLMConfig
from ray.llm._internal.serve.core.configs.openai_api_models import to_model_metadata
from ray.llm._internal.serve.core.ingress.ingress import (
    DEFAULT_INGRESS_OPTIONS,
    OpenAiIngress,
    make_fastapi_ingress,
)
from ray.llm._internal.serve.core.server.builder import build_llm_deployment
from ray.serve.deployment import Application

from agents.errors import ConfigError
from agents.pool import weights
from agents.pool.routing import SESSION_ROUTER
from agents.pool.server import (
    CPU_BIND_KEY,
    MIN_REMOTE_PREFILL_KEY,
    PoolDecodeServer,
    PoolPrefillServer,
    PoolServer,
)
from agents.pool.spec import ModelSpec, PoolSpec, Replicas, deployment_name
from agents.pool.testing import ScriptedEngine

__all__ = [
    "SERVE_REPLICA_ENV",
    "replica_env",
    "INGRESS_NAME",
    "SESSION_ROUTER",
    "build_pool_app",
    "external_server",
    "deployment_name",
    "llm_configs",
    "pool_servers",
]

INGRESS_NAME = "pool-ingress"
SERVE_REPLICA_ENV: Mapping[str, str] = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}
"""Ray Serve settings every replica of an app gets, unless the environment that
builds the app sets them (or the app's own ``env_vars`` do): see ``replica_env``.

Replica code runs on the replica's own event loop instead of a second thread, which
saves a cross-thread hop per streamed message: the pool's 16-stream tokens/s against
vLLM's own server went from 0.79x to 0.84x, median latency from 1.27x to 1.19x
(``python -m benchmarks.pool_levers``, ``benchmarks/results/pool-levers.json``). Every
deployment of ours is async (tools run in worker processes, engines in their own), so
nothing blocks that loop."""
NIXL_CPU_MODULE = "agents.pool.nixl_cpu"
_NIXL_PORT_BASE = 20000


def replica_env(env_vars: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env_vars`` over ``SERVE_REPLICA_ENV``, each default replaced by the builder's
    own environment's value when it has one (``RAY_SERVE_...=1 ray-agents up`` wins)."""
    defaults = {name: os.environ.get(name, value) for name, value in SERVE_REPLICA_ENV.items()}
    return {**defaults, **(env_vars or {})}


def pool_servers(
    spec: PoolSpec, *, env_vars: Mapping[str, str] | None = None
) -> tuple[dict[str, Application], dict[str, Any]]:
    """Each model's bound server deployment (``pool-<id>``) and its OpenAI model card.

    Other applications' builders bind these into their deployments to reach the
    pool through DeploymentHandles within one Serve application. ``env_vars`` join
    every replica's environment (e.g. ``ObservabilitySpec.env_vars()``).
    """
    servers: dict[str, Application] = {}
    cards: dict[str, Any] = {}
    for index, model in enumerate(spec.models):
        if model.external:
            servers[model.id] = external_server(model, env_vars=env_vars)
            continue
        decode_cfg, prefill_cfg = llm_configs(
            model, spec.model_cache_dir, index=index, env_vars=env_vars
        )
        bind: dict[str, Any] = {}
        if model.scripted is not None:
            bind["engine_cls"] = ScriptedEngine
        if prefill_cfg is None:
            server = build_llm_deployment(
                decode_cfg,
                name_prefix="",
                deployment_cls=PoolServer,
                bind_kwargs=bind,
                override_serve_options={"name": deployment_name(model.id)},
            )
        else:
            prefill = build_llm_deployment(
                prefill_cfg,
                name_prefix="",
                deployment_cls=PoolPrefillServer,
                bind_kwargs=bind,
                override_serve_options={"name": deployment_name(model.id, "prefill")},
            )
            server = build_llm_deployment(
                decode_cfg,
                name_prefix="",
                deployment_cls=PoolDecodeServer,
                bind_kwargs={**bind, "prefill_server": prefill},
                override_serve_options={"name": deployment_name(model.id)},
            )
        servers[model.id] = server
        cards[model.id] = to_model_metadata(model.id, decode_cfg)
    return servers, cards


def external_server(model: ModelSpec, *, env_vars: Mapping[str, str] | None = None) -> Application:
    """The bound deployment (``pool-<id>``) that reaches an external engine over HTTP.

    Its replicas hold connections, not an engine: they ask Ray for no CPU, and their
    count (``decode.replicas`` or ``decode.autoscaling``) sizes the connection pools."""
    from agents.pool.external import ExternalModelServer

    options: dict[str, Any] = {
        "name": deployment_name(model.id),
        "ray_actor_options": {
            "num_cpus": 0,
            "runtime_env": {"env_vars": replica_env(env_vars)},
            **({"resources": dict(model.decode.resources)} if model.decode.resources else {}),
        },
        "max_ongoing_requests": 1024,
    }
    if model.decode.autoscaling is not None:
        options["autoscaling_config"] = model.decode.autoscaling.model_dump()
    else:
        options["num_replicas"] = model.decode.replicas or 1
    deployment: Any = serve.deployment(ExternalModelServer, **options)
    app: Application = deployment.bind(model.model_dump(mode="json"))
    return app


def build_pool_app(spec: PoolSpec, *, env_vars: Mapping[str, str] | None = None) -> Application:
    """The pool as one Serve application whose ingress speaks OpenAI HTTP."""
    external = [m.id for m in spec.models if m.external]
    if external:
        raise ConfigError(
            f"model(s) {', '.join(external)}: an external engine already serves OpenAI HTTP "
            "itself; the pool app serves local engines only (agents reach external ones)"
        )
    servers, cards = pool_servers(spec, env_vars=env_vars)
    options = copy.deepcopy(DEFAULT_INGRESS_OPTIONS)
    options["name"] = INGRESS_NAME
    options["ray_actor_options"] = {"num_cpus": 0}
    ingress: Any = serve.deployment(make_fastapi_ingress(OpenAiIngress), **options)  # type: ignore[arg-type]
    app: Application = ingress.bind(llm_deployments=servers, model_cards=cards)
    return app


def llm_configs(
    model: ModelSpec,
    cache_dir: Path | None = None,
    *,
    index: int = 0,
    env_vars: Mapping[str, str] | None = None,
) -> tuple[LLMConfig, LLMConfig | None]:
    """The Ray Serve LLM configs of a model: (decode or aggregated, prefill or None).

    ``env_vars`` join the replicas' environment.
    """
    if model.scripted is not None:
        source = model.id
    else:
        source = str(weights.resolve_source(model.source, cache_dir))
    engine: dict[str, Any] = {
        "dtype": _dtype(model),
        "max_model_len": model.engine.max_model_len,
        "enforce_eager": model.engine.enforce_eager,
        "max_num_seqs": model.engine.max_num_seqs,
        "enable_prefix_caching": model.engine.enable_prefix_caching,
        # usage.prompt_tokens_details.cached_tokens: prefix-cache hits per request.
        "enable_prompt_tokens_details": True,
        "structured_outputs_config": {
            "backend": "xgrammar",
            "disable_any_whitespace": model.engine.compact_json,
        },
        **model.engine.extra,
    }
    experimental: dict[str, Any] = {"stream_batching_interval_ms": model.stream_batching_ms}
    if model.scripted is not None:
        experimental[ScriptedEngine.SCRIPT_KEY] = [r.model_dump() for r in model.scripted]

    def config(role: str, replicas: Replicas, port_base: int | None) -> LLMConfig:
        kwargs = dict(engine)
        exp = dict(experimental)
        if port_base is not None:
            kwargs["kv_transfer_config"] = _kv_transfer_config(model, role)
            exp["NIXL_SIDE_CHANNEL_PORT_BASE"] = port_base
        if role == "decode" and model.mode == "disaggregated":
            exp[MIN_REMOTE_PREFILL_KEY] = model.min_remote_prefill_tokens
        if replicas.cpu_bind is not None and model.accelerator == "cpu":
            binds = replicas.cpu_bind
            exp[CPU_BIND_KEY] = [binds] if isinstance(binds, str) else list(binds)
        env: dict[str, str] = replica_env(env_vars)
        if model.accelerator == "cpu" and model.engine.kv_cache_gib is not None:
            env["VLLM_CPU_KVCACHE_SPACE"] = f"{model.engine.kv_cache_gib:g}"
        accel: dict[str, Any]
        if model.accelerator == "cpu":
            accel = {"accelerator_config": {"kind": "cpu"}}
        else:
            accel = {"accelerator_type": model.accelerator_type} if model.accelerator_type else {}
        placement: dict[str, Any] = {}
        if replicas.resources:  # custom resources join the engine's own bundle
            device = "CPU" if model.accelerator == "cpu" else "GPU"
            placement = {
                "placement_group_config": {
                    "bundle_per_worker": {device: 1, **replicas.resources},
                    "strategy": "PACK",
                }
            }
        return LLMConfig(
            model_loading_config={"model_id": model.id, "model_source": source},
            engine_kwargs=kwargs,
            runtime_env={"env_vars": env} if env else None,
            deployment_config=_deployment_config(model, replicas),
            experimental_configs=exp,
            log_engine_metrics=model.scripted is None,
            **accel,
            **placement,
        )

    if model.mode == "aggregated":
        return config("decode", model.decode, None), None
    assert model.prefill is not None  # checked by ModelSpec
    base = _NIXL_PORT_BASE + 4000 * index
    return config("decode", model.decode, base + 2000), config("prefill", model.prefill, base)


def _dtype(model: ModelSpec) -> str:
    if model.engine.dtype == "auto" and weights.is_builtin(model.source):
        return weights.builtin_model(model.source).dtype
    return model.engine.dtype


def _kv_transfer_config(model: ModelSpec, role: str) -> dict[str, Any]:
    kv = model.kv_transfer
    config: dict[str, Any] = {
        # The name stays NixlConnector either way: Ray picks its NIXL side-channel
        # set-up by this name, and vLLM loads the class from the module path if given.
        "kv_connector": "NixlConnector",
        "kv_role": "kv_producer" if role == "prefill" else "kv_consumer",
        "kv_buffer_device": kv.buffer_device,
        "kv_connector_extra_config": {"backends": kv.backends, **kv.extra_config},
    }
    if kv.connector == "nixl-cpu":
        config["kv_connector_module_path"] = NIXL_CPU_MODULE
    return config


def _deployment_config(model: ModelSpec, replicas: Replicas) -> dict[str, Any]:
    config: dict[str, Any] = {
        # The replica actor itself needs no core of its own; its engine bundle does.
        "ray_actor_options": {"num_cpus": 0},
    }
    if replicas.autoscaling is not None:
        config["autoscaling_config"] = replicas.autoscaling.model_dump()
    else:
        config["num_replicas"] = replicas.replicas
    if model.session_affinity:
        config["request_router_config"] = {
            "request_router_class": SESSION_ROUTER,
            "request_router_kwargs": {"num_fallback_replicas": 0},
        }
    return config
