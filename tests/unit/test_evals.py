"""Evals: the dataset format, every check, and runs over real HTTP against the scripted
multi-agent app (tests/fixtures/api_app.py) served in-process, through the SDK and
through ``ray-agents eval``."""

from __future__ import annotations

import asyncio
import io
import json
import textwrap
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from agents.api.app import create_app
from agents.cli import main
from agents.client import AsyncClient
from agents.errors import ConfigError
from agents.evals import EvalDataset, Expect, TurnRecord, eval_file_schema, run_eval
from agents.evals._checks import check_answer, check_turn, numbers_in, route_of, tools_of
from agents.evals._dataset import AnswerExpect
from agents.evals._progress import Progress
from agents.evals._results import ToolCallRecord
from agents.evals._serve import ServedApp
from agents.events import (
    AnswerEvent,
    ApprovalEvent,
    ApprovalRequiredEvent,
    AskEvent,
    DoneEvent,
    HandoffEvent,
    MessageEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from agents.testing import LocalApp, ScriptedGenerator
from tests.fixtures import api_app
from tests.fixtures.local_server import serving
from tools.deployment import build_registry
from tools.executor import ToolRunner
from tools.spec import ToolsConfig

REPO = Path(__file__).resolve().parents[2]
KEY = api_app.KEYS["acme"]

# Cases over the scripted app: triage hands refunds to billing; tech adds with a tool
# and shouts with one that needs approval.
DATASET = """\
# yaml-language-server: $schema=../schema/eval.schema.json
eval:
  name: scripted
  description: the scripted app
  agent: triage
  cases:
    - id: refund
      group: routing
      input: I want a refund
      expect:
        answer: {contains: refund issued, not_contains: [sorry], regex: "^billing here"}
        route: [triage, billing]
        tools: []
    - id: sum
      group: tools
      agent: tech
      input: sum two numbers
      expect:
        answer: {number: 5, any_of: [five, "5"]}
        route: [tech]
        tools: [{name: add, arguments: {a: 2}}]
        tools_excludes: shout
    - id: shout-approved
      group: tools
      agent: tech
      approve: true
      input: shout it
      expect:
        answer: {equals: "  shouted. "}
        tools: [{name: shout}]
    - id: shout-paused
      group: tools
      agent: tech
      input: shout it
      expect: {status: paused}
    - id: wrong-sum
      group: tools
      agent: tech
      input: sum two numbers
      expect:
        answer: {number: 7}
    - id: two-turns
      group: routing
      turns:
        - input: hello there
          expect: {answer: {equals: ok}, route: [triage]}
        - input: now a refund
          expect: {route: [triage, billing], route_excludes: [tech]}
        - input: another refund
          expect: {route: [billing], answer: {contains: refund issued}}
"""


@pytest.fixture
async def app_url() -> AsyncIterator[str]:
    """The scripted app's HTTP API on a free port, in this loop."""
    specs = api_app.agent_specs()
    tools = ToolsConfig.model_validate(api_app.TOOLS)
    runner = ToolRunner(build_registry(tools), grants={s.name: s.tools for s in specs})
    local = LocalApp(specs, generator=ScriptedGenerator(api_app.SCRIPT), tools=runner)
    app = create_app(local.conversations, specs, api_app.api_spec())
    try:
        async with serving(app) as url:
            yield url
    finally:
        await app.state.api.close()
        await runner.close()


def dataset_file(tmp_path: Path, text: str = DATASET, name: str = "eval.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- the dataset format ------------------------------------------------------------


def test_a_dataset_loads_with_its_defaults(tmp_path: Path) -> None:
    dataset = EvalDataset.from_file(dataset_file(tmp_path))
    assert dataset.name == "scripted" and dataset.agent == "triage" and dataset.app is None
    assert [c.id for c in dataset.cases][:2] == ["refund", "sum"]
    refund = dataset.cases[0]
    [turn] = refund.all_turns
    assert turn.input == "I want a refund" and turn.expect.status == "ok"
    answer = turn.expect.answer
    assert answer is not None and answer.contains == ["refund issued"]
    assert turn.expect.tools == []
    sum_case = dataset.cases[1]
    assert sum_case.agent == "tech" and sum_case.all_turns[0].expect.tools_excludes == ["shout"]
    two = dataset.cases[-1]
    assert [t.input for t in two.all_turns] == ["hello there", "now a refund", "another refund"]
    assert two.group == "routing" and not two.approve
    assert dataset.select(["tools"], ["sum", "refund"]) is not None
    selected = dataset.select(ids=["refund"])
    assert selected is not None and [c.id for c in selected.cases] == ["refund"]
    assert selected.path == dataset.path
    assert dataset.select(["routing"], ["sum"]) is None


def test_the_dataset_names_its_app_relative_to_itself(tmp_path: Path) -> None:
    text = "eval:\n  name: x\n  app: ../apps/app.yaml\n  cases: [{id: a, input: hi}]\n"
    (tmp_path / "sets").mkdir()
    dataset = EvalDataset.from_file(dataset_file(tmp_path / "sets", text))
    assert dataset.app_file() == tmp_path / "sets" / ".." / "apps" / "app.yaml"


@pytest.mark.parametrize(
    ("case", "line", "field", "message"),
    [
        (
            "    - id: a\n      input: hi\n      expect:\n        answer: {containz: x}\n",
            7,
            "eval.cases.0.expect.answer.containz",
            "Extra inputs are not permitted",
        ),
        ("    - id: a\n", 4, "eval.cases.0", "give either `input`"),
        (
            "    - id: a\n      input: hi\n      turns: [{input: more}]\n",
            4,
            "eval.cases.0",
            "give either `input`",
        ),
        (
            "    - id: a\n      turns: [{input: more}]\n      expect: {}\n",
            4,
            "eval.cases.0",
            "`expect` goes with `input`",
        ),
        (
            "    - id: a\n      input: hi\n      expect: {answer: {tolerance: 1}}\n",
            6,
            "eval.cases.0.expect.answer",
            "`tolerance` needs `number`",
        ),
        (
            "    - id: a\n      input: hi\n      expect: {answer: {regex: '(unclosed'}}\n",
            6,
            "eval.cases.0.expect.answer.regex",
            "not a regular expression",
        ),
        (
            "    - id: a\n      input: hi\n      expect: {answer: {json_schema: {type: 7}}}\n",
            6,
            "eval.cases.0.expect.answer.json_schema",
            "not a JSON Schema",
        ),
        (
            "    - id: a\n      input: hi\n      expect: {error_code: max_steps}\n",
            6,
            "eval.cases.0.expect",
            "`error_code` needs `status: error`",
        ),
        (
            "    - id: a\n      input: hi\n      expect: {status: done}\n",
            6,
            "eval.cases.0.expect.status",
            "'ok', 'error' or 'paused'",
        ),
        (
            "    - {id: a, input: hi}\n    - {id: a, input: again}\n",
            3,
            "eval.cases",
            "case id(s) used more than once: a",
        ),
    ],
)
def test_a_bad_dataset_names_file_line_and_field(
    tmp_path: Path, case: str, line: int, field: str, message: str
) -> None:
    path = dataset_file(tmp_path, f"eval:\n  name: bad\n  cases:\n{case}")
    with pytest.raises(ConfigError) as caught:
        EvalDataset.from_file(path)
    assert f"{path}:{line}: {field}: " in caught.value.message
    assert message in caught.value.message


def test_the_published_schema_is_current_and_checks_a_dataset(tmp_path: Path) -> None:
    published = json.loads((REPO / "configs" / "schema" / "eval.schema.json").read_text())
    assert published == eval_file_schema(), "run `ray-agents schema` to regenerate it"
    jsonschema.validate(yaml.safe_load(DATASET), published)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"eval": {"name": "x", "cases": [], "extra": 1}}, published)


