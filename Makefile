# Two commands a new user needs (see README): `make demo` and `make test`.
# Both create the virtual environment and install everything on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export HF_HUB_OFFLINE := 1

.PHONY: install demo test test-fast bench browser postgresql clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

install: $(VENV)/.installed

## demo: set up and run the main job (the CPU demo recipe on the synthetic benchmark)
demo: install
	$(BIN)/auh run

## test: set up and run the whole test suite (installs chromium for the leaderboard page test
## and PostgreSQL for the ledger-on-PostgreSQL test when they are missing)
test: install browser postgresql
	$(BIN)/python -m pytest -q --durations=20

## test-fast: skip the tests marked slow
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

## bench: measure the harness against baselines; writes bench/results/latest.json and docs/bench.md
bench: install
	$(BIN)/auh bench --markdown docs/bench.md

browser:
	@tools/install-if-missing.sh chromium "the leaderboard page test" "command -v chromium"

postgresql:
	@tools/install-if-missing.sh postgresql "the PostgreSQL ledger test" "ls /usr/lib/postgresql/*/bin/pg_ctl"

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
