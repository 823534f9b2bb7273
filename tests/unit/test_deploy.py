"""Serve configs for ``serve deploy`` and KubeRay RayService manifests.

Every Serve config is checked with Ray's own ``ServeDeploySchema``; every manifest
with the openAPIV3Schema of KubeRay's RayService CRD (tests/fixtures/kuberay, taken
from the CRD KubeRay publishes; its ``source`` names the commit).
"""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from agents import k8s
from agents.cli import main
from agents.deploy import APP_IMPORT_PATH, POOL_IMPORT_PATH, ServeTarget, serve_config
from agents.errors import ConfigError
from tests.fixtures.placed_app import write_placed_app

ROOT = Path(__file__).parents[2]
CRD = json.loads((ROOT / "tests/fixtures/kuberay/rayservice-v1.json").read_text())


def _copy_configs(tmp_path: Path) -> Path:
    """configs/ in a folder of its own (edits stay there); its app file."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs", ignore=shutil.ignore_patterns("schema"))
    return tmp_path / "configs" / "app.yaml"


def _placed_app(tmp_path: Path) -> Path:
    """The default app with a placement override and the PostgreSQL store."""
    return write_placed_app(tmp_path)


def _unknown_fields(value: Any, schema: dict[str, Any], at: str = "") -> list[str]:
    """Paths in ``value`` that ``schema`` (an openAPIV3Schema) does not declare."""
    if isinstance(value, list):
        items = schema.get("items", {})
        return [p for i, v in enumerate(value) for p in _unknown_fields(v, items, f"{at}[{i}]")]
    if not isinstance(value, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    props = schema.get("properties")
    if props is None:  # a map: additionalProperties gives each value's schema
        extra = schema.get("additionalProperties")
        inner = extra if isinstance(extra, dict) else {}
        return [p for k, v in value.items() for p in _unknown_fields(v, inner, f"{at}.{k}")]
    found = [f"{at}.{k}" for k in value if k not in props]
    return found + [
        p for k, v in value.items() if k in props for p in _unknown_fields(v, props[k], f"{at}.{k}")
    ]


def _validate_rayservice(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest passes KubeRay's CRD schema; its Serve config passes Ray's."""
    assert manifest["apiVersion"] == f"{CRD['group']}/{CRD['version']}" == "ray.io/v1"
    assert manifest["kind"] == CRD["kind"] == "RayService"
    jsonschema.validate(manifest, CRD["schema"])
    # The API server drops fields its schema does not name, silently: name none.
    assert _unknown_fields(manifest, CRD["schema"]) == []
    cluster = manifest["spec"]["rayClusterConfig"]
    for group in cluster["workerGroupSpecs"]:  # KubeRay's rayStartParams are strings
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())
    serve = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(serve)
    # Written as YAML and read back, it is the same manifest.
    assert yaml.safe_load(k8s.dump_manifest(manifest)) == manifest
    return serve


def test_the_default_apps_serve_config_is_one_ray_accepts(tmp_path: Path) -> None:
    config = serve_config(ServeTarget(ROOT / "configs/app.yaml"))
    ServeDeploySchema.model_validate(config)
    (application,) = config["applications"]
    assert application["import_path"] == APP_IMPORT_PATH
    assert "runtime_env" not in application  # nothing to ship: no local working_dir
    assert application["args"]["config"] == str(ROOT / "configs/app.yaml")
    module, _, name = APP_IMPORT_PATH.partition(":")
    assert callable(getattr(importlib.import_module(module), name))


def test_the_digest_follows_what_the_file_loads(tmp_path: Path) -> None:
    app = _copy_configs(tmp_path)
    first = ServeTarget(app).digest
    assert ServeTarget(app).digest == first
    agent = tmp_path / "configs/agents/math.yaml"
    agent.write_text(agent.read_text().replace("You are", "You are truly"))
    assert ServeTarget(app).digest != first  # an included agent's instructions


