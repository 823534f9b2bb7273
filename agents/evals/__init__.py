"""Evals: run a dataset of cases against an app and report how many pass, how fast.

    from agents.client import AsyncClient
    from agents.evals import EvalDataset, run_eval

    dataset = EvalDataset.from_file("configs/evals/default.yaml")
    async with AsyncClient("http://127.0.0.1:8000", api_key="dev-local-key") as client:
        report = await run_eval(dataset, client, concurrency=4)
    print(report.table())                  # a row per group: pass rate, latency, tokens
    report.write_json(Path("out.json"))   # every case run: answer, route, tools, why

A dataset (YAML, ``eval:`` at the top) lists cases: a user turn (or several) and what
each turn's result must show: its status, answer (text, number, regex, JSON Schema),
route through the agents and tool calls. ``ray-agents eval`` runs datasets from the
command line, against a URL or an app it serves itself.

Only the SDK's dependencies are needed (httpx, pydantic); ``json_schema`` checks need
``jsonschema`` and the PNG ``matplotlib`` (``pip install -e '.[eval]'``).
"""

from __future__ import annotations

from agents.evals._dataset import (
    AnswerExpect,
    EvalCase,
    EvalDataset,
    Expect,
    ToolExpect,
    Turn,
    eval_file_schema,
)
from agents.evals._report import EvalReport, GroupSummary
from agents.evals._results import CaseResult, ToolCallRecord, TurnRecord
from agents.evals._runner import run_eval

__all__ = [
    "AnswerExpect",
    "CaseResult",
    "EvalCase",
    "EvalDataset",
    "EvalReport",
    "Expect",
    "GroupSummary",
    "ToolCallRecord",
    "ToolExpect",
    "Turn",
    "TurnRecord",
    "eval_file_schema",
    "run_eval",
]
