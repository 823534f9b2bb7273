"""Tool-plane benchmarks: prints a table and writes JSON.

    python -m benchmarks.tools [--calls 500] [--out FILE]

- the same tool call (``tools.testing.add``) four ways: the function called in
  process, ``ToolRunner`` in process (validation, grants, limits) with the tool in
  a worker process, and through the tool-execution deployment's DeploymentHandle
  from another replica (as an agent calls it);
- one sandboxed ``python`` call, start-up included (fresh namespaces, interpreter).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from benchmarks._common import local_serve, run_phases, summary, table
from tools import testing
from tools.base import ToolCallRequest
from tools.executor import ToolRunner
from tools.registry import ToolRegistry
from tools.sandbox import Sandbox
from tools.spec import ToolsConfig
from tools.workers import WorkerPool

REQUEST = ToolCallRequest(call_id="b", name="add", arguments={"a": 2, "b": 3}, agent="bench")


async def timed(call: Any, n: int) -> list[float]:
    for _ in range(20):
        await call()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        out.append(time.perf_counter() - start)
    return out


class Caller:
    """Calls the tool deployment from a replica, as an agent does."""

    async def measure(self, app: str, n: int) -> list[float]:
        from ray import serve

        handle = serve.get_deployment_handle("tools", app)
        return await timed(lambda: handle.execute.remote(REQUEST), n)


async def phase_calls(results: dict[str, Any], n: int) -> None:
    from ray import serve

    from agents.builder import tools_deployment
    from agents.spec import AgentSpec

    async def direct() -> int:
        return testing.add(2, 3)

    registry = ToolRegistry()
    registry.add_function(testing.add)
    runner = ToolRunner(registry, grants={"bench": ["add"]}, workers=WorkerPool(2))
    config = ToolsConfig.model_validate({"tools": [{"function": "tools.testing:add"}]})
    tools = tools_deployment([AgentSpec(name="bench", model="m", tools=["add"])], config)
    caller: Any = serve.deployment(Caller).options(ray_actor_options={"num_cpus": 0})
    serve.run(tools, name="bench-tools", route_prefix=None)
    handle = serve.run(caller.bind(), name="bench-caller", route_prefix=None)
    results["calls"] = {
        "function_in_process": summary(await timed(direct, n)),
        "runner_in_process": summary(await timed(lambda: runner.execute(REQUEST), n)),
        "through_deployment": summary(await handle.measure.remote("bench-tools", n)),
    }
    await runner.close()
    serve.delete("bench-caller")
    serve.delete("bench-tools")


async def phase_sandbox(results: dict[str, Any], n: int) -> None:
    sandbox = Sandbox()

    async def call() -> None:
        result = await sandbox.run_python("print(2 + 3)")
        assert result.ok, result.stderr

    results["sandbox"] = summary(await timed(call, n))


def rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The table rows of what was measured."""
    out = []
    labels = {
        "function_in_process": "tool call: the function, in process",
        "runner_in_process": "tool call: ToolRunner in process (checks + worker process)",
        "through_deployment": "tool call: through the tool deployment, replica to replica",
    }
    for key, label in labels.items():
        if key in results.get("calls", {}):
            c = results["calls"][key]
            out.append((label, f"p50 {c['p50_ms']:.3f} ms, p99 {c['p99_ms']:.3f} ms", "report"))
    if "sandbox" in results:
        c = results["sandbox"]
        out.append(
            (
                "one sandboxed python call, start-up included",
                f"p50 {c['p50_ms']:.0f} ms, p99 {c['p99_ms']:.0f} ms",
                "report",
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--phases", default="calls,sandbox")
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tools.json"))
    args = parser.parse_args()
    phases = {
        "calls": lambda results: phase_calls(results, args.calls),
        "sandbox": lambda results: phase_sandbox(results, max(20, args.calls // 10)),
    }
    with local_serve(port=8768):
        results = asyncio.run(run_phases(args.phases.split(","), phases, args.out))
    print(table(rows(results)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