def test_every_field_is_described() -> None:
    def fields(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        for name, model in schema["$defs"].items():
            for field, spec in model.get("properties", {}).items():
                yield f"{name}.{field}", spec

    undescribed = [name for name, spec in fields(eval_file_schema()) if not spec.get("description")]
    assert undescribed == []


# -- checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("12 times 7 is 84.", [12, 7, 84]),
        ("It costs 1,234 dollars, or -5 in credit", [1234, -5]),
        ("3.5 and 1e3 and 2.5E-1 and .5", [3.5, 1000, 0.25, 0.5]),
        ("84.0", [84]),
        ("12-7=5; order A1001; x2", [12, 7, 5]),
        ("1,2,3 and 1,2345", [1, 2, 3, 1, 2345]),
        ("no numbers", []),
    ],
)
def test_numbers_are_read_as_written(text: str, numbers: list[float]) -> None:
    assert numbers_in(text) == numbers


@pytest.mark.parametrize(
    ("expect", "answer", "output", "reason"),
    [
        ({"equals": "Paris"}, "  paris \n", None, None),
        ({"equals": "Paris"}, "Paris, France", None, "answer: expected 'Paris'"),
        ({"contains": ["84", "TIMES"]}, "12 times 7 is 84", None, None),
        ({"contains": "85"}, "12 times 7 is 84", None, "answer: '85' missing"),
        ({"not_contains": ["sorry"]}, "Here it is", None, None),
        ({"not_contains": "SORRY"}, "Sorry, no", None, "answer: 'SORRY' present"),
        ({"any_of": ["Paris", "Lyon"]}, "in lyon", None, None),
        ({"any_of": ["Paris", "Lyon"]}, "in Nice", None, "answer: none of 'Paris', 'Lyon'"),
        ({"regex": r"\b84\b"}, "It is 84.", None, None),
        ({"regex": r"\b84\b"}, "It is 845.", None, r"answer: no match for /\b84\b/"),
        ({"number": 84}, "It is 84.0 exactly", None, None),
        ({"number": 1234}, "1,234", None, None),
        ({"number": 0.3}, "0.30000000000000004", None, None),
        ({"number": 84}, "It is 85 or 8.4", None, "no number equals 84 (numbers: 85, 8.4)"),
        ({"number": 84, "tolerance": 1}, "about 85", None, None),
        ({"number": 84, "tolerance": 0.5}, "about 85", None, "no number equals 84"),
        ({"number": 7}, None, {"total": 7}, None),
        ({"contains": '"city": "paris"'}, "ignored", {"city": "Paris"}, None),
        ({"json_schema": {"type": "object", "required": ["a"]}}, None, {"a": 1}, None),
        ({"json_schema": {"required": ["a"]}}, None, {"b": 1}, "answer: breaks the JSON Schema"),
        ({"json_schema": {"properties": {"a": {"type": "string"}}}}, '{"a": "x"}', None, None),
        (
            {"json_schema": {"properties": {"a": {"type": "string"}}}},
            '{"a": 1}',
            None,
            "at a: 1 is not of type 'string'",
        ),
        ({"json_schema": {"type": "object"}}, "not json", None, "answer: not JSON"),
    ],
)
def test_each_answer_check_passes_and_fails(
    expect: dict[str, Any], answer: str | None, output: dict[str, Any] | None, reason: str | None
) -> None:
    failures = check_answer(AnswerExpect.model_validate(expect), answer, output)
    if reason is None:
        assert failures == []
    else:
        [failure] = failures
        assert reason in failure


