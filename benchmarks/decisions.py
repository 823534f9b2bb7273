"""What deciding, then acting costs against one step, on the default app and its eval
dataset, side by side on the same engines in one run.

    python -m benchmarks.decisions [--dataset configs/evals/default.yaml] [--concurrency 2]
                                   [--out benchmarks/results/decisions.json]

One app serves the default agents twice: as configs/ has them (``decide_then_act``), and
as copies named ``<agent>_one_step`` that differ only in ``decision: one_step`` (the
whole action in one guided step; no likelihood scoring, calibration or choice descriptions). Both
run the dataset at once (``--concurrency`` each), so they share the engines' load. The
copies' route expectations name the copies.

JSON: ``variants.<name>``: ``passed``, ``cases``, ``latency_s`` (p50, p90 over turns),
``steps`` and ``prompt_tokens`` / ``completion_tokens`` (mean per turn);
``latency_ratio``: decide_then_act's median turn over one_step's (the goal: <= 1.3).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import yaml

from agents.client import AsyncClient
from agents.evals._dataset import EvalDataset
from agents.evals._runner import run_eval
from agents.evals._serve import local_serve, served_app
from benchmarks._common import report

ROOT = Path(__file__).resolve().parents[1]
SUFFIX = "_one_step"
ONE_STEP_DROPS = ("decision", "decide_by", "decide_calibration", "choice_descriptions")


def one_step_copy(agent: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """``agent`` (an agent file's ``agent:``) as a one-step agent, its peers renamed."""
    copy = {k: v for k, v in agent.items() if k not in ONE_STEP_DROPS}
    copy["name"] = agent["name"] + SUFFIX
    copy["decision"] = "one_step"
    for key in ("handoffs", "asks"):
        if key in copy:
            copy[key] = [p + SUFFIX if p in names else p for p in copy[key]]
    for example in copy.get("examples", []):
        if example.get("then") in names:
            example["then"] = example["then"] + SUFFIX
    return copy


def two_variant_app(folder: Path) -> tuple[Path, set[str]]:
    """configs/ copied into ``folder``, each agent file beside its one-step copy; the
    app file and the names of the agents copied."""
    shutil.copytree(ROOT / "configs", folder / "configs")
    agents = folder / "configs" / "agents"
    specs = [yaml.safe_load(f.read_text())["agent"] for f in sorted(agents.glob("*.yaml"))]
    names = {s["name"] for s in specs}
    for spec in specs:
        out = agents / f"{spec['name']}{SUFFIX}.yaml"
        out.write_text(yaml.safe_dump({"agent": one_step_copy(spec, names)}, sort_keys=False))
    return folder / "configs" / "app.yaml", names


def one_step_dataset(raw: dict[str, Any], names: set[str]) -> EvalDataset:
    """The dataset with every agent it names replaced by its one-step copy."""

    def rename(value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if key in ("route", "route_excludes") and isinstance(item, list):
                    out[key] = [n + SUFFIX if n in names else n for n in item]
                elif key == "agent" and item in names:
                    out[key] = item + SUFFIX
                else:
                    out[key] = rename(item)
            return out
        if isinstance(value, list):
            return [rename(item) for item in value]
        return value

    data = rename(raw["eval"])
    data["agent"] = data.get("agent") or "assistant" + SUFFIX
    data["name"] = data["name"] + SUFFIX
    return EvalDataset.model_validate(data)


def summary(report_: Any) -> dict[str, Any]:
    turns = [t for case in report_.cases for t in case.turns]
    latencies = sorted(t.latency_s for t in turns)
    return {
        "passed": sum(case.passed for case in report_.cases),
        "cases": len(report_.cases),
        "latency_s": {
            "p50": round(statistics.median(latencies), 3),
            "p90": round(latencies[int(0.9 * (len(latencies) - 1))], 3),
        },
        "steps": round(statistics.mean(t.usage.steps for t in turns), 2),
        "prompt_tokens": round(statistics.mean(t.usage.prompt_tokens for t in turns), 1),
        "completion_tokens": round(statistics.mean(t.usage.completion_tokens for t in turns), 1),
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    raw = yaml.safe_load(Path(args.dataset).read_text())
    decide = EvalDataset.from_file(args.dataset)
    with tempfile.TemporaryDirectory(prefix="bench-decisions-") as work:
        app_file, names = two_variant_app(Path(work))
        one = one_step_dataset(raw, names)
        with local_serve() as port, served_app(app_file, port) as app:
            async with AsyncClient(app.url, app.api_key, timeout=600) as client:
                both = await asyncio.gather(
                    run_eval(decide, client, concurrency=args.concurrency, show_progress=False),
                    run_eval(one, client, concurrency=args.concurrency, show_progress=False),
                )
    variants = {"decide_then_act": summary(both[0]), "one_step": summary(both[1])}
    medians = [v["latency_s"]["p50"] for v in variants.values()]
    return {
        "dataset": args.dataset,
        "variants": variants,
        "latency_ratio": round(medians[0] / medians[1], 2),
    }


def rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for name, v in results["variants"].items():
        out.append(
            (
                f"{name}: right, p50 / p90 turn",
                f"{v['passed']}/{v['cases']}, {v['latency_s']['p50']} / {v['latency_s']['p90']} s, "
                f"{v['steps']} steps, {v['prompt_tokens']} + {v['completion_tokens']} tokens",
                "",
            )
        )
    out.append(
        ("decide_then_act / one_step, median turn", f"{results['latency_ratio']}x", "<= 1.3x")
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=str(ROOT / "configs" / "evals" / "default.yaml"))
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/decisions.json")
    args = parser.parse_args()
    results = asyncio.run(bench(args))
    report(results, args.out, rows(results))


if __name__ == "__main__":
    main()
