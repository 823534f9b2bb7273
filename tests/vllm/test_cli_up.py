"""What `make run` runs, on the default config with the real default model: it starts
Ray and the app, and the README's curl is answered. (Ray's own `serve run` of the same
builder is in tests/serve/test_serve_run.py, on the scripted engine.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.fixtures.commands import BIN, REPO, start, stop, wait_for

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]


def readme_curl() -> str:
    """The first `curl` command of the README (backslash continuations joined)."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(curl .*?)\n```", text, re.S)
    assert block is not None, "the README shows no curl"
    return block.group(1).replace("\\\n", " ")


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
