"""``ray-agents k8s render``: a KubeRay RayService manifest for an app or pool file.

The manifest holds
- ``serveConfigV2``: the same Serve config ``ray-agents serve-config`` writes for
  ``serve deploy`` (agents.deploy), with the file's path inside the image;
- a head group (the Serve controller, the proxy, the dashboard; no replicas: it offers
  no CPUs) and one worker group per placement: the pool's engines by model (GPU groups
  for GPU models, sized by their tensor parallelism), and one group for each set of
  custom resources that agents, the API or the tool executor ask for (``{"agent-node":
  0.01}`` in the YAML gives a group that offers ``agent-node``). Replica counts and
  autoscaling bounds come from the file;
- the values of the file's unset ``${VAR}`` (a PostgreSQL DSN, API keys) from a Secret,
  in every Ray container's environment, so no secret is in the manifest;
- a readiness probe on the app's ``/readyz`` for worker pods (the head's readiness is
  KubeRay's own: it deploys the app only once the head is ready); a pool file has no
  ``/readyz``, and its pods keep KubeRay's probes.

Pod sizes (CPU, memory) are starting points printed in the manifest, to be edited.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agents.deploy import ServeTarget, serve_config
from agents.errors import ConfigError
from agents.pool.spec import ModelSpec, Replicas

__all__ = ["dump_manifest", "render_rayservice"]

SERVE_PORT = 8000
DEFAULT_IMAGE = "ray-agents:latest"
DEFAULT_APP_ROOT = "/app"
# Offered by a pod of a group whose members ask for a fraction of a custom resource
# (agents ask for 0.01): room for a hundred such replicas per unit asked.
FRACTIONAL_OFFER = 100
# Starting points; each group's values are in the manifest to be edited.
ENGINE_CPU_POD = {"cpu": "4", "memory": "16Gi"}
GPU_POD_CPUS_PER_GPU = 8
GPU_POD_MEMORY_PER_GPU_GIB = 64
AGENT_POD = {"cpu": "2", "memory": "4Gi"}
HEAD_POD = {"cpu": "2", "memory": "8Gi"}


@dataclass
class _Group:
    """Replicas that share one placement: one worker group."""

    name: str
    resources: dict[str, float] = field(default_factory=dict)  # offered per pod
    gpus: int = 0
    engine: bool = False
    min_pods: int = 0
    pods: int = 0
    max_pods: int = 0
    members: list[str] = field(default_factory=list)


def image_target(config_path: str | Path, app_root: str = DEFAULT_APP_ROOT) -> ServeTarget:
    """``config_path`` as the image holds it: the current folder copied to ``app_root``."""
    path = Path(config_path).resolve()
    try:
        relative = path.relative_to(Path.cwd())
    except ValueError:
        raise ConfigError(
            f"{config_path}: render from the folder the image copies (the file is not under "
            f"{Path.cwd()}), so that its path inside the image is known"
        ) from None
    return ServeTarget(path, cluster_path=f"{app_root.rstrip('/')}/{relative.as_posix()}")


def render_rayservice(
    target: ServeTarget,
    *,
    image: str = DEFAULT_IMAGE,
    name: str | None = None,
    namespace: str | None = None,
    secret: str | None = None,
) -> dict[str, Any]:
    """The RayService of ``target`` (``image_target``) as a dict (``dump_manifest``
    writes it); its ``serveConfigV2`` names the file at ``target.cluster_path``."""
    service = name or _dns_name(target.name)
    secret_name = secret or f"{service}-secrets"
    serve = serve_config(target, host="0.0.0.0", port=SERVE_PORT)
    env = _secret_env(target, secret_name)
    groups = _groups(target)
    ready = f"{target.route_prefix.rstrip('/')}/readyz" if target.app is not None else None
    autoscale = any(g.min_pods != g.max_pods for g in groups)

    cluster: dict[str, Any] = {
        "rayVersion": _ray_version(),
        "enableInTreeAutoscaling": autoscale,
        "headGroupSpec": {
            # No CPUs: replicas go to worker groups; the head runs Serve's controller.
            "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
            "template": _pod(
                "ray-head",
                image,
                env,
                HEAD_POD,
                ports={"gcs-server": 6379, "dashboard": 8265, "client": 10001, "serve": 8000},
            ),
        },
        "workerGroupSpecs": [_worker_group(g, image, env, ready) for g in groups],
    }
    metadata: dict[str, Any] = {"name": service, "labels": {"app.kubernetes.io/name": service}}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": metadata,
        "spec": {
            "serveConfigV2": yaml.safe_dump(serve, sort_keys=False),
            # A changed rayClusterConfig (a new image) starts a new cluster and moves
            # traffic once its app runs; a changed serveConfigV2 updates in place.
            "upgradeStrategy": {"type": "NewCluster"},
            "rayClusterConfig": cluster,
        },
    }


def dump_manifest(manifest: dict[str, Any]) -> str:
    """The manifest as YAML, ``serveConfigV2`` as a literal block (readable, diffable)."""

    class _Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, text)
    return yaml.dump(manifest, Dumper=_Dumper, sort_keys=False)


def store_warning(target: ServeTarget) -> str | None:
    """Why the file's store does not suit a cluster of pods, or None."""
    app = target.app
    if app is None or app.store.backend == "postgres":
        return None
    return (
        f"store.backend {app.store.backend!r} keeps conversations in each pod's own "
        "file or memory: use backend: postgres with dsn: ${VAR} (the Secret gives VAR)"
    )