def test_unset_variables_are_left_to_the_cluster(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("RAY_AGENTS_PG_DSN", raising=False)
    target = ServeTarget(_placed_app(tmp_path))
    assert target.unset == {"RAY_AGENTS_PG_DSN"}
    assert target.app is not None and target.app.store.dsn == "${RAY_AGENTS_PG_DSN}"
    config = serve_config(target, env_vars={"RAY_AGENTS_PG_DSN": "postgresql://db/x"})
    (application,) = config["applications"]
    assert application["runtime_env"] == {"env_vars": {"RAY_AGENTS_PG_DSN": "postgresql://db/x"}}
    ServeDeploySchema.model_validate(config)


def test_a_pool_file_gets_the_pool_builder() -> None:
    config = serve_config(ServeTarget(ROOT / "configs/pool.yaml"))
    (application,) = config["applications"]
    assert (application["name"], application["import_path"]) == ("pool", POOL_IMPORT_PATH)


def test_serve_config_cli(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("RAY_AGENTS_PG_DSN", raising=False)
    out = tmp_path / "serve.yaml"
    app = _placed_app(tmp_path)
    assert main(["serve-config", str(app), "-o", str(out), "--env", "A=1"]) == 0
    written = yaml.safe_load(out.read_text())
    ServeDeploySchema.model_validate(written)
    assert written["applications"][0]["runtime_env"]["env_vars"] == {"A": "1"}
    assert "RAY_AGENTS_PG_DSN not set here" in capsys.readouterr().err
    assert main(["serve-config", str(app), "--env", "no-equals"]) == 1


def test_the_default_apps_rayservice(monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    target = k8s.image_target("configs/app.yaml")
    manifest = k8s.render_rayservice(target, image="registry.example/agents:1")
    serve = _validate_rayservice(manifest)
    assert serve["applications"][0]["args"]["config"] == "/app/configs/app.yaml"
    assert serve["http_options"]["host"] == "0.0.0.0"
    cluster = manifest["spec"]["rayClusterConfig"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    # Prefill and decode (one replica each) on engine pods; agents, API and tools
    # (no Ray CPU) on pods that offer none, so no engine lands there.
    assert groups["engines"]["replicas"] == 2
    assert groups["agents"]["rayStartParams"]["num-cpus"] == "0"
    for group in groups.values():
        (container,) = group["template"]["spec"]["containers"]
        assert container["image"] == "registry.example/agents:1"
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8000}
    assert k8s.store_warning(target) is not None  # SQLite: each pod a file of its own


def test_placement_and_secrets_become_groups_and_env(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("RAY_AGENTS_PG_DSN", raising=False)
    app = _placed_app(tmp_path)
    monkeypatch.chdir(tmp_path)
    target = k8s.image_target(app, "/srv/app")
    manifest = k8s.render_rayservice(target, secret="db")
    serve = _validate_rayservice(manifest)
    assert serve["applications"][0]["args"]["config"] == "/srv/app/configs/app.yaml"
    assert k8s.store_warning(target) is None
    groups = {g["groupName"]: g for g in manifest["spec"]["rayClusterConfig"]["workerGroupSpecs"]}
    assert set(groups) == {"engine-node", "agent-node"}
    offers = {
        n: json.loads(json.loads(g["rayStartParams"]["resources"])) for n, g in groups.items()
    }
    assert offers == {"engine-node": {"engine-node": 2}, "agent-node": {"agent-node": 100}}
    assert groups["agent-node"]["minReplicas"] == 2  # two API replicas: two pods
    env = groups["agent-node"]["template"]["spec"]["containers"][0]["env"]
    dsn = next(e for e in env if e["name"] == "RAY_AGENTS_PG_DSN")
    assert dsn["valueFrom"]["secretKeyRef"] == {"name": "db", "key": "RAY_AGENTS_PG_DSN"}
    assert "postgresql" not in k8s.dump_manifest(manifest)  # no secret in the manifest


def test_the_gpu_pools_rayservice(monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    manifest = k8s.render_rayservice(k8s.image_target("configs/pool.gpu.yaml"))
    serve = _validate_rayservice(manifest)
    assert serve["applications"][0]["import_path"] == POOL_IMPORT_PATH
    groups = {g["groupName"]: g for g in manifest["spec"]["rayClusterConfig"]["workerGroupSpecs"]}
    assert set(groups) == {"smollm2-prefill", "smollm2-decode"}
    decode = groups["smollm2-decode"]
    assert (decode["minReplicas"], decode["replicas"], decode["maxReplicas"]) == (1, 1, 8)
    limits = decode["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    assert manifest["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] is True


def test_the_field_check_finds_a_misspelt_field() -> None:
    manifest = {"apiVersion": "ray.io/v1", "kind": "RayService", "spec": {"serveConfigv2": ""}}
    assert _unknown_fields(manifest, CRD["schema"]) == [".spec.serveConfigv2"]


def test_render_cli_names_a_file_outside_the_image(tmp_path: Path, capsys: Any) -> None:
    app = _copy_configs(tmp_path)
    assert main(["k8s", "render", str(app)]) == 1  # cwd is not above tmp_path
    assert "render from the folder the image copies" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        k8s.image_target(app)


def test_the_committed_kubernetes_example_is_what_render_writes(monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("RAY_AGENTS_PG_DSN", raising=False)
    target = k8s.image_target("examples/kubernetes/app.yaml")
    manifest = k8s.render_rayservice(target, image="registry.example.com/ray-agents:0.1.0")
    _validate_rayservice(manifest)
    committed = (ROOT / "examples/kubernetes/rayservice.yaml").read_text()
    assert committed == k8s.dump_manifest(manifest), (
        "examples/kubernetes/rayservice.yaml is stale: re-run the command in its README"
    )
    assert target.unset == {"RAY_AGENTS_PG_DSN"}


def test_the_serve_builder_reads_configs_app_yaml_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve run serve_app:app` with no ``config=`` serves ./configs/app.yaml (or
    ``$RAY_AGENTS_CONFIG``); missing, the error names the file it looked for."""
    from agents.deploy import app
    from serve_app import app as serve_app

    assert serve_app is app
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_AGENTS_CONFIG", raising=False)
    with pytest.raises(ConfigError, match=r"configs/app\.yaml"):
        app({})
    monkeypatch.setenv("RAY_AGENTS_CONFIG", "elsewhere/app.yaml")
    with pytest.raises(ConfigError, match=r"elsewhere/app\.yaml"):
        app({})
