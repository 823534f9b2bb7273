"""The app config: interpolation, includes, relative paths, cross-references, the
bad-config corpus, the committed schemas and the commands around them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

import agents.config
from agents.api.spec import ApiSpec, hash_key
from agents.cli import main
from agents.config import AppConfig, agent_file_schema, app_file_schema, load_app_config
from agents.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
BAD = REPO / "tests" / "fixtures" / "bad_configs"
CORPUS = sorted(BAD.glob("*.yaml"))
APPS = [REPO / "configs" / "app.yaml", *sorted((REPO / "examples").glob("*/app.yaml"))]
POOL = "pool:\n  models: [{id: m, source: builtin:smollm2-135m-instruct}]\n"


def write(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


def app(folder: Path, body: str, name: str = "app.yaml") -> Path:
    """An app file: the one-model pool plus ``body``."""
    return write(folder, name, POOL + textwrap.dedent(body))


def problems(path: Path, **kw: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_app_config(path, **kw)  # type: ignore[arg-type]
    return str(info.value).splitlines()


# -- the bad-config corpus -------------------------------------------------------------


def expectation(case: Path) -> tuple[str, str]:
    """``(file:line: field: , message fragment)`` from the case's ``# expect:`` line."""
    header = re.search(r"^# expect: (.*)$", case.read_text(), re.MULTILINE)
    assert header is not None, f"{case.name} has no '# expect:' line"
    spec = header.group(1).replace("{dir}", str(BAD))
    where, _, rest = spec.partition(": ")
    file, line = (where.rsplit(":", 1)) if ":" in where else (case.name, where)
    field, _, message = rest.partition(": ")
    return f"{BAD / file}:{line}: {field}", message


def test_the_corpus_has_at_least_25_distinct_cases() -> None:
    assert len(CORPUS) >= 25
    cases = {(where.split(": ", 1)[1], message) for where, message in map(expectation, CORPUS)}
    assert len(cases) == len(CORPUS)


@pytest.fixture(autouse=True)
def _unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RAY_AGENTS_BAD_CONFIG_UNSET", "RAY_AGENTS_BAD_CONFIG_COMPANY", "RAY_AGENTS_DB"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("case", CORPUS, ids=[c.stem for c in CORPUS])
def test_each_bad_config_names_file_line_and_field(
    case: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where, message = expectation(case)
    found = [p for p in problems(case) if p.startswith(where)]
    assert found, f"no problem at {where}; got: {problems(case)}"
    assert any(message in p for p in found), found
    # The command says the same, on stderr, and fails.
    assert main(["validate", str(case)]) == 1
    err = capsys.readouterr().err
    assert any(line.startswith(f"error: {where}") and message in line for line in err.splitlines())


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "app.yaml",
        """\
        pool:
          models:
            - {id: m, source: builtin:smollm2-135m-instruct, colour: red}
        agents:
          - {name: a, model: m, max_steps: ten}
        api:
          keys: [{tenant: t, sha256: nope}]
        """,
    )
    assert [p.split(": ")[1] for p in problems(path)] == [
        "pool.models.0.colour",
        "agents.0.max_steps",
        "api.keys.0.sha256",
    ]


def test_every_broken_reference_is_reported_at_once(tmp_path: Path) -> None:
    path = app(
        tmp_path,
        """\
        tools:
          tools: [{builtin: calculator}, {function: nowhere_xyz:f}]
        app: {default_agent: nobody}
        agents:
          - {name: a, model: x, handoffs: [b], asks: [c], tools: [calculator, clock]}
          - include: missing/*.yaml
        """,
    )
    fields = [p.split(": ")[1] for p in problems(path)]
    assert fields == [
        "agents.1.include",  # found while loading; the references are checked after it
    ]
    (tmp_path / "missing").mkdir()
    write(tmp_path, "missing/b.yaml", "agent: {name: b, model: m}\n")
    fields = [p.split(": ")[1] for p in problems(path)]
    assert fields == [
        "app.default_agent",
        "tools.tools.1.function",
        "agents.0.model",
        "agents.0.asks.0",
        "agents.0.tools.1",
    ]


