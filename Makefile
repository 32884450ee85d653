# Moldau: `make dev` runs a broker, `make test` runs the whole suite, `make bench` measures.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 9092
DATA ?= ./data

SEEDS ?= 20
FAULT_S ?= 5
FUZZ_REQUESTS ?= 1000000

.PHONY: dev test test-unit bench lint venv system-deps chaos-deps chaos fuzz clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

dev: venv
	$(VENV)/bin/moldau dev --port $(PORT) --data-dir $(DATA)

# Debian packages the tests drive: kcat (a real client) and Apache ZooKeeper.
system-deps:
	@if ! command -v kcat >/dev/null 2>&1 || [ ! -f /usr/share/java/zookeeper.jar ]; then \
		SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq kcat zookeeper; \
	fi

# What the fault-injection suite drives (root needed to use them): network namespaces,
# veth pairs and bridges (iproute2), partitions and packet loss (iptables), clock jumps
# (faketime), disk errors (fiu-utils).
chaos-deps:
	@missing=""; \
	for pair in ip:iproute2 iptables:iptables faketime:faketime fiu-run:fiu-utils; do \
		command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

test: venv system-deps chaos-deps
	$(PY) -m pytest -q tests

# The long fault-injection run: every scenario x SEEDS seeds (docs/reliability.md).
# Needs root; reproduce one run with `python -m moldau.chaos --scenario NAME --seed N`.
chaos: venv system-deps chaos-deps
	$(PY) -m moldau.chaos --seeds $(SEEDS) --fault-s $(FAULT_S) --out chaos-results.json

# FUZZ_REQUESTS fuzzed requests against one live broker (docs/reliability.md).
fuzz: venv
	$(PY) -m moldau.chaos.fuzz_run --requests $(FUZZ_REQUESTS) --out fuzz-results.json

test-unit: venv
	$(PY) -m pytest -q tests/unit

bench: venv
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/run.py

lint: venv
	$(VENV)/bin/ruff check moldau tests bench

clean:
	rm -rf $(VENV) build *.egg-info