def test_route_and_tools_come_from_the_events() -> None:
    events = [
        MessageEvent(content="hi", agent="front"),
        AskEvent(call_id="a1", to_agent="expert", question="?", agent="front"),
        ToolResultEvent(call_id="a1", name="ask", content="42", agent="front"),
        ToolCallEvent(call_id="c1", name="add", arguments={"a": 1}, agent="front"),
        ApprovalRequiredEvent(call_id="c1", name="add", agent="front"),
        ApprovalEvent(call_id="c1", approved=True, agent="front"),
        ToolResultEvent(call_id="c1", name="add", content="2", agent="front"),
        HandoffEvent(to_agent="billing", agent="front"),
        ToolCallEvent(call_id="c2", name="refund", agent="billing"),
        AnswerEvent(text="done", agent="billing"),
        DoneEvent(agent="billing"),
    ]
    assert route_of(events) == ["front", "expert", "front", "billing"]
    assert tools_of(events) == [
        ToolCallRecord(name="add", arguments={"a": 1}),
        ToolCallRecord(name="refund"),
    ]
    assert route_of([MessageEvent(content="hi", agent="front"), DoneEvent(agent="front")]) == []


def turn(**fields: Any) -> TurnRecord:
    return TurnRecord.model_validate({"input": "x", "status": "ok", **fields})


