# Two set-up commands: `make demo` and `make test`. Everything else is a convenience.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench freshness mutate faults soak system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

DEMO_STAMP := $(VENV)/.installed-demo

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP) $(DEMO_STAMP)

# The demo needs syncd and its dependencies only: no test tools, and a plain (not editable) install,
# which setuptools builds without a word. A venv made by `make test` already has all of it.
$(DEMO_STAMP): $(BIN)/python setup.cfg pyproject.toml
	@if [ ! -f $(STAMP) ] || [ setup.cfg -nt $(STAMP) ] || [ pyproject.toml -nt $(STAMP) ]; then \
	  echo "installing syncd into $(VENV) (about a minute)"; \
	  $(BIN)/pip install -q --disable-pip-version-check . ; \
	fi
	@touch $(DEMO_STAMP)

# The suite starts its own MariaDB and sshd; it needs their binaries, not running services. The Bitrix
# module's tests (tests/test_bitrix_module.py) need php-cli + php-mysql (mysqli), PHPUnit and Chromium;
# the FTP source's tests, vsftpd.
APT_PACKAGES := mariadb-server openssh-server vsftpd php-cli php-mysql phpunit chromium
system-deps:
	@if [ -x /usr/sbin/mariadbd ] && [ -x /usr/sbin/sshd ] && [ -x /usr/sbin/vsftpd ] && command -v mariadb-install-db >/dev/null \
	    && command -v php >/dev/null && php -r 'exit(extension_loaded("mysqli") ? 0 : 1);' \
	    && command -v phpunit >/dev/null && command -v chromium >/dev/null; then \
	  :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	else \
	  echo "missing system packages; run: sudo apt-get install $(APT_PACKAGES)"; exit 1; \
	fi

demo: $(DEMO_STAMP)
	@$(BIN)/python -P -m syncd.admin.demo  # -P: the installed syncd, not the source folder

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
