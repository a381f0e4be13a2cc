# mailops: `make run` starts everything on the embedded default; `make test` runs the suite.
VENV       ?= .venv
PY         := $(VENV)/bin/python
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: run test bench install install-test install-bench migrate lint clean

$(VENV)/bin/python:
	@PYTHON_BIN=$$(bin/find-python) && echo "creating $(VENV) with $$PYTHON_BIN" && $$PYTHON_BIN -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-test pyproject.toml
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-bench: $(VENV)/.installed-bench

migrate: install
	$(PY) manage.py migrate --noinput

run: install
	@bin/run-demo

# Tests keep their broker folders and databases under var/test, apart from the demo's.
test: install-test
	rm -rf var/test/broker
	MAILOPS_VAR_DIR=$(CURDIR)/var/test $(PY) -m pytest $(PYTEST_ARGS)

bench: install-bench
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf var/broker var/test-*.sqlite3* test-artifacts .pytest_cache