@pytest.mark.parametrize(
    ("expect", "observed", "reason"),
    [
        ({}, {}, None),
        (
            {},
            {"status": "error", "error_code": "max_steps", "error_message": "ran out"},
            "status: expected ok, got error (max_steps: ran out)",
        ),
        ({"status": "error", "error_code": "max_steps"}, {"status": "error"}, "got None"),
        (
            {"status": "error", "error_code": "max_steps"},
            {"status": "error", "error_code": "max_steps"},
            None,
        ),
        ({"status": "paused"}, {"status": "paused"}, None),
        ({"route": ["a", "b"]}, {"route": ["a", "b"]}, None),
        ({"route": ["a", "b"]}, {"route": ["a"]}, "route: expected a > b, got a"),
        ({"route_excludes": ["b"]}, {"route": ["a"]}, None),
        ({"route_excludes": "b"}, {"route": ["a", "b"]}, "route: b acted (route a > b)"),
        ({"tools": []}, {}, None),
        ({"tools": []}, {"tools": [{"name": "t"}]}, "tools: expected none, got t({})"),
        (
            {"tools": [{"name": "t", "arguments": {"x": {"y": 1}}}, {"name": "u"}]},
            {
                "tools": [
                    {"name": "u"},
                    {"name": "t", "arguments": {"x": {"y": 1, "z": 2}, "w": 3}},
                    {"name": "v"},
                    {"name": "u"},
                ]
            },
            None,
        ),
        (
            {"tools": [{"name": "u"}, {"name": "t"}]},
            {"tools": [{"name": "t"}, {"name": "u"}]},
            "tools: expected u({}), t({}) in this order, got t({}), u({})",
        ),
        (
            {"tools": [{"name": "t", "arguments": {"x": 1}}]},
            {"tools": [{"name": "t", "arguments": {"x": 2}}]},
            'expected t({"x": 1}) in this order',
        ),
        ({"tools_excludes": ["t"]}, {"tools": [{"name": "u"}]}, None),
        ({"tools_excludes": ["t"]}, {"tools": [{"name": "t"}]}, "tools: t called"),
    ],
)
def test_each_turn_check_passes_and_fails(
    expect: dict[str, Any], observed: dict[str, Any], reason: str | None
) -> None:
    failures = check_turn(Expect.model_validate(expect), turn(**observed))
    if reason is None:
        assert failures == []
    else:
        [failure] = failures
        assert reason in failure


def test_the_progress_bar_is_quiet_off_a_terminal_but_for_its_last_line() -> None:
    stream = io.StringIO()
    bar = Progress("set", 3, stream)
    bar.advance(True)
    bar.advance(False)
    assert stream.getvalue() == ""
    bar.advance(True)
    bar.close()
    bar.close()
    [line] = stream.getvalue().splitlines()
    assert line.startswith("set [########################] 3/3, 1 failed, ")


# -- runs over HTTP -------------------------------------------------------------------


