"""What `make run` runs, and Ray's own `serve run`, on the default config with the real
default model: each starts Ray and the app, and an agent answers."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx
import psutil
import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def readme_curl() -> str:
    """The first `curl` command of the README (backslash continuations joined)."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(curl .*?)\n```", text, re.S)
    assert block is not None, "the README shows no curl"
    return block.group(1).replace("\\\n", " ")


def wait_for(log: Path, pattern: str, proc: subprocess.Popen[bytes], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    text = ""
    while not re.search(pattern, text):
        assert proc.poll() is None, f"exited early:\n{text[-3000:]}"
        assert time.monotonic() < deadline, f"no {pattern!r} in:\n{text[-3000:]}"
        time.sleep(2)
        text = log.read_text()
    return text


def start(args: list[str], log: IO[bytes], **env: str) -> subprocess.Popen[bytes]:
    # A session of its own: stop() can take the command's whole local Ray down with it.
    return subprocess.Popen(
        args,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "RAY_ADDRESS": "", **env},
        start_new_session=True,
    )


def group(pgid: int) -> list[psutil.Process]:
    """The live processes of a process group, its leader excepted."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != pgid and os.getpgid(proc.pid) == pgid:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def command(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return f"pid {proc.pid} (gone)"


def stop(proc: subprocess.Popen[bytes], log: Path) -> tuple[int, list[str]]:
    """Ctrl-C, as a user would; returns the exit code and the commands of what it left
    running 10 s after it exited (its Ray), which are killed. A command still up after
    5 min is killed with its Ray (nothing may outlive the test and eat the memory of
    later tests), and the test fails with the end of its ``log``."""
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        tail = log.read_text(errors="replace")[-4000:]
        raise AssertionError(f"still running 300 s after Ctrl-C; its log ends:\n{tail}") from None
    finally:
        _, left = psutil.wait_procs(group(proc.pid), timeout=10)
        commands = [command(p) for p in left]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return code, commands


def test_up_serves_the_default_app_and_the_readme_curl_answers(tmp_path: Path) -> None:
    path = tmp_path / "up.log"
    env = {"RAY_AGENTS_DB": str(tmp_path / "conversations.db")}
    with path.open("wb") as log:
        proc = start([str(BIN / "ray-agents"), "up"], log, **env)
        try:
            text = wait_for(path, r"app 'agents' ready at (\S+)\.", proc, 600)
            assert "agents: assistant (default), math" in text
            assert "curl http://127.0.0.1:8000/v1/chat/completions" in text
            reply = subprocess.run(
                ["bash", "-c", readme_curl() + " --silent --max-time 300"],
                capture_output=True,
                text=True,
                check=True,
            )
            body = httpx.Response(200, content=reply.stdout).json()
            assert body["object"] == "chat.completion", body
            assert body["choices"][0]["message"]["content"].strip(), body
        finally:
            code, left = stop(proc, path)
    assert code == 0
    assert not left, f"`ray-agents up` left these running after it exited: {left}"
    assert "shutting down" in path.read_text()


def test_serve_run_serves_the_default_app(tmp_path: Path) -> None:
    path = tmp_path / "serve.log"
    env = {"RAY_AGENTS_DB": str(tmp_path / "conversations.db")}
    with path.open("wb") as log:
        proc = start([str(BIN / "serve"), "run", "serve_app:app"], log, **env)
        try:
            wait_for(path, r"Application 'default' is ready at", proc, 600)
            reply = httpx.post(
                "http://127.0.0.1:8000/v1/chat/completions",
                headers={"Authorization": "Bearer dev-local-key"},
                json={"model": "assistant", "messages": [{"role": "user", "content": "Hello!"}]},
                timeout=300,
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["choices"][0]["message"]["content"].strip()
        finally:
            stop(proc, path)
