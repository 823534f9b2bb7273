"""``ray-agents status``: a live table of a running app's deployments and its pool.

For each deployment: its status, replicas (running / all) and ongoing requests (the
sum of Serve's ``serve_replica_processing_queries`` over its replicas). For each
pool model: requests, prompt tokens, and the prefix-cache hit rate (cached prompt
tokens / prompt tokens), from the ``ray_agents_model_*`` metrics. Serve's status
comes from the Serve controller; the figures from every live node's Prometheus
endpoint.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import httpx

__all__ = ["DeploymentRow", "ModelRow", "Snapshot", "render", "run_status", "scrape"]

_CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen: the table redraws in place
_ONGOING = "ray_serve_replica_processing_queries"
_MODEL = "ray_agents_model_"


@dataclass
class DeploymentRow:
    """One deployment of an application."""

    app: str
    name: str
    status: str
    running: int
    replicas: int
    ongoing: float = 0.0


@dataclass
class ModelRow:
    """One pool model's cumulative figures."""

    model: str
    requests: float = 0.0
    prompt_tokens: float = 0.0
    cached_tokens: float = 0.0

    @property
    def hit_rate(self) -> float | None:
        """Cached prompt tokens / prompt tokens (None before any prompt)."""
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else None


@dataclass
class Snapshot:
    """What one refresh of the table shows."""

    deployments: list[DeploymentRow] = field(default_factory=list)
    models: list[ModelRow] = field(default_factory=list)
    at: datetime = field(default_factory=datetime.now)
    unreachable: list[str] = field(default_factory=list)


def run_status(
    address: str | None = None,
    app: str | None = None,
    interval_s: float = 2.0,
    once: bool = False,
    out: IO[str] | None = None,
) -> int:
    """Print the table every ``interval_s`` until Ctrl-C (``once``: print it once).

    Connects to the running Ray cluster at ``address`` (default: the local one);
    ``app`` limits the table to one Serve application. Returns an exit status.
    """
    import ray

    out = out or sys.stdout
    if not ray.is_initialized():
        try:
            ray.init(address=address or "auto", log_to_driver=False, logging_level=logging.ERROR)
        except ConnectionError as exc:
            out.write(f"error: no Ray cluster to connect to: {exc}\n")
            return 1
    redraw = not once and out.isatty()
    try:
        while True:
            text = render(snapshot(app), app=app)
            out.write((_CLEAR if redraw else "") + text)
            out.flush()
            if once:
                return 0
            time.sleep(interval_s)  # a terminal's refresh, not a wait on a state
    except KeyboardInterrupt:
        return 0


def snapshot(app: str | None = None) -> Snapshot:
    """Serve's status and the metrics of every live node, now."""
    import ray
    from ray import serve

    status = serve.status()
    shot = Snapshot()
    for app_name, overview in sorted(status.applications.items()):
        if app is not None and app_name != app:
            continue
        for name, deployment in sorted(overview.deployments.items()):
            states = {str(getattr(s, "value", s)): n for s, n in deployment.replica_states.items()}
            shot.deployments.append(
                DeploymentRow(
                    app=app_name,
                    name=name,
                    status=str(getattr(deployment.status, "value", deployment.status)),
                    running=states.get("RUNNING", 0),
                    replicas=sum(states.values()),
                )
            )
    texts = []
    for node in ray.nodes():  # type: ignore[no-untyped-call]
        if not node.get("Alive") or not node.get("MetricsExportPort"):
            continue
        url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
        try:
            texts.append(httpx.get(url, timeout=5).text)
        except httpx.HTTPError:
            shot.unreachable.append(url)
    ongoing, models = scrape("\n".join(texts), app=app)
    for row in shot.deployments:
        row.ongoing = ongoing.get((row.app, row.name), 0.0)
    shot.models = sorted(models.values(), key=lambda r: r.model)
    return shot


Ongoing = dict[tuple[str, str], float]


def scrape(text: str, app: str | None = None) -> tuple[Ongoing, dict[str, ModelRow]]:
    """Ongoing requests by (application, deployment) and model rows, from Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families

    ongoing: dict[tuple[str, str], float] = defaultdict(float)
    models: dict[str, ModelRow] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels: dict[str, Any] = sample.labels
            if app is not None and labels.get("application", app) != app:
                continue
            if sample.name == _ONGOING:
                ongoing[(labels.get("application", ""), labels.get("deployment", ""))] += (
                    sample.value
                )
            elif sample.name.startswith(_MODEL) and sample.name.endswith("_total"):
                row = models.setdefault(labels["model"], ModelRow(labels["model"]))
                what = sample.name.removeprefix(_MODEL).removesuffix("_total")
                if what == "requests":
                    row.requests += sample.value
                elif what == "prompt_tokens":
                    row.prompt_tokens += sample.value
                elif what == "cached_tokens":
                    row.cached_tokens += sample.value
    return dict(ongoing), models


def render(shot: Snapshot, app: str | None = None) -> str:
    """The snapshot as a plain-text table."""
    scope = f"app {app}" if app else "all apps"
    lines = [f"ray-agents status: {scope}, {shot.at:%Y-%m-%d %H:%M:%S}", ""]
    if not shot.deployments:
        named = f" under the name {app!r}" if app else ""
        lines.append(f"no Serve application is running{named}")
    else:
        lines += _table(
            ("APPLICATION", "DEPLOYMENT", "STATUS", "REPLICAS", "ONGOING"),
            [
                (r.app, r.name, r.status, f"{r.running}/{r.replicas}", f"{r.ongoing:g}")
                for r in shot.deployments
            ],
        )
    if shot.models:
        lines.append("")
        lines += _table(
            ("MODEL", "REQUESTS", "PROMPT TOKENS", "CACHED TOKENS", "CACHE HIT RATE"),
            [
                (
                    r.model,
                    f"{r.requests:g}",
                    f"{r.prompt_tokens:g}",
                    f"{r.cached_tokens:g}",
                    "-" if r.hit_rate is None else f"{r.hit_rate:.1%}",
                )
                for r in shot.models
            ],
        )
    for url in shot.unreachable:
        lines.append(f"(metrics unreachable: {url})")
    return "\n".join(lines) + "\n"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in (header, *rows)]  # fmt: skip