async def test_a_run_over_http_checks_times_and_reports_every_case(
    app_url: str, tmp_path: Path
) -> None:
    dataset = EvalDataset.from_file(dataset_file(tmp_path))
    progress = io.StringIO()
    async with AsyncClient(app_url, KEY) as client:
        report = await run_eval(dataset, client, concurrency=3, repeat=2, progress=progress)
    assert progress.getvalue().startswith("scripted [")
    results = {(c.id, c.run): c for c in report.cases}
    assert [c.id for c in report.cases][:4] == ["refund", "refund", "sum", "sum"]
    failed = sorted({c.id for c in report.failed})
    assert failed == ["wrong-sum"], [c.failures for c in report.failed]
    [reason] = results["wrong-sum", 1].failures
    assert reason == "answer: no number equals 7 (numbers: 5)"

    refund = results["refund", 0].turns[0]
    assert refund.answer == "Billing here: refund issued." and refund.route == ["triage", "billing"]
    assert refund.usage.steps >= 2 and refund.usage.prompt_tokens > 0 and refund.latency_s > 0
    total = results["sum", 0].turns[0]
    assert total.tools == [ToolCallRecord(name="add", arguments={"a": 2, "b": 3})]
    shouted = results["shout-approved", 0].turns[0]
    assert shouted.status == "ok" and shouted.approvals == 1 and shouted.answer == "Shouted."
    assert shouted.route == ["tech"] and [t.name for t in shouted.tools] == ["shout"]
    paused = results["shout-paused", 0].turns[0]
    assert paused.status == "paused" and paused.approvals == 0
    two = results["two-turns", 0]
    assert [t.route for t in two.turns] == [["triage"], ["triage", "billing"], ["billing"]]
    assert two.conversation_id and two.conversation_id != results["two-turns", 1].conversation_id

    assert report.overall.runs == 12 and report.overall.passed == 10 and report.overall.cases == 6
    assert report.pass_rate == pytest.approx(10 / 12)
    groups = {g.group: g for g in report.groups}
    assert list(groups) == ["routing", "tools"]
    assert groups["routing"].pass_rate == 1.0 and groups["routing"].runs == 4
    assert groups["tools"].passed == 6 and groups["tools"].top_route == "tech"
    routing = groups["routing"]
    assert routing.latency_p50_s is not None and routing.latency_p99_s is not None
    assert 0 < routing.latency_p50_s <= routing.latency_p99_s
    assert routing.mean_steps is not None and routing.mean_steps >= 1

    data = json.loads(report.model_dump_json())
    assert set(data) == {
        "name", "description", "target", "started_at", "duration_s", "concurrency", "repeat",
        "overall", "groups", "cases",
    }  # fmt: skip
    case = data["cases"][0]
    assert {"id", "group", "run", "passed", "latency_s", "failures", "turns"} <= set(case)
    assert {"answer", "route", "tools", "latency_s", "usage", "failures", "status"} <= set(
        case["turns"][0]
    )
    assert data["overall"]["group"] == "(all)" and data["target"] == app_url

    table = report.table()
    assert "routing" in table and "tools" in table and "(all)" in table and "83%" in table
    assert "FAIL wrong-sum (run 0): answer: no number equals 7" in report.failures_text()
    png = tmp_path / "out" / "report.png"
    report.write_png(png)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


async def test_a_failed_request_fails_its_case_not_the_run(tmp_path: Path) -> None:
    dataset = EvalDataset.from_file(dataset_file(tmp_path))
    async with AsyncClient("http://127.0.0.1:9", KEY, max_retries=0) as client:
        selected = dataset.select(ids=["refund"])
        assert selected is not None
        report = await run_eval(selected, client, show_progress=False)
    [case] = report.cases
    assert case.conversation_id is None and case.turns == []
    assert case.failures[0].startswith("the conversation could not be created: APIConnectionError")


async def test_the_command_fails_under_min_pass_and_writes_its_files(
    app_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = dataset_file(tmp_path)
    out, png = tmp_path / "results" / "{name}.json", tmp_path / "results" / "{name}.png"

    def run(*extra: str) -> int:
        args = ["eval", str(path), "--url", app_url, "--api-key", KEY, *extra]
        return main([*args, "--out", str(out), "--png", str(png)])

    assert await asyncio.to_thread(run, "--min-pass", "0.9") == 1
    printed = capsys.readouterr().out
    assert "FAILED: scripted: pass rate 83.3% (5/6) is under --min-pass 90.0%" in printed
    assert "FAIL wrong-sum: answer: no number equals 7" in printed
    report = json.loads((tmp_path / "results" / "scripted.json").read_text())
    assert len(report["cases"]) == 6
    assert (tmp_path / "results" / "scripted.png").read_bytes()[:4] == b"\x89PNG"

    assert await asyncio.to_thread(run, "--min-pass", "0.8", "--concurrency", "1") == 0
    assert await asyncio.to_thread(run, "--min-pass", "1", "--group", "routing") == 0
    assert await asyncio.to_thread(run, "--min-pass", "1", "--case", "wrong-sum") == 1
    report = json.loads((tmp_path / "results" / "scripted.json").read_text())
    assert [c["id"] for c in report["cases"]] == ["wrong-sum"]


@contextmanager
def fake_serving(url: str, served: list[Path]) -> Iterator[None]:
    """``_serve`` without Ray: every app file is "served" at ``url``."""
    from agents.evals import _serve

    @contextmanager
    def local_serve() -> Iterator[int]:
        yield 0

    @contextmanager
    def served_app(app_file: Path, port: int) -> Iterator[ServedApp]:
        served.append(app_file)
        yield ServedApp(url, KEY)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_serve, "local_serve", local_serve)
        patch.setattr(_serve, "served_app", served_app)
        yield


