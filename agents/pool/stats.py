"""Read the pool's engine statistics from Ray's Prometheus endpoint.

Ray Serve LLM exports vLLM's engine metrics (prefixed ``ray_vllm_``) per replica. The
figures here come from the engines themselves: KV-transfer counts are what the decode
engine received from prefill engines, not the ``cached_tokens`` a disaggregated
response reports (vLLM sets that to the prefill engine's own prefix-cache hits).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

__all__ = ["EngineStats", "parse_engine_stats"]

_PREFIX = "ray_vllm_"


@dataclass
class EngineStats:
    """Counters of one engine replica (cumulative since it started)."""

    replica: str
    prompt_tokens_by_source: dict[str, float] = field(default_factory=dict)
    kv_transfers: float = 0.0
    kv_bytes: float = 0.0
    kv_transfer_seconds: float = 0.0

    @property
    def kv_transfer_tokens(self) -> float:
        """Prompt tokens this engine received through KV transfer."""
        return self.prompt_tokens_by_source.get("external_kv_transfer", 0.0)

    @property
    def prefix_cache_tokens(self) -> float:
        """Prompt tokens served from this engine's own prefix cache."""
        return self.prompt_tokens_by_source.get("local_cache_hit", 0.0)


def parse_engine_stats(text: str) -> dict[str, EngineStats]:
    """Engine stats by replica id, from the text of a Prometheus scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    stats: dict[str, EngineStats] = {}
    sums: dict[str, dict[str, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(_PREFIX):
            continue
        for sample in family.samples:
            replica = sample.labels.get("ReplicaId")
            if not replica:
                continue
            entry = stats.setdefault(replica, EngineStats(replica=replica))
            name = sample.name.removeprefix(_PREFIX)
            if name == "prompt_tokens_by_source_total":
                source = sample.labels.get("source", "")
                entry.prompt_tokens_by_source[source] = (
                    entry.prompt_tokens_by_source.get(source, 0.0) + sample.value
                )
            elif name in (
                "nixl_xfer_time_seconds_count",
                "nixl_xfer_time_seconds_sum",
                "nixl_bytes_transferred_sum",
            ):
                sums[replica][name] = sums[replica].get(name, 0.0) + sample.value
    for replica, values in sums.items():
        stats[replica].kv_transfers = values.get("nixl_xfer_time_seconds_count", 0.0)
        stats[replica].kv_transfer_seconds = values.get("nixl_xfer_time_seconds_sum", 0.0)
        stats[replica].kv_bytes = values.get("nixl_bytes_transferred_sum", 0.0)
    return stats
