"""An eval run's report: a row per group and one for all, as a table, JSON and a PNG.

Latency, tokens and steps are per user turn (a case of three turns adds three
samples); the pass rate is per case run. Percentiles are nearest-rank.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from agents.errors import UserError
from agents.evals._results import CaseResult

__all__ = ["ALL", "EvalReport", "GroupSummary", "group_summaries", "summarize"]

_Strict = ConfigDict(extra="forbid")
ALL = "(all)"
"""The overall row's group."""


class GroupSummary(BaseModel):
    """The figures of one group's case runs (or of all of them)."""

    model_config = _Strict

    group: str
    cases: int = Field(description="Distinct cases.")
    runs: int = Field(description="Case runs (cases times --repeat).")
    passed: int = Field(description="Case runs whose every check held.")
    pass_rate: float = Field(description="passed / runs.")
    latency_p50_s: float | None = Field(description="Per user turn; null without turns.")
    latency_p99_s: float | None
    mean_prompt_tokens: float | None = Field(description="Per user turn.")
    mean_completion_tokens: float | None
    mean_cached_tokens: float | None
    mean_steps: float | None = Field(description="Model steps per user turn.")
    top_route: str | None = Field(description="The most common route of a turn, 'a > b'.")


class EvalReport(BaseModel):
    """Everything one dataset's run measured; ``model_dump_json`` is the JSON report."""

    model_config = _Strict

    name: str = Field(description="The dataset's name.")
    description: str = ""
    target: str = Field(description="The API it ran against.")
    started_at: datetime
    duration_s: float
    concurrency: int
    repeat: int
    overall: GroupSummary
    groups: list[GroupSummary]
    cases: list[CaseResult] = Field(description="Every case run, in the dataset's order.")

    @property
    def pass_rate(self) -> float:
        """Passed case runs over all of them."""
        return self.overall.pass_rate

    @property
    def failed(self) -> list[CaseResult]:
        """The case runs with a failed check."""
        return [c for c in self.cases if not c.passed]

    def table(self) -> str:
        """The groups and the overall row, as aligned text."""
        header = [
            "group",
            "cases",
            "runs",
            "passed",
            "rate",
            "p50 s",
            "p99 s",
            "prompt",
            "compl",
            "steps",
            "top route",
        ]
        rows = [header] + [_row(g) for g in [*self.groups, self.overall]]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = []
        for index, row in enumerate(rows):
            cells = [
                cell.ljust(width) if i in (0, len(row) - 1) else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  ".join(cells).rstrip())
            if index == 0 or index == len(rows) - 2:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def failures_text(self, limit: int = 20) -> str:
        """The first ``limit`` failed case runs and why, a line each."""
        lines = []
        for case in self.failed[:limit]:
            run = f" (run {case.run})" if self.repeat > 1 else ""
            lines.append(f"FAIL {case.id}{run}: {'; '.join(case.failures)}")
        if len(self.failed) > limit:
            lines.append(f"... and {len(self.failed) - limit} more (see the JSON report)")
        return "\n".join(lines)

    def write_json(self, path: Path) -> None:
        """Write the report as indented JSON (folders made as needed)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2) + "\n")

    def write_png(self, path: Path) -> None:
        """Pass rate and turn latency (p50, p99) per group, as a PNG.

        Raises UserError when matplotlib is not installed.
        """
        try:
            from matplotlib.figure import Figure
        except ImportError as exc:
            raise UserError(
                "the PNG needs matplotlib: pip install -e '.[eval]' (or '.[bench]')"
            ) from exc
        rows = [*self.groups, self.overall]
        names = [g.group for g in rows]
        places = list(range(len(rows)))
        figure = Figure(figsize=(max(8.0, 4.0 + 1.2 * len(rows)), 4.0), layout="constrained")
        rates, latency = figure.subplots(1, 2)
        colors = ["tab:green"] * len(self.groups) + ["tab:gray"]
        bars = rates.bar(places, [g.pass_rate for g in rows], color=colors)
        rates.bar_label(bars, labels=[f"{g.pass_rate:.0%}" for g in rows])
        rates.set(ylim=(0, 1.1), ylabel="pass rate", title="cases passed")
        half = 0.4
        p50 = [g.latency_p50_s or 0.0 for g in rows]
        p99 = [g.latency_p99_s or 0.0 for g in rows]
        latency.bar([p - half / 2 for p in places], p50, half, label="p50")
        latency.bar([p + half / 2 for p in places], p99, half, label="p99")
        latency.set(ylabel="seconds", title="turn latency")
        latency.legend()
        for axes in (rates, latency):
            axes.set_xticks(places, names, rotation=30, ha="right")
        figure.suptitle(f"{self.name}: {self.overall.passed}/{self.overall.runs} passed")
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=120)


def summarize(group: str, results: Sequence[CaseResult]) -> GroupSummary:
    """The figures of ``results`` as the row of ``group``."""
    turns = [t for r in results for t in r.turns]
    latency = sorted(t.latency_s for t in turns)
    passed = sum(r.passed for r in results)
    routes = Counter(" > ".join(t.route) for t in turns if t.route)

    def mean(values: list[int]) -> float | None:
        return sum(values) / len(values) if values else None

    return GroupSummary(
        group=group,
        cases=len({r.id for r in results}),
        runs=len(results),
        passed=passed,
        pass_rate=passed / len(results) if results else 0.0,
        latency_p50_s=_percentile(latency, 50),
        latency_p99_s=_percentile(latency, 99),
        mean_prompt_tokens=mean([t.usage.prompt_tokens for t in turns]),
        mean_completion_tokens=mean([t.usage.completion_tokens for t in turns]),
        mean_cached_tokens=mean([t.usage.cached_tokens for t in turns]),
        mean_steps=mean([t.usage.steps for t in turns]),
        top_route=routes.most_common(1)[0][0] if routes else None,
    )


def group_summaries(results: Sequence[CaseResult]) -> list[GroupSummary]:
    """A row per group, in the order groups first appear."""
    groups: dict[str, list[CaseResult]] = {}
    for result in results:
        groups.setdefault(result.group, []).append(result)
    return [summarize(name, members) for name, members in groups.items()]


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _row(g: GroupSummary) -> list[str]:
    def num(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    return [
        g.group,
        str(g.cases),
        str(g.runs),
        str(g.passed),
        f"{g.pass_rate:.0%}",
        num(g.latency_p50_s, 2),
        num(g.latency_p99_s, 2),
        num(g.mean_prompt_tokens, 0),
        num(g.mean_completion_tokens, 0),
        num(g.mean_steps, 1),
        g.top_route or "-",
    ]
