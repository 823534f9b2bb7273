"""PNGs from the committed benchmark results (matplotlib, no display needed).

    python -m benchmarks.plots [--results benchmarks/results]

Each figure is drawn from one JSON file and skipped (with a line saying so) when the
file or the part it needs is missing:

- ``peers-latency.png``: W1 turn latency CDF per system (``peers.json``);
- ``peers-throughput.png``: W1 turns/s per system, with failed turns (``peers.json``);
- ``peers-cpu.png``: W1 CPU seconds per turn per part of the stack (engines, Serve
  replicas, Ray, the client...), per system (``peers.json``);
- ``pool-streams.png``: tokens/s of the pool and of vLLM's own server at 1 and 16
  streams, per round (``pool.json``);
- ``pool-mixed-itl.png``: inter-token latency CDF of short chats while long prompts
  arrive, per layout (``pool.json``);
- ``agents-hop.png``: a hand-off and an ask hop beside a bare Serve handle call and a
  bare Ray actor call (``agents.json``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

Figure = Callable[[dict[str, Any], Path], None]


def save(fig: Any, out: Path) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def cdf(ax: Any, samples: Sequence[float], label: str) -> None:
    xs = sorted(samples)
    if xs:
        ax.step(xs, [(i + 1) / len(xs) for i in range(len(xs))], where="post", label=label)


def peers_latency(results: dict[str, Any], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, system in results["systems"].items():
        n = len(system["latency_s"])
        cdf(ax, system["latency_s"], f"{name} (n={n}, p99 {system['spread']['p99']:.1f} s)")
    settings = results["settings"]
    ax.set(
        xlabel="turn latency (s)",
        ylabel="share of turns",
        title=(
            f"W1: {settings['conversations']} conversations x {settings['turns']} turns, "
            f"{settings['rounds']} rounds"
        ),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, out)


def peers_throughput(results: dict[str, Any], out: Path) -> None:
    names = list(results["systems"])
    systems = [results["systems"][n] for n in names]
    fig, ax = plt.subplots(figsize=(7, 4))
    bars = ax.bar(names, [s["turns_per_s"] for s in systems], color="tab:blue")
    for bar, s in zip(bars, systems, strict=True):
        ax.annotate(
            f"{s['turns_per_s']:.2f}\nfailed {s['failed']}/{s['turns']}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set(ylabel="turns/s", title="W1 throughput (same engines: 2 x 1 core, SmolLM2)")
    ax.tick_params(axis="x", labelsize=8, rotation=15)
    ax.margins(y=0.2)
    save(fig, out)


def peers_cpu(results: dict[str, Any], out: Path) -> None:
    names = [n for n, s in results["systems"].items() if s.get("cpu_s")]
    if not names:
        raise LookupError("peers.json has no cpu_s (measured before CpuMeter)")
    systems = [results["systems"][n] for n in names]
    per_turn = [{role: cpu / s["turns"] for role, cpu in s["cpu_s"].items()} for s in systems]
    # The largest parts by name; the rest of each system's CPU in one "rest" slice.
    totals: dict[str, float] = {}
    for shares in per_turn:
        for role, cpu in shares.items():
            totals[role] = totals.get(role, 0.0) + cpu
    shown = sorted(totals, key=lambda r: -totals[r])[:7]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    bottoms = [0.0] * len(names)
    for i, role in enumerate([*shown, "rest"]):
        values = [
            sum(c for r, c in shares.items() if r not in shown)
            if role == "rest"
            else shares.get(role, 0.0)
            for shares in per_turn
        ]
        ax.bar(names, values, bottom=bottoms, label=role, color=f"C{i}")
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    ax.set(ylabel="CPU seconds per turn", title="W1: where the CPU went, per part of the stack")
    ax.tick_params(axis="x", labelsize=8, rotation=15)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save(fig, out)


def pool_streams(results: dict[str, Any], out: Path) -> None:
    runs = (results.get("server") or {}).get("runs")
    if not runs:
        raise LookupError("pool.json has no server.runs")
    fig, ax = plt.subplots(figsize=(7, 4))
    streams = sorted({r["streams"] for r in runs})
    sides = sorted({r["side"] for r in runs})
    width = 0.8 / len(sides)
    for i, side in enumerate(sides):
        for j, n in enumerate(streams):
            values = [r["tokens_per_s"] for r in runs if r["side"] == side and r["streams"] == n]
            xs = [j + i * width - 0.4 + width / 2] * len(values)
            ax.scatter(xs, values, color=f"C{i}", label=side if j == 0 else None, zorder=3)
            ax.bar(xs[0], sorted(values)[len(values) // 2], width=width, color=f"C{i}", alpha=0.4)
    ax.set_xticks(range(len(streams)), [f"{n} streams" for n in streams])
    ax.set(ylabel="tokens/s (bar: median round; dots: rounds)", title="pool vs vLLM's server")
    ax.legend(fontsize=8)
    save(fig, out)


def pool_mixed_itl(results: dict[str, Any], out: Path) -> None:
    configs = (results.get("mixed") or {}).get("configs") or {}
    if not configs:
        raise LookupError("pool.json has no mixed.configs")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, config in configs.items():
        gaps = [g * 1000 for request in config["short"]["itl_s"] for g in request]
        cdf(ax, gaps, f"{config.get('label', name)} (n={len(gaps)} gaps)")
    ax.set(
        xscale="log",
        xlabel="inter-token latency (ms, log)",
        ylabel="share of gaps",
        title="short chats' ITL while long prompts arrive",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, out)


def agents_hop(results: dict[str, Any], out: Path) -> None:
    hop = results.get("hop") or {}
    calls, derived = hop.get("calls") or {}, hop.get("derived") or {}
    wanted = {
        "bare Ray\nactor call": calls.get("ray_actor_call"),
        "bare Serve\nhandle call": calls.get("serve_handle_call"),
        "hand-off hop": derived.get("handoff_hop"),
        "ask hop": derived.get("ask_hop"),
    }
    shown = {k: v["samples"] for k, v in wanted.items() if v and v.get("samples")}
    if not shown:
        raise LookupError("agents.json has no hop samples")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.boxplot(list(shown.values()), showfliers=False)
    ax.set_xticks(range(1, len(shown) + 1), list(shown), fontsize=8)
    ax.set(ylabel="ms", title="one hop beside the bare calls (scripted engine)")
    save(fig, out)


FIGURES: dict[str, tuple[str, Figure]] = {
    "peers-latency.png": ("peers.json", peers_latency),
    "peers-throughput.png": ("peers.json", peers_throughput),
    "peers-cpu.png": ("peers.json", peers_cpu),
    "pool-streams.png": ("pool.json", pool_streams),
    "pool-mixed-itl.png": ("pool.json", pool_mixed_itl),
    "agents-hop.png": ("agents.json", agents_hop),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    for png, (source, draw) in FIGURES.items():
        path = args.results / source
        if not path.exists():
            print(f"skipped {png}: no {path}")
            continue
        try:
            draw(json.loads(path.read_text()), args.results / png)
        except (LookupError, TypeError) as exc:
            print(f"skipped {png}: {exc}")
            continue
        print(f"wrote {args.results / png}")


if __name__ == "__main__":
    main()
