# Moldau: `make dev` runs a broker and its console, `make test` runs the whole suite, `make bench` measures.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 9092
CONSOLE_PORT ?= 8080
DATA ?= ./data

.PHONY: dev test test-unit screenshots bench lint venv system-deps clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# One broker and its web console (http://127.0.0.1:$(CONSOLE_PORT)/).
dev: venv
	$(VENV)/bin/moldau dev --port $(PORT) --data-dir $(DATA) --console --console-port $(CONSOLE_PORT)

# Debian packages the tests drive: kcat (a real client), Apache ZooKeeper, and chromium
# (the console's browser tests; Playwright drives it, never `playwright install`).
system-deps:
	@if ! command -v kcat >/dev/null 2>&1 || [ ! -f /usr/share/java/zookeeper.jar ] || [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq kcat zookeeper chromium; \
	fi

test: venv system-deps
	$(PY) -m pytest -q tests

# The console's screenshots in docs/console/ (shown in the README), from its browser tests.
screenshots: venv system-deps
	MOLDAU_CONSOLE_SCREENSHOTS=docs/console $(PY) -m pytest -q tests/integration/test_console_browser.py \
		tests/cluster/test_cluster_cli.py::test_up_status_kill_down

test-unit: venv
	$(PY) -m pytest -q tests/unit

bench: venv
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/run.py

lint: venv
	$(VENV)/bin/ruff check moldau tests bench

clean:
	rm -rf $(VENV) build *.egg-info