def _ray_version() -> str:
    import ray

    return str(ray.__version__)


def _dns_name(text: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    return cleaned[:50] or "ray-agents"


def _secret_env(target: ServeTarget, secret: str) -> list[dict[str, Any]]:
    """Container env: each unset ``${VAR}`` of the file from ``secret`` (required), and
    the API's extra keys variable (optional)."""
    env = [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": var}}}
        for var in sorted(target.unset)
    ]
    keys_env = target.app.api.keys_env if target.app is not None else None
    if keys_env and keys_env not in target.unset:
        ref = {"name": secret, "key": keys_env, "optional": True}
        env.append({"name": keys_env, "valueFrom": {"secretKeyRef": ref}})
    return env


def _groups(target: ServeTarget) -> list[_Group]:
    groups: dict[tuple[Any, ...], _Group] = {}

    def group(key: tuple[Any, ...], name: str) -> _Group:
        return groups.setdefault(key, _Group(name=name))

    for model in target.pool.models:
        if model.external:  # an engine elsewhere: its replicas hold connections only
            continue
        roles = [("decode", model.decode)]
        if model.prefill is not None:
            roles.insert(0, ("prefill", model.prefill))
        for role, replicas in roles:
            per = _devices(model)
            gpu = model.accelerator == "gpu"
            key = (
                ("engine", model.id, role) if gpu else ("engine", tuple(sorted(replicas.resources)))
            )
            default = f"{model.id}-{role}" if gpu else "engines"
            g = group(key, default if gpu else _resource_group_name(default, replicas.resources))
            g.engine = True
            g.gpus = per if gpu else 0
            low, now, high = _counts(replicas)
            g.min_pods += low
            g.pods += now
            g.max_pods += high
            g.members.append(f"{model.id} {role}")
            for res, amount in replicas.resources.items():
                g.resources[res] = g.resources.get(res, 0) + amount
    app = target.app
    if app is not None:
        placed: list[tuple[str, dict[str, float], int, int]] = [
            ("api", app.api.resources, app.api.min_replicas, app.api.max_replicas)
        ]
        for agent in app.agent_specs:
            s = agent.scaling
            placed.append((f"agent {agent.name}", agent.resources, s.min_replicas, s.max_replicas))
        for remote in app.remote_specs:
            s = remote.scaling
            placed.append(
                (f"agent {remote.name}", remote.resources, s.min_replicas, s.max_replicas)
            )
        if app.tools is not None:
            t = app.tools
            placed.append(("tools", t.resources, t.min_replicas, t.max_replicas))
        for member, resources, low, high in placed:
            g = group(("cpu", tuple(sorted(resources))), _resource_group_name("agents", resources))
            g.members.append(member)
            # Agents, the API and tools ask for no CPU: two pods keep them available.
            g.min_pods = max(g.min_pods, min(low, 2), 1)
            g.pods = max(g.pods, min(high, 2), g.min_pods)
            g.max_pods = max(g.max_pods, math.ceil(high / 8), g.pods)
            for res, amount in resources.items():
                offer = FRACTIONAL_OFFER if amount < 1 else amount
                g.resources[res] = max(g.resources.get(res, 0), offer)
    found = list(groups.values())
    seen: dict[str, int] = {}
    for g in found:  # group names are unique in a RayCluster
        seen[g.name] = seen.get(g.name, 0) + 1
        if seen[g.name] > 1:
            g.name = f"{g.name}-{seen[g.name]}"
    return found


def _resource_group_name(base: str, resources: Any) -> str:
    names = sorted(resources)
    return _dns_name("-".join(names)) if names else base


def _devices(model: ModelSpec) -> int:
    extra = model.engine.extra
    return int(extra.get("tensor_parallel_size", 1)) * int(extra.get("pipeline_parallel_size", 1))


def _counts(replicas: Replicas) -> tuple[int, int, int]:
    if replicas.autoscaling is not None:
        a = replicas.autoscaling
        return a.min_replicas, max(a.min_replicas, 1), a.max_replicas
    n = replicas.replicas or 1
    return n, n, n


def _worker_group(
    g: _Group, image: str, env: list[dict[str, Any]], ready: str | None
) -> dict[str, Any]:
    start: dict[str, str] = {}
    if g.resources:
        # KubeRay's documented form: a JSON object inside a quoted string.
        start["resources"] = json.dumps(json.dumps({k: _number(v) for k, v in g.resources.items()}))
    if g.gpus:
        size = {
            "cpu": str(GPU_POD_CPUS_PER_GPU * g.gpus),
            "memory": f"{GPU_POD_MEMORY_PER_GPU_GIB * g.gpus}Gi",
            "nvidia.com/gpu": str(g.gpus),
        }
    else:
        size = dict(ENGINE_CPU_POD if g.engine else AGENT_POD)
        # Agents, the API and tools ask Ray for no CPU; a group of theirs offers none,
        # so engines (one CPU each) land on engine pods even without custom resources.
        start["num-cpus"] = size["cpu"] if g.engine else "0"
    template = _pod("ray-worker", image, env, size, ports={"serve": SERVE_PORT}, ready=ready)
    return {
        "groupName": g.name,
        "replicas": g.pods,
        "minReplicas": g.min_pods,
        "maxReplicas": max(g.max_pods, g.pods),
        "rayStartParams": start,
        "template": template,
    }


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _pod(
    container: str,
    image: str,
    env: list[dict[str, Any]],
    size: dict[str, str],
    *,
    ports: dict[str, int],
    ready: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": container,
        "image": image,
        "ports": [{"name": n, "containerPort": p} for n, p in ports.items()],
        "resources": {"requests": dict(size), "limits": dict(size)},
        # Ray's processes exit cleanly before the pod goes.
        "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", "ray stop"]}}},
    }
    if env:
        spec["env"] = copy.deepcopy(env)  # no YAML anchors between pods
    if ready:
        spec["readinessProbe"] = {
            "httpGet": {"path": ready, "port": SERVE_PORT},
            "initialDelaySeconds": 10,
            "periodSeconds": 5,
            "failureThreshold": 3,
        }
    return {"spec": {"containers": [spec]}}
