"""The ``ray-agents`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from agents.errors import UserError

DEFAULT_MODEL = "builtin:smollm2-135m-instruct"


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
    return parser


def _schema(args: argparse.Namespace) -> int:
    import json

    from agents.pool.spec import pool_file_schema

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "pool.schema.json"
    path.write_text(json.dumps(pool_file_schema(), indent=2) + "\n")
    print(f"wrote {path}")
    return 0


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
