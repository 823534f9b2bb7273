from __future__ import annotations

from agents.pool._sessions import SessionPrefixes
from agents.pool.stats import parse_engine_stats


def test_new_tokens_counts_what_follows_the_previous_reply() -> None:
    prefixes = SessionPrefixes(max_sessions=2)
    first = list(range(100))
    assert prefixes.new_tokens("s", first) == 100
    prefixes.remember("s", first, generated=20)
    # Next turn: the old prompt, the 20-token reply (re-tokenized), a 10-token question.
    second = first + list(range(1000, 1030))
    assert prefixes.new_tokens("s", second) == 10
    # A prompt that diverges from the cached one misses from the divergence on.
    assert prefixes.new_tokens("s", first[:50] + [7] * 10) == 10
    assert prefixes.new_tokens(None, second) == len(second)
    assert prefixes.new_tokens("other", second) == len(second)


def test_sessions_are_bounded() -> None:
    prefixes = SessionPrefixes(max_sessions=2)
    for name in ("a", "b", "c"):
        prefixes.remember(name, [1, 2, 3], generated=0)
    assert prefixes.new_tokens("a", [1, 2, 3]) == 3
    assert prefixes.new_tokens("c", [1, 2, 3]) == 0


SCRAPE = """\
# HELP ray_vllm_prompt_tokens_by_source_total Prompt tokens by source.
# TYPE ray_vllm_prompt_tokens_by_source_total counter
ray_vllm_prompt_tokens_by_source_total{ReplicaId="d1",source="external_kv_transfer"} 2700.0
ray_vllm_prompt_tokens_by_source_total{ReplicaId="d1",source="local_cache_hit"} 128.0
ray_vllm_prompt_tokens_by_source_total{ReplicaId="p1",source="local_compute"} 2701.0
# HELP ray_vllm_nixl_xfer_time_seconds Transfer time.
# TYPE ray_vllm_nixl_xfer_time_seconds histogram
ray_vllm_nixl_xfer_time_seconds_bucket{ReplicaId="d1",le="+Inf"} 2.0
ray_vllm_nixl_xfer_time_seconds_count{ReplicaId="d1"} 2.0
ray_vllm_nixl_xfer_time_seconds_sum{ReplicaId="d1"} 0.05
# HELP ray_serve_other Unrelated.
# TYPE ray_serve_other counter
ray_serve_other_total{ReplicaId="d1"} 9.0
"""


def test_parse_engine_stats() -> None:
    stats = parse_engine_stats(SCRAPE)
    assert set(stats) == {"d1", "p1"}
    decode = stats["d1"]
    assert decode.kv_transfer_tokens == 2700
    assert decode.prefix_cache_tokens == 128
    assert decode.kv_transfers == 2 and decode.kv_transfer_seconds == 0.05
    assert stats["p1"].kv_transfer_tokens == 0
