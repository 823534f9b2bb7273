"""``ray-agents eval``: run datasets against a URL or an app served for the run, print
each dataset's table, write its JSON (and PNG), and fail under a pass rate.

Where a dataset runs: ``--url``, else the app file of ``--config``, else the dataset's
own ``app:``. Apps are served one after the other on one local Ray, each once for all
of its datasets. With several datasets, ``--out`` and ``--png`` name a file per
dataset through ``{name}`` (the dataset's name), e.g. ``results/{name}.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agents.errors import UserError
from agents.evals._dataset import EvalDataset
from agents.evals._report import EvalReport
from agents.evals._runner import run_eval

__all__ = ["EvalCommand"]

DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT_S = 600.0
NAME = "{name}"
"""In ``--out`` and ``--png``: the dataset's name."""


@dataclass(frozen=True)
class EvalCommand:
    """The arguments of one ``ray-agents eval``; ``run()`` does it."""

    datasets: Sequence[Path]
    url: str | None = None
    config: Path | None = None
    api_key: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    repeat: int = 1
    timeout_s: float = DEFAULT_TIMEOUT_S
    out: Path | None = None
    png: Path | None = None
    min_pass: float | None = None
    groups: Sequence[str] = field(default_factory=tuple)
    cases: Sequence[str] = field(default_factory=tuple)

    def run(self) -> int:
        """Run every dataset; 1 when one passes under ``min_pass``, else 0.

        Raises UserError (or ConfigError) for a bad dataset or argument.
        """
        if self.concurrency < 1 or self.repeat < 1:
            raise UserError("--concurrency and --repeat must be 1 or more")
        if self.min_pass is not None and not 0 <= self.min_pass <= 1:
            raise UserError(f"--min-pass is a fraction from 0 to 1, got {self.min_pass}")
        datasets = self._load()
        failing: list[str] = []
        with contextlib.ExitStack() as stack:
            port: int | None = None
            for target, members in self._plan(datasets).items():
                if isinstance(target, Path):
                    from agents.evals._serve import local_serve, served_app

                    if port is None:
                        port = stack.enter_context(local_serve())
                    with served_app(target, port) as app:
                        failing += asyncio.run(self._run(members, app.url, app.api_key))
                else:
                    failing += asyncio.run(self._run(members, target, self._key()))
        for line in failing:
            print(line)
        return 1 if failing else 0

    def _load(self) -> list[EvalDataset]:
        loaded = [EvalDataset.from_file(path) for path in self.datasets]
        groups = {c.group for d in loaded for c in d.cases}
        ids = {c.id for d in loaded for c in d.cases}
        unknown = [f"group {g!r}" for g in self.groups if g not in groups]
        unknown += [f"case {i!r}" for i in self.cases if i not in ids]
        if unknown:
            raise UserError(f"no dataset has {', '.join(unknown)}")
        selected = [d.select(self.groups, self.cases) for d in loaded]
        datasets = [d for d in selected if d is not None]
        names = [d.name for d in datasets]
        if len(set(names)) != len(names):
            raise UserError(f"two datasets share a name: {', '.join(names)}")
        for option, path in (("--out", self.out), ("--png", self.png)):
            if path is not None and len(datasets) > 1 and NAME not in str(path):
                raise UserError(f"{option} with several datasets needs {NAME} in its path")
        return datasets

    def _plan(self, datasets: list[EvalDataset]) -> dict[str | Path, list[EvalDataset]]:
        """Datasets by where they run: a URL, or an app file to serve."""
        plan: dict[str | Path, list[EvalDataset]] = {}
        for dataset in datasets:
            target: str | Path | None = self.url or self.config or dataset.app_file()
            if target is None:
                raise UserError(
                    f"{dataset.path}: where should it run? Give --url or --config, or an "
                    "`app:` in the dataset"
                )
            if isinstance(target, Path):
                if not target.is_file():
                    raise UserError(f"{target}: no such app file (for dataset {dataset.name!r})")
                target = target.resolve()
            plan.setdefault(target, []).append(dataset)
        return plan

    def _key(self) -> str:
        if self.api_key:
            return self.api_key
        from agents.up import DEV_KEY

        return os.environ.get("RAY_AGENTS_API_KEY") or DEV_KEY

    async def _run(self, datasets: list[EvalDataset], url: str, key: str) -> list[str]:
        """Run ``datasets`` at ``url``, showing and writing each; the failing lines."""
        from agents.client import AsyncClient

        failing = []
        async with AsyncClient(url, key, timeout=self.timeout_s) as client:
            for dataset in datasets:
                report = await run_eval(
                    dataset, client, concurrency=self.concurrency, repeat=self.repeat
                )
                failing += self._show(report)
                self._write(report)
        return failing

    def _write(self, report: EvalReport) -> None:
        """Write the report's files at once, so a later dataset's crash keeps them."""
        if self.out is not None:
            path = Path(str(self.out).replace(NAME, report.name))
            report.write_json(path)
            print(f"wrote {path}", flush=True)
        if self.png is not None:
            path = Path(str(self.png).replace(NAME, report.name))
            report.write_png(path)
            print(f"wrote {path}", flush=True)

    def _show(self, report: EvalReport) -> list[str]:
        """Print the report's table and failures; the lines that fail the command."""
        overall = report.overall
        print(f"\n== {report.name}: {overall.passed}/{overall.runs} passed ({report.target})")
        print(report.table())
        if report.failed:
            print(report.failures_text())
        if self.min_pass is not None and report.pass_rate < self.min_pass:
            return [
                f"FAILED: {report.name}: pass rate {report.pass_rate:.1%} "
                f"({overall.passed}/{overall.runs}) is under --min-pass {self.min_pass:.1%}"
            ]
        return []
