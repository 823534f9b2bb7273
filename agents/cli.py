"""The ``ray-agents`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from agents.errors import UserError

DEFAULT_MODEL = "builtin:smollm2-135m-instruct"
DEFAULT_URL = "http://127.0.0.1:8000"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ray-agents`` console command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ray-agents", description=__doc__)
    sub = parser.add_subparsers(title="commands")

    models = sub.add_parser("models", help="built-in and local models").add_subparsers()
    prep = models.add_parser("prepare", help="convert a built-in model once, offline")
    prep.add_argument("source", nargs="?", default=DEFAULT_MODEL)
    prep.add_argument("--cache-dir", type=Path, default=None)
    prep.set_defaults(func=_models_prepare)
    lst = models.add_parser("list", help="list the built-in models")
    lst.set_defaults(func=_models_list)

    pool = sub.add_parser("pool", help="the generator pool").add_subparsers()
    up = pool.add_parser("up", help="start Ray and serve the pool until Ctrl-C")
    up.add_argument("config", nargs="?", default="configs/pool.yaml", type=Path)
    up.add_argument("--address", default=None, help="an existing Ray cluster to deploy onto")
    up.add_argument("--port", type=int, default=8000, help="HTTP port of the OpenAI route")
    up.set_defaults(func=_pool_up)
    check = pool.add_parser("validate", help="check a pool spec and exit")
    check.add_argument("config", type=Path)
    check.set_defaults(func=_pool_validate)
    schema = sub.add_parser("schema", help="write the JSON Schemas of the config files")
    schema.add_argument("--out", type=Path, default=Path("configs/schema"))
    schema.set_defaults(func=_schema)

    app_up = sub.add_parser("up", help="start Ray and serve an app config until Ctrl-C")
    app_up.add_argument(
        "config", nargs="?", default=Path("configs/app.yaml"), type=Path, help="the app file"
    )
    app_up.add_argument(
        "--address", default=None, help="an existing Ray cluster to deploy onto (ray://, auto)"
    )
    app_up.add_argument("--host", default="127.0.0.1", help="where the HTTP API listens")
    app_up.add_argument("--port", type=int, default=None, help="HTTP port (default: api.port)")
    app_up.set_defaults(func=_up)

    serve_cfg = sub.add_parser(
        "serve-config",
        help="write the Serve config of an app or pool file, for `serve deploy`",
    )
    serve_cfg.add_argument("config", type=Path, help="the app file (or a pool file)")
    serve_cfg.add_argument("-o", "--out", type=Path, default=None, help="file (default: stdout)")
    serve_cfg.add_argument("--host", default="127.0.0.1", help="where Serve's proxies listen")
    serve_cfg.add_argument("--port", type=int, default=None, help="HTTP port (default: api.port)")
    serve_cfg.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a variable for the app's processes (repeat), e.g. a ${VAR} the file names",
    )
    serve_cfg.set_defaults(func=_serve_config)

    k8s = sub.add_parser("k8s", help="Kubernetes (KubeRay)").add_subparsers()
    render = k8s.add_parser("render", help="write a KubeRay RayService manifest")
    render.add_argument("config", type=Path, help="the app file (or a pool file)")
    render.add_argument("--image", default=None, help="an image with the project installed")
    render.add_argument(
        "--app-root", default=None, help="where the image holds this folder (default: /app)"
    )
    render.add_argument("--name", default=None, help="the RayService's name (default: app name)")
    render.add_argument("--namespace", default=None)
    render.add_argument(
        "--secret", default=None, help="the Secret with the ${VAR} values (default: NAME-secrets)"
    )
    render.add_argument("-o", "--out", type=Path, default=None, help="file (default: stdout)")
    render.set_defaults(func=_k8s_render)

    status = sub.add_parser("status", help="a live table of a running app's deployments")
    status.add_argument("--address", default=None, help="the Ray cluster (default: auto)")
    status.add_argument("--app", default=None, help="one application (default: all)")
    status.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    status.add_argument("--once", action="store_true", help="print one table and exit")
    status.set_defaults(func=_status)

    validate = sub.add_parser("validate", help="check an app config and every reference in it")
    validate.add_argument("config", type=Path, help="the app file, e.g. configs/app.yaml")
    validate.set_defaults(func=_validate)

    keys = sub.add_parser("keys", help="API keys").add_subparsers()
    new = keys.add_parser("new", help="print a fresh API key and its config entry")
    new.add_argument("--tenant", default="default", help="who holds the key")
    new.add_argument("--name", default="", help="a label for logs")
    new.add_argument(
        "--scope",
        action="append",
        choices=["conversations", "approvals"],
        help="what the key may do (repeat for both; default: conversations)",
    )
    new.set_defaults(func=_keys_new)

    chat = sub.add_parser("chat", help="talk to an agent of a running app")
    chat.add_argument("agent", help="the agent the conversation starts with")
    chat.add_argument(
        "--url",
        default=os.environ.get("RAY_AGENTS_URL", DEFAULT_URL),
        help=f"the API (default: $RAY_AGENTS_URL or {DEFAULT_URL})",
    )
    chat.add_argument(
        "--key",
        default=os.environ.get("RAY_AGENTS_API_KEY"),
        help="the API key (default: $RAY_AGENTS_API_KEY)",
    )
    chat.set_defaults(func=_chat)

    evals = sub.add_parser(
        "eval",
        help="run eval datasets against an app: pass rate, latency, tokens per group",
        description=(
            "Run eval datasets against a running app (--url), an app file served for the "
            "run (--config), or the app each dataset names (`app:`). Prints a table per "
            "dataset; exits 1 when a dataset's pass rate is under --min-pass."
        ),
    )
    evals.add_argument("datasets", nargs="+", type=Path, metavar="DATASET", help="YAML files")
    where = evals.add_mutually_exclusive_group()
    where.add_argument("--url", default=None, help="a running app's API, e.g. " + DEFAULT_URL)
    where.add_argument(
        "--config", type=Path, default=None, help="an app file to serve for the run (local Ray)"
    )
    evals.add_argument(
        "--api-key",
        default=None,
        help="with --url (default: $RAY_AGENTS_API_KEY, else the local dev-local-key)",
    )
    evals.add_argument("--concurrency", type=int, default=4, help="cases at once (default 4)")
    evals.add_argument("--repeat", type=int, default=1, help="runs of every case (default 1)")
    evals.add_argument(
        "--timeout", type=float, default=600.0, help="seconds one request may take (default 600)"
    )
    evals.add_argument(
        "--out", type=Path, default=None, help="the JSON report ({name}: the dataset's name)"
    )
    evals.add_argument(
        "--png", type=Path, default=None, help="a PNG of pass rate and latency per group"
    )
    evals.add_argument(
        "--min-pass", type=float, default=None, help="fail (exit 1) under this pass rate, 0-1"
    )
    evals.add_argument(
        "--group", action="append", default=[], help="only this group's cases (repeat)"
    )
    evals.add_argument("--case", action="append", default=[], help="only this case (repeat)")
    evals.set_defaults(func=_eval)
    return parser


def _up(args: argparse.Namespace) -> int:
    from agents.up import run_app

    run_app(args.config, address=args.address, host=args.host, port=args.port)
    return 0


def _serve_config(args: argparse.Namespace) -> int:
    import yaml

    from agents.deploy import ServeTarget, serve_config

    env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UserError(f"--env {item!r}: write NAME=VALUE")
        env[name] = value
    target = ServeTarget(args.config)
    missing = sorted(target.unset - env.keys())
    config = serve_config(target, host=args.host, port=args.port, env_vars=env)
    _write(yaml.safe_dump(config, sort_keys=False), args.out)
    if missing:
        print(
            f"note: {', '.join(missing)} not set here: the cluster's processes must have "
            "them (or pass --env NAME=VALUE)",
            file=sys.stderr,
        )
    return 0


def _k8s_render(args: argparse.Namespace) -> int:
    from agents import k8s

    target = k8s.image_target(args.config, args.app_root or k8s.DEFAULT_APP_ROOT)
    manifest = k8s.render_rayservice(
        target,
        image=args.image or k8s.DEFAULT_IMAGE,
        name=args.name,
        namespace=args.namespace,
        secret=args.secret,
    )
    _write(k8s.dump_manifest(manifest), args.out)
    warning = k8s.store_warning(target)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)


def _status(args: argparse.Namespace) -> int:
    from agents.observability.status import run_status

    return run_status(args.address, args.app, args.interval, args.once)


def _schema(args: argparse.Namespace) -> int:
    import json

    from agents.config import agent_file_schema, app_file_schema
    from agents.evals import eval_file_schema
    from agents.pool.spec import pool_file_schema

    args.out.mkdir(parents=True, exist_ok=True)
    schemas = {
        "app": app_file_schema,
        "agent": agent_file_schema,
        "pool": pool_file_schema,
        "eval": eval_file_schema,
    }
    for name, schema in schemas.items():
        path = args.out / f"{name}.schema.json"
        path.write_text(json.dumps(schema(), indent=2) + "\n")
        print(f"wrote {path}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from agents.config import load_app_config
    from agents.errors import ConfigError

    try:
        config = load_app_config(args.config)
    except ConfigError as exc:
        problems = exc.message.splitlines()
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        print(f"{args.config}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    agents = ", ".join(a.name for a in config.agent_specs)
    print(f"ok: app {config.app.name!r}, default agent {config.default_agent!r}")
    print(f"ok: {len(config.agent_specs)} agent(s): {agents}")
    for model in config.pool.models:
        engine = "scripted" if model.scripted is not None else model.source
        print(f"ok: model {model.id!r} ({model.mode}, {engine})")
    tools = config.tools
    names = (
        [t.name or t.builtin or str(t.function).rpartition(":")[2] for t in tools.tools]
        if tools
        else []
    )
    servers = [s.name for s in tools.mcp_servers] if tools else []
    print(f"ok: {len(names)} tool(s): {', '.join(str(n) for n in names) or 'none'}")
    if servers:
        print(f"ok: {len(servers)} MCP server(s): {', '.join(servers)}")
    where = config.store.path if config.store.backend == "sqlite" else config.store.backend
    print(f"ok: store {config.store.backend} ({where})")
    access = "open (no key needed)" if config.api.open else f"{len(config.api.keys)} key(s)"
    print(f"ok: api on port {config.api.port}, {access}")
    return 0


def _keys_new(args: argparse.Namespace) -> int:
    import secrets

    from agents.api.spec import ApiKey, hash_key

    key = "rak_" + secrets.token_urlsafe(32)
    scopes = sorted(set(args.scope or ["conversations"]), reverse=True)
    entry = ApiKey.model_validate(
        {"tenant": args.tenant, "sha256": hash_key(key), "name": args.name, "scopes": scopes}
    )
    print(f"key: {key}")
    print("# Give the key to its holder; it is not stored anywhere. Config entry (api.keys):")
    print(f"- tenant: {entry.tenant}")
    print(f"  sha256: {entry.sha256}")
    if entry.name:
        print(f"  name: {entry.name}")
    print(f"  scopes: [{', '.join(entry.scopes)}]")
    print(
        f"# or in ${{RAY_AGENTS_API_KEYS}}: {entry.tenant}:{entry.sha256}:{'+'.join(entry.scopes)}"
    )
    return 0


def _chat(args: argparse.Namespace) -> int:
    from agents.client._chat import run_chat

    return run_chat(args.agent, url=args.url, key=args.key)


def _eval(args: argparse.Namespace) -> int:
    from agents.evals._command import EvalCommand

    command = EvalCommand(
        datasets=args.datasets,
        url=args.url,
        config=args.config,
        api_key=args.api_key,
        concurrency=args.concurrency,
        repeat=args.repeat,
        timeout_s=args.timeout,
        out=args.out,
        png=args.png,
        min_pass=args.min_pass,
        groups=args.group,
        cases=args.case,
    )
    return command.run()


def _models_prepare(args: argparse.Namespace) -> int:
    from agents.pool.weights import prepare

    path = prepare(args.source, args.cache_dir)
    print(f"{args.source} ready at {path}")
    return 0


def _models_list(args: argparse.Namespace) -> int:
    from agents.pool.weights import BUILTIN_MODELS, BUILTIN_PREFIX

    for name, model in sorted(BUILTIN_MODELS.items()):
        print(f"{BUILTIN_PREFIX}{name}\t{model.distribution}\t{model.dtype}")
    return 0


def _pool_validate(args: argparse.Namespace) -> int:
    from agents.pool.spec import PoolSpec

    spec = PoolSpec.from_file(args.config)
    for model in spec.models:
        print(f"ok: model {model.id!r} ({model.mode}, source {model.source})")
    return 0


def _pool_up(args: argparse.Namespace) -> int:
    from agents.pool.serve import run_pool

    run_pool(args.config, address=args.address, port=args.port)
    return 0
