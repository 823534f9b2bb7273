"""Build the agents' Serve application: the only place agent deployments are wired.

    agents-api (ApiDeployment, the HTTP API) or agents-ingress (ConversationsDeployment,
    handles only)
      ├── agent-<name> (AgentDeployment), one deployment per agent, own scaling
      │     ├── pool-<model> (the generator pool's model servers)
      │     └── tools (ToolDeployment), shared by every agent, own scaling
      ├── agent-<remote> (RemoteAgentDeployment): a remote A2A agent, reached by name
      └── ...

Agents reach each other by name at run time (hand-offs may form cycles); the
ingress binds every agent so that all of them deploy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ray import serve
from ray.serve.deployment import Application

from agents.api.spec import ApiSpec
from agents.config import AppConfig, AppSection, check_app
from agents.conversations import DEFAULT_LEASE_S, DEFAULT_TURN_TIMEOUT_S
from agents.deployments import (
    AgentDeployment,
    ConversationsDeployment,
    RemoteAgentDeployment,
    agent_deployment_name,
)
from agents.errors import ConfigError
from agents.observability.spec import ObservabilitySpec
from agents.pool.builder import pool_servers, replica_env
from agents.pool.spec import PoolSpec
from agents.protocol import DEFAULT_MAX_HOPS, Multitask
from agents.remote import RemoteAgentSpec
from agents.service import DEFAULT_CACHE_BYTES, DEFAULT_CACHE_SIZE
from agents.spec import AgentSpec
from agents.store.spec import StoreSpec
from tools.deployment import DEPLOYMENT_NAME as TOOLS_DEPLOYMENT
from tools.deployment import ToolDeployment
from tools.spec import ToolsConfig

__all__ = ["INGRESS_NAME", "build_agents_app", "build_app", "tools_deployment"]

INGRESS_NAME = "agents-ingress"
# Every call carries the conversation id as its session id: one replica per conversation.
# Several callers reach an agent (the entry, the peers that hand off to it or ask it), so
# the choice must be the same in every process: plain consistent hashing, not the pool's
# load-bounded SessionRouter, whose table is per process.
CONSISTENT_HASH_ROUTER = "ray.serve.experimental.consistent_hash_router:ConsistentHashRouter"
_STICKY = {
    "request_router_class": CONSISTENT_HASH_ROUTER,
    "request_router_kwargs": {"num_fallback_replicas": 0},
}


def build_agents_app(
    agents: Sequence[AgentSpec],
    pool: PoolSpec,
    *,
    store: StoreSpec,
    default_agent: str | None = None,
    max_hops: int = DEFAULT_MAX_HOPS,
    turn_timeout_s: float = DEFAULT_TURN_TIMEOUT_S,
    turn_lease_s: float = DEFAULT_LEASE_S,
    multitask: Multitask = "enqueue",
    tools: ToolsConfig | None = None,
    cache_size: int = DEFAULT_CACHE_SIZE,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    api: ApiSpec | None = None,
    python_path: Sequence[str] = (),
    observability: ObservabilitySpec | None = None,
    remotes: Sequence[RemoteAgentSpec] = (),
) -> Application:
    """One Serve application: the entry, one deployment per agent (and per remote A2A
    agent in ``remotes``), the tool executor (when ``tools`` declares any) and the pool.

    With ``api`` the entry is the HTTP API (``agents-api``); without, it is
    ``agents-ingress``, reached through its DeploymentHandle. ``python_path``: folders
    the tool executor imports function tools from (an app's own tool modules).
    ``observability`` reaches every deployment's replicas through their environment.

    Raises ConfigError naming every broken reference (unknown peers, models, tools)
    and a ``store`` the deployments cannot share (in memory).
    """
    if not agents:
        raise ConfigError("an app needs at least one agent")
    check_app(
        AppConfig(
            app=AppSection(default_agent=default_agent),
            pool=pool,
            tools=tools,
            agents=[*agents, *remotes],
            store=store,
        )
    )
    env = replica_env((observability or ObservabilitySpec()).env_vars())
    tools_app = tools_deployment(agents, tools, python_path=python_path, env_vars=env)
    servers, _ = pool_servers(pool, env_vars=env)
    descriptions = {a.name: a.description for a in agents}
    descriptions.update({r.name: r.summary for r in remotes})
    bound: dict[str, Application] = {}
    for remote in remotes:
        bound[remote.name] = (
            _deployment(RemoteAgentDeployment)
            .options(
                name=agent_deployment_name(remote.name),
                autoscaling_config=remote.scaling.model_dump(),
                request_router_config=_STICKY,
                ray_actor_options=_actor(env, remote.resources),
                max_ongoing_requests=max(64, int(remote.scaling.target_ongoing_requests * 2)),
            )
            .bind(remote, store)
        )
    for spec in agents:
        options: dict[str, Any] = {
            "name": agent_deployment_name(spec.name),
            "autoscaling_config": spec.scaling.model_dump(),
            "request_router_config": _STICKY,
            # Agents wait on the pool and the store; they need no core of their own.
            "ray_actor_options": _actor(env, spec.resources),
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
                cache_bytes=cache_bytes,
            )
        )
    entry = {
        "default_agent": default_agent or agents[0].name,
        "max_hops": max_hops,
        "turn_timeout_s": turn_timeout_s,
        "turn_lease_s": turn_lease_s,
        "multitask": multitask,
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
            ray_actor_options=_actor(env, api.resources),
            # The API answers 503 past its own turn limit, and Serve's proxy past
            # this queue: no request waits in an unbounded queue.
            max_ongoing_requests=api.limits.max_concurrent_turns + 64,
            max_queued_requests=api.limits.max_concurrent_turns,
        )
        app = http.bind(bound, list(agents), store, api, **entry)
        return app
    ingress = _deployment(ConversationsDeployment).options(
        name=INGRESS_NAME,
        request_router_config=_STICKY,
        ray_actor_options=_actor(env, {}),
        max_ongoing_requests=1024,
    )
    app = ingress.bind(bound, store, **entry)
    return app


def build_app(config: AppConfig) -> Application:
    """The Serve application a loaded app config describes (``load_app_config``)."""
    return build_agents_app(
        config.agent_specs,
        config.pool,
        store=config.store,
        default_agent=config.default_agent,
        max_hops=config.app.max_hops,
        turn_timeout_s=config.app.turn_timeout_s,
        turn_lease_s=config.app.turn_lease_s,
        multitask=config.app.multitask,
        tools=config.tools,
        cache_size=config.app.cache_size,
        cache_bytes=config.app.cache_mib * 2**20,
        api=config.api,
        python_path=config.app.python_path,
        observability=config.observability,
        remotes=config.remote_specs,
    )


def tools_deployment(
    agents: Sequence[AgentSpec],
    tools: ToolsConfig | None,
    *,
    python_path: Sequence[str] = (),
    env_vars: dict[str, str] | None = None,
) -> Any:
    """The bound tool executor serving the tools ``agents`` are granted (None if none).

    ``python_path`` goes on the executor's (and its workers') PYTHONPATH, so function
    tools of an app's own modules import there. Raises ConfigError when agents use
    tools but none are declared (``check_app`` checks each name).
    """
    wanted = {spec.name: spec.tools for spec in agents if spec.tools}
    if not wanted:
        return None
    if tools is None:
        raise ConfigError(
            f"agents {', '.join(sorted(wanted))} use tools, but no tools are declared"
        )
    env = dict(env_vars or {})
    if python_path:
        inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join([*python_path, *inherited])
    options = {
        "name": TOOLS_DEPLOYMENT,
        "autoscaling_config": {
            "min_replicas": tools.min_replicas,
            "max_replicas": tools.max_replicas,
            "target_ongoing_requests": 16,
        },
        # Tool calls run in worker processes; the replica itself only waits on them.
        "ray_actor_options": _actor(env, tools.resources),
        "max_ongoing_requests": 256,
    }
    return _deployment(ToolDeployment).options(**options).bind(tools, wanted)


def _actor(env: dict[str, str], resources: Mapping[str, float]) -> dict[str, Any]:
    # No core of its own (it waits on others); ``env`` for its replicas; custom
    # ``resources`` place them. A fresh dict per deployment: Serve keeps (and may
    # amend) the one it is given.
    options: dict[str, Any] = {"num_cpus": 0, "runtime_env": {"env_vars": dict(env)}}
    if resources:
        options["resources"] = dict(resources)
    return options


def _deployment(cls: type) -> Any:
    # serve.deployment's overloads type a bare class as a decorator factory.
    return serve.deployment(cls)
