# Moldau: `make dev` runs a broker, `make test` runs the whole suite, `make bench` measures.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 9092
DATA ?= ./data

.PHONY: dev test test-unit typecheck bench lint venv test-venv system-deps clean

# What running needs (`make dev`), and what the tests need on top (`make test`).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

test-venv: $(VENV)/.installed-test

dev: venv
	$(VENV)/bin/moldau dev --port $(PORT) --data-dir $(DATA)

# Debian packages the tests drive: kcat (a real client) and Apache ZooKeeper.
system-deps:
	@if ! command -v kcat >/dev/null 2>&1 || [ ! -f /usr/share/java/zookeeper.jar ]; then \
		SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq kcat zookeeper; \
	fi

# What is clean under `mypy --strict` (the type checker runs before the tests). Not yet
# controller/controller.py: every int it puts into an inter-broker request wants kio's
# i32/i64.
TYPED := moldau/protocol moldau/log moldau/replication moldau/controller moldau/authorizer
TYPED_EXCLUDE := moldau/controller/controller\.py$$

typecheck: test-venv
	$(VENV)/bin/mypy --strict $(TYPED) --exclude '$(TYPED_EXCLUDE)'

test: test-venv system-deps typecheck
	$(PY) -m pytest -q tests

test-unit: test-venv
	$(PY) -m pytest -q tests/unit

bench: venv
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/run.py

lint: test-venv
	$(VENV)/bin/ruff check moldau tests bench

clean:
	rm -rf $(VENV) build *.egg-info
