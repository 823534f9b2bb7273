"""What every benchmark shares: percentiles, the phase runner, a local Serve, the table.

Light on purpose (no Ray or vLLM at import): a benchmark's measuring subprocesses
import it too.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Phase = Callable[[dict[str, Any]], Awaitable[None]]


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(seconds: list[float]) -> dict[str, float]:
    """p50 and p99 in milliseconds of durations in seconds."""
    ms = [s * 1000 for s in seconds]
    return {"p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "n": len(ms)}


async def run_phases(
    selected: Sequence[str], phases: Mapping[str, Phase], out: Path
) -> dict[str, Any]:
    """Run the selected phases in order, writing the results after each one."""
    unknown = [p for p in selected if p not in phases]
    if unknown:
        raise SystemExit(f"unknown phase(s) {', '.join(unknown)}; choose from {', '.join(phases)}")
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in selected:
        started = time.perf_counter()
        print(f"== phase {name}", flush=True)
        await phases[name](results)
        print(f"   done in {time.perf_counter() - started:.0f} s", flush=True)
        # Keep what is measured even if a later phase fails.
        out.write_text(json.dumps(results, indent=2) + "\n")
    return results


@contextmanager
def local_serve(port: int) -> Iterator[None]:
    """A fresh local Ray with Serve on ``port`` for the benchmark's lifetime."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    # Logical CPUs: engine replicas reserve one each and are pinned to real cores.
    ray.init(address="local", num_cpus=8, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        yield
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()


async def wait_healthy(http: Any, server: Any, log_path: Path) -> None:
    """Wait (up to 5 min) until vLLM's server subprocess answers ``/health``."""
    import asyncio

    import httpx

    for _ in range(300):
        if server.poll() is not None:
            raise RuntimeError(f"vLLM's server exited; see {log_path}")
        try:
            if (await http.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(1)
    raise RuntimeError(f"vLLM's server did not come up; see {log_path}")


def table(rows: Sequence[tuple[str, str, str]]) -> str:
    """A markdown table of (benchmark, measured, goal) rows."""
    rows = [("benchmark", "measured", "goal"), *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