def test_a_problem_in_an_included_agent_names_that_file(tmp_path: Path) -> None:
    path = app(tmp_path, "agents:\n  - include: agents/*.yaml\n")
    write(tmp_path, "agents/a.yaml", "agent:\n  name: a\n  model: m\n  handoffs: [ghost]\n")
    [problem] = problems(path)
    assert problem == (
        f"{tmp_path}/agents/a.yaml:4: agent.handoffs.0: no agent named 'ghost'; known: a"
    )


# -- interpolation -------------------------------------------------------------------


def test_environment_variables_and_defaults(tmp_path: Path) -> None:
    path = app(
        tmp_path,
        """\
        agents:
          - name: a
            model: m
            description: "${TEAM} team, ${MISSING:-no} default, $${literal}, ${EMPTY:-}"
            instructions: You work for ${company}.
            variables: {company: "${COMPANY:-Acme}"}
        store:
          backend: postgres
          dsn: postgresql://${DB_USER}@localhost/${DB_NAME:-test}
        """,
    )
    env = {"TEAM": "Blue", "DB_USER": "ray", "COMPANY": "Globex"}
    config = load_app_config(path, environ=env)
    [agent] = config.agent_specs
    assert agent.description == "Blue team, no default, ${literal}, "
    # Instructions keep their placeholders: they are filled per conversation.
    assert agent.instructions == "You work for ${company}."
    assert agent.variables == {"company": "Globex"}
    assert config.store.dsn == "postgresql://ray@localhost/test"


def test_included_agents_are_interpolated_too(tmp_path: Path) -> None:
    path = app(tmp_path, "agents:\n  - include: a.yaml\n")
    write(
        tmp_path,
        "a.yaml",
        """\
        agent:
          name: a
          model: m
          description: ${WHAT}
          instructions: Hi ${who}.
          variables: {who: "${WHO:-you}"}
        """,
    )
    [agent] = load_app_config(path, environ={"WHAT": "helps"}).agent_specs
    assert (agent.description, agent.instructions, agent.variables) == (
        "helps",
        "Hi ${who}.",
        {"who": "you"},
    )


def test_numbers_and_booleans_from_the_environment(tmp_path: Path) -> None:
    path = app(
        tmp_path,
        "agents: [{name: a, model: m}]\napi: {port: '${PORT}', open: '${OPEN:-false}'}\n",
    )
    config = load_app_config(path, environ={"PORT": "9100"})
    assert (config.api.port, config.api.open) == (9100, False)


# -- includes and relative paths -----------------------------------------------------


def test_includes_resolve_against_the_file_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app(
        tmp_path,
        """\
        agents:
          - {name: first, model: m, handoffs: [b]}
          - include: team/*.yaml
          - {name: last, model: m}
        """,
        name="conf/app.yaml",
    )
    write(tmp_path, "conf/team/b.yaml", "agent: {name: b, model: m}\n")
    write(tmp_path, "conf/team/a.yaml", "name: a\nmodel: m\n")  # the section is optional
    write(tmp_path, "conf/team/notes.txt", "not an agent")
    monkeypatch.chdir(tmp_path)
    config = load_app_config("conf/app.yaml")
    assert [a.name for a in config.agent_specs] == ["first", "a", "b", "last"]
    assert config.agents == config.agent_specs and config.default_agent == "first"


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "conf" / "tools").mkdir(parents=True)
    path = write(
        tmp_path,
        "conf/app.yaml",
        """\
        app: {python_path: [tools, /opt/shared]}
        pool:
          model_cache_dir: ../cache
          models:
            - {id: m, source: ../models/tiny}
            - {id: b, source: builtin:smollm2-135m-instruct}
        tools:
          mcp_servers:
            - {name: w, command: [python, ./weather.py, --flag, ../x]}
        agents: [{name: a, model: m}]
        store: {path: state/c.db}
        """,
    )
    with pytest.raises(ConfigError, match=r"app\.python_path\.1: no such folder: /opt/shared"):
        load_app_config(path)
    path.write_text(path.read_text().replace(", /opt/shared", ""))
    config = load_app_config(path)
    conf = tmp_path / "conf"
    assert config.app.python_path == [str(conf / "tools")]
    assert config.pool.model_cache_dir == tmp_path / "cache"
    assert [m.source for m in config.pool.models] == [
        str(tmp_path / "models" / "tiny"),
        "builtin:smollm2-135m-instruct",
    ]
    assert config.tools is not None
    assert config.tools.mcp_servers[0].command == [
        "python",
        str(conf / "weather.py"),
        "--flag",
        str(tmp_path / "x"),
    ]
    assert config.store.path == str(conf / "state" / "c.db")
    assert str(conf / "tools") in sys.path


