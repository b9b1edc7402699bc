# Two set-up commands: `make demo` and `make test`. Everything else is a convenience.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench freshness mutate faults soak system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# The suite starts its own MariaDB and sshd; it needs their binaries, not running services.
system-deps:
	@if [ -x /usr/sbin/mariadbd ] && [ -x /usr/sbin/sshd ] && command -v mariadb-install-db >/dev/null; then \
	  :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server openssh-server >/dev/null; \
	else \
	  echo "missing system packages; run: sudo apt-get install mariadb-server openssh-server"; exit 1; \
	fi

demo: $(STAMP)
	$(BIN)/python -m syncd.admin.demo

test: system-deps $(STAMP)
	$(BIN)/ruff check syncd tests
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check syncd tests
	$(BIN)/mypy

bench: system-deps $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.freshness $(FRESH_ARGS)

# Only the freshness figure (watch mode): 20 exports over 20 minutes, then 10 idle minutes.
freshness: system-deps $(STAMP)
	$(BIN)/python -m bench.freshness $(FRESH_ARGS)

# Mutation testing of the promise-holding code (docs/testing.md); hours on 2 cores, not part of `make test`.
mutate: system-deps $(STAMP)
	$(BIN)/pip install -q 'cosmic-ray>=8.4,<9'
	$(BIN)/python tools/mutate.py $(MUTATE_ARGS)

# The fault tests (`-m fault`, also part of `make test` with small counts) with the large counts:
# 25+25 kill -9, 20 two-host rounds, 150 run-once cycles; then the 1,000-run daemon soak.
faults: system-deps $(STAMP)
	SYNCD_FAULTS=full $(BIN)/pytest -m fault -p no:cacheprovider -s -q
	$(MAKE) soak

# An idle daemon run 1,000 times back to back: RSS, descriptors, threads, DB connections.
soak: system-deps $(STAMP)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache demo-state