async def test_each_app_is_served_once_for_its_datasets(app_url: str, tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text("app: {}\n")  # only its path matters here
    one = dataset_file(tmp_path, DATASET.replace("agent: triage", "app: app.yaml"), "one.yaml")
    other = DATASET.replace("name: scripted", "name: other").replace("agent: triage", "")
    two = dataset_file(tmp_path, other, "two.yaml")
    served: list[Path] = []
    with fake_serving(app_url, served):
        args = ["eval", str(one), str(two), "--case", "refund", "--min-pass", "1"]
        assert await asyncio.to_thread(main, [*args, "--config", str(tmp_path / "app.yaml")]) == 0
        assert served == [tmp_path / "app.yaml"]
        # Without --config, a dataset's own `app:`; one without any is an error.
        assert await asyncio.to_thread(main, [*args[:2], "--case", "refund"]) == 0
        assert served[-1] == tmp_path / "app.yaml"
        assert await asyncio.to_thread(main, [*args[:3], "--case", "refund"]) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--case", "nope"], "no dataset has case 'nope'"),
        (["--group", "nope", "--url", "http://x"], "no dataset has group 'nope'"),
        (["--out", "one.json", "--url", "http://x"], "--out with several datasets needs {name}"),
        (["--min-pass", "95"], "--min-pass is a fraction from 0 to 1"),
        (["--config", "missing.yaml"], "missing.yaml: no such app file"),
        ([], "where should it run? Give --url or --config"),
    ],
)
def test_the_command_refuses_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    one = dataset_file(tmp_path, name="one.yaml")
    two = dataset_file(tmp_path, DATASET.replace("name: scripted", "name: other"), "two.yaml")
    assert main(["eval", str(one), str(two), *extra]) == 1
    assert message in capsys.readouterr().err


def test_a_bad_dataset_fails_the_command_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = dataset_file(tmp_path, "eval:\n  name: x\n  cases:\n    - {id: a, input: hi, x: 1}\n")
    assert main(["eval", str(path), "--url", "http://x"]) == 1
    assert f"{path}:4: eval.cases.0.x: Extra inputs are not permitted" in capsys.readouterr().err


def test_the_public_names_are_sorted_and_exported() -> None:
    import agents.evals

    assert agents.evals.__all__ == sorted(agents.evals.__all__)
    assert all(getattr(agents.evals, name) is not None for name in agents.evals.__all__)


def test_ray_agents_schema_writes_the_eval_schema(tmp_path: Path) -> None:
    assert main(["schema", "--out", str(tmp_path)]) == 0
    written = json.loads((tmp_path / "eval.schema.json").read_text())
    assert written == eval_file_schema()


def test_the_evals_package_loads_neither_ray_nor_the_server() -> None:
    import subprocess
    import sys

    code = (
        "import sys, agents.evals, agents.evals._command, agents.evals._serve;"
        "heavy = [m for m in ('ray', 'vllm', 'torch', 'fastapi', 'agents.conversations')"
        " if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_dataset_in_the_docstring_format_reads(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        eval:
          name: default-app
          cases:
            - id: mul-times
              group: arithmetic
              input: "What is 12 times 7?"
              expect:
                status: ok
                answer: {contains: ["84"], regex: "\\\\b84\\\\b", number: 84, tolerance: 0.001}
                route: [assistant, math]
                tools:
                  - name: calculator
                    arguments: {expression: "12*7"}
        """
    )
    dataset = EvalDataset.from_file(dataset_file(tmp_path, text))
    expect = dataset.cases[0].all_turns[0].expect
    assert expect.answer is not None and expect.answer.regex == r"\b84\b"
    assert expect.tools is not None and expect.tools[0].arguments == {"expression": "12*7"}
