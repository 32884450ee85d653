# Moldau: `make dev` runs a broker and its console, `make test` runs the whole suite, `make bench` measures.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 9092
CONSOLE_PORT ?= 8080
DATA ?= ./data

SEEDS ?= 20
FAULT_S ?= 5
FUZZ_REQUESTS ?= 1000000

.PHONY: dev test test-unit typecheck screenshots bench lint venv test-venv system-deps chaos-deps chaos fuzz clean

# What running needs (`make dev`), and what the tests need on top (`make test`).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

# After system-deps: the gssapi package builds against MIT Kerberos (libkrb5-dev, gcc).
$(VENV)/.installed-test: $(VENV)/.installed | system-deps
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

test-venv: $(VENV)/.installed-test

# One broker and its web console (http://127.0.0.1:$(CONSOLE_PORT)/).
dev: venv
	$(VENV)/bin/moldau dev --port $(PORT) --data-dir $(DATA) --console --console-port $(CONSOLE_PORT)

# Debian packages the tests drive: kcat (a real client), Apache ZooKeeper, chromium (the
# console's browser tests; Playwright drives it, never `playwright install`), and for SASL
# GSSAPI a real MIT Kerberos KDC (krb5-kdc, krb5-admin-server for kdb5_util/kadmin.local),
# kinit (krb5-user: librdkafka runs it with the keytab), cyrus-sasl's GSSAPI plugin for kcat
# (libsasl2-modules-gssapi-mit), and what the gssapi package builds with (libkrb5-dev, gcc).
system-deps:
	@if ! command -v kcat >/dev/null 2>&1 || [ ! -f /usr/share/java/zookeeper.jar ] || [ ! -x /usr/bin/chromium ] \
		|| [ ! -x /usr/sbin/krb5kdc ] || [ ! -x /usr/sbin/kadmin.local ] || ! command -v kinit >/dev/null 2>&1 \
		|| ! command -v krb5-config >/dev/null 2>&1 || ! command -v gcc >/dev/null 2>&1 \
		|| [ -z "$$(ls /usr/lib/*/sasl2/libgssapiv2.so* 2>/dev/null)" ]; then \
		SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq kcat zookeeper chromium \
			krb5-kdc krb5-admin-server krb5-user libkrb5-dev libsasl2-modules-gssapi-mit gcc; \
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

# What is clean under `mypy --strict` (the type checker runs before the tests). Not yet
# controller/controller.py: every int it puts into an inter-broker request wants kio's
# i32/i64.
TYPED := moldau/protocol moldau/log moldau/replication moldau/controller moldau/transactions moldau/authorizer moldau/metrics moldau/quotas
TYPED_EXCLUDE := moldau/controller/controller\.py$$

typecheck: test-venv
	$(VENV)/bin/mypy --strict $(TYPED) --exclude '$(TYPED_EXCLUDE)'

# Three runs: the unit ring (CPU-bound hypothesis) and the one-broker rings (each module
# its own broker; mostly waiting on clients) on two xdist workers, a module per worker; the
# clusters, the chaos scenarios and the pytest plugin's own tests (it reads xdist's worker
# variables) in one process, as their timings assume.
test: test-venv system-deps chaos-deps typecheck
	$(PY) -m pytest -q -n 2 tests/unit
	$(PY) -m pytest -q -n 2 --dist loadfile tests/integration tests/install
	$(PY) -m pytest -q tests --ignore=tests/unit --ignore=tests/integration --ignore=tests/install

# The long fault-injection run: every scenario x SEEDS seeds (docs/reliability.md).
# Needs root; reproduce one run with `python -m moldau.chaos --scenario NAME --seed N`.
chaos: test-venv system-deps chaos-deps
	$(PY) -m moldau.chaos --seeds $(SEEDS) --fault-s $(FAULT_S) --out chaos-results.json

# FUZZ_REQUESTS fuzzed requests against one live broker (docs/reliability.md).
fuzz: test-venv
	$(PY) -m moldau.chaos.fuzz_run --requests $(FUZZ_REQUESTS) --out fuzz-results.json

# The console's screenshots in docs/console/ (shown in the README), from its browser tests.
screenshots: test-venv system-deps
	MOLDAU_CONSOLE_SCREENSHOTS=docs/console $(PY) -m pytest -q tests/integration/test_console_browser.py \
		tests/cluster/test_cluster_cli.py::test_up_status_kill_down

test-unit: test-venv
	$(PY) -m pytest -q tests/unit

bench: venv
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/run.py

lint: test-venv
	$(VENV)/bin/ruff check moldau tests bench

clean:
	rm -rf $(VENV) build *.egg-info