def test_tool_modules_import_from_python_path(tmp_path: Path) -> None:
    write(tmp_path, "lib/app_tools_for_test.py", "def ping() -> str:\n    return 'pong'\n")
    path = app(
        tmp_path,
        """\
        app: {python_path: [lib]}
        tools:
          tools: [{function: app_tools_for_test:ping}]
        agents: [{name: a, model: m, tools: [ping]}]
        """,
    )
    assert load_app_config(path).agent_specs[0].tools == ["ping"]


def test_mcp_tools_are_known_by_their_server_prefix(tmp_path: Path) -> None:
    path = app(
        tmp_path,
        """\
        tools:
          mcp_servers: [{name: weather, command: [python, -m, weather]}]
        agents: [{name: a, model: m, tools: [weather.forecast]}]
        """,
    )
    assert load_app_config(path).agent_specs[0].tools == ["weather.forecast"]


# -- the shipped configs -------------------------------------------------------------


@pytest.mark.parametrize("path", APPS, ids=[p.parent.name for p in APPS])
def test_shipped_apps_validate(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # examples/kubernetes names its DSN by variable (its Secret gives it in the cluster).
    monkeypatch.setenv("RAY_AGENTS_PG_DSN", "postgresql://agents@postgres:5432/agents")
    config = load_app_config(path)
    assert len(config.agent_specs) >= 2
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert all(line.startswith("ok: ") for line in out)
    names = ", ".join(a.name for a in config.agent_specs)
    assert f"ok: {len(config.agent_specs)} agent(s): {names}" in out


@pytest.mark.parametrize("path", APPS, ids=[p.parent.name for p in APPS])
def test_shipped_apps_match_the_published_schema(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(.+)", first)
    assert match is not None, "the first line points editors at the schema"
    schema_file = (path.parent / match.group(1)).resolve()
    assert schema_file == REPO / "configs" / "schema" / "app.schema.json"
    jsonschema.validate(yaml.safe_load(path.read_text()), json.loads(schema_file.read_text()))


def test_default_app_agent_files_match_their_schema() -> None:
    schema = json.loads((REPO / "configs" / "schema" / "agent.schema.json").read_text())
    files = sorted((REPO / "configs" / "agents").glob("*.yaml"))
    assert files
    for path in files:
        assert path.read_text().startswith(
            "# yaml-language-server: $schema=../schema/agent.schema.json\n"
        )
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_default_app_has_the_documented_dev_key() -> None:
    config = load_app_config(REPO / "configs" / "app.yaml")
    assert not config.api.open
    assert [k.sha256 for k in config.api.keys] == [hash_key("dev-local-key")]
    assert config.default_agent == "assistant"


def test_published_schemas_are_current() -> None:
    published = REPO / "configs" / "schema"
    assert json.loads((published / "app.schema.json").read_text()) == app_file_schema()
    assert json.loads((published / "agent.schema.json").read_text()) == agent_file_schema()


def test_every_field_of_the_app_sections_is_described() -> None:
    schema = app_file_schema()
    for name in ("AppSection", "AgentInclude"):
        for field, value in schema["$defs"][name]["properties"].items():
            assert "description" in value, f"{name}.{field}"
    for field, value in schema["properties"].items():
        assert "description" in value, field


# -- commands ------------------------------------------------------------------------


def test_schema_command_writes_every_schema(tmp_path: Path) -> None:
    assert main(["schema", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "agent.schema.json",
        "app.schema.json",
        "eval.schema.json",
        "pool.schema.json",
    ]


def test_keys_new_prints_a_key_and_its_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "new", "--tenant", "acme"]) == 0
    out = capsys.readouterr().out
    key = re.search(r"^key: (\S+)$", out, re.MULTILINE)
    assert key is not None and len(key.group(1)) >= 40
    assert f"- tenant: acme\n  sha256: {hash_key(key.group(1))}\n" in out
    assert "  scopes: [conversations]\n" in out  # approvals only when asked for
    assert main(["keys", "new"]) == 0
    assert key.group(1) not in capsys.readouterr().out  # a fresh key each time
    assert main(["keys", "new", "--scope", "conversations", "--scope", "approvals"]) == 0
    out = capsys.readouterr().out
    assert "  scopes: [conversations, approvals]\n" in out
    assert re.search(r"RAY_AGENTS_API_KEYS}: default:[0-9a-f]{64}:conversations\+approvals", out)


def test_keys_from_the_environment_carry_scopes(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = hash_key("a"), hash_key("b")
    monkeypatch.setenv("RAY_AGENTS_API_KEYS", f"acme:{a},acme:{b}:conversations+approvals")
    keys = ApiSpec().all_keys()
    assert keys[a].scopes == ["conversations"] and keys[b].scopes == ["conversations", "approvals"]
    monkeypatch.setenv("RAY_AGENTS_API_KEYS", f"acme:{a}:admin")
    with pytest.raises(ConfigError, match="item 1 must be"):
        ApiSpec().all_keys()


def test_chat_command_calls_the_sdk_chat(monkeypatch: pytest.MonkeyPatch) -> None:
    import agents.client._chat as chat

    calls: list[tuple[str, str, str | None]] = []

    def fake(agent: str, *, url: str, key: str | None) -> int:
        calls.append((agent, url, key))
        return 0

    monkeypatch.setattr(chat, "run_chat", fake)
    monkeypatch.delenv("RAY_AGENTS_URL", raising=False)
    monkeypatch.delenv("RAY_AGENTS_API_KEY", raising=False)
    assert main(["chat", "triage"]) == 0
    assert main(["chat", "billing", "--url", "http://h:1", "--key", "k"]) == 0
    monkeypatch.setenv("RAY_AGENTS_URL", "http://env:2")
    monkeypatch.setenv("RAY_AGENTS_API_KEY", "secret")
    assert main(["chat", "triage"]) == 0
    assert calls == [
        ("triage", "http://127.0.0.1:8000", None),
        ("billing", "http://h:1", "k"),
        ("triage", "http://env:2", "secret"),
    ]


def test_config_exports_are_sorted_and_light() -> None:
    assert agents.config.__all__ == sorted(agents.config.__all__)
    assert agents.config.AppConfig is AppConfig
    code = (
        "import sys, agents.config;print([m for m in ('ray', 'vllm', 'torch') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_check_app_names_fields_of_an_app_built_in_python() -> None:
    from agents.config import check_app
    from agents.pool.spec import PoolSpec
    from agents.spec import AgentSpec
    from tools.spec import ToolsConfig, ToolSpec

    pool = PoolSpec.model_validate({"models": [{"id": "m", "source": "builtin:x"}]})
    config = AppConfig(
        pool=pool,
        tools=ToolsConfig(tools=[ToolSpec(builtin="calculator")]),
        agents=[
            AgentSpec(name="a", model="m", tools=["calculator", "clock"], handoffs=["b"]),
            AgentSpec(name="b", model="n"),
        ],
    )
    with pytest.raises(ConfigError) as info:
        check_app(config)
    assert str(info.value).splitlines() == [
        "pool.models.0.source: unknown built-in model; known: builtin:smollm2-135m-instruct",
        "agents.0.tools.1: no tool named 'clock'; known: calculator",
        "agents.1.model: the pool serves no model 'n'; known: m",
    ]


@pytest.mark.parametrize(
    ("store", "field"),
    [({"backend": "memory"}, "store.backend"), ({"path": ":memory:"}, "store.path")],
)
def test_a_served_app_refuses_a_store_each_deployment_would_own(
    store: dict[str, str], field: str
) -> None:
    from agents.builder import build_agents_app
    from agents.pool.spec import PoolSpec
    from agents.spec import AgentSpec
    from agents.store.spec import StoreSpec

    pool = PoolSpec.model_validate(
        {"models": [{"id": "m", "source": "builtin:smollm2-135m-instruct"}]}
    )
    with pytest.raises(ConfigError, match=f"^{field}: .*one process") as caught:
        build_agents_app([AgentSpec(name="a", model="m")], pool, store=StoreSpec(**store))  # type: ignore[arg-type]
    assert "a served app needs" in str(caught.value)
    # In one process (LocalApp, tests) the in-memory store is fine: it is only refused here.
    assert StoreSpec(backend="sqlite", path="/tmp/c.db").unshared() is None
