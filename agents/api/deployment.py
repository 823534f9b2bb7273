"""The API as a Ray Serve deployment: the application's HTTP ingress.

``ApiDeployment`` runs the FastAPI app of ``create_app`` over a ``Conversations`` of
its own (the same class ``ConversationsDeployment`` wraps), reaching the agents
through DeploymentHandles. Replicas share nothing but the store: a conversation's
turns are kept one at a time across replicas by the store's turn lease.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from agents.api.app import create_app
from agents.api.spec import ApiSpec
from agents.deployments import Recovery, open_conversations
from agents.observability import configure_from_env
from agents.protocol import Multitask
from agents.spec import AgentSpec
from agents.store.spec import StoreSpec

__all__ = ["API_DEPLOYMENT", "ApiDeployment"]

API_DEPLOYMENT = "agents-api"


@serve.ingress()
class ApiDeployment:
    """One API replica: the FastAPI app, its conversations and its store connection."""

    async def __init__(  # type: ignore[misc]  # Serve awaits an async constructor
        self,
        agents: Mapping[str, DeploymentHandle[Any]],
        specs: Sequence[AgentSpec],
        store: StoreSpec,
        api: ApiSpec,
        *,
        default_agent: str,
        max_hops: int,
        turn_timeout_s: float,
        turn_lease_s: float,
        multitask: Multitask = "enqueue",
    ) -> None:
        configure_from_env()
        self._store, self.conversations = await open_conversations(
            agents,
            store,
            default_agent=default_agent,
            max_hops=max_hops,
            turn_timeout_s=turn_timeout_s,
            turn_lease_s=turn_lease_s,
            multitask=multitask,
            budgets=api.budgets,  # resumed turns (whose keys are not known then) get these
        )
        self._app = create_app(self.conversations, specs, api, behind_serve=True)
        # Turns whose runner (another API replica) died and nobody retried go on here,
        # and so do the webhook deliveries whose sender died.
        webhooks = self._app.state.api.webhooks
        self._recovery = Recovery(
            self.conversations, every_s=turn_lease_s, also=webhooks.deliver_pending
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        """The app Serve runs this replica's HTTP requests through."""
        return self._app

    async def __del__(self) -> None:
        await self._recovery.stop()
        await self._app.state.api.close()
        await self._store.close()
