"""What every benchmark shares: percentiles and spreads, the phase runner, a local
Serve, vLLM's own OpenAI server as the reference, the table.

Light on purpose (no Ray or vLLM at import): a benchmark's measuring subprocesses
import it too.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Literal

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


def spread(values: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """Sample count, min, p50, p99 and max of ``values`` times ``scale`` (NaN when empty)."""
    xs = sorted(v * scale for v in values)
    nan = float("nan")
    return {
        "n": len(xs),
        "min": xs[0] if xs else nan,
        "p50": pct(xs, 50),
        "p99": pct(xs, 99),
        "max": xs[-1] if xs else nan,
    }


def show(stats: Mapping[str, float], unit: str = "", digits: int = 2, at: str = "p50") -> str:
    """A figure with its spread and sample count: ``p50 1.23 s (1.10-1.40, n=48)``."""
    unit = f" {unit}" if unit else ""
    return (
        f"{at} {stats[at]:.{digits}f}{unit} "
        f"({stats['min']:.{digits}f}-{stats['max']:.{digits}f}, n={stats['n']:.0f})"
    )


def goal(value: float, op: Literal["<=", ">="], bound: float) -> dict[str, Any]:
    """A ratio against its goal: ``{"value", "goal", "met"}`` (NaN never meets it)."""
    met = not math.isnan(value) and (value <= bound if op == "<=" else value >= bound)
    return {"value": value, "goal": f"{op} {bound:g}x", "met": met}


def verdict(g: Mapping[str, Any]) -> str:
    """The goal column of a ``goal``: ``>= 0.97x: met``."""
    return f"{g['goal']}: {'met' if g['met'] else 'NOT met'}"


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


def server_command(model: Mapping[str, Any], port: int) -> tuple[list[str], dict[str, str]]:
    """vLLM's OpenAI server with the engine settings the pool gives ``model``.

    ``model`` is a pool ``ModelSpec`` (as a dict); the flags come from the same
    ``llm_configs`` the pool deploys with (dtype, max_model_len, max_num_seqs, prefix
    caching, structured outputs, enforce_eager, ...), the environment from its
    runtime_env (KV cache size) and its first ``decode.cpu_bind`` (thread binding).
    """
    from agents.pool.builder import llm_configs
    from agents.pool.server import CPU_BIND_KEY
    from agents.pool.spec import ModelSpec

    config, _ = llm_configs(ModelSpec.model_validate(model))
    loading = config.model_loading_config
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--port", str(port)]
    source, model_id = getattr(loading, "model_source", None), getattr(loading, "model_id", None)
    argv += ["--model", str(source), "--served-model-name", str(model_id)]
    for name, value in config.engine_kwargs.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, json.dumps(value) if isinstance(value, dict) else str(value)]
    env = dict((config.runtime_env or {}).get("env_vars", {}))
    binds = config.experimental_configs.get(CPU_BIND_KEY)
    if binds:
        env["VLLM_CPU_OMP_THREADS_BIND"] = binds[0]
    return argv, {**os.environ, **env}


@asynccontextmanager
async def vllm_server(model: Mapping[str, Any], port: int, log_path: Path) -> AsyncIterator[Any]:
    """vLLM's own OpenAI server for ``model`` as a subprocess, up and healthy (an
    ``httpx.AsyncClient`` on it is yielded); stopped on exit."""
    import httpx

    argv, env = server_command(model, port)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300) as http:
                await wait_healthy(http, server, log_path)
                yield http
        finally:
            server.terminate()
            server.wait(timeout=60)


def report(results: dict[str, Any], out: Path, rows: Sequence[tuple[str, str, str]]) -> None:
    """Write ``results`` as JSON to ``out`` and print ``rows`` as the table."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(rows))


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


# --------------------------------------------------------------------------- CPU time


def _proc_stat(pid: str) -> tuple[int, float] | None:
    """A process's parent pid and its CPU seconds (user + system), from /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_title(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _role(title: str) -> str:
    """Which part of a serving stack a process is, from its title (Ray and vLLM set
    theirs): ``replica <deployment>``, ``engine``, ``vLLM server``, ``Serve proxy``,
    ``Ray`` (GCS, raylets, controller, other workers) or ``other``."""
    if not title:
        return "other"
    if title.startswith("ray::ServeReplica:"):
        _app, _, deployment = title.removeprefix("ray::ServeReplica:").partition(":")
        return f"replica {deployment.split('.')[0].split(' ')[0]}"
    if title.startswith("VLLM::"):  # EngineCore, and the Worker that runs the model
        return "engine"
    if "vllm.entrypoints.openai.api_server" in title:
        return "vLLM server"
    if title.startswith("ray::ProxyActor"):
        return "Serve proxy"
    if title.startswith("ray::") or "/ray/" in title.split(" ")[0]:
        return "Ray"
    return "other"


class CpuMeter:
    """CPU seconds each part of the stack spent between ``start()`` and ``stop()``.

    Every process on the machine is read from /proc at both ends and its time grouped
    by ``_role``; this process is ``client``. An engine process, or another process of
    no known role, is named after its nearest ancestor of a known role: ``engine
    (replica pool)``, ``engine (vLLM server)``. A process that exits in between loses its time
    since ``start()`` (none of the benchmarks' processes do mid-run).
    """

    def __init__(self) -> None:
        self._before: dict[str, float] = {}

    @staticmethod
    def _read() -> dict[str, tuple[int, float]]:
        found = {}
        for pid in os.listdir("/proc"):
            if pid.isdigit() and (stat := _proc_stat(pid)) is not None:
                found[pid] = stat
        return found

    def start(self) -> None:
        self._before = {pid: cpu for pid, (_, cpu) in self._read().items()}

    def stop(self) -> dict[str, float]:
        """CPU seconds per role since ``start()``, largest first."""
        now = self._read()
        roles: dict[str, float] = {}
        me = str(os.getpid())
        titles: dict[str, str] = {}  # each title read once, ancestors included

        def role_of(pid: str) -> str:
            if pid not in titles:
                titles[pid] = _role(_proc_title(pid))
            return titles[pid]

        for pid, (parent, cpu) in now.items():
            spent = cpu - self._before.get(pid, 0.0)
            if spent <= 0:
                continue
            role = "client" if pid == me else role_of(pid)
            if role in ("engine", "other"):
                owner = self._owner(str(parent), now, me, role_of)
                if role == "engine" or owner is not None:
                    role = f"{role} ({owner})"
            roles[role] = roles.get(role, 0.0) + spent
        return dict(sorted(roles.items(), key=lambda kv: -kv[1]))

    @staticmethod
    def _owner(
        pid: str, procs: Mapping[str, tuple[int, float]], me: str, role_of: Callable[[str], str]
    ) -> str | None:
        """The role of ``pid`` or its nearest ancestor that has one besides engine."""
        for _ in range(8):
            if pid == me:
                return "client"
            role = role_of(pid)
            if role not in ("engine", "other"):
                return role
            if pid not in procs:
                return None
            pid = str(procs[pid][0])
        return None
