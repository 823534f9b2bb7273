"""Ray Serve levers on the pool's streaming path, each measured against vLLM's server.

    python -m benchmarks.pool_levers [--levers off,grpc,...] [--rounds 3] [--out FILE]

A lever is a Ray Serve setting read when Ray starts, so it cannot be switched inside
one Ray instance: each lever is a whole ``benchmarks.pool --phases server`` run in a
fresh Ray (a subprocess with the lever's environment). Every run measures the pool
and vLLM's own OpenAI server side by side (A B A B, one core each), so what compares
across levers is the *ratio* pool / server of each run, not the absolute tokens/s
(which move with the machine's other load).

Levers (``LEVERS``):

- off:        Ray Serve's defaults (``RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=1``,
              which the builder would otherwise set to 0: ``SERVE_REPLICA_ENV``).
- grpc:       ``RAY_SERVE_USE_GRPC_BY_DEFAULT=1`` (and the thread as in off): handle
              calls between replicas over gRPC instead of Ray actor calls.
- samethread: ``RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0``: replica code runs on
              the replica's own event loop (no hop to a user-code thread per message);
              the builder's default since this measurement.
- throughput: ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1`` (Ray's bundle: the above two, a
              buffered request log, no replica logs to stderr), with
              ``RAY_SERVE_ENABLE_DIRECT_INGRESS=0`` so the HTTP proxy stays (the API
              needs it).

JSON (``--out``): ``levers.<name>``: ``{env, throughput_ratio, latency_ratio,
batching_gain_kept, paired_throughput_ratio, pool_tokens_per_s, server_tokens_per_s}``
(ratios at the largest stream count; *stats* ``{n, min, p50, p99, max}`` where paired),
and ``settings``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_THREAD = "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD"
LEVERS: dict[str, dict[str, str]] = {
    "off": {_THREAD: "1"},
    "grpc": {_THREAD: "1", "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1"},
    "samethread": {_THREAD: "0"},
    "throughput": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0"},
}


def run_lever(name: str, rounds: int, folder: Path) -> dict[str, Any]:
    """One ``benchmarks.pool`` server-phase run with the lever's environment."""
    out = folder / f"{name}.json"
    env = {**os.environ, **LEVERS[name]}
    command = [sys.executable, "-m", "benchmarks.pool", "--phases", "server"]
    command += ["--rounds", str(rounds), "--out", str(out)]
    print(f"== lever {name} {LEVERS[name] or '(defaults)'}", flush=True)
    started = time.monotonic()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["ray", "stop", "--force"], check=False, capture_output=True)
    return {**summary(name, out), "wall_s": round(time.monotonic() - started, 1)}


def summary(name: str, path: Path) -> dict[str, Any]:
    """The lever's figures from its ``benchmarks.pool`` JSON."""
    server = json.loads(path.read_text())["server"]
    hi = str(max(server["streams"]))
    goals = server["goals"]
    return {
        "env": LEVERS[name],
        "throughput_ratio": goals["throughput_ratio"]["value"],
        "latency_ratio": goals["latency_ratio"]["value"],
        "batching_gain_kept": goals["batching_gain_kept"]["value"],
        "paired_throughput_ratio": server["paired_throughput_ratio"],
        "pool_tokens_per_s": server["sides"]["pool"][hi]["tokens_per_s"],
        "server_tokens_per_s": server["sides"]["vllm_server"][hi]["tokens_per_s"],
        "equal_work": server["equal_work"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levers", default=",".join(LEVERS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/pool-levers.json")
    parser.add_argument(
        "--from-dir",
        help="Summarize runs made before, DIR/lever-<name>.json each (the same command with "
        "the lever's environment), instead of running them.",
    )
    args = parser.parse_args()
    names = args.levers.split(",")
    unknown = [n for n in names if n not in LEVERS]
    if unknown:
        parser.error(f"unknown levers {unknown}; known: {', '.join(LEVERS)}")
    results: dict[str, Any] = {"settings": vars(args), "levers": {}}
    if args.from_dir:
        for name in names:
            results["levers"][name] = summary(name, Path(args.from_dir) / f"lever-{name}.json")
    else:
        with tempfile.TemporaryDirectory() as folder:
            for name in names:
                results["levers"][name] = run_lever(name, args.rounds, Path(folder))
    print("\nlever        pool/server tok/s (16 streams, paired p50 [min-max])  latency  gain kept")
    for name, r in results["levers"].items():
        paired = r["paired_throughput_ratio"]
        print(
            f"{name:<12} {r['throughput_ratio']:.2f}x  paired {paired['p50']:.2f}x "
            f"[{paired['min']:.2f}-{paired['max']:.2f}], n={paired['n']}"
            f"{'':<14}{r['latency_ratio']:.2f}x    {r['batching_gain_kept']:.2f}"
        )
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
