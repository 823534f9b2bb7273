from __future__ import annotations

import subprocess
import sys

import agents
import agents.errors
import agents.pool
import agents.store
import tools


def test_all_is_sorted_and_exported() -> None:
    for module in (agents, agents.pool, agents.errors, agents.store, tools):
        names = [n for n in module.__all__ if n != "__version__"]
        assert names == sorted(names), module.__name__
        for name in module.__all__:
            assert getattr(module, name) is not None


def test_light_imports_do_not_load_ray_vllm_or_torch() -> None:
    code = (
        "import sys, agents, agents.pool, agents.pool.types, agents.pool.spec, agents.store;"
        "heavy = [m for m in ('ray', 'vllm', 'torch') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_vllm_is_imported_only_by_the_pool_server_modules() -> None:
    import pathlib

    root = pathlib.Path(agents.__file__).parent
    users = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "import vllm" in path.read_text() or "from vllm" in path.read_text()
    )
    # server.py scores text on the replica's own vLLM engine (decide_by: likelihood).
    assert users == ["pool/nixl_cpu.py", "pool/server.py"]
