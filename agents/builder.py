"""Build the agents' Serve application: the only place agent deployments are wired.

    agents-api (ApiDeployment, the HTTP API) or agents-ingress (ConversationsDeployment,
    handles only)
      ├── agent-<name> (AgentDeployment), one deployment per agent, own scaling
      │     ├── pool-<model> (the generator pool's model servers)
      │     └── tools (ToolDeployment), shared by every agent, own scaling
      └── ...

Agents reach each other by name at run time (hand-offs may form cycles); the
ingress binds every agent so that all of them deploy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ray import serve
from ray.serve.deployment import Application

from agents.api.spec import ApiSpec
from agents.conversations import DEFAULT_TURN_TIMEOUT_S
from agents.deployments import AgentDeployment, ConversationsDeployment, agent_deployment_name
from agents.errors import ConfigError
from agents.pool.builder import CONSISTENT_HASH_ROUTER, pool_servers
from agents.pool.spec import PoolSpec
from agents.protocol import DEFAULT_MAX_HOPS
from agents.service import DEFAULT_CACHE_SIZE
from agents.spec import AgentSpec
from agents.store.spec import StoreSpec
from tools.deployment import DEPLOYMENT_NAME as TOOLS_DEPLOYMENT
from tools.deployment import ToolDeployment, build_registry
from tools.spec import ToolsConfig

__all__ = ["INGRESS_NAME", "build_agents_app", "check_agents", "tools_deployment"]

INGRESS_NAME = "agents-ingress"
# Every call carries the conversation id as its session id: one replica per conversation.
_STICKY = {
    "request_router_class": CONSISTENT_HASH_ROUTER,
    "request_router_kwargs": {"num_fallback_replicas": 0},
}


def check_agents(agents: Sequence[AgentSpec], pool: PoolSpec) -> None:
    """Raise ConfigError if names repeat, a peer is missing or a model is not pooled."""
    names = [a.name for a in agents]
    if not names:
        raise ConfigError("an app needs at least one agent")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"agent names must be unique: {', '.join(repeated)}")
    models = {m.id for m in pool.models}
    for spec in agents:
        missing = [p for p in spec.peers if p not in names]
        if missing:
            raise ConfigError(f"agent {spec.name!r} names unknown peer(s): {', '.join(missing)}")
        if spec.model not in models:
            raise ConfigError(
                f"agent {spec.name!r} uses model {spec.model!r}, which the pool does not "
                f"serve ({', '.join(sorted(models))})"
            )


def build_agents_app(
    agents: Sequence[AgentSpec],
    pool: PoolSpec,
    *,
    store: StoreSpec,
    default_agent: str | None = None,
    max_hops: int = DEFAULT_MAX_HOPS,
    turn_timeout_s: float = DEFAULT_TURN_TIMEOUT_S,
    tools: ToolsConfig | None = None,
    cache_size: int = DEFAULT_CACHE_SIZE,
    api: ApiSpec | None = None,
) -> Application:
    """One Serve application: the entry, one deployment per agent, the tool executor
    (when ``tools`` declares any) and the pool.

    With ``api`` the entry is the HTTP API (``agents-api``); without, it is
    ``agents-ingress``, reached through its DeploymentHandle.
    """
    check_agents(agents, pool)
    tools_app = tools_deployment(agents, tools)
    servers, _ = pool_servers(pool)
    descriptions = {a.name: a.description for a in agents}
    bound: dict[str, Application] = {}
    for spec in agents:
        options: dict[str, Any] = {
            "name": agent_deployment_name(spec.name),
            "autoscaling_config": spec.scaling.model_dump(),
            "request_router_config": _STICKY,
            # Agents wait on the pool and the store; they need no core of their own.
            "ray_actor_options": {"num_cpus": 0},
            "max_ongoing_requests": max(64, int(spec.scaling.target_ongoing_requests * 2)),
        }
        bound[spec.name] = (
            _deployment(AgentDeployment)
            .options(**options)
            .bind(
                spec,
                store,
                {spec.model: servers[spec.model]},
                tools=tools_app if spec.tools else None,
                peer_descriptions=descriptions,
                cache_size=cache_size,
            )
        )
    entry = {
        "default_agent": default_agent or agents[0].name,
        "max_hops": max_hops,
        "turn_timeout_s": turn_timeout_s,
    }
    app: Application
    if api is not None:
        from agents.api.deployment import API_DEPLOYMENT, ApiDeployment

        http = _deployment(ApiDeployment).options(
            name=API_DEPLOYMENT,
            autoscaling_config={
                "min_replicas": api.min_replicas,
                "max_replicas": api.max_replicas,
                "target_ongoing_requests": 64,
            },
            ray_actor_options={"num_cpus": 0},
            # The API answers 503 past its own turn limit; Serve's queue stays short.
            max_ongoing_requests=api.limits.max_concurrent_turns + 64,
        )
        app = http.bind(bound, list(agents), store, api, **entry)
        return app
    ingress = _deployment(ConversationsDeployment).options(
        name=INGRESS_NAME,
        request_router_config=_STICKY,
        ray_actor_options={"num_cpus": 0},
        max_ongoing_requests=1024,
    )
    app = ingress.bind(bound, store, **entry)
    return app


def tools_deployment(agents: Sequence[AgentSpec], tools: ToolsConfig | None) -> Any:
    """The bound tool executor, after checking every granted tool is registered."""
    wanted = {spec.name: spec.tools for spec in agents if spec.tools}
    if not wanted:
        return None
    if tools is None:
        raise ConfigError(
            f"agents {', '.join(sorted(wanted))} use tools, but no tools are declared"
        )
    registered = set(build_registry(tools).names)
    # MCP tools are listed when the executor connects; their prefix is known now.
    prefixes = tuple(f"{server.name}." for server in tools.mcp_servers)
    for agent, names in wanted.items():
        missing = [n for n in names if n not in registered and not n.startswith(prefixes)]
        if missing:
            raise ConfigError(
                f"agent {agent!r} uses unknown tool(s) {', '.join(missing)}; "
                f"registered: {', '.join(sorted(registered)) or 'none'}"
            )
    options = {
        "name": TOOLS_DEPLOYMENT,
        "autoscaling_config": {
            "min_replicas": tools.min_replicas,
            "max_replicas": tools.max_replicas,
            "target_ongoing_requests": 16,
        },
        # Tool calls run in worker processes; the replica itself only waits on them.
        "ray_actor_options": {"num_cpus": 0},
        "max_ongoing_requests": 256,
    }
    return _deployment(ToolDeployment).options(**options).bind(tools, wanted)


def _deployment(cls: type) -> Any:
    # serve.deployment's overloads type a bare class as a decorator factory.
    return serve.deployment(cls)
