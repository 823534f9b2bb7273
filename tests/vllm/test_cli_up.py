"""`ray-agents pool up` (what `make run` runs): starts Ray and the pool, prints how to
reach it, answers, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]


def test_pool_up_serves_the_default_config_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "up.log").open("w+")
    cli = Path(sys.executable).with_name("ray-agents")
    proc = subprocess.Popen(
        [str(cli), "pool", "up", "configs/pool.yaml", "--port", str(port)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    try:
        deadline = time.monotonic() + 600
        text = ""
        while "pool ready at" not in text:
            assert proc.poll() is None, f"pool up exited early:\n{text[-3000:]}"
            assert time.monotonic() < deadline, f"no ready line:\n{text[-3000:]}"
            time.sleep(2)
            text = Path(log.name).read_text()
        url = re.search(r"pool ready at (\S+)", text)
        assert url is not None and url.group(1) == f"http://127.0.0.1:{port}/v1"
        assert "curl " in text
        reply = httpx.post(
            f"{url.group(1)}/chat/completions",
            json={
                "model": "smollm2",
                "messages": [{"role": "user", "content": "What is the capital of France?"}],
                "temperature": 0,
                "max_tokens": 24,
            },
            timeout=120,
        )
        assert reply.status_code == 200, reply.text
        assert "Paris" in reply.json()["choices"][0]["message"]["content"]
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
    assert code == 0
    assert "shutting down" in Path(log.name).read_text()
